"""Distillation stage 2: DMD self-forcing (``training dmd``).

The student (the generator, from a stage-1 run) learns on its own rollouts. Per update:

1. **Rollout**, block by block from noise (:mod:`training.causal`), each block's context being
   the student's own earlier outputs (its rolling cache). One denoising step, the *exit step*,
   is drawn for the update (the same for all blocks and ranks); a block runs the steps before
   it without gradients and returns the ``x0`` predicted at it, with gradients. A clean pass at
   ``t = 0`` then writes the block into the cache. Latent 0 is the image.
2. **Distribution matching.** The rollout ``x`` is noised at a score timestep ``t`` (uniform in
   ``[0, 1000)``, shifted, clamped to ``[min_t, max_t]``), and two models predict its clean
   latents: the frozen teacher with classifier-free guidance on the actions (the *real* score,
   ``r``) and the trainable critic (the *fake* score, ``f``, the teacher's architecture and
   start). The gradient ``g = (f - r) / mean|x - r|`` (per sample) pushes the student's
   distribution towards the teacher's; the loss is ``0.5 * ||x - sg(x - g)||^2`` over frames 1..F-1.
3. **The critic** follows the student's current distribution: ``critic_updates`` (5)
   flow-matching updates on fresh rollouts (no gradient into the student) per student update.

Keys and values written into the cache never carry gradients (see :mod:`training.causal`): a
block's loss reaches its own exit-step pass only, not the passes that wrote earlier blocks'
context. Actions come from the designed distribution (:mod:`training.action_design`; the
generator needs no footage), first frames and their condition latents from a shard folder.

As in ``training fit``: one config dataclass saved as ``config.toml``, every field a flag;
checkpoints with the generator, its EMA and optimizer, the critic and its optimizer, every RNG
and the data position; ``--resume`` continues exactly; gradient accumulation; gradient
clipping; a progress bar; ``metrics.jsonl`` and TensorBoard; sample videos played by the
EMA student every ``sample_every`` updates. Under ``torchrun`` each rank rolls out its own
batch. With ``parallel = "ddp"`` every rank holds the three models whole and the gradients are
averaged after the accumulation (the rollout's repeated forwards rule out DDP's hooks); with
``"fsdp"`` the generator, critic and teacher are each sharded with FSDP2, which reduces the
gradients itself (sample videos and evaluation are then left to ``training eval``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from shards.action_space import get_space, to_space
from shards.location import open_shards, read_dataset
from training import checkpoint, distributed
from training.action_design import sample_actions
from training.action_module import action_span
from training.causal import CausalConfig, StreamCache
from training.config import DiTConfig, same_but_action_blocks
from training.data import Batch, BatchBuilder, ClipStream
from training.dit import WorldDiT
from training.ema import EMA
from training.eval_report import headline
from training.evaluate import EvalConfig, Reference, evaluate, held_out_clips
from training.fit import make_optimizer
from training.flow import NUM_TIMESTEPS, add_noise, shift_sigma, to_x0
from training.generator import Generator, StreamConfig
from training.image_encoder import make_image_encoder
from training.losses import velocity_loss
from training.precision import PRECISIONS, autocast, resolve_precision
from training.run_folder import (
    CONFIG_FILE,
    EVAL_DIR,
    SAMPLES_DIR,
    check_run_folder,
    to_toml,
    truncate_metrics,
)
from training.run_log import METRICS_FILE, RunLog
from training.sample import LoadedRun, check_rate, model_config, overlay_video
from training.schedule import learning_rate
from training.vae import WanVAE

NOISE_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class DmdConfig:
    # --- run
    out: str = "runs/dmd"  # run folder; must not exist (or be empty) unless resume
    resume: bool = False  # continue from checkpoints/last (only RESUMABLE fields may change)
    seed: int = 0
    device: str = "auto"
    # --- models and data
    student: str = ""  # stage-1 run (training distill): the generator's start and settings
    teacher: str = ""  # the bidirectional run: the real score (frozen), the critic's start
    shards: str = ""  # first frames and condition latents: latents.npy shards (training
    #                   encode), or plain shards encoded with the student's VAE
    train_split: str = "train"
    frames: int = 0  # video frames per rollout, 4k+1; 0 = the student's training length
    shuffle: int = 64
    num_workers: int = 1
    # --- distribution matching
    guidance: float = 3.0  # CFG scale of the real score on the actions
    min_t: float = 20.0  # score timesteps are uniform, shifted, then clamped to [min_t, max_t]
    max_t: float = 980.0
    critic_updates: int = 5  # critic updates per generator update
    # --- optimisation (Matrix-Game 2.0 / Self-Forcing: lr 6e-6, betas (0, 0.999))
    batch_size: int = 1  # rollouts per rank per micro-step
    parallel: str = "ddp"  # under torchrun: "ddp" (whole models) or "fsdp" (FSDP2, all three)
    grad_accum: int = 1
    steps: int = 100  # generator updates
    lr: float = 6e-6  # generator learning rate
    critic_lr: float = 6e-6
    warmup: int = 0  # linear warm-up updates; constant rates after it
    weight_decay: float = 0.01
    beta1: float = 0.0
    beta2: float = 0.999
    grad_clip: float = 10.0
    ema_decay: float = 0.99  # EMA of the generator (0: none)
    precision: str = "auto"  # "auto" (bf16 autocast on GPU, fp32 on CPU), "bf16" or "fp32"
    gradient_checkpointing: bool = False  # recompute the critic's block activations in its
    #                                       backward (memory); the student's rollout never:
    #                                       its cache writes cannot be replayed (training.dit)
    # --- progress and checkpoints
    checkpoint_every: int = 50
    keep_checkpoints: int = 0
    sample_every: int = 0  # play the EMA student from the first clips' first frames
    eval_every: int = 0  # training eval of the EMA student, block by block, every N updates
    #                      and at the end, into <out>/eval/step-N (needs the student's VAE)
    eval_clips: int = 2  # held-out clips of the shards' val split
    eval_scripts: str = "w,s,turn-left,turn-right,idle"  # designed action scripts it also runs
    eval_teacher: bool = True  # eval_every also compares the student's rollouts with the
    #                            teacher's, pixel by pixel (training.agreement)
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("batch_size", "grad_accum", "steps", "critic_updates"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("frames", "shuffle", "num_workers", "warmup", "checkpoint_every",
                     "keep_checkpoints", "sample_every", "eval_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if self.frames and (self.frames < 5 or (self.frames - 1) % 4):
            problems.append(f"frames must be 0 or 4k+1 >= 5, got {self.frames}")
        if not 0 < self.min_t <= self.max_t < NUM_TIMESTEPS:
            problems.append(f"need 0 < min_t <= max_t < {NUM_TIMESTEPS}, got {self.min_t}, "
                            f"{self.max_t}")
        if not (self.lr > 0 and self.critic_lr > 0):
            problems.append("lr and critic_lr must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.parallel not in distributed.PARALLEL:
            problems.append(f"parallel must be one of {distributed.PARALLEL}, got "
                            f"{self.parallel!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.guidance < 0 or self.grad_clip < 0:
            problems.append("guidance and grad_clip must not be negative")
        for name in ("student", "teacher", "shards", "out"):
            if not getattr(self, name):
                problems.append(f"{name} must be given")
        if problems:
            raise ValueError("dmd config: " + "; ".join(problems))


RESUMABLE = frozenset({"resume", "steps", "num_workers", "checkpoint_every", "keep_checkpoints",
                       "sample_every", "eval_every", "eval_clips", "eval_scripts", "eval_teacher",
                       "tensorboard", "progress", "device", "gradient_checkpointing"})


# ---------------------------------------------------------------------------------------------
# The three parts of a step


def rollout(model: nn.Module, batch: Batch, causal: CausalConfig, sigmas: list[float],
            exit_step: int, generator: torch.Generator, grad: bool) -> Tensor:
    """The student's latents ``[B, 16, F, h, w]`` for ``batch`` (its condition, image tokens
    and actions), block by block on its own outputs; gradients (when ``grad``) only through
    each block's pass at ``sigmas[exit_step]``."""
    cond, image, keyboard, mouse = batch.cond, batch.image, batch.keyboard, batch.mouse
    b, _, frames, h, w = cond.shape
    clean = cond[:, 4:, :1]
    cache, blocks = StreamCache(causal), []
    for start in range(0, frames, causal.block):
        n = min(causal.block, frames - start)
        first, last = action_span(start, n, model.cfg.action)
        kb = keyboard[:, first:last + 1]
        ms = None if mouse is None else mouse[:, first:last + 1]
        c = cond[:, :, start:start + n]
        x = torch.randn((b, 16, n, h, w), generator=generator).to(cond)
        for i, sigma in enumerate(sigmas[:exit_step + 1]):
            if start == 0:
                x = torch.cat([clean, x[:, :, 1:]], dim=2)
            t = torch.full((b, n), NUM_TIMESTEPS * sigma, device=cond.device)
            if start == 0:
                t[:, 0] = 0.0
            with torch.set_grad_enabled(grad and i == exit_step):
                x0 = x - sigma * model(x, t, c, image, kb, ms, cache=cache)
            if i < exit_step:
                noise = torch.randn(x.shape, generator=generator).to(x)
                x = (1 - sigmas[i + 1]) * x0.detach() + sigmas[i + 1] * noise
        if start == 0:
            x0 = torch.cat([clean, x0[:, :, 1:]], dim=2)
        blocks.append(x0)
        with torch.no_grad():
            model(x0.detach(), torch.zeros(b, n, device=cond.device), c, image, kb, ms,
                  cache=cache)
        cache.advance()
    return torch.cat(blocks, dim=2)


