"""``training vae``: train a Wan VAE from scratch on curated shards.

One config, :class:`VaeConfig`; :func:`train_vae` runs it and returns the run folder::

    <run>/vae_train.json   the VaeConfig and the shard set's size and clip length
    <run>/metrics.jsonl    one line per step: step, loss, l1, kl, lr, grad_norm, with
                           motion_weight motion_l1, and with the adversary g_loss, d_loss,
                           adv_factor (training.run_log)
    <run>/checkpoints/     step-NNNNNN/ folders and `last` (training.checkpoint): weights,
                           optimizer, RNG, the window stream's position, the discriminator and
                           its optimizer (a companion); what --resume reads
    <run>/vae/             the VAE (diffusers save_pretrained: config.json + safetensors), with
                           the latents_mean/latents_std measured on train clips in its config;
                           written as <run>/vae.partial and renamed when complete
    <run>/metrics.json     reconstruction PSNR/SSIM on held-out clips before and after training
                           and the share of their frame-to-frame motion kept inside and across
                           latents (training.metrics.motion_kept),
                           and latent_motion: whether the latents follow the picture
                           (training.metrics.follows_picture on held-out clips; null when
                           the clips are shorter than 9 frames), and probe: how well the
                           camera-motion probe reads the recorded actions of held-out clips
                           before and after the VAE (training.evaluate.vae_ceiling; null
                           under 5 frames): the ceiling of a world model on these latents

``init`` starts from another VAE's weights instead of a fresh one (training.vae_start checks and
loads it): fine-tuning. ``WanVAE.load(<run>)`` loads the result. Windows of ``frames`` (4k+1)
frames are cut at random offsets from the train split's clips (the stream of
``shards.clip_dataset``, seeded), single frames for the first ``image_steps`` (an image stage: the
spatial code is learnt at a fraction of the cost, then video windows train the temporal layers,
from the image model applied frame by frame: training.vae_start.per_frame_start); evaluation uses
the first window of the first ``eval_clips`` clips of ``eval_split``. The loss is the L1
reconstruction error plus ``kl_weight`` times the KL divergence of the posterior to a unit
Gaussian, both as means per element; with ``motion_weight``, on video windows, plus that weight
times the L1 error of the frame-to-frame differences; with ``adv_weight``, from step ``adv_start``
on, plus a hinge adversarial loss from a 3D patch discriminator on the windows, scaled by the
adaptive weight (training.vae_adversary), the discriminator updated once a step on the same windows
and their reconstructions. AdamW with linear warm-up and a cosine decay to ``min_lr``
(training.schedule; by default neither: a constant rate). The same config on the same machine gives
the same weights, also when the run was killed and continued with ``resume`` (from
``checkpoints/last``: the saved config takes the place of the defaults, and only :data:`RESUMABLE`
fields may change).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from torch import Tensor

from shards.location import open_shards, read_dataset
from shards.reader import clip_dataset
from training import checkpoint
from training.distributed import Dist, resolve_device
from training.evaluate import held_out_clips, vae_ceiling
from training.metrics import follows_picture
from training.run_folder import truncate_metrics
from training.run_log import METRICS_FILE as STEP_LOG
from training.run_log import RunLog
from training.schedule import learning_rate
from training.vae import ARCHS, VaeError, WanVAE, build_vae
from training.vae_adversary import (
    PatchDiscriminator3D,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
)
from training.vae_measure import evaluate, latent_motion, latent_stats
from training.vae_start import init_source, load_init, per_frame_start

CONFIG_FILE = "vae_train.json"
METRICS_FILE = "metrics.json"
VAE_DIR = "vae"
DISCRIMINATOR = "discriminator"  # checkpoint companion name of the adversary


@dataclass(frozen=True)
class VaeConfig:
    shards: str  # shard folder (curation filter output), or its URL (shards.location);
    #              frame size a multiple of 8
    out: Path  # run folder: must not exist or be empty, unless resume
    resume: bool = False  # continue the run in `out` from checkpoints/last; its vae_train.json
    #                       takes the place of the defaults (only RESUMABLE fields may change)
    arch: str = "tiny"  # architecture, a key of training.vae.ARCHS ("tiny", "wan2.1")
    frames: int = 9  # frames per training window, 4k+1, at most the shards' clip length
    steps: int = 400  # optimiser steps
    image_steps: int = 0  # of those, the first train on single frames (1-frame windows, a
    #                       fraction of a video window's cost): the spatial code first, then
    #                       the rest on `frames`-frame windows, starting as the image model
    #                       frame by frame (per_frame_start); e.g. 300 of 390 at 64x32 gave
    #                       latents that follow the picture (0.87-0.89) at 4 of 4 seeds in
    #                       3-4 minutes (benchmarks/RESULTS.md); check latent_motion
    batch_size: int = 4  # windows per step
    lr: float = 5e-4  # AdamW peak learning rate; at 1e-3 the tiny arch's decoder stopped
    #                   reading its latents (a constant image, L1 0.26) at 2 of 4 seeds of
    #                   the README's footage; at 5e-4 none of them did (benchmarks/RESULTS.md)
    warmup: int = 0  # linear warm-up steps, then a cosine decay from lr to min_lr at `steps`
    min_lr: float | None = None  # learning rate at the end of the cosine; None: lr (no decay).
    #                              The defaults keep the constant rate the results were made
    #                              with; e.g. warmup 20, min_lr 0 for warm-up and cosine
    weight_decay: float = 0.0  # AdamW weight decay
    kl_weight: float = 1e-6  # weight of the mean KL per latent element against the mean L1
    motion_weight: float = 0.0  # weight of the L1 error of the frame-to-frame differences (the
    #                             reconstruction's against the window's) against the frames'
    #                             L1: pays for the scene's motion, which the frames' L1 lets
    #                             a VAE blur or hold still; 0: none (image steps never have it)
    sample_posterior: bool = False  # decode a posterior sample (True) or its mean while training
    grad_clip: float = 1.0  # gradient norm clip
    shuffle: int = 64  # clip shuffle buffer (0: shard order)
    seed: int = 0  # initialisation, clip order, window offsets, posterior samples
    eval_split: str = "val"  # split of the held-out clips
    eval_clips: int = 8  # held-out clips evaluated (the first ones of eval_split)
    stats_clips: int = 32  # train clips whose latents give latents_mean/latents_std
    motion_clips: int = 32  # held-out clips (whole) on which the latents' change is correlated
    #                         with the pixels' at the end: metrics.json latent_motion (0: none)
    checkpoint_every: int = 100  # checkpoint every N steps, and always at the end (0: end only)
    keep_checkpoints: int = 1  # keep only the newest N step folders (0: all); resume needs one
    progress: bool = True  # tqdm bar with the loss
    device: str = "auto"  # "auto" (a GPU when there is one, else the CPU), "cpu" or "cuda";
    #                       float32 either way
    adv_weight: float = 0.0  # adversarial loss (training.vae_adversary): the size of its
    #                          gradient at the decoder's output layer as a share of the L1
    #                          loss's there (adaptive weight); 0: none
    adv_start: int = 0  # step from which the discriminator trains and its loss counts; at least
    #                     image_steps (it judges video windows)
    adv_lr: float = 2e-4  # the discriminator's AdamW learning rate (betas 0.5, 0.9)
    probe_clips: int = 16  # held-out clips (whole) the camera-motion probe reads before and
    #                        after the VAE at the end: metrics.json probe (0: none)
    init: str = ""  # weights to start from (fine-tuning) instead of a fresh `seed` VAE: a VAE
    #                 folder (a diffusers AutoencoderKLWan such as the released Wan2.1 VAE, or a
    #                 finished training vae run) or a training vae checkpoint (a step folder, or
    #                 a run for its last), of `arch`'s architecture (load_init)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", str(self.shards))  # a Path is taken as its name
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.frames < 1 or (self.frames - 1) % 4:
            problems.append(f"frames must be 4k+1 (1, 5, 9, 13, ...), got {self.frames}")
        for name in ("motion_clips", "probe_clips"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.adv_weight < 0 or not self.adv_lr > 0:
            problems.append(f"need adv_weight >= 0 and adv_lr > 0, got {self.adv_weight}, "
                            f"{self.adv_lr}")
        if self.adv_weight and not self.image_steps <= self.adv_start < self.steps:
            problems.append(f"adv_start must be in image_steps..steps-1 ({self.image_steps}.."
                            f"{self.steps - 1}): the discriminator judges video windows; got "
                            f"{self.adv_start}")
        for name in ("steps", "batch_size", "eval_clips", "stats_clips"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.image_steps < self.steps:
            problems.append(f"image_steps must be in 0..steps-1 (video windows train the "
                            f"temporal layers), got {self.image_steps} of {self.steps}")
        if not self.lr > 0 or not self.grad_clip > 0:
            problems.append(f"lr and grad_clip must be positive, got {self.lr}, {self.grad_clip}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            problems.append(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        for name in ("weight_decay", "kl_weight", "motion_weight", "shuffle", "warmup",
                     "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise ValueError("; ".join(problems))


# Fields a resumed run may change; any other difference from its vae_train.json is an error.
RESUMABLE = frozenset({"resume", "checkpoint_every", "keep_checkpoints", "progress", "device"})


def _config_json(cfg: VaeConfig) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}


def saved_config(run: Path) -> dict:
    """The VaeConfig fields a run folder's vae_train.json holds (paths as Paths)."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {run} is not a training vae run (no {CONFIG_FILE})")
    hints = typing.get_type_hints(VaeConfig)
    return {k: Path(v) if hints.get(k) is Path else v
            for k, v in json.loads(path.read_text())["config"].items()}


