"""``training eval``: does a model's video follow its inputs? Probe-scored rollouts and a report.

For a trained run, on held-out clips of a shard split (``EvalConfig``):

- **recorded**: from each clip's first frame the model generates the clip under the clip's
  recorded actions; the camera-motion probe (:mod:`curation.probe`, :mod:`curation.probe_actions`)
  reads keys and mouse back from the generated pixels, and :func:`curation.probe_score.
  score_actions` scores them against the actions the model was given: the definition the probe
  was validated with against exact labels (``benchmarks/bench_probe.py``).
- **ground truth**: the same probe and score on the clips themselves: the probe's ceiling, what a
  model that followed its inputs perfectly would score on this footage.
- **autoencoded**: the same on the clips after a round trip through the run's VAE (encode,
  decode; the first ``4k+1`` frames): the ceiling of a model that generates in that VAE's latent
  space, so a gap between ground truth and autoencoded is the VAE's, not the DiT's.
- **scripts** (:mod:`training.action_scripts`): each key alone, pairs, turns, looks and idle,
  from the first frames of the first ``script_images`` clips, ``script_frames`` frames long
  (several sampling windows by default: long rollouts).
- **drift**, per frame against the rollout's first frame: ``brightness`` ``|mean luma_t -
  mean luma_0|`` (0-255), ``contrast`` ``std_t / std_0`` and ``sharpness`` (variance of the
  Laplacian, ratio to frame 0). A rollout that fades to grey or blurs shows ratios falling
  below the ground truth's.
- **temporal consistency**: ``confidence`` (the probe's mean per-frame confidence: how well one
  rigid camera motion explains consecutive frames) and ``frame_diff`` (mean absolute difference
  of consecutive frames, 0-255).
- **against a reference run** (``reference``, e.g. a student's teacher), when one is given: the
  reference's rollouts from the same first frames under the same recorded actions and scripts,
  compared frame by frame with the model's (:mod:`training.agreement`), beside the reference
  against itself at another noise seed.

"Given" actions are what the model received: the recorded or scripted actions mapped into its
action space and back (``shards.action_space``; keys outside the space are 0), scored on the
keys of the space that the probe can read (W/S/A/D, space, ctrl; shift never).

:func:`evaluate` writes ``<out>/index.html`` (:mod:`training.eval_report`: videos side by side
with the inputs drawn, tables, plots, every number in the page's JSON), ``<out>/eval.json``,
and TensorBoard scalars to a writer it is given; it returns the numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from curation.html_page import write_page_folder
from curation.probe import probe_frames
from curation.probe_actions import probe_actions
from curation.probe_score import SCORABLE_KEYS, score_actions
from shards.action_space import ActionSpace, from_space, to_space
from shards.location import open_shards
from shards.reader import decode_mp4, raw_samples
from training.action_scripts import fits_space, script_actions, script_names
from training.agreement import agreement
from training.data import Batch
from training.eval_report import headline, report_page
from training.generator import Generator, StreamConfig
from training.sample import (
    LoadedRun,
    SamplerConfig,
    check_rate,
    generate,
    overlay_video,
    to_uint8,
)
from training.vae import WanVAE

EVAL_JSON = "eval.json"
DRIFT_KEYS = ("brightness", "contrast", "sharpness")
EVAL_SAMPLER = SamplerConfig(steps=20)  # Euler steps of the rollouts unless told otherwise


@dataclass(frozen=True)
class EvalConfig:
    split: str = "val"  # shard split of the held-out clips
    clips: int = 4  # held-out clips generated under their recorded actions (the first ones)
    frames: int = 0  # frames of each recorded rollout; 0 = the whole clip
    scripts: str = "all"  # designed action scripts (training.action_scripts), comma-separated;
    #                       "all", or "" for none; scripts the action space lacks are skipped
    script_images: int = 2  # first frames (of the first held-out clips) each script starts from
    script_frames: int = 0  # frames of each scripted rollout; 0 = three sampling windows
    fov: float = 0.0  # horizontal field of view in degrees; 0 = from the clips' intrinsics
    videos: bool = True  # write the side-by-side videos into the report

    def __post_init__(self) -> None:
        problems = []
        for name in ("clips", "frames", "script_images", "script_frames"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if self.clips < 1:
            problems.append("clips must be at least 1")
        if self.fov and not 1.0 <= self.fov <= 179.0:
            problems.append(f"fov must be 0 (from the clips) or in 1..179 degrees, got {self.fov}")
        try:
            script_names(self.scripts)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("eval config: " + "; ".join(problems))


@dataclass
class HeldOutClip:
    key: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    keys: np.ndarray  # uint8 [T, 7], contract order
    mouse: np.ndarray  # float64 [T, 2]: mouse_dx, mouse_dy in degrees
    fps: float
    fov: float  # horizontal, degrees, at the clip's size


def held_out_clips(shards: str | Path, split: str, count: int) -> list[HeldOutClip]:
    """The first ``count`` clips of ``split`` (of a shard folder or URL) in shard order,
    decoded."""
    clips = []
    for members in raw_samples(open_shards(shards, split)):
        key = members["__key__"]
        meta = json.loads(members["json"])
        frames = decode_mp4(members["mp4"])
        fx = float(meta["intrinsics"]["fx"])
        clips.append(HeldOutClip(
            key=key, frames=frames,
            keys=np.load(io.BytesIO(members["keys.npy"]), allow_pickle=False).astype(np.uint8),
            mouse=np.load(io.BytesIO(members["mouse.npy"]),
                          allow_pickle=False).astype(np.float64),
            fps=float(meta["fps"]),
            fov=math.degrees(2 * math.atan(frames.shape[2] / 2 / fx))))
        if len(clips) == count:
            return clips
    if not clips:
        raise ValueError(f"the {split} split of {shards} holds no clips")
    return clips


# ---------------------------------------------------------------------------------------------
# Measuring one video


def given_actions(keys: np.ndarray, mouse: np.ndarray, space: ActionSpace
                  ) -> tuple[np.ndarray, np.ndarray]:
    """What a model of ``space`` is given for recorded ``keys [T, 7]`` and ``mouse [T, 2]``, back
    in the contract's form (keys outside the space 0, the mouse as the model sees it)."""
    keyboard, model_mouse = to_space(keys, mouse, space)
    return from_space(keyboard, model_mouse, space)