def score_noise(x: Tensor, cfg: DmdConfig, shift: float, generator: torch.Generator
                ) -> tuple[Tensor, Tensor, Tensor]:
    """``x`` noised at one score timestep per sample (frame 0 stays clean): ``x_t``, the
    sigmas ``[B, F]`` and the noise. The timestep is uniform in [0, 1000), shifted, then
    clamped to [min_t, max_t], as Self-Forcing draws it."""
    b, _, frames = x.shape[:3]
    u = torch.rand(b, generator=generator, dtype=torch.float64)
    t = (NUM_TIMESTEPS * shift_sigma(u, shift)).clamp(cfg.min_t, cfg.max_t)
    sigma = (t / NUM_TIMESTEPS).float()[:, None].expand(b, frames).clone()
    sigma[:, 0] = 0.0
    sigma = sigma.to(x.device)
    noise = torch.randn(x.shape, generator=generator).to(x)
    return add_noise(x, noise, sigma), sigma, noise


def dmd_loss(x: Tensor, fake_x0: Tensor, real_x0: Tensor) -> Tensor:
    """Distribution matching: ``g = (f - r) / mean|x - r|`` per sample, loss
    ``0.5 * ||x - sg(x - g)||^2`` (mean over frames 1..F-1), so that ``dL/dx`` is ``g`` (up
    to the mean's factor)."""
    with torch.no_grad():
        scale = (x - real_x0).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-8)
        target = x - (fake_x0 - real_x0) / scale
    return 0.5 * F.mse_loss(x[:, :, 1:], target[:, :, 1:])


