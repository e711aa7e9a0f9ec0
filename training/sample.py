"""Many-step sampling of the bidirectional DiT, long videos by sliding windows, input overlays.

``denoise`` runs Euler steps of the flow ODE from noise (``sampling_sigmas``: ``steps`` sigmas
from 1 to 0, shifted) with classifier-free guidance on the actions: ``v = v_0 + g (v_a - v_0)``
where ``v_0`` is the prediction with all-zero actions (what CFG dropout trained). Latent frame 0
is the clean first-frame latent at ``t = 0`` throughout, as in training.

``generate`` makes a video of any length ``N`` from one first frame and ``N`` frame actions:
windows of ``window`` frames (``4k + 1``, the training clip length), each starting from the last
frame the previous one generated, with that window's actions; a short last window is padded by
repeating its last action and trimmed.

``overlay_video`` writes generated frames (and the ground truth beside them) with the inputs
drawn over both as ``curation preview`` does; ``validation_videos`` does that for a batch of
held-out clips during ``training fit``.

``load_run`` and ``read_action_file`` serve ``training sample``: a trained model (EMA weights by
default) with its VAE and image encoder, checked against the identities the checkpoint
recorded, and frame actions from an episode CSV (contract form) or a clip of a shard tar, at
the frame rate the model trained at.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from curation.preview import MIN_HEIGHT, draw_overlay, layout
from curation.resample import merge_inputs, shown_rows
from datagen.episode import KEY_COLUMNS, read_actions
from datagen.video import H264Writer, read_frames
from shards.action_space import ActionSpace, from_space, get_space, to_space
from shards.location import read_dataset
from shards.reader import raw_samples
from training import checkpoint
from training.conditioning import condition_video, first_frame_mask
from training.config import ActionConfig, DiTConfig
from training.data import Batch, latent_frames
from training.dit import WorldDiT
from training.flow import sampling_sigmas
from training.image_encoder import ClipImageEncoder, StandinImageEncoder, make_image_encoder
from training.vae import WanVAE, check_identity


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 30  # Euler steps from noise to clean latents
    shift: float = 5.0  # sigma shift of the sampling grid (Matrix-Game 2.0: 5)
    guidance: float = 3.0  # CFG scale on actions; 1 = no guidance (one model pass per step)
    seed: int = 0  # noise seed: same seed, same inputs -> same video

    def __post_init__(self) -> None:
        if self.steps < 1 or self.shift <= 0 or self.guidance < 0:
            raise ValueError(f"sampler: steps >= 1, shift > 0 and guidance >= 0 required, got "
                             f"steps={self.steps}, shift={self.shift}, "
                             f"guidance={self.guidance}")


@torch.no_grad()
def denoise(model: WorldDiT, cond_latents: Tensor, image: Tensor, keyboard: Tensor,
            mouse: Tensor | None, cfg: SamplerConfig, generator: torch.Generator,
            sigmas: Tensor | None = None,
            visit: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """Clean latents ``[B, 16, F, h, w]`` for condition latents of the same shape (the VAE
    latents of the first frame followed by zeros), image tokens and frame actions. ``sigmas``
    replaces the grid of ``cfg.steps`` (from high to 0); ``visit(i, x)`` sees the latents at
    each ``sigmas[i]``, the clean end included (e.g. to keep an ODE trajectory)."""
    b, _, frames, h, w = cond_latents.shape
    mask = first_frame_mask(frames, h, w).to(cond_latents)[None].expand(b, -1, -1, -1, -1)
    cond = torch.cat([mask, cond_latents], dim=1)
    clean = cond_latents[:, :, :1]
    x = torch.randn(cond_latents.shape, generator=generator).to(cond_latents)
    x[:, :, :1] = clean
    no_keys = torch.zeros_like(keyboard)
    no_mouse = None if mouse is None else torch.zeros_like(mouse)
    sigmas = (sampling_sigmas(cfg.steps, cfg.shift) if sigmas is None else sigmas).tolist()
    for i, (sigma, nxt) in enumerate(zip(sigmas[:-1], sigmas[1:], strict=True)):
        if visit is not None:
            visit(i, x)
        t = torch.full((b, frames), 1000.0 * sigma, device=x.device)
        t[:, 0] = 0.0
        v = model(x, t, cond, image, keyboard, mouse)
        if cfg.guidance != 1.0:
            v0 = model(x, t, cond, image, no_keys, no_mouse)
            v = v0 + cfg.guidance * (v - v0)
        x = x + (nxt - sigma) * v
        x[:, :, :1] = clean
    if visit is not None:
        visit(len(sigmas) - 1, x)
    return x


def _window_actions(actions: Tensor | None, start: int, length: int) -> Tensor | None:
    """Frames ``start .. start + length - 1`` of ``[B, N, A]`` actions, the last one repeated
    past the end."""
    if actions is None:
        return None
    part = actions[:, start:start + length]
    if part.shape[1] < length:
        part = torch.cat([part, part[:, -1:].expand(-1, length - part.shape[1], -1)], dim=1)
    return part


@torch.no_grad()
def generate(model: WorldDiT, vae: WanVAE, images: StandinImageEncoder | ClipImageEncoder,
             first: Tensor, keyboard: Tensor, mouse: Tensor | None, window: int,
             cfg: SamplerConfig, progress: bool = False) -> Tensor:
    """A video ``[B, 3, N, H, W]`` in [-1, 1] from ``first [B, 3, H, W]`` and ``N`` frame
    actions (``keyboard [B, N, K]``, ``mouse [B, N, 2]`` or None); frame 0 is ``first``."""
    latent_frames(window)
    total = keyboard.shape[1]
    if mouse is not None and mouse.shape[1] != total:
        raise ValueError(f"keyboard has {total} frames, mouse {mouse.shape[1]}")
    generator = torch.Generator().manual_seed(cfg.seed)
    frames = [first[:, :, None]]
    start, made = 0, 1
    while made < total:
        length = min(window, 4 * ((total - start - 1 + 3) // 4) + 1)
        head = frames[-1][:, :, -1]
        cond_latents = vae.encode(condition_video(head, length))
        latents = denoise(model, cond_latents, images(head),
                          _window_actions(keyboard, start, length),
                          _window_actions(mouse, start, length), cfg, generator)
        video = vae.decode(latents).clamp(-1, 1)
        keep = min(length - 1, total - made)
        frames.append(video[:, :, 1:1 + keep])
        made += keep
        start += keep
        if progress:
            print(f"generated {made}/{total} frames", flush=True)
    return torch.cat(frames, dim=2)


def to_uint8(video: Tensor) -> np.ndarray:
    """``[3, T, H, W]`` in [-1, 1] -> ``[T, H, W, 3]`` uint8."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy()


