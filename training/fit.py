"""``training fit``: train the action-conditioned DiT with flow matching on curated shards.

One process (CPU or one GPU)::

    training fit --config runs/tiny.toml
    training fit --shards data/shards --vae runs/vae --out runs/tiny --steps 2000

One node, several GPUs (DDP; ``--parallel fsdp`` shards the big presets with FSDP2)::

    torchrun --standalone --nproc-per-node 8 -m training.cli fit --config runs/mg2.toml

Two nodes: the same with ``--nnodes 2 --node-rank R --rdzv-endpoint HOST:PORT`` on each; the
run folder must be on a filesystem both see. Continue a run (also after ``kill -9``) with
``--resume``: it restarts from ``checkpoints/last`` and goes on exactly as if never stopped.

Every field of :class:`FitConfig` is a flag and a key of the TOML file; flags override the file.
The run folder::

    <out>/config.toml      the resolved FitConfig (loadable with --config)
    <out>/metrics.jsonl    one line per step: step, loss, lr, grad_norm, samples_per_s,
                           data_wait (share of the step spent waiting on the loader), epoch,
                           seconds; val_loss (and val_loss_ema, the EMA weights') on
                           validation steps (step 0 has only those); eval_* with --eval-every
    <out>/checkpoints/     step-NNNNNN/ folders and `last` (training.checkpoint)
    <out>/tensorboard/     scalars, with --tensorboard
    <out>/samples/         videos from training.sample.validation_videos, with --sample-every
    <out>/eval/step-N/     training eval reports (training.evaluate), with --eval-every

What a step trains (Matrix-Game 2.0 foundation training, Wan flow-matching conventions): the
loss of ``objective`` (flow matching on clips, or stage 1 of distillation on ODE pairs), with
history augmentation and classifier-free guidance dropout, as :mod:`training.losses` says.

- The image condition is the stand-in tokens of the first frame, or CLIP ViT-H/14 tokens with
  ``image_encoder``; ``init`` starts the DiT from a Wan2.1-class checkpoint (action modules
  fresh), ``init_run`` from a run's EMA weights (a student from its teacher's); both are
  recorded in the checkpoints. ``causal_block > 0`` gives the model the block-causal mask of
  ``training.causal``.
- AdamW (weight decay on matrices only), linear warm-up and cosine decay (training.schedule),
  gradient accumulation, clipping, bf16 autocast on GPUs only, EMA of the weights.

All randomness of a step (sigmas, noise, dropout, buffer draws) comes from one CPU
``torch.Generator`` seeded with ``seed`` and the rank, saved in every checkpoint; validation
uses its own generator reseeded each time, so validation losses compare across steps.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from shards.action_space import get_space
from shards.location import open_shards, read_dataset
from shards.reader import coverage_note
from training import checkpoint, distributed
from training.causal import CausalConfig, block_causal_mask
from training.config import (
    DiTConfig,
    block_ranges,
    get_preset,
    same_but_action_blocks,
    with_action_blocks,
)
from training.data import BatchBuilder, ClipStream, fixed_batches, latent_frames
from training.dit import WorldDiT
from training.ema import EMA
from training.eval_report import headline
from training.evaluate import EvalConfig, Reference, evaluate, streamed_videos
from training.image_encoder import make_image_encoder
from training.init_weights import check_init, init_from_wan
from training.losses import ErrorBuffer, objective_loss, ode_sigmas, validation_loss
from training.precision import PRECISIONS, resolve_precision
from training.run_folder import (
    CONFIG_FILE,
    EVAL_DIR,
    SAMPLES_DIR,
    check_run_folder,
    checked,
    read_toml,
    to_toml,
    truncate_metrics,
    write_atomic,
)
from training.run_log import METRICS_FILE, RunLog
from training.sample import LoadedRun, load_run, model_config, validation_videos
from training.schedule import learning_rate

NOISE_SEED_STRIDE = 1_000_003  # rank r draws noise from seed + (r + 1) * stride
OBJECTIVES = ("flow", "ode")


@dataclass(frozen=True)
class FitConfig:
    # --- run
    out: str = "runs/tiny"  # run folder; must not exist (or be empty) unless resume
    resume: bool = False  # continue the run in `out` from checkpoints/last; its config.toml
    #                       takes the place of the defaults (only RESUMABLE fields may change)
    seed: int = 0  # model initialisation and data order; the noise seed adds the rank
    device: str = "auto"  # "auto" (this rank's GPU if any, else CPU), "cpu" or "cuda"
    # --- data
    shards: str = ""  # shard folder (curation filter, or training encode with latents.npy)
    train_split: str = "train"
    val_split: str = "val"  # held-out clips for the validation loss (and sample videos)
    vae: str = ""  # VAE folder (a training vae run, a diffusers folder); needed to encode clips
    #                without latents.npy on the fly; "" = latents.npy only (any one VAE)
    frames: int = 17  # video frames per clip used, 4k+1 (latent frames F = (frames-1)/4 + 1)
    action_space: str = ""  # shards.action_space name; "" = the preset's (DiTConfig.space)
    shuffle: int = 256  # sample shuffle buffer of the reader (0: shard order)
    num_workers: int = 1  # DataLoader workers per rank (0: load in the training process)
    # --- model
    preset: str = "tiny"  # training.config.PRESETS: tiny, small, mg2-foundation, ...
    action_blocks: str = ""  # blocks carrying an action module, e.g. 0-14 (Matrix-Game 2.0's
    #                          distilled models: half the foundation's, faster); "" = the preset's
    init: str = ""  # Wan2.1-class DiT safetensors (file or folder) to start from
    #                 (training.init_weights; action modules stay fresh); "" = random init
    image_encoder: str = ""  # CLIP vision folder (training.image_encoder); "" = stand-in tokens
    init_run: str = ""  # a training run (or step folder) whose EMA weights start the model, e.g.
    #                     the teacher of a student (training distill): the same model, or one
    #                     with action modules in fewer of its blocks
    causal_block: int = 0  # latent frames per block-causal attention block (0: bidirectional)
    causal_local: int = 6  # latents a query sees, its own block included (training.causal)
    causal_sink: int = 0  # first latents every query also sees
    gradient_checkpointing: bool = False  # recompute block activations in backward (memory)
    # --- objective
    objective: str = "flow"  # "flow": flow matching on clips; "ode": regression onto the clean
    #                          ends of ODE pairs (training odepairs), distillation stage 1
    shift: float = 5.0  # sigma shift of the training grid (Wan / Matrix-Game: 5)
    per_frame_timesteps: bool = True  # a timestep per latent frame (diffusion forcing), or
    #                                   one per clip
    history_noise: float = 0.0  # frame 0 gets u * eps, u ~ U(0, history_noise) per clip
    error_buffer: int = 0  # Matrix-Game 3.0 error buffer size in latent frames (0: off)
    error_gamma: float = 1.0  # frame 0 += error_gamma * delta, delta drawn from the buffer
    action_dropout: float = 0.1  # per clip: zero keyboard and mouse (CFG on actions)
    image_dropout: float = 0.1  # per clip: zero the image tokens (CFG on the image)
    # --- optimisation
    batch_size: int = 4  # clips per rank per micro-step
    grad_accum: int = 1  # micro-steps per update (global batch = batch_size*grad_accum*ranks)
    steps: int = 1000  # optimizer updates in all
    lr: float = 1e-4  # peak learning rate (Matrix-Game 2.0 foundation: 2e-5 at batch 256)
    min_lr: float = 0.0  # learning rate at the end of the cosine
    warmup: int = 50  # linear warm-up updates
    decay_steps: int = 0  # cosine length in updates; 0 = steps
    weight_decay: float = 0.01  # AdamW, on weight matrices only (not biases, norms, scales)
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0  # max global gradient norm (0: no clipping)
    ema_decay: float = 0.999  # EMA of the weights (0: none)
    precision: str = "auto"  # "auto" (bf16 autocast on GPU, fp32 on CPU), "bf16" or "fp32"
    parallel: str = "ddp"  # under torchrun: "ddp" or "fsdp" (FSDP2 per block, then the root)
    # --- progress, validation, checkpoints
    val_every: int = 100  # validation loss every N updates, at step 0 and at the end (0: off)
    val_batches: int = 4  # batches of the val split used (the first ones, same every time)
    checkpoint_every: int = 500  # checkpoint every N updates, and always at the end (0: end)
    keep_checkpoints: int = 0  # keep only the newest N step folders (0: keep all)
    sample_every: int = 0  # videos of the first val batch every N updates (training.sample)
    eval_every: int = 0  # training eval every N updates and at the end (0: off): the probe
    #                      reads keys and mouse back from rollouts (training.evaluate); needs vae
    eval_clips: int = 2  # held-out clips of the val split generated under recorded actions
    eval_scripts: str = "w,s,turn-left,turn-right,idle"  # designed action scripts it also runs
    eval_reference: str = ""  # a run whose rollouts eval_every compares with, pixel by pixel
    #                           (training.agreement); training distill sets the teacher
    tensorboard: bool = False  # TensorBoard scalars in <out>/tensorboard
    progress: bool = True  # tqdm bar (loss, it/s, samples/s, ETA)

    def __post_init__(self) -> None:
        problems = []
        try:
            latent_frames(self.frames)
            if self.frames < 5:
                raise ValueError(f"frames must be at least 5 (two latent frames), got "
                                 f"{self.frames}")
        except ValueError as exc:
            problems.append(str(exc))
        for name in ("batch_size", "grad_accum", "steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("shuffle", "num_workers", "warmup", "decay_steps", "error_buffer",
                     "val_every", "val_batches", "checkpoint_every", "keep_checkpoints",
                     "sample_every", "eval_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("action_dropout", "image_dropout", "beta1", "beta2"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.lr > 0 or self.min_lr < 0 or self.min_lr > self.lr:
            problems.append(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, "
                            f"min_lr={self.min_lr}")
        if not self.shift > 0:
            problems.append(f"shift must be positive, got {self.shift}")
        for name in ("history_noise", "error_gamma", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.parallel not in distributed.PARALLEL:
            problems.append(f"parallel must be one of {distributed.PARALLEL}, got "
                            f"{self.parallel!r}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "ode" and (self.error_buffer or self.history_noise):
            problems.append("objective ode regresses onto the teacher: error_buffer and "
                            "history_noise must be 0")
        if self.causal_block < 0:
            problems.append(f"causal_block must not be negative, got {self.causal_block}")
        elif self.causal_block:
            try:
                self.causal()
            except ValueError as exc:
                problems.append(str(exc))
        if self.init and self.init_run:
            problems.append("give init (a Wan checkpoint) or init_run (a run), not both")
        if self.action_blocks:
            try:  # one spelling of the same blocks, so a resume compares blocks, not text
                blocks = self.model_config().action.blocks
                object.__setattr__(self, "action_blocks", block_ranges(blocks))
            except ValueError as exc:
                problems.append(str(exc))
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not self.out:
            problems.append("out (the run folder) must be given")
        try:
            self.eval_config()
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("fit config: " + "; ".join(problems))

    def model_config(self) -> DiTConfig:
        """The preset with ``action_blocks`` applied."""
        return with_action_blocks(get_preset(self.preset), self.action_blocks)

    def causal(self) -> CausalConfig | None:
        """The block-causal attention of the model, or None (bidirectional)."""
        if not self.causal_block:
            return None
        return CausalConfig(self.causal_block, self.causal_local, self.causal_sink)

    def eval_config(self) -> EvalConfig:
        """What ``eval_every`` evaluates: the first ``eval_clips`` clips of the val split and
        ``eval_scripts`` from the first two of them, no longer than the training clips."""
        return EvalConfig(split=self.val_split, clips=self.eval_clips, frames=self.frames,
                          scripts=self.eval_scripts, script_images=min(2, self.eval_clips))


# Fields a resumed run may change; any other difference from the run's config.toml is an error.
RESUMABLE = frozenset({"resume", "steps", "num_workers", "val_every", "val_batches",
                       "checkpoint_every", "keep_checkpoints", "sample_every", "eval_every",
                       "eval_clips", "eval_scripts", "eval_reference", "tensorboard",
                       "progress", "device"})


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> FitConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (the flags given). With
    ``resume`` set and ``<out>/config.toml`` present, that saved config replaces the defaults."""
    file_values = read_toml(path, FitConfig) if path is not None else {}
    flags = checked(dict(overrides or {}), "flags", FitConfig)
    merged = {**file_values, **flags}
    base: dict = {}
    if merged.get("resume", False):
        saved = Path(merged.get("out", FitConfig.out)) / CONFIG_FILE
        if saved.is_file():
            base = read_toml(saved, FitConfig)
    return FitConfig(**{**base, **merged})