@torch.no_grad()
def real_score(teacher: nn.Module, x_t: Tensor, sigma: Tensor, batch: Batch,
               guidance: float) -> Tensor:
    """The teacher's clean latents for ``x_t`` with CFG on the actions."""
    t = sigma * NUM_TIMESTEPS
    v = teacher(x_t, t, batch.cond, batch.image, batch.keyboard, batch.mouse)
    if guidance != 1.0:
        none = None if batch.mouse is None else torch.zeros_like(batch.mouse)
        v0 = teacher(x_t, t, batch.cond, batch.image, torch.zeros_like(batch.keyboard), none)
        v = v0 + guidance * (v - v0)
    return to_x0(x_t, v, sigma)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class DmdSummary:
    run: Path
    step: int
    dmd_loss: float | None
    critic_loss: float | None


def _load(run: str, device: torch.device) -> tuple[WorldDiT, dict]:
    """A run's model (EMA weights when kept) and its trainer.json."""
    step = checkpoint.step_folder(run)
    trainer = checkpoint.read_trainer(step)
    model = WorldDiT(model_config(trainer["model"]))
    ema = (step / checkpoint.EMA_FILE).is_file()
    model.load_state_dict(checkpoint.load_weights(step, ema=ema), strict=True)
    return model.to(device), trainer