def scored_keys(space: ActionSpace) -> tuple[str, ...]:
    """The keys of ``space`` the probe can read."""
    return tuple(k for k in SCORABLE_KEYS if k in space.keys)


def drift(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame image statistics of uint8 ``[T, H, W, 3]`` against frame 0 (module docstring):
    ``brightness`` shift, ``contrast`` and ``sharpness`` ratios, and ``frame_diff``."""
    luma = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float64)
    mean, std = luma.mean(axis=(1, 2)), luma.std(axis=(1, 2))
    sharp = np.array([cv2.Laplacian(f, cv2.CV_64F).var() for f in luma])
    diff = np.zeros(len(frames))
    diff[1:] = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return {"brightness": np.abs(mean - mean[0]), "contrast": std / max(std[0], 1e-6),
            "sharpness": sharp / max(sharp[0], 1e-6), "frame_diff": diff}


@dataclass
class Reading:
    """The probe's reading of one video beside the actions it was given."""

    keys: np.ndarray  # probed, uint8 [T, 7]
    mouse: np.ndarray  # probed, degrees [T, 2]
    known: np.ndarray  # bool [T]
    confidence: np.ndarray  # [T]
    given_keys: np.ndarray
    given_mouse: np.ndarray
    drift: dict[str, np.ndarray]


def read_video(frames: np.ndarray, given_keys: np.ndarray, given_mouse: np.ndarray, fov: float,
               fps: float) -> Reading:
    """Probe uint8 ``[T, H, W, 3]`` ``frames`` (horizontal ``fov``, ``fps``) and keep what it was
    given beside it."""
    result = probe_frames(frames, fov)
    keys, mouse, known = probe_actions(result, fps)
    return Reading(keys, mouse, known, result.confidence, given_keys, given_mouse,
                   drift(frames))


def score(readings: list[Reading], scored: tuple[str, ...]) -> dict[str, float]:
    """:func:`score_actions` over ``readings`` pooled, with the temporal-consistency means and
    each drift statistic at the rollouts' last frame (mean over rollouts)."""
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in readings])

    out = score_actions(cat("keys"), cat("mouse"), cat("known"), cat("given_keys"),
                        cat("given_mouse"), scored)
    out["confidence"] = float(np.mean(np.concatenate([r.confidence[1:] for r in readings])))
    out["frame_diff"] = float(np.mean(np.concatenate([r.drift["frame_diff"][1:]
                                                      for r in readings])))
    for k in DRIFT_KEYS:
        out[f"end_{k}"] = float(np.mean([r.drift[k][-1] for r in readings]))
    known = cat("known")
    for j, axis in enumerate(("dx", "dy")):
        out[f"probed_{axis}"] = float(np.mean(cat("mouse")[known, j])) if known.any() else 0.0
        out[f"given_{axis}"] = float(np.mean(cat("given_mouse")[:, j]))
    return out


