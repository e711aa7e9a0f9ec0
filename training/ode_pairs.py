"""``training odepairs``: the teacher's ODE trajectories for a causal student's first stage.

For each pair, a first frame is taken from a clip of the source shards (in shard order, cycling)
and an action sequence is drawn from the designed distribution (:mod:`training.action_design`,
seeded per pair). The teacher, a bidirectional run of ``training fit`` (EMA weights), samples the
clip with many Euler steps and classifier-free guidance on the actions, on a grid that passes
through the student's denoising timesteps (:func:`training.flow.ode_grid`: ``substeps`` steps
between them). The latents at those timesteps and the clean end are kept.

Pairs are written as a shard set that the trainer's reader streams like clips
(``worldforge.shards/1``, ``train`` and ``val`` splits, deterministic tars):

- ``mp4``: the teacher's video (the clean end decoded), to look at;
- ``keys.npy``, ``mouse.npy``: the designed actions, in the contract's form;
- ``pose.npy``: **positions unknown (0)**; orientation integrated from the mouse from level
  and yaw 0 at frame 0 (as ``curation annotate --from-video`` writes it), ``fov`` of the source
  clip;
- ``latents.npy`` (float16 ``[2, 16, F, h, w]``): the clean end and the condition latents,
  exactly as ``training encode`` lays them out, with the teacher's VAE identity in the json;
- ``first.png``: the source's first frame the teacher was given (the MP4's frame 0 has been
  through H.264 again), which the student's image condition is made from;
- ``ode.npy`` (float16 ``[K, 16, F, h, w]``): the latents at the ``K`` student timesteps, their
  sigmas in ``json["ode"]["sigmas"]`` and ``dataset.json``;
- ``json``: what a clip's json holds, plus ``ode`` (teacher run and step, timesteps, sigmas,
  grid, guidance, seed, first-frame source).

The same teacher, shards and settings give byte-identical tars. The folder is built in
``<out>.partial`` and renamed when complete.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from webdataset import TarWriter

from curation.probe_actions import orientation
from curation.shardwriter import DATASET_FILE, FORMAT
from datagen.episode import KEYS
from datagen.video import H264Writer
from shards.action_space import to_space
from shards.location import open_shards, read_dataset
from shards.reader import FIRST, ODE, decode_mp4, raw_samples
from training.action_design import sample_actions
from training.conditioning import condition_video
from training.data import latent_frames
from training.encode import LATENTS_MEMBER, encode_png
from training.flow import ode_grid
from training.sample import SamplerConfig, check_rate, denoise, load_run, to_uint8

PAIRS_FORMAT = "worldforge.odepairs/1"


@dataclass(frozen=True)
class PairsConfig:
    teacher: Path  # run folder (or step folder) of a bidirectional training fit
    shards: str  # shard folder (or URL, shards.location) the first frames come from
    out: Path  # new shard folder of pairs; must not exist
    count: int = 64  # pairs in the train split
    val_count: int = 8  # pairs in the val split (first frames from the source's val split)
    frames: int = 0  # video frames per pair, 4k+1; 0 = the teacher's training clip length
    timesteps: tuple[float, ...] = (1000.0, 666.0, 333.0)  # the student's denoising steps
    shift: float = 5.0  # timestep warp of the student's steps and the teacher's grid
    substeps: int = 16  # teacher Euler steps between stored points (48 in all for 3 steps)
    guidance: float = 3.0  # teacher CFG scale on the actions
    batch_size: int = 4  # pairs sampled together
    maxcount: int = 64  # pairs per tar
    seed: int = 0  # actions and noise: pair i uses seed + i
    vae: Path | None = None  # VAE folder (default: the teacher's)
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", str(self.shards))  # a Path is taken as its name
        problems = []
        for name in ("count", "batch_size", "maxcount", "substeps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.val_count < 0:
            problems.append(f"val_count must not be negative, got {self.val_count}")
        if self.frames and (self.frames < 5 or (self.frames - 1) % 4):
            problems.append(f"frames must be 0 (the teacher's) or 4k+1 >= 5, got {self.frames}")
        if problems:
            raise ValueError("odepairs config: " + "; ".join(problems))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _mp4(frames: np.ndarray, fps: float, scratch: Path) -> bytes:
    path = scratch / "pair.mp4"
    with H264Writer(path, frames.shape[2], frames.shape[1], fps, crf=18) as writer:
        for frame in frames:
            writer.write(frame)
    data = path.read_bytes()
    path.unlink()
    return data


def _sources(shards: str, split: str, count: int) -> list[tuple[str, np.ndarray, dict]]:
    """``count`` first frames (key, uint8 ``[H, W, 3]``, json) of ``split`` in shard order,
    cycling through its clips when there are fewer."""
    found = []
    for members in raw_samples(open_shards(shards, split)):
        found.append((members["__key__"], decode_mp4(members["mp4"])[0],
                      json.loads(members["json"])))
        if len(found) == count:
            return found
    return [found[i % len(found)] for i in range(count)]


def make_pairs(cfg: PairsConfig) -> Path:
    """Write the pairs of ``cfg`` (see the module docstring); returns the folder."""
    out = Path(cfg.out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; write pairs into a new folder")
    run = load_run(Path(cfg.teacher), cfg.vae, ema=True, device=cfg.device)
    check_rate(run.fps, cfg.shards, read_dataset(cfg.shards).get("fps"))
    frames = cfg.frames or run.frames
    latents_f = latent_frames(frames)
    sigmas, marks = ode_grid(cfg.timesteps, cfg.substeps, cfg.shift)
    keep = {m: k for k, m in enumerate(marks)}
    sampler = SamplerConfig(steps=len(sigmas) - 1, shift=cfg.shift, guidance=cfg.guidance)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    splits = {"train": cfg.count, "val": cfg.val_count}
    tars: dict[str, list[str]] = {}
    size = fps = None
    bar = tqdm(total=sum(splits.values()), desc="ODE pairs", unit="pair",
               disable=not cfg.progress)
    index = 0  # pair number over both splits: its seed
    for split, count in splits.items():
        if not count:
            continue
        sources = _sources(cfg.shards, split, count)
        tars[split], writer, in_tar = [], None, 0
        for lo in range(0, count, cfg.batch_size):
            batch = sources[lo:lo + cfg.batch_size]
            pairs = _sample(run, batch, frames, latents_f, sigmas, keep, sampler,
                            [cfg.seed + index + i for i in range(len(batch))])
            for (key, _, meta), pair in zip(batch, pairs, strict=True):
                if writer is None or in_tar == cfg.maxcount:
                    if writer is not None:
                        writer.close()
                    name = f"{split}-{len(tars[split]):06d}.tar"
                    tars[split].append(name)
                    writer = TarWriter(open(partial / name, "wb"), user="",  # noqa: SIM115
                                       group="", mode=0o644, mtime=0, encoder=False)
                    in_tar = 0
                fps = float(meta["fps"])
                size = [int(meta["width"]), int(meta["height"])]
                writer.write(_members(f"pair_{index:06d}", pair, meta, key, run, cfg, sigmas,
                                      marks, frames, partial))
                in_tar += 1
                index += 1
                bar.update()
        writer.close()
    bar.close()
    dataset = {
        "format": FORMAT, "pairs": PAIRS_FORMAT,
        "action_space": {"keys": list(KEYS), "mouse": ["mouse_dx", "mouse_dy"],
                         "mouse_units": "degrees"},
        "clip_frames": frames, "size": size, "fps": fps, "shards": tars,
        "counts": {s: {"clips": n, "shards": len(tars.get(s, []))} for s, n in splits.items()},
        "latents": {"vae": run.vae.identity, "frames": frames},
        "ode": {"teacher": str(cfg.teacher), "step": run.step,
                "timesteps": list(cfg.timesteps), "shift": cfg.shift,
                "sigmas": [float(sigmas[m]) for m in marks], "substeps": cfg.substeps,
                "guidance": cfg.guidance},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
    }
    (partial / DATASET_FILE).write_text(json.dumps(dataset, indent=2, sort_keys=True) + "\n")
    os.replace(partial, out)
    return out


@torch.no_grad()
def _sample(run, batch: list, frames: int, latents_f: int, sigmas: torch.Tensor,
            keep: dict[int, int], sampler: SamplerConfig, seeds: list[int]) -> list[dict]:
    """The teacher's trajectories for one batch of first frames, a seed per pair."""
    dev = run.vae.device
    firsts = torch.from_numpy(np.stack([f for _, f, _ in batch])).permute(0, 3, 1, 2)
    firsts = firsts.float().div(127.5).sub(1).to(dev)
    cond = run.vae.encode(condition_video(firsts, frames))
    actions = [sample_actions(frames, float(meta["fps"]), np.random.default_rng(seed))
               for (_, _, meta), seed in zip(batch, seeds, strict=True)]
    mapped = [to_space(k, m, run.space) for k, m in actions]
    kb = torch.from_numpy(np.stack([k for k, _ in mapped])).to(dev)
    ms = None if mapped[0][1] is None else \
        torch.from_numpy(np.stack([m for _, m in mapped])).to(dev)
    points: list[torch.Tensor | None] = [None] * len(keep)

    def visit(i: int, x: torch.Tensor) -> None:
        if i in keep:
            points[keep[i]] = x.clone()

    # one noise generator per batch, seeded by its first pair: pairs are reproducible given
    # the batch size (recorded in dataset.json)
    generator = torch.Generator().manual_seed(seeds[0])
    x0 = denoise(run.model, cond, run.images(firsts), kb, ms, sampler, generator,
                 sigmas=sigmas, visit=visit)
    video = run.vae.decode(x0).clamp(-1, 1)
    out = []
    for i, (keys, mouse) in enumerate(actions):
        out.append({"keys": keys, "mouse": mouse, "x0": x0[i], "cond": cond[i],
                    "first": batch[i][1], "ode": torch.stack([p[i] for p in points]),
                    "video": to_uint8(video[i].cpu())})
    return out