def _designed(batch: Batch, frames: int, fps: float, space, seed_base: int) -> Batch:
    """``batch`` with designed actions (a seed per sample) in place of its recorded ones."""
    keyboard, mouse = [], []
    for i in range(len(batch)):
        keys, deg = sample_actions(frames, fps, np.random.default_rng(seed_base + i))
        kb, ms = to_space(keys, deg, space)
        keyboard.append(torch.from_numpy(kb))
        mouse.append(None if ms is None else torch.from_numpy(ms))
    dev = batch.cond.device
    return dataclasses.replace(
        batch, keyboard=torch.stack(keyboard).to(dev),
        mouse=None if mouse[0] is None else torch.stack(mouse).to(dev))


def _sync_grads(model: nn.Module, d: distributed.Dist, parallel: str) -> None:
    """Average gradients over ranks (under FSDP2 they already are)."""
    if not d.enabled or parallel == "fsdp":
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= d.world


def train_dmd(cfg: DmdConfig) -> DmdSummary:
    """Run stage 2 as ``cfg`` says (under torchrun: on every rank)."""
    check_run_folder(cfg, RESUMABLE)
    open_shards(cfg.shards, cfg.train_split)
    d = distributed.setup(cfg.device)
    try:
        return _train(cfg, d)
    finally:
        distributed.teardown(d)


