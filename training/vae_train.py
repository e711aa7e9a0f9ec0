"""``training vae``: train a Wan VAE from scratch on curated shards.

One config, :class:`VaeConfig`; :func:`train_vae` runs it and returns the run folder::

    <run>/vae_train.json   the VaeConfig and the shard set's size and clip length
    <run>/vae/             the VAE (diffusers save_pretrained: config.json + safetensors), with
                           the latents_mean/latents_std measured on train clips in its config;
                           written as <run>/vae.partial and renamed when complete
    <run>/metrics.json     reconstruction PSNR/SSIM on held-out clips before and after training

``WanVAE.load(<run>)`` loads the result. Windows of ``frames`` (4k+1) frames are cut at random
offsets from the train split's clips (the stream of ``shards.clip_dataset``, seeded);
evaluation uses the first window of the first ``eval_clips`` clips of ``eval_split``. The loss
is the L1 reconstruction error plus ``kl_weight`` times the KL divergence of the posterior to a
unit Gaussian, both as means per element; AdamW at a constant learning rate. The same config
on the same machine gives the same weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from torch import Tensor
from tqdm import tqdm

from shards.reader import clip_dataset, open_shards
from training.metrics import psnr, ssim
from training.vae import ARCHS, VaeError, build_vae

CONFIG_FILE = "vae_train.json"
METRICS_FILE = "metrics.json"
VAE_DIR = "vae"


@dataclass(frozen=True)
class VaeConfig:
    shards: Path  # shard folder (curation filter output); frame size a multiple of 8
    out: Path  # run folder: must not exist or be empty
    arch: str = "tiny"  # architecture, a key of training.vae.ARCHS ("tiny", "wan2.1")
    frames: int = 9  # frames per training window, 4k+1, at most the shards' clip length
    steps: int = 400  # optimiser steps
    batch_size: int = 4  # windows per step
    lr: float = 1e-3  # AdamW learning rate (constant)
    weight_decay: float = 0.0  # AdamW weight decay
    kl_weight: float = 1e-6  # weight of the mean KL per latent element against the mean L1
    sample_posterior: bool = False  # decode a posterior sample (True) or its mean while training
    grad_clip: float = 1.0  # gradient norm clip
    shuffle: int = 64  # clip shuffle buffer (0: shard order)
    seed: int = 0  # initialisation, clip order, window offsets, posterior samples
    eval_split: str = "val"  # split of the held-out clips
    eval_clips: int = 8  # held-out clips evaluated (the first ones of eval_split)
    stats_clips: int = 32  # train clips whose latents give latents_mean/latents_std
    progress: bool = True  # tqdm bar with the loss

    def __post_init__(self) -> None:
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.frames < 1 or (self.frames - 1) % 4:
            problems.append(f"frames must be 4k+1 (1, 5, 9, 13, ...), got {self.frames}")
        for name in ("steps", "batch_size", "eval_clips", "stats_clips"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.grad_clip > 0:
            problems.append(f"lr and grad_clip must be positive, got {self.lr}, {self.grad_clip}")
        if self.weight_decay < 0 or self.kl_weight < 0 or self.shuffle < 0:
            problems.append("weight_decay, kl_weight and shuffle must not be negative")
        if problems:
            raise ValueError("; ".join(problems))


def shard_geometry(shards: Path, frames: int) -> dict:
    """The shard set's ``size`` [W, H] and ``clip_frames`` from its dataset.json, checked
    against the VAE (multiples of 8) and the window length."""
    path = Path(shards) / "dataset.json"
    try:
        dataset = json.loads(path.read_text())
        width, height = (int(v) for v in dataset["size"])
        clip_frames = int(dataset["clip_frames"])
    except FileNotFoundError:
        raise FileNotFoundError(f"{shards} is not a shard folder (no dataset.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VaeError(f"cannot read size and clip_frames from {path}: {exc}") from exc
    if width % 8 or height % 8:
        raise VaeError(f"{shards} holds {width}x{height} clips; the VAE needs multiples of 8: "
                       f"make shards with curation filter --size, e.g. 64x32 or 640x352")
    if clip_frames < frames:
        raise VaeError(f"{shards} holds {clip_frames}-frame clips, shorter than the {frames} "
                       f"frames asked for")
    return {"size": [width, height], "clip_frames": clip_frames}


def to_video(frames: Tensor) -> Tensor:
    """A reader clip ``[T, H, W, 3]`` (float in [-1, 1]) -> ``[3, T, H, W]``."""
    return frames.permute(3, 0, 1, 2).contiguous()


def train_windows(urls: list[str], cfg: VaeConfig) -> Iterator[Tensor]:
    """Endless ``[3, frames, H, W]`` windows at seeded random offsets, epoch after epoch."""
    rng = random.Random(f"vae-windows:{cfg.seed}")
    epoch = 0
    while True:
        for sample in clip_dataset(urls, seed=cfg.seed, shuffle=cfg.shuffle, epoch=epoch,
                                   float_video=True, split_by_node=False,
                                   split_by_worker=False):
            video = to_video(sample["video"])
            start = rng.randint(0, video.shape[1] - cfg.frames)
            yield video[:, start:start + cfg.frames]
        epoch += 1


def first_windows(urls: list[str], frames: int, count: int) -> list[Tensor]:
    """The first ``frames`` frames of the first ``count`` clips of ``urls``, in shard order."""
    clips = []
    for sample in clip_dataset(urls, float_video=True, split_by_node=False,
                               split_by_worker=False):
        clips.append(to_video(sample["video"])[:, :frames])
        if len(clips) == count:
            break
    return clips


@torch.no_grad()
def evaluate(model: AutoencoderKLWan, clips: list[Tensor], batch_size: int) -> dict:
    """Mean reconstruction PSNR (dB), SSIM and L1 over ``clips`` (posterior means decoded),
    PSNR and SSIM on frames mapped to [0, 1]."""
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "l1": []}
    for i in range(0, len(clips), batch_size):
        x = torch.stack(clips[i:i + batch_size])
        y = model.decode(model.encode(x).latent_dist.mode()).sample
        a, b = (x + 1) / 2, (y + 1) / 2
        scores["psnr"] += psnr(a, b).tolist()
        scores["ssim"] += ssim(a, b).tolist()
        scores["l1"] += (x - y).abs().flatten(1).mean(dim=1).tolist()
    return {k: sum(v) / len(v) for k, v in scores.items()}


@torch.no_grad()
def latent_stats(model: AutoencoderKLWan, clips: list[Tensor],
                 batch_size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the posterior means of ``clips``."""
    model.eval()
    z = torch.cat([model.encode(torch.stack(clips[i:i + batch_size])).latent_dist.mode()
                   for i in range(0, len(clips), batch_size)])
    per_channel = z.double().transpose(0, 1).flatten(1)  # [C, B*F*h*w]
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1, unbiased=False).clamp_min(1e-6)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def save_vae(model: AutoencoderKLWan, run: Path) -> Path:
    """Write ``model`` to ``<run>/vae`` atomically (``vae.partial``, then a rename)."""
    partial, final = run / f"{VAE_DIR}.partial", run / VAE_DIR
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    os.replace(partial, final)
    return final


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _new_run(out: Path) -> Path:
    run = Path(out)
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise FileExistsError(f"run folder {run} already exists and is not empty; choose a new "
                              f"one (runs are never overwritten)")
    run.mkdir(parents=True, exist_ok=True)
    return run