def load_config(values: dict) -> VaeConfig:
    """A config from ``values`` (the flags given, ``out`` among them) over the defaults, or
    with ``resume`` over the config saved in ``out`` when there is one."""
    base = {}
    if values.get("resume") and (Path(values["out"]) / CONFIG_FILE).is_file():
        base = saved_config(Path(values["out"]))
    return VaeConfig(**{**base, **values})


def shard_geometry(shards: str, frames: int) -> dict:
    """The shard set's ``size`` [W, H] and ``clip_frames`` from its dataset.json, checked
    against the VAE (multiples of 8) and the window length."""
    dataset = read_dataset(shards)
    try:
        width, height = (int(v) for v in dataset["size"])
        clip_frames = int(dataset["clip_frames"])
    except (ValueError, KeyError, TypeError) as exc:
        raise VaeError(f"cannot read size and clip_frames from {shards}'s dataset.json: "
                       f"{exc!r}") from exc
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


class TrainWindows:
    """Endless ``[3, frames, H, W]`` windows at seeded random offsets, epoch after epoch;
    :meth:`state` (epoch, clips taken from it, the offsets' RNG) continues it exactly."""

    def __init__(self, urls: list[str], cfg: VaeConfig) -> None:
        self.urls, self.cfg = urls, cfg
        self.rng = random.Random(f"vae-windows:{cfg.seed}")
        self.epoch, self.start = 0, 0
        self._clips = None

    def state(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "rng": self.rng.getstate()}

    def restore(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.epoch, self.start, self._clips = state["epoch"], state["start"], None

    def take(self, frames: int) -> Tensor:
        """The next clip's window of ``frames`` frames."""
        cfg = self.cfg
        if self._clips is None:
            self._clips = iter(clip_dataset(
                self.urls, seed=cfg.seed, shuffle=cfg.shuffle, epoch=self.epoch,
                start=self.start, float_video=True, split_by_node=False,
                split_by_worker=False, endless=True))
        sample = next(self._clips)
        epoch, index = sample["__position__"]
        self.epoch, self.start = epoch, index + 1
        video = to_video(sample["video"])
        offset = self.rng.randint(0, video.shape[1] - frames)
        return video[:, offset:offset + frames]


def first_windows(urls: list[str], frames: int, count: int) -> list[Tensor]:
    """The first ``frames`` frames of the first ``count`` clips of ``urls``, in shard order."""
    clips = []
    for sample in clip_dataset(urls, float_video=True, split_by_node=False,
                               split_by_worker=False):
        clips.append(to_video(sample["video"])[:, :frames])
        if len(clips) == count:
            break
    return clips


def motion_error(y: Tensor, x: Tensor) -> Tensor:
    """Mean L1 error of the frame-to-frame differences of videos ``y`` against ``x``
    (``[B, C, T, H, W]``): what a held or blurred picture misses of the motion, blind to an error
    all frames share."""
    return (y.diff(dim=2) - x.diff(dim=2)).abs().mean()


def adversary(cfg: VaeConfig, device: torch.device
              ) -> dict[str, tuple[PatchDiscriminator3D, torch.optim.Optimizer]] | None:
    """The discriminator and its optimizer as a checkpoint companion, or None without
    ``adv_weight``; initialised from ``seed`` without touching the process RNG, so that it is
    the same whenever it is built."""
    if not cfg.adv_weight:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        disc = PatchDiscriminator3D().to(device)
    return {DISCRIMINATOR: (disc, torch.optim.AdamW(disc.parameters(), lr=cfg.adv_lr,
                                                     betas=(0.5, 0.9)))}


def save_vae(model: AutoencoderKLWan, run: Path) -> Path:
    """Write ``model`` to ``<run>/vae`` atomically (``vae.partial``, then a rename)."""
    partial, final = run / f"{VAE_DIR}.partial", run / VAE_DIR
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    if final.exists():  # a finished run that was resumed writes its VAE again
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _open_run(cfg: VaeConfig) -> Path:
    """A new (or empty) run folder, or with ``resume`` the run's own, trained with ``cfg``'s
    settings but for the :data:`RESUMABLE` ones."""
    run = Path(cfg.out)
    if cfg.resume:
        saved, given = _config_json(VaeConfig(**saved_config(run))), _config_json(cfg)
        changed = [f"{k}: {saved[k]!r} -> {given[k]!r}" for k in given
                   if k not in RESUMABLE and saved[k] != given[k]]
        if changed:
            raise ValueError(f"--resume: {run} was trained with other settings "
                             f"({'; '.join(changed)}); only {sorted(RESUMABLE)} may change")
        return run
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise FileExistsError(f"run folder {run} already exists and is not empty; pass --resume "
                              f"true to continue it, or choose a new one (runs are never "
                              f"overwritten)")
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
    resume_from = checkpoint.latest(cfg.out) if cfg.resume else None
    source = init_source(cfg.init, cfg.arch) if cfg.init and resume_from is None else None
    run = _open_run(cfg)
    _write_json(run / CONFIG_FILE, {"config": _config_json(cfg), "shards": geometry})

    device = resolve_device(cfg.device)
    solo = Dist(rank=0, world=1, local_rank=0, device=device)  # one process
    torch.manual_seed(cfg.seed)
    model = build_vae(cfg.arch).to(device)
    if source is not None and resume_from is None:
        load_init(model, source)
        print(f"training vae: starting from {source.describe()}")
    noise = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    companions = adversary(cfg, device)
    windows = TrainWindows(train_urls, cfg)
    held_out = first_windows(eval_urls, cfg.frames, cfg.eval_clips)
    step = 0
    if resume_from is not None:  # restores the weights, optimizer and process RNG
        trainer, own, meta = checkpoint.load(resume_from, solo, model=model,
                                             optimizer=optimizer, ema=None,
                                             companions=companions)
        step, state = trainer["step"], trainer["state"]
        noise.set_state(own["noise_generator"])
        windows.restore(meta["windows"])
    else:
        state = {"start": evaluate(model, held_out, cfg.batch_size), "seconds": 0.0,
                 "final_l1": None, "init": None if source is None else {
                     "path": str(source.path), "step": source.step, "video": source.video}}
    if cfg.resume:
        truncate_metrics(run / STEP_LOG, step)

    log = RunLog(run, master=True, steps=cfg.steps, step=step, tensorboard=False,
                 progress=cfg.progress, group=lambda key: "vae")
    try:
        while step < cfg.steps:
            began = time.perf_counter()
            lr = learning_rate(step, lr=cfg.lr, warmup=cfg.warmup, total=cfg.steps,
                               min_lr=cfg.lr if cfg.min_lr is None else cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            frames = 1 if step < cfg.image_steps else cfg.frames
            image_init = state["init"] is not None and not state["init"]["video"]
            if step == cfg.image_steps and (cfg.image_steps or image_init):
                per_frame_start(model)  # also after an init from inside an image stage
            x = torch.stack([windows.take(frames) for _ in range(cfg.batch_size)]).to(device)
            posterior = model.encode(x).latent_dist
            z = posterior.sample(generator=noise) if cfg.sample_posterior else posterior.mode()
            y = model.decode(z).sample
            recon = (y - x).abs().mean()
            kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
            loss = recon + cfg.kl_weight * kl
            motion = None
            if cfg.motion_weight and frames > 1:
                motion = motion_error(y, x)
                loss = loss + cfg.motion_weight * motion
            fight = companions is not None and step >= cfg.adv_start
            if fight:
                disc, disc_opt = companions[DISCRIMINATOR]
                disc.requires_grad_(False)
                g_loss = generator_loss(disc(y))
                factor = adaptive_weight(recon, g_loss, model.decoder.conv_out.weight,
                                         cfg.adv_weight)
                loss = loss + factor * g_loss
                disc.requires_grad_(True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # single frames miss the temporal layers (and a causal kernel's earlier taps): a
            # zero gradient gives them optimizer state (which a checkpoint holds); the video
            # stage starts with a fresh optimizer state, as Adam's moments of zero would
            # otherwise inflate those weights' first updates several times over
            if step < cfg.image_steps:
                for param in model.parameters():
                    if param.grad is None:
                        param.grad = torch.zeros_like(param)
            elif step == cfg.image_steps > 0:
                optimizer.state.clear()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            row = {} if motion is None else {"motion_l1": motion.item()}
            if fight:  # the discriminator's update, on this batch and its reconstruction
                d_loss = discriminator_loss(disc(x), disc(y.detach()))
                disc_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                disc_opt.step()
                row.update(g_loss=g_loss.item(), d_loss=d_loss.item(),
                           adv_factor=factor.item())
            step += 1
            state["seconds"] += time.perf_counter() - began
            state["final_l1"] = recon.item()
            log.emit({"step": step, "loss": loss.item(), "l1": recon.item(), "kl": kl.item(),
                      "lr": lr, "grad_norm": float(norm), **row})
            log.advance(l1=f"{recon.item():.4f}", kl=f"{kl.item():.3g}",
                        **({"d": f"{row['d_loss']:.3f}"} if "d_loss" in row else {}))
            if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                checkpoint.save(run, step, solo, model=model, optimizer=optimizer, ema=None,
                                trainer={"config": _config_json(cfg), "state": state},
                                rank_tensors={"noise_generator": noise.get_state()},
                                rank_meta={"windows": windows.state()},
                                keep=cfg.keep_checkpoints, companions=companions)
    finally:
        log.close()

    end = evaluate(model, held_out, cfg.batch_size)
    mean, std = latent_stats(model, first_windows(train_urls, cfg.frames, cfg.stats_clips),
                             cfg.batch_size)
    model.register_to_config(latents_mean=mean, latents_std=std)
    motion = None
    whole = (geometry["clip_frames"] - 1) // 4 * 4 + 1  # the longest 4k+1 window of a clip
    if cfg.motion_clips and whole >= 9:  # at least one step between 4-frame latents
        steps = latent_motion(model, first_windows(eval_urls, whole, cfg.motion_clips), mean,
                              std, cfg.batch_size)
        motion = {"corr": follows_picture(steps), "steps": len(steps), "frames": whole}
    save_vae(model, run)
    probe = None
    if cfg.probe_clips and whole >= 5:  # the probe scores frame-to-frame steps
        probe = vae_ceiling(WanVAE.load(run, device=device),
                            held_out_clips(cfg.shards, cfg.eval_split, cfg.probe_clips))
    _write_json(run / METRICS_FILE, {
        "eval_split": cfg.eval_split, "eval_clips": len(held_out), "frames": cfg.frames,
        "size": geometry["size"], "steps": cfg.steps, "image_steps": cfg.image_steps,
        "train_seconds": round(state["seconds"], 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "start": state["start"], "end": end, "final_l1": state["final_l1"],
        "latent_motion": motion, "probe": probe, "init": state.get("init")})
    return run