def _train(cfg: DmdConfig, d: distributed.Dist) -> DmdSummary:
    out = Path(cfg.out)
    student, s_trainer = _load(cfg.student, d.device)
    teacher, t_trainer = _load(cfg.teacher, d.device)
    critic, _ = _load(cfg.teacher, d.device)
    teacher.eval().requires_grad_(False)
    critic.gradient_checkpointing = cfg.gradient_checkpointing
    precision = resolve_precision(cfg.precision, d.device)
    model_cfg: DiTConfig = student.cfg
    # the student may carry action modules in other blocks than the teacher (training distill
    # gives it a subset); the critic is a copy of the teacher, so nothing else must match
    if not same_but_action_blocks(model_cfg, teacher.cfg):
        raise ValueError(f"the student {cfg.student} and the teacher {cfg.teacher} are not the "
                         f"same model (they may differ only in which blocks carry action "
                         f"modules)")
    stream = StreamConfig.recorded(s_trainer.get("stream", {}))
    causal, sigmas = stream.causal, stream.sigmas()
    run_cfg = s_trainer["config"]
    frames = cfg.frames or int(run_cfg["frames"])
    space = get_space(run_cfg.get("action_space") or model_cfg.space)
    shift = float(t_trainer["config"]["shift"])
    resume_from = checkpoint.latest(out) if cfg.resume else None
    if d.master:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(to_toml(cfg))
    distributed.barrier(d)

    sharded = d.enabled and cfg.parallel == "fsdp"
    if sharded:  # before the optimizers, which must hold the sharded parameters
        for model in (student, critic, teacher):
            distributed.wrap(model, d, "fsdp")
    optimizer = make_optimizer(student, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    critic_opt = make_optimizer(critic, cfg.critic_lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    ema = EMA(student, cfg.ema_decay) if cfg.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(cfg.seed + (d.rank + 1) * NOISE_SEED_STRIDE)
    shared = torch.Generator().manual_seed(cfg.seed)  # the exit steps: the same on every rank
    step, position = 0, {"epoch": 0, "start": 0}
    companions = {"critic": (critic, critic_opt)}
    if resume_from is not None:
        trainer, own, meta = checkpoint.load(resume_from, d, model=student, optimizer=optimizer,
                                             ema=ema, companions=companions)
        step, position = trainer["step"], meta["position"]
        generator.set_state(own["noise_generator"])
        shared.set_state(own["shared_generator"])
    if d.master:
        if cfg.resume:
            truncate_metrics(out / METRICS_FILE, step)
        size = sum(p.numel() for p in student.parameters()) / 1e6
        print(f"DMD: student {cfg.student} ({size:.2f} M parameters), teacher {cfg.teacher}; "
              f"blocks of {causal.block}, window {causal.local}, steps "
              f"{[round(1000 * s, 1) for s in sigmas]}, {precision} on {d.world} x {d.device}; "
              + (f"resumed at step {step}" if resume_from else "from the stage-1 weights"))
        if sharded and (cfg.sample_every or cfg.eval_every):
            print("--parallel fsdp: no sample videos or evaluation during the run; run "
                  "training eval on its checkpoints")

    vae = WanVAE.load(run_cfg["vae"], device=d.device) if run_cfg.get("vae") else None
    images = make_image_encoder(model_cfg, run_cfg.get("image_encoder") or None, d.device)
    build = BatchBuilder(model_cfg, d.device, vae, s_trainer.get("vae"), images)
    clips = ClipStream(open_shards(cfg.shards, cfg.train_split), build,
                       batch_size=cfg.batch_size, frames=frames, space=space, seed=cfg.seed,
                       shuffle=cfg.shuffle, num_workers=cfg.num_workers, **position)
    shards_fps = read_dataset(cfg.shards).get("fps")
    check_rate((s_trainer.get("footage") or {}).get("fps"), cfg.shards, shards_fps)
    fps = float(shards_fps or 15.0)
    reference = (Reference(LoadedRun(teacher, vae, images, space,
                                     int(t_trainer["config"]["frames"]), None, fps,
                                     int(t_trainer["step"])))
                 if cfg.eval_teacher and vae is not None else None)

    run_log = RunLog(out, master=d.master, steps=cfg.steps, step=step,
                     tensorboard=cfg.tensorboard, progress=cfg.progress,
                     group=lambda key: "eval" if key.startswith("eval") else "dmd")
    summary = DmdSummary(out, step, None, None)
    began = time.perf_counter()

    def next_batch() -> Batch:
        batch = clips.next_batch()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return _designed(batch, frames, fps, space, seed)

    def save() -> None:
        tensors = {"noise_generator": generator.get_state(),
                   "shared_generator": shared.get_state()}
        # the student's own settings (VAE, image encoder, clip length, action space) stay the
        # run's config, so training play and eval load a DMD run like the stage-1 run
        trainer = {"config": {**run_cfg, "dmd": dataclasses.asdict(cfg)}, "vae": build.identity,
                   "image_encoder": images.identity, "preset": s_trainer.get("preset"),
                   "model": dataclasses.asdict(model_cfg), "stream": s_trainer.get("stream"),
                   "footage": s_trainer.get("footage")}
        checkpoint.save(out, step, d, model=student, optimizer=optimizer, ema=ema,
                        trainer=trainer, rank_tensors=tensors,
                        rank_meta={"position": clips.position}, keep=cfg.keep_checkpoints,
                        companions=companions)

    logged_exit = [0]  # the exit step of the generator's last micro-batch

    def critic_loss() -> Tensor:
        """The critic's flow-matching loss on a fresh rollout of the student (no gradients)."""
        batch = next_batch()
        exit_step = int(torch.randint(0, len(sigmas), (1,), generator=shared))
        with torch.no_grad(), autocast(d.device, precision):
            x = rollout(student, batch, causal, sigmas, exit_step, generator, False)
        x_t, sigma, noise = score_noise(x, cfg, shift, generator)
        with autocast(d.device, precision):
            v = critic(x_t, sigma * NUM_TIMESTEPS, batch.cond, batch.image, batch.keyboard,
                       batch.mouse)
        return velocity_loss(v, x, noise)

    def generator_loss() -> Tensor:
        """The DMD loss of a rollout with gradients at its exit step."""
        batch = next_batch()
        logged_exit[0] = int(torch.randint(0, len(sigmas), (1,), generator=shared))
        with autocast(d.device, precision):
            x = rollout(student, batch, causal, sigmas, logged_exit[0], generator, True)
        x_t, sigma, _ = score_noise(x.detach(), cfg, shift, generator)
        with torch.no_grad(), autocast(d.device, precision):
            fake = to_x0(x_t, critic(x_t, sigma * NUM_TIMESTEPS, batch.cond, batch.image,
                                     batch.keyboard, batch.mouse), sigma)
            real = real_score(teacher, x_t, sigma, batch, cfg.guidance)
        return dmd_loss(x, fake, real)

    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            # constant after the warm-up (as Self-Forcing), so any later --steps resumes exactly
            lr = learning_rate(step, lr=cfg.lr, warmup=cfg.warmup, total=cfg.steps, min_lr=cfg.lr)
            critic_lr = lr * cfg.critic_lr / cfg.lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            for group in critic_opt.param_groups:
                group["lr"] = critic_lr
            # the critic follows the student's current distribution
            critic_sum = 0.0
            for _ in range(cfg.critic_updates):
                critic_sum += distributed.accumulate(critic, cfg.grad_accum, critic_loss)
                _sync_grads(critic, d, cfg.parallel)
                torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.grad_clip or math.inf)
                critic_opt.step()
                critic_opt.zero_grad(set_to_none=True)
            # the generator moves towards the teacher's distribution
            dmd_sum = distributed.accumulate(student, cfg.grad_accum, generator_loss)
            _sync_grads(student, d, cfg.parallel)
            norm = torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip or math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(student)
            step += 1
            dmd_value = distributed.mean(dmd_sum, d)
            critic_value = distributed.mean(critic_sum / cfg.critic_updates, d)
            if not (math.isfinite(dmd_value) and math.isfinite(critic_value)):
                raise FloatingPointError(f"DMD loss {dmd_value}, critic loss {critic_value} at "
                                         f"step {step}; lower the learning rates")
            record = {"step": step, "dmd_loss": dmd_value, "critic_loss": critic_value,
                      "grad_norm": float(distributed.full(norm)), "lr": lr,
                      "exit_step": logged_exit[0], "step_seconds": time.perf_counter() - t0,
                      "seconds": time.perf_counter() - began}
            if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps) \
                    and d.master and vae is not None and not sharded:
                results = evaluate(
                    LoadedRun(_averaged(student, ema), vae, images, space, frames, None, fps,
                              step, s_trainer.get("stream", {})),
                    cfg.shards, out / EVAL_DIR / f"step-{step:06d}",
                    EvalConfig(clips=cfg.eval_clips, frames=frames, scripts=cfg.eval_scripts,
                               script_images=min(2, cfg.eval_clips)), reference=reference)
                record.update({f"eval_{k}": v for k, v in headline(results).items()
                               if not math.isnan(v)})
            run_log.emit(record)
            summary.dmd_loss, summary.critic_loss = dmd_value, critic_value
            run_log.advance(dmd=f"{dmd_value:.4f}", critic=f"{critic_value:.4f}")
            if cfg.sample_every and step % cfg.sample_every == 0 and d.master \
                    and vae is not None and not sharded:
                _samples(student, ema, vae, images, space, stream, cfg.shards, fps,
                         out / SAMPLES_DIR / f"step-{step:06d}")
            if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                save()
    finally:
        run_log.close()
        clips.close()
    summary.step = step
    return summary