def train_vae(cfg: VaeConfig) -> Path:
    """Train a VAE as ``cfg`` says; returns the run folder (see the module docstring)."""
    geometry = shard_geometry(cfg.shards, cfg.frames)
    train_urls = open_shards(cfg.shards, "train")
    try:
        eval_urls = open_shards(cfg.shards, cfg.eval_split)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}: no held-out clips to evaluate on; give more episodes "
                                f"a chance at the split (curation filter --val-fraction) or "
                                f"pass another eval_split") from None
    run = _new_run(cfg.out)
    _write_json(run / CONFIG_FILE, {"config": {k: str(v) if isinstance(v, Path) else v
                                               for k, v in asdict(cfg).items()},
                                    "shards": geometry})

    torch.manual_seed(cfg.seed)
    model = build_vae(cfg.arch)
    noise = torch.Generator().manual_seed(cfg.seed)
    held_out = first_windows(eval_urls, cfg.frames, cfg.eval_clips)
    start = evaluate(model, held_out, cfg.batch_size)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    windows = train_windows(train_urls, cfg)
    began = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="training vae", disable=not cfg.progress, unit="step")
    for _ in bar:
        model.train()
        x = torch.stack([next(windows) for _ in range(cfg.batch_size)])
        posterior = model.encode(x).latent_dist
        z = posterior.sample(generator=noise) if cfg.sample_posterior else posterior.mode()
        recon = (model.decode(z).sample - x).abs().mean()
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
        loss = recon + cfg.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        bar.set_postfix(l1=f"{recon.item():.4f}", kl=f"{kl.item():.3g}")
    seconds = time.perf_counter() - began

    end = evaluate(model, held_out, cfg.batch_size)
    mean, std = latent_stats(model, first_windows(train_urls, cfg.frames, cfg.stats_clips),
                             cfg.batch_size)
    model.register_to_config(latents_mean=mean, latents_std=std)
    save_vae(model, run)
    _write_json(run / METRICS_FILE, {
        "eval_split": cfg.eval_split, "eval_clips": len(held_out), "frames": cfg.frames,
        "size": geometry["size"], "steps": cfg.steps, "train_seconds": round(seconds, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "start": start, "end": end, "final_l1": recon.item()})
    return run