def check(cfg: FitConfig) -> None:
    """Everything that can be checked before any work or process group: the shards, the
    preset and its action space, the VAE folder, the run folder."""
    if not cfg.shards:
        raise ValueError("shards (the shard folder) must be given")
    open_shards(cfg.shards, cfg.train_split)
    if cfg.val_every or cfg.sample_every or cfg.eval_every:
        try:
            open_shards(cfg.shards, cfg.val_split)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{exc}; validation needs held-out clips: set val_every, "
                                    f"sample_every and eval_every to 0, or write a val split "
                                    f"(curation filter --val-fraction)") from None
    for name in ("eval_every", "sample_every"):
        if getattr(cfg, name) and not cfg.vae:
            raise ValueError(f"{name} needs vae: it decodes what the model makes to pixels")
    model = cfg.model_config()
    dataset = read_dataset(cfg.shards)
    size, multiple = dataset.get("size"), 8 * max(model.patch[1:])
    if size and (size[0] % multiple or size[1] % multiple):
        raise ValueError(f"the shards' frames are {size[0]}x{size[1]}; the model needs both sides "
                         f"a multiple of {multiple} (the VAE's 8 times the patch "
                         f"{model.patch[1]}x{model.patch[2]}): curate with curation filter "
                         f"--size, e.g. 640x352")
    space = get_space(cfg.action_space or model.space)
    if len(space.keys) != model.action.keyboard_dim or space.mouse != model.action.mouse:
        raise ValueError(f"action space {space.name!r} ({len(space.keys)} keys, mouse "
                         f"{space.mouse}) does not feed preset {cfg.preset!r} "
                         f"({model.action.keyboard_dim} keys, mouse {model.action.mouse})")
    for name in ("vae", "image_encoder"):
        if getattr(cfg, name) and not Path(getattr(cfg, name)).is_dir():
            raise FileNotFoundError(f"{name} folder {getattr(cfg, name)} does not exist")
    if cfg.init:
        check_init(cfg.init, model)
    if cfg.init_run:
        trainer = checkpoint.read_trainer(checkpoint.step_folder(cfg.init_run))
        start = model_config(trainer["model"])
        if not same_but_action_blocks(model, start) \
                or not set(model.action.blocks) <= set(start.action.blocks):
            raise ValueError(f"init_run {cfg.init_run} is a {trainer.get('preset')!r} model with "
                             f"action modules in blocks {list(start.action.blocks)}; this run "
                             f"needs the same model ({cfg.preset!r}), with action modules in "
                             f"those blocks or some of them (action_blocks)")
    if cfg.objective == "ode":
        ode_sigmas(dataset, cfg.shards)
    if cfg.precision == "bf16" and cfg.device == "cpu":
        raise ValueError("precision bf16 is for GPUs; on the CPU training runs in float32")
    check_run_folder(cfg, RESUMABLE)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class FitSummary:
    run: Path
    step: int  # updates done
    loss: float | None  # the last step's training loss (None when no step ran)
    val_loss: float | None  # the last validation loss
    first_val_loss: float | None  # the validation loss at step 0 (of this process's run)
    samples_per_s: float  # mean over the steps this process ran
    data_wait: float  # share of step time spent waiting on the loader, over those steps