def _averaged(student: WorldDiT, ema: EMA | None) -> WorldDiT:
    """A copy of the student with the EMA weights (its own without an EMA), for sampling."""
    model = WorldDiT(student.cfg).to(next(student.parameters()).device)
    model.load_state_dict(student.state_dict())
    if ema is not None:
        ema.copy_to(model)
    return model.eval()


def _samples(student: WorldDiT, ema: EMA | None, vae: WanVAE, images, space,
             stream: StreamConfig, shards: str, fps: float, folder: Path) -> None:
    """Play the (EMA) student from the first clip's first frame under designed actions."""
    gen = Generator(_averaged(student, ema), vae, images, space, stream)
    clip = held_out_clips(shards, "train", 1)[0]
    first = torch.from_numpy(clip.frames[0]).permute(2, 0, 1)[None].float() / 127.5 - 1
    gen.reset(first.to(vae.device))
    blocks = 4
    total = 1 + 4 * (blocks * stream.block - 1)
    keys, mouse = sample_actions(total, fps, np.random.default_rng(0))
    made = []
    while sum(len(m) for m in made) < total:
        done = sum(len(m) for m in made)
        n = gen.frames_needed
        made.append(gen.step(keys[done:done + n], mouse[done:done + n]))
    kb, ms = to_space(keys, mouse, space)
    overlay_video(folder / "designed.mp4", {"student": np.concatenate(made)}, kb, ms, space, fps)