def _members(key: str, pair: dict, meta: dict, source: str, run, cfg: PairsConfig,
             sigmas: torch.Tensor, marks: list[int], frames: int, scratch: Path) -> dict:
    """The tar members of one pair (see the module docstring)."""
    latents = torch.stack([pair["x0"], pair["cond"]]).cpu().numpy().astype(np.float16)
    ode = pair["ode"].cpu().numpy().astype(np.float16)
    if not (np.isfinite(latents).all() and np.isfinite(ode).all()):
        raise ValueError(f"{key}: the teacher's latents overflow float16; is the run diverged?")
    fx = float(meta["intrinsics"]["fx"])
    fov = math.degrees(2 * math.atan(int(meta["width"]) / 2 / fx))
    quat, _ = orientation(pair["mouse"])
    pose = np.concatenate([np.zeros((frames, 3)), quat, np.full((frames, 1), fov)], axis=1)
    info = {
        "episode": key, "source_frames": list(range(frames)), "fps": meta["fps"],
        "width": meta["width"], "height": meta["height"], "scene": "generated",
        "backend": "teacher", "keys": list(KEYS), "intrinsics": meta["intrinsics"],
        "latents": {"vae": run.vae.identity, "frames": frames},
        "ode": {"teacher": str(cfg.teacher), "step": run.step, "first_frame_of": source,
                "timesteps": list(cfg.timesteps), "sigmas": [float(sigmas[m]) for m in marks],
                "substeps": cfg.substeps, "guidance": cfg.guidance,
                "positions": "unknown (0)"},
    }
    return {"__key__": key, "mp4": _mp4(pair["video"], float(meta["fps"]), scratch),
            "keys.npy": _npy(pair["keys"]), "mouse.npy": _npy(pair["mouse"].astype(np.float32)),
            "pose.npy": _npy(pose), LATENTS_MEMBER: _npy(latents), ODE: _npy(ode),
            FIRST: encode_png(pair["first"]),
            "json": json.dumps(info, sort_keys=True, allow_nan=False).encode()}