def overlay_video(path: Path, panels: dict[str, np.ndarray], keyboard: np.ndarray,
                  mouse: np.ndarray | None, space: ActionSpace, fps: float) -> Path:
    """Write ``panels`` (name -> uint8 ``[T, H, W, 3]``, e.g. generated and ground truth) side
    by side to an H.264 ``path``, each scaled up to a legible height with the actions of each
    frame (``keyboard [T, K]``, ``mouse [T, 2]`` in ``space``) drawn over it."""
    keys, degrees = from_space(keyboard.round().astype(np.float32),
                               None if mouse is None else mouse, space)
    first = next(iter(panels.values()))
    t, h, w, _ = first.shape
    scale = max(1, -(-MIN_HEIGHT // h))
    lay = layout(w * scale, h * scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.mp4")
    with H264Writer(tmp, w * scale * len(panels), h * scale, fps, crf=18) as writer:
        for i in range(t):
            row = []
            for name, frames in panels.items():
                big = cv2.resize(frames[i], (w * scale, h * scale),
                                 interpolation=cv2.INTER_NEAREST)
                row.append(draw_overlay(big, lay, keys[i], float(degrees[i, 0]),
                                        float(degrees[i, 1]), [name, f"frame {i}/{t - 1}"]))
            writer.write(np.concatenate(row, axis=1))
    tmp.replace(path)
    return path


@torch.no_grad()
def validation_videos(model: WorldDiT, batch: Batch, vae: WanVAE, out_dir: Path,
                      cfg: SamplerConfig = SamplerConfig(steps=20), fps: float = 15.0,
                      space: ActionSpace | str | None = None) -> list[Path]:
    """For each clip of a held-out batch: the video generated from its first frame and recorded
    actions, beside the ground truth (its latents decoded by ``vae``), inputs drawn over both
    (``space``: the run's action space, default the model's)."""
    space = get_space(space or model.cfg.space)
    generator = torch.Generator().manual_seed(cfg.seed)
    latents = denoise(model, batch.cond[:, 4:], batch.image, batch.keyboard, batch.mouse, cfg,
                      generator)
    made, truth = vae.decode(latents).clamp(-1, 1), vae.decode(batch.latents).clamp(-1, 1)
    paths = []
    for i, key in enumerate(batch.keys):
        mouse = None if batch.mouse is None else batch.mouse[i].cpu().numpy()
        paths.append(overlay_video(
            Path(out_dir) / f"{key}.mp4",
            {"generated": to_uint8(made[i].cpu()), "ground truth": to_uint8(truth[i].cpu())},
            batch.keyboard[i].cpu().numpy(), mouse, space, fps))
    return paths


@dataclass
class LoadedRun:
    model: WorldDiT
    vae: WanVAE
    images: StandinImageEncoder | ClipImageEncoder
    space: ActionSpace
    frames: int  # clip length the model was trained on: the sampling window
    size: tuple[int, int] | None  # (width, height) of the training shards, when known
    fps: float | None  # frame rate of the training shards, when known
    step: int
    stream: dict = field(default_factory=dict)  # StreamConfig fields a causal run recorded


def model_config(saved: dict) -> DiTConfig:
    """A :class:`DiTConfig` from its JSON form in ``trainer.json`` (lists back to tuples)."""
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    action = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["action"].items()}
    return DiTConfig(**{**tuples, "action": ActionConfig(**action)})


def load_run(ckpt: Path, vae_path: Path | None = None, ema: bool = True,
             device: str = "cpu") -> LoadedRun:
    """The model of a run folder (its newest checkpoint) or of a step folder, with the VAE and
    image encoder it was trained with (``vae_path`` overrides the recorded VAE folder; its
    identity must still match)."""
    step_dir = checkpoint.step_folder(ckpt)
    trainer = checkpoint.read_trainer(step_dir)
    cfg, run_cfg = model_config(trainer["model"]), trainer["config"]
    model = WorldDiT(cfg)
    use_ema = ema and (step_dir / checkpoint.EMA_FILE).is_file()
    model.load_state_dict(checkpoint.load_weights(step_dir, ema=use_ema), strict=True)
    vae_folder = vae_path or (Path(run_cfg["vae"]) if run_cfg.get("vae") else None)
    if vae_folder is None:
        raise FileNotFoundError(f"{step_dir} records no VAE folder: pass --vae")
    vae = WanVAE.load(vae_folder, device=device)
    check_identity(vae.identity, trainer["vae"], f"the model in {step_dir}")
    images = make_image_encoder(cfg, run_cfg.get("image_encoder") or None, device)
    if images.identity != trainer["image_encoder"]:
        raise ValueError(f"{step_dir} was trained with image encoder "
                         f"{trainer['image_encoder']}, not {images.identity}")
    size, fps = _footage(trainer)
    space = get_space(run_cfg.get("action_space") or cfg.space)
    return LoadedRun(model.to(device).eval(), vae, images, space, int(run_cfg["frames"]), size,
                     fps, int(trainer["step"]), trainer.get("stream", {}))


def _footage(trainer: dict) -> tuple[tuple[int, int] | None, float | None]:
    """``(width, height)`` and frame rate of the footage a run trained on: as its checkpoint
    records them, or for a run from before they were recorded, from its shards' dataset.json
    while it can be read; None where unknown."""
    info = trainer.get("footage")
    if info is None:
        try:
            info = read_dataset(trainer["config"].get("shards") or "")
        except (OSError, ValueError):
            return None, None
    size, fps = info.get("size"), info.get("fps")
    return (None if size is None else (int(size[0]), int(size[1])),
            None if fps is None else float(fps))


def check_rate(trained: float | None, shards: str | Path, fps: float | None) -> None:
    """Refuse footage at ``fps`` (of ``shards``) for a model that learnt at ``trained`` frames
    per second (either None: unknown, anything goes): its inputs would play at another speed."""
    if trained is not None and fps is not None and abs(float(trained) - float(fps)) > 1e-6:
        raise ValueError(f"{shards} is at {fps:g} fps, but the model learnt on {trained:g} fps "
                         f"footage: its inputs would play at another speed (curate with "
                         f"curation filter --fps {trained:g})")


# The inputs of an actions.csv, the contract's first columns: a file of just these is what
# ``training play --interactive`` records (a generated video has no camera to log)
INPUT_COLUMNS = ("frame", "t", *KEY_COLUMNS, "mouse_dx", "mouse_dy")


@dataclass(frozen=True)
class ActionFile:
    """The inputs of an action file, a row per frame at the rate the file was made at."""

    keys: np.ndarray  # uint8 [N, 7], KEY_COLUMNS
    mouse: np.ndarray  # float64 [N, 2] degrees, summed over each row's frame interval
    times: np.ndarray | None  # float64 [N] seconds of the rows; None where the file says none

    def at(self, fps: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Keys and mouse a frame at ``fps`` frames per second, resampled as ``curation filter``
        resamples footage (curation.resample: each frame shows the last row at or before its
        time; mouse deltas summed, keys OR-ed over the rows it merges), so a model plays its
        inputs at the rate it learnt them; the rows as they are when either rate is unknown."""
        if fps is None or self.times is None:
            return self.keys, self.mouse
        return merge_inputs(shown_rows(self.times, fps), self.keys, self.mouse)


def read_action_file(path: Path, key: str | None = None) -> ActionFile:
    """The inputs of an episode's ``actions.csv`` (or its folder), of a CSV of
    :data:`INPUT_COLUMNS` only (both timed by their ``t`` column), or of clip ``key`` (default:
    the first) of a shard tar (timed by its json's fps)."""
    path = Path(path)
    if path.is_dir():
        path = path / "actions.csv"
    if path.suffix == ".csv" and path.is_file():
        with path.open(encoding="utf-8") as f:
            header = tuple(f.readline().rstrip("\r\n").split(","))
        if header == INPUT_COLUMNS:
            if key is not None:
                raise ValueError("--key selects a clip of a shard tar, not of a CSV")
            return _read_inputs(path)
    if path.suffix == ".tar":
        for members in raw_samples([str(path)]):
            if key is None or members["__key__"] == key:
                keys = np.load(io.BytesIO(members["keys.npy"]), allow_pickle=False)
                mouse = np.load(io.BytesIO(members["mouse.npy"]), allow_pickle=False)
                fps = json.loads(members["json"]).get("fps") if "json" in members else None
                times = None if fps is None else np.arange(len(keys)) / float(fps)
                return ActionFile(keys.astype(np.uint8), mouse.astype(np.float64), times)
        raise KeyError(f"no clip {key!r} in {path}")
    if key is not None:
        raise ValueError("--key selects a clip of a shard tar, not of a CSV")
    _, columns = read_actions(path)
    keys = np.stack([columns[c] for c in KEY_COLUMNS], axis=1).astype(np.uint8)
    mouse = np.stack([columns["mouse_dx"], columns["mouse_dy"]], axis=1).astype(np.float64)
    return ActionFile(keys, mouse, _times(path, columns["t"]))


def _times(path: Path, t: np.ndarray) -> np.ndarray:
    times = np.asarray(t, dtype=np.float64)
    if np.any(np.diff(times) < 0):
        raise ValueError(f"{path}: times (column t) must not decrease")
    return times


def _read_inputs(path: Path) -> ActionFile:
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if len(table) == 0 or not np.array_equal(table[:, 0], np.arange(len(table))):
        raise ValueError(f"{path}: needs rows for frames 0, 1, 2, ... in order")
    keys = table[:, 2:2 + len(KEY_COLUMNS)]
    if not np.isin(keys, (0, 1)).all():
        raise ValueError(f"{path}: key columns must be 0 or 1")
    return ActionFile(keys.astype(np.uint8), table[:, -2:].copy(), _times(path, table[:, 1]))


def write_inputs(path: Path, keys: np.ndarray, mouse: np.ndarray, fps: float,
                 first: int = 0) -> None:
    """Append rows of :data:`INPUT_COLUMNS` for frames ``first ..`` (the header with frame 0);
    floats written so they read back exactly."""
    with path.open("w" if first == 0 else "a", encoding="utf-8", newline="") as f:
        if first == 0:
            f.write(",".join(INPUT_COLUMNS) + "\n")
        for i, (k, m) in enumerate(zip(keys, mouse, strict=True), start=first):
            f.write(f"{i},{i / fps!r}," + ",".join(str(int(v)) for v in k)
                    + f",{float(m[0])!r},{float(m[1])!r}\n")


def load_image(path: Path, size: tuple[int, int] | None) -> Tensor:
    """An image file (or a video's first frame) as ``[1, 3, H, W]`` in [-1, 1]: scaled to cover
    ``size`` (width, height) and centre-cropped, or, without a size, cropped to multiples of 16."""
    if path.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm"):
        if not path.is_file():
            raise FileNotFoundError(f"no video at {path}")
        rgb = next(read_frames(path), None)
        if rgb is None:
            raise ValueError(f"{path} has no frames")
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read an image from {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    if size is None:
        size = (w // 16 * 16, h // 16 * 16)
    tw, th = size
    scale = max(tw / w, th / h)
    if scale != 1:
        rgb = cv2.resize(rgb, (max(tw, round(w * scale)), max(th, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y0, x0 = (rgb.shape[0] - th) // 2, (rgb.shape[1] - tw) // 2
    crop = np.ascontiguousarray(rgb[y0:y0 + th, x0:x0 + tw])
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1


def sample_video(run: LoadedRun, image: Path, actions: Path, out: Path, cfg: SamplerConfig,
                 key: str | None = None, frames: int | None = None, overlay: bool = False,
                 fps: float | None = None, progress: bool = True) -> Path:
    """``training sample``: a video from an image and an action file (resampled to the frame
    rate the model trained at, :meth:`ActionFile.at`), written to ``out`` at ``fps`` (default:
    that frame rate, else 15)."""
    keys, mouse_deg = read_action_file(actions, key).at(run.fps)
    fps = fps or run.fps or 15.0
    if frames is not None:
        if frames > len(keys):
            raise ValueError(f"{actions} has {len(keys)} frames of actions at the model's "
                             f"{run.fps or 'unknown'} fps, not {frames}")
        keys, mouse_deg = keys[:frames], mouse_deg[:frames]
    keyboard, mouse = to_space(keys, mouse_deg, run.space)
    first = load_image(image, run.size).to(run.vae.device)
    kb = torch.from_numpy(keyboard)[None].to(first.device)
    ms = None if mouse is None else torch.from_numpy(mouse)[None].to(first.device)
    video = to_uint8(generate(run.model, run.vae, run.images, first, kb, ms, run.frames, cfg,
                              progress)[0].cpu())
    if overlay:
        return overlay_video(out, {"generated": video}, keyboard, mouse, run.space, fps)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.mp4")
    with H264Writer(tmp, video.shape[2], video.shape[1], fps, crf=18) as writer:
        for frame in video:
            writer.write(frame)
    tmp.replace(out)
    return out