def make_optimizer(model: nn.Module, lr: float, betas: tuple[float, float],
                   weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices (ndim >= 2) only, as nanoGPT does."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)


def fit(cfg: FitConfig) -> FitSummary:
    """Train as ``cfg`` says (under torchrun: on every rank); see the module docstring."""
    check(cfg)
    d = distributed.setup(cfg.device)
    try:
        return _train(cfg, d)
    finally:
        distributed.teardown(d)


def _train(cfg: FitConfig, d: distributed.Dist) -> FitSummary:
    out = Path(cfg.out)
    model_cfg: DiTConfig = cfg.model_config()
    space = get_space(cfg.action_space or model_cfg.space)
    precision = resolve_precision(cfg.precision, d.device)
    resume_from = checkpoint.latest(out) if cfg.resume else None
    if d.master:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / CONFIG_FILE, to_toml(cfg))
    distributed.barrier(d)

    # --- model, optimizer, EMA (the same initial weights on every rank)
    torch.manual_seed(cfg.seed)
    model = WorldDiT(model_cfg).to(d.device)
    model.gradient_checkpointing = cfg.gradient_checkpointing
    if cfg.init and resume_from is None:
        report = init_from_wan(model, cfg.init)
        if d.master:
            print(f"initialised from {cfg.init}:\n{report.summary()}")
    if cfg.init_run and resume_from is None:
        start = checkpoint.step_folder(cfg.init_run)
        ema_file = (start / checkpoint.EMA_FILE).is_file()
        left_out = checkpoint.load_into(model, checkpoint.load_weights(start, ema=ema_file))
        if d.master:
            blocks = sorted({int(n.split(".")[1]) for n in left_out if ".action_model." in n})
            print(f"initialised from the {'EMA ' if ema_file else ''}weights of {start}"
                  + (f", but for the action modules of blocks {blocks}" if blocks else ""))
    causal = cfg.causal()
    frame_mask = (None if causal is None else
                  block_causal_mask(latent_frames(cfg.frames), causal, d.device))
    dataset = read_dataset(cfg.shards)
    sigmas = ode_sigmas(dataset, cfg.shards) if cfg.objective == "ode" else None
    streaming = {} if causal is None else {"block": causal.block, "local": causal.local,
                                           "sink": causal.sink}
    # what training sample and play need of the footage, kept with the weights: the shards
    # may be gone (or a URL out of reach) where the run is played
    footage = {"size": dataset.get("size"), "fps": dataset.get("fps")}
    if cfg.objective == "ode":  # the student denoises at the teacher's stored timesteps
        ode = dataset["ode"]
        streaming.update(timesteps=list(ode["timesteps"]), shift=ode["shift"])
    train_model = distributed.wrap(model, d, cfg.parallel)
    optimizer = make_optimizer(model, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(cfg.seed + (d.rank + 1) * NOISE_SEED_STRIDE)
    errors = ErrorBuffer(cfg.error_buffer) if cfg.error_buffer else None

    # --- resume
    step, position, identity = 0, {"epoch": 0, "start": 0}, None
    if resume_from is not None:
        trainer, own, meta = checkpoint.load(resume_from, d, model=model, optimizer=optimizer,
                                             ema=ema)
        step, identity = trainer["step"], trainer.get("vae")
        generator.set_state(own["noise_generator"])
        position = meta["position"]
        if errors is not None:
            errors.load(own, meta["error_buffer"], d.device)
    if d.master:
        if cfg.resume:
            truncate_metrics(out / METRICS_FILE, step if resume_from is not None else -1)
        print(f"training {cfg.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M"
              f" parameters) on {d.world} x {d.device}, {precision}, "
              + (f"resumed at step {step} from {resume_from}" if resume_from else
                 ("from the weights above" if cfg.init or cfg.init_run else "from scratch")
                 + (" (--resume found no checkpoint)" if cfg.resume else "")))
        if cfg.objective != "ode":  # (ODE pairs' actions come from the designed distribution)
            print(coverage_note(cfg.shards, cfg.train_split))

    # --- data
    vae = None
    if cfg.vae:
        from training.vae import WanVAE

        vae = WanVAE.load(cfg.vae, device=d.device)
    images = make_image_encoder(model_cfg, cfg.image_encoder or None, d.device)
    reference = (Reference(load_run(Path(cfg.eval_reference), device=str(d.device)))
                 if cfg.eval_every and cfg.eval_reference and d.master
                 and cfg.parallel != "fsdp" else None)
    build = BatchBuilder(model_cfg, d.device, vae, identity, images)
    stream = ClipStream(open_shards(cfg.shards, cfg.train_split), build,
                        batch_size=cfg.batch_size, frames=cfg.frames, space=space,
                        seed=cfg.seed, shuffle=cfg.shuffle, num_workers=cfg.num_workers,
                        **position)
    val = (fixed_batches(open_shards(cfg.shards, cfg.val_split), build,
                         batch_size=cfg.batch_size, count=max(cfg.val_batches, 1),
                         frames=cfg.frames, space=space)
           if cfg.val_every or cfg.sample_every else [])
    if (cfg.val_every or cfg.sample_every) and not val:
        raise ValueError(f"the {cfg.val_split} split of {cfg.shards} holds no clips of "
                         f"{cfg.frames} frames")

    run_log = RunLog(out, master=d.master, steps=cfg.steps, step=step,
                     tensorboard=cfg.tensorboard, progress=cfg.progress,
                     group=lambda key: key.split("_")[0] if key.startswith(("val", "eval"))
                     else "train")
    emit = run_log.emit

    def save() -> None:
        tensors = {"noise_generator": generator.get_state()}
        meta = {"position": stream.position}
        if errors is not None:
            buffer_tensors, meta["error_buffer"] = errors.state()
            tensors.update(buffer_tensors)
        trainer = {"config": dataclasses.asdict(cfg), "vae": build.identity,
                   "image_encoder": images.identity,
                   "preset": cfg.preset, "model": dataclasses.asdict(model_cfg),
                   "stream": streaming, "footage": footage}
        checkpoint.save(out, step, d, model=model, optimizer=optimizer, ema=ema,
                        trainer=trainer, rank_tensors=tensors, rank_meta=meta,
                        keep=cfg.keep_checkpoints)

    def validate() -> dict[str, float]:
        losses = {"val_loss": validation_loss(model, val, cfg, precision,
                                              frame_mask=frame_mask, sigmas=sigmas)}
        if ema is not None:
            with ema.applied(model):
                losses["val_loss_ema"] = validation_loss(model, val, cfg, precision,
                                                         frame_mask=frame_mask, sigmas=sigmas)
        return losses

    summary = FitSummary(out, step, None, None, None, 0.0, 0.0)
    if step == 0 and cfg.val_every:
        losses = validate()
        summary.val_loss = summary.first_val_loss = losses["val_loss"]
        emit({"step": 0, **losses})
    total = cfg.decay_steps or cfg.steps
    began, ran, busy, waited = time.perf_counter(), 0, 0.0, 0.0
    train_model.train()
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            lr = learning_rate(step, lr=cfg.lr, warmup=cfg.warmup, total=total,
                               min_lr=cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            def micro_loss() -> Tensor:
                loss, residuals = objective_loss(train_model, stream.next_batch(), cfg,
                                                 generator, precision=precision, errors=errors,
                                                 frame_mask=frame_mask, sigmas=sigmas)
                if errors is not None:
                    errors.add(residuals)
                return loss

            loss_mean = distributed.accumulate(train_model, cfg.grad_accum, micro_loss)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                  cfg.grad_clip if cfg.grad_clip else math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            step += 1

            loss_value = distributed.mean(loss_mean, d)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss is {loss_value} at step {step}; "
                                         f"lower lr or check the data")
            seconds = time.perf_counter() - t0
            wait = stream.take_wait()
            ran, busy, waited = ran + 1, busy + seconds, waited + wait
            speed = cfg.batch_size * cfg.grad_accum * d.world / seconds
            record = {"step": step, "loss": loss_value, "lr": lr,
                      "grad_norm": float(distributed.full(norm)), "samples_per_s": speed,
                      "data_wait": wait / seconds, "epoch": stream.epoch,
                      "seconds": time.perf_counter() - began}
            last = step == cfg.steps
            if cfg.val_every and (step % cfg.val_every == 0 or last):
                record.update(validate())
                summary.val_loss = record["val_loss"]
            videos_due = cfg.sample_every and step % cfg.sample_every == 0
            eval_due = cfg.eval_every and (step % cfg.eval_every == 0 or last)
            if (videos_due or eval_due) and d.master and cfg.parallel != "fsdp":
                sampler = copy.deepcopy(model).eval()
                if ema is not None:
                    ema.copy_to(sampler)
                if videos_due:
                    folder, fps = out / SAMPLES_DIR / f"step-{step:06d}", footage["fps"] or 15.0
                    if causal is None:
                        validation_videos(sampler, val[0], vae, folder, fps=fps, space=space)
                    else:  # played block by block, as training play does
                        streamed_videos(LoadedRun(sampler, vae, images, space, cfg.frames, None,
                                                  fps, step, streaming), val[0], folder, fps)
                if eval_due:
                    run = LoadedRun(sampler, vae, images, space, cfg.frames, None, None, step,
                                    streaming)
                    results = evaluate(run, cfg.shards, out / EVAL_DIR / f"step-{step:06d}",
                                       cfg.eval_config(), reference=reference)
                    record.update({f"eval_{k}": v for k, v in headline(results).items()
                                   if not math.isnan(v)})
                del sampler
            emit(record)
            summary.loss = loss_value
            run_log.advance(loss=f"{loss_value:.4f}", samples_s=f"{speed:.1f}",
                            **({"val": f"{summary.val_loss:.4f}"} if summary.val_loss else {}))
            if last or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                save()
    finally:
        run_log.close()
        stream.close()
    summary.step = step
    summary.samples_per_s = ran * cfg.batch_size * cfg.grad_accum * d.world / busy if ran else 0.0
    summary.data_wait = waited / busy if ran else 0.0
    return summary