def mean_curves(readings: list[Reading]) -> dict[str, list[float]]:
    """Each drift statistic per frame, averaged over ``readings`` (the shortest length)."""
    n = min(len(r.keys) for r in readings)
    return {k: np.mean([r.drift[k][:n] for r in readings], axis=0).tolist()
            for k in (*DRIFT_KEYS, "frame_diff")}


# ---------------------------------------------------------------------------------------------
# Rollouts


def autoencode(vae: WanVAE, frames: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> the same after the VAE's encode and decode, the first
    ``4k+1`` frames (the most the VAE takes)."""
    n = (len(frames) - 1) // vae.temporal * vae.temporal + 1
    video = torch.from_numpy(frames[:n]).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1)
    return to_uint8(vae.decode(vae.encode(video))[0].cpu())


def read_clips(clips: list[HeldOutClip], given: list[tuple[np.ndarray, np.ndarray]], n: int,
               fov: float, fps: float, vae: WanVAE | None = None) -> list[Reading]:
    """The probe's readings of the first ``n`` frames of ``clips`` (with ``vae``: after its
    :func:`autoencode`, the first ``4k+1``) beside the ``given`` keys and mouse of each."""
    readings = []
    for c, (k, m) in zip(clips, given, strict=True):
        video = c.frames[:n] if vae is None else autoencode(vae, c.frames[:n])
        readings.append(read_video(video, k[:len(video)], m[:len(video)], fov, fps))
    return readings


def vae_ceiling(vae: WanVAE, clips: list[HeldOutClip]) -> dict:
    """How well the probe reads the recorded keys and mouse of ``clips`` (whole, all scorable
    keys) from the clips themselves (``ground_truth``) and after ``vae`` (``autoencoded``): a
    VAE's ceiling for any model that generates its latents, without a model. Each with
    ``keyboard``, ``mouse`` (direction), ``unknown`` and ``mouse_median`` (degrees); None where
    there is nothing to score (e.g. ``mouse`` when no clip turns)."""
    n = min(len(c.keys) for c in clips)
    given = [(c.keys[:n], c.mouse[:n]) for c in clips]
    out: dict = {"clips": len(clips), "frames": n}
    for name, through in (("ground_truth", None), ("autoencoded", vae)):
        s = score(read_clips(clips, given, n, clips[0].fov, clips[0].fps, through),
                  SCORABLE_KEYS)
        picked = {"keyboard": s["keyboard"], "mouse": s["direction"], "unknown": s["unknown"],
                  "mouse_median": s["mouse_median"]}
        out[name] = {k: None if math.isnan(v) else v for k, v in picked.items()}
    return out


def rollout(run: LoadedRun, firsts: np.ndarray, keys: np.ndarray, mouse: np.ndarray,
            sampler: SamplerConfig) -> np.ndarray:
    """uint8 ``[B, T, H, W, 3]`` generated from first frames ``firsts [B, H, W, 3]`` under
    contract actions ``keys [B, T, 7]`` and ``mouse [B, T, 2]``: by sliding windows of
    many-step sampling, or for a block-causal run (``run.stream``) block by block as ``training
    play`` does (its own steps; ``sampler.seed`` for the noise)."""
    if run.stream.get("block"):
        cfg = StreamConfig.recorded(run.stream, seed=sampler.seed)
        videos = []
        for first, k, m in zip(firsts, keys, mouse, strict=True):
            generator = Generator(run.model, run.vae, run.images, run.space, cfg)
            image = torch.from_numpy(first).permute(2, 0, 1)[None].float().div(127.5).sub(1)
            generator.reset(image.to(run.vae.device))
            videos.append(np.concatenate(list(generator.blocks(k, m))))
        return np.stack(videos)
    mapped = [to_space(k, m, run.space) for k, m in zip(keys, mouse, strict=True)]
    device = run.vae.device
    kb = torch.from_numpy(np.stack([k for k, _ in mapped])).to(device)
    ms = None if mapped[0][1] is None else torch.from_numpy(
        np.stack([m for _, m in mapped])).to(device)
    first = torch.from_numpy(firsts).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
    video = generate(run.model, run.vae, run.images, first, kb, ms, run.frames, sampler)
    return np.stack([to_uint8(v) for v in video.cpu()])


@torch.no_grad()
def streamed_videos(run: LoadedRun, batch: Batch, out_dir: Path, fps: float) -> list[Path]:
    """``training.sample.validation_videos`` for a block-causal run: each clip of a held-out
    ``batch`` played block by block (:func:`rollout`, as ``training play``) from its first
    frame (its latent decoded) under its actions, beside the clip, inputs drawn over both."""
    clips = [to_uint8(v) for v in run.vae.decode(batch.latents).clamp(-1, 1).cpu()]
    mice = [None] * len(batch) if batch.mouse is None else batch.mouse
    contract = [from_space(kb.round().cpu().numpy(), None if ms is None else ms.cpu().numpy(),
                           run.space) for kb, ms in zip(batch.keyboard, mice, strict=True)]
    keys, mouse = np.stack([k for k, _ in contract]), np.stack([m for _, m in contract])
    made = rollout(run, np.stack([c[0] for c in clips]), keys, mouse, EVAL_SAMPLER)
    return [Path(out_dir) / _video(run, Path(out_dir) / f"{key}.mp4",
                                   {"generated": video, "clip": clip}, k, m, fps)
            for key, video, clip, k, m in zip(batch.keys, made, clips, keys, mouse, strict=True)]


def _video(run: LoadedRun, path: Path, panels: dict[str, np.ndarray], keys: np.ndarray,
           mouse: np.ndarray, fps: float) -> str:
    keyboard, model_mouse = to_space(keys, mouse, run.space)
    overlay_video(path, panels, keyboard, model_mouse, run.space, fps)
    return path.name


class Reference:
    """A run the evaluated model is compared with (``training eval --reference``), its rollouts
    remembered by their exact inputs: a frozen teacher's are the same at every evaluation of a
    distillation run, so they are made once."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self._made: dict[str, np.ndarray] = {}

    def rollout(self, firsts: np.ndarray, keys: np.ndarray, mouse: np.ndarray,
                sampler: SamplerConfig) -> np.ndarray:
        """:func:`rollout` of the reference run, made once per distinct input."""
        digest = hashlib.sha256(repr(asdict(sampler)).encode())
        for a in (firsts, keys, mouse):
            digest.update(f"{a.dtype}{a.shape}".encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        key = digest.hexdigest()
        if key not in self._made:
            self._made[key] = rollout(self.run, firsts, keys, mouse, sampler)
        return self._made[key]


def against_reference(reference: Reference, firsts: np.ndarray, keys: np.ndarray,
                      mouse: np.ndarray, made: np.ndarray,
                      scripted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                      sampler: SamplerConfig
                      ) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """The model's rollouts (``made`` under recorded ``keys``, ``mouse`` from ``firsts``;
    ``scripted``: name -> (keys, mouse, rollouts) of each script) against the reference's under
    the same inputs, and the reference against itself at the next seed
    (:func:`training.agreement.agreement`); also the reference's rollouts, recorded and
    scripted."""
    def roll(s: SamplerConfig) -> tuple[np.ndarray, np.ndarray | None]:
        videos = reference.rollout(firsts, keys, mouse, s)
        starts = firsts[:len(next(iter(scripted.values()))[2])] if scripted else firsts
        scripts = np.stack([reference.rollout(starts, k, m, s)
                            for k, m, _ in scripted.values()]) if scripted else None
        return videos, scripts

    ref, ref_scripts = roll(sampler)
    again, again_scripts = roll(replace(sampler, seed=sampler.seed + 1))
    mine = np.stack([v for _, _, v in scripted.values()]) if scripted else None
    return ({"step": reference.run.step, "scripts": list(scripted),
             "model": agreement(made, ref, mine, ref_scripts),
             "reference_self": agreement(again, ref, again_scripts, ref_scripts)},
            ref, ref_scripts)


def evaluate(run: LoadedRun, shards: str | Path, out: Path, cfg: EvalConfig,
             sampler: SamplerConfig = EVAL_SAMPLER, board: object = None,
             progress: bool = False, reference: Reference | None = None) -> dict:
    """Run the evaluation (module docstring) and write its report folder ``out``; returns the
    numbers (also in ``out/eval.json``); ``board``: a TensorBoard ``SummaryWriter`` for
    ``eval/...`` scalars at the run's step; ``reference``: a run to compare the rollouts with
    (same action space)."""
    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    if reference is not None and reference.run.space.name != run.space.name:
        raise ValueError(f"the reference plays action space {reference.run.space.name!r}, the "
                         f"model {run.space.name!r}: their rollouts cannot be compared")
    clips = held_out_clips(shards, cfg.split, cfg.clips)
    n = min(len(c.keys) for c in clips)
    n = min(n, cfg.frames) if cfg.frames else n
    if n < 5:
        raise ValueError(f"held-out clips of {n} frames are too short to evaluate (5 at least)")
    fov = cfg.fov or clips[0].fov
    fps = clips[0].fps
    for model in (run, *([reference.run] if reference is not None else [])):
        check_rate(model.fps, shards, fps)
    scored = scored_keys(run.space)
    say(f"eval: {len(clips)} held-out clip(s) of {n} frames under their recorded actions")
    firsts = np.stack([c.frames[0] for c in clips])
    given = [given_actions(c.keys[:n], c.mouse[:n], run.space) for c in clips]
    recorded_keys = np.stack([c.keys[:n] for c in clips])
    recorded_mouse = np.stack([c.mouse[:n] for c in clips])
    made = rollout(run, firsts, recorded_keys, recorded_mouse, sampler)
    recorded = [read_video(v, k, m, fov, fps) for v, (k, m) in zip(made, given, strict=True)]
    truth = read_clips(clips, given, n, fov, fps)
    say("eval: the held-out clips through the VAE")
    autoencoded = read_clips(clips, given, n, fov, fps, run.vae)

    names = [s for s in script_names(cfg.scripts) if fits_space(s, run.space)]
    length = cfg.script_frames or 3 * (run.frames - 1) + 1
    starts = firsts[:max(1, cfg.script_images)]
    scripts: dict[str, list[Reading]] = {}
    scripted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, name in enumerate(names):
        say(f"eval: script {name} ({i + 1}/{len(names)}), {len(starts)} x {length} frames")
        keys, mouse = script_actions(name, length, fps)
        keys, mouse = np.repeat(keys[None], len(starts), 0), np.repeat(mouse[None], len(starts), 0)
        videos = rollout(run, starts, keys, mouse, sampler)
        k, m = given_actions(keys[0], mouse[0], run.space)
        scripts[name] = [read_video(v, k, m, fov, fps) for v in videos]
        scripted[name] = (keys, mouse, videos)

    results = {
        "step": run.step, "space": run.space.name, "scored_keys": list(scored),
        "fov": fov, "fps": fps, "frames": n, "script_frames": length,
        "clips": [c.key for c in clips], "config": asdict(cfg), "sampler": asdict(sampler),
        "recorded": score(recorded, scored), "ground_truth": score(truth, scored),
        "autoencoded": score(autoencoded, scored),
        "scripts": score([r for rs in scripts.values() for r in rs], scored) if scripts else {},
        "per_script": {name: score(rs, scored) for name, rs in scripts.items()},
        "curves": {"recorded": mean_curves(recorded), "ground_truth": mean_curves(truth),
                   "autoencoded": mean_curves(autoencoded),
                   **({"scripts": mean_curves([r for rs in scripts.values() for r in rs])}
                      if scripts else {})},
    }
    ref_made = ref_scripted = None
    if reference is not None:
        say("eval: the reference's rollouts, at the model's noise seed and the next")
        results["reference"], ref_made, ref_scripted = against_reference(
            reference, firsts, recorded_keys, recorded_mouse, made, scripted, sampler)

    def render(folder: Path) -> str:
        video_files: list[tuple[str, str]] = []
        if cfg.videos:
            for i, (c, v, (k, m)) in enumerate(zip(clips, made, given, strict=True)):
                panels = {"generated": v, "ground truth": c.frames[:n]}
                if ref_made is not None:
                    panels["reference"] = ref_made[i]
                video_files.append((" | ".join([c.key + ": generated", *list(panels)[1:]]),
                                    _video(run, folder / f"recorded-{c.key.replace('/', '_')}.mp4",
                                           panels, k, m, fps)))
            for j, (name, (k, m, v)) in enumerate(scripted.items()):
                panels = {f"generated: {name}": v[0]}
                if ref_scripted is not None:
                    panels["reference"] = ref_scripted[j, 0]
                video_files.append((f"script {name}" + (" | reference" if len(panels) > 1 else ""),
                                    _video(run, folder / f"script-{name}.mp4", panels, k[0], m[0],
                                           fps)))
        (folder / EVAL_JSON).write_text(json.dumps(results, indent=1) + "\n")
        return report_page(results, folder, video_files)

    write_page_folder(Path(out), render)
    if board is not None:
        for name, value in headline(results).items():
            if not math.isnan(value):
                board.add_scalar(f"eval/{name}", value, run.step)
    return results
