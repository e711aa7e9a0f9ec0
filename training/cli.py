"""The ``training`` command line: ``inspect``, ``import``, ``vae``, ``encode``, ``fit``,
``sample``, ``eval``, ``odepairs``, ``distill`` (stage 1), ``dmd`` (stage 2) and ``play``.

Each command's flags are generated from its config dataclass (``training.vae_train.VaeConfig``,
``training.encode.EncodeConfig``, ...), one ``--flag`` per field, so the configs and the command
line never drift apart. Errors a user can cause end in one ``training: error: ...`` line and a
non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from datagen.command import UsageError, config_flags, given_fields, run
from training.checkpoint import read_trainer, step_folder
from training.config import PRESETS, get_preset
from training.distill import distill_config
from training.dmd import DmdConfig, train_dmd
from training.encode import EncodeConfig, encode_shards
from training.eval_report import summary_table
from training.evaluate import EVAL_SAMPLER, EvalConfig, Reference, evaluate
from training.fit import FitConfig, fit, load_config
from training.generator import StreamConfig
from training.ode_pairs import PairsConfig, make_pairs
from training.params import param_shapes
from training.play import play, play_interactive
from training.released import PLAY_SETTINGS, ImportConfig, import_weights
from training.run_folder import CONFIG_FILE, EVAL_DIR, read_toml
from training.sample import SamplerConfig, load_run, sample_video
from training.vae_train import VaeConfig, train_vae
from training.vae_train import load_config as vae_config

USER_ERRORS = (FileExistsError, FileNotFoundError, KeyError, ValueError)


def _inspect(args: argparse.Namespace) -> int:
    try:
        shapes = param_shapes(get_preset(args.preset))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        json.dump(shapes, sys.stdout)
        print()
    else:
        cfg = get_preset(args.preset)
        print(f"{args.preset}: {shapes['count']:,} parameters, dim {cfg.dim}, "
              f"{cfg.num_layers} blocks, action modules in {len(cfg.action.blocks)}, "
              f"keyboard {cfg.action.keyboard_dim} keys, mouse {cfg.action.mouse}, "
              f"action space {cfg.space}")
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        cfg = ImportConfig(**given_fields(args, ImportConfig))
        step = import_weights(cfg, given_fields(args, StreamConfig))
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    stream = read_trainer(step)["stream"]
    how = (f"streaming: blocks of {stream['block']} latents, a window of {stream['local']}, "
           f"steps {stream['timesteps']} at shift {stream['shift']:g}; play it with training "
           f"play --ckpt {cfg.out}" if stream else
           f"bidirectional; sample it with training sample --ckpt {cfg.out}, or distil it "
           f"with training odepairs --teacher {cfg.out}")
    print(f"{cfg.out}: {cfg.preset} from {cfg.weights} ({how})")
    return 0


def _build(cls: type, args: argparse.Namespace, **fixed: object) -> object:
    try:
        return cls(**{**given_fields(args, cls), **fixed})
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _vae(args: argparse.Namespace) -> int:
    given = {**given_fields(args, VaeConfig), "shards": args.shards, "out": args.out}
    try:
        run_dir = train_vae(vae_config(given))
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(f"VAE written to {run_dir}; use it with --vae {run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"held-out PSNR {metrics['start']['psnr']:.1f} -> {metrics['end']['psnr']:.1f} dB")
    if motion := metrics["latent_motion"]:
        hint = "" if motion["corr"] >= 0.5 else (
            ": they hardly do, so a world model cannot learn motion from them; train longer "
            "(hundreds of steps), or if it trained that long, its decoder has stopped reading "
            "its latents: try another --seed or a lower --lr")
        print(f"latents follow the picture: correlation {motion['corr']:.2f} with the pixels' "
              f"change over {motion['steps']} held-out steps{hint}")
    end = metrics["end"]
    if end["motion_within"] is not None:  # windows of 5 frames or more
        hint = "" if end["motion_within"] >= 0.5 else (": frames repeat inside each latent, so "
                                                       "motion moves in steps of 4 frames; a loss "
                                                       "on the frame differences keeps more of "
                                                       "it (--motion-weight 1)")
        print(f"motion kept inside latents {end['motion_within']:.2f}, across latents "
              f"{end['motion_across']:.2f} of the footage's frame-to-frame change{hint}")
    if probe := metrics["probe"]:
        truth, through = probe["ground_truth"], probe["autoencoded"]
        def share(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.0%}"

        print(f"the camera-motion probe reads keyboard {share(truth['keyboard'])}, mouse "
              f"{share(truth['mouse'])} of {probe['clips']} held-out clips; through the VAE "
              f"{share(through['keyboard'])}, {share(through['mouse'])} (the most a world model "
              f"on these latents can show)")
    return 0


def _encode(args: argparse.Namespace) -> int:
    cfg = _build(EncodeConfig, args, shards=args.shards, out=args.out)
    try:
        out = encode_shards(cfg)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(f"shards with latents written to {out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, given_fields(args, FitConfig))
        summary = fit(cfg)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    if summary is not None and int(os.environ.get("RANK", "0")) == 0:
        val = "" if summary.val_loss is None else f", validation loss {summary.val_loss:.4f}"
        print(f"{summary.run}: step {summary.step}, loss {summary.loss:.4f}{val}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    try:
        cfg = SamplerConfig(**given_fields(args, SamplerConfig))
        run_ = load_run(args.ckpt, args.vae, ema=not args.no_ema, device=args.device)
        out = sample_video(run_, args.image, args.actions, args.out, cfg, key=args.key,
                           frames=args.frames, overlay=args.overlay, fps=args.fps,
                           progress=not args.no_progress)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(f"{out}: {args.frames or 'all'} frames from step {run_.step} of {args.ckpt}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    try:
        cfg = EvalConfig(**given_fields(args, EvalConfig))
        sampler = dataclasses.replace(EVAL_SAMPLER, **given_fields(args, SamplerConfig))
        run_ = load_run(args.ckpt, args.vae, ema=not args.no_ema, device=args.device)
        reference = (Reference(load_run(args.reference, ema=not args.no_ema,
                                        device=args.device)) if args.reference else None)
        run_dir = args.ckpt if (args.ckpt / CONFIG_FILE).is_file() else args.ckpt.parent.parent
        out = args.out or (run_dir / EVAL_DIR / f"step-{run_.step:06d}")
        board = None
        if args.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            board = SummaryWriter(str(args.tensorboard))
        try:
            results = evaluate(run_, args.shards, out, cfg, sampler, board,
                               progress=not args.no_progress, reference=reference)
        finally:
            if board is not None:
                board.close()
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(summary_table(results))
    print(f"report: {out / 'index.html'}")
    teacher = read_trainer(step_folder(args.ckpt))["config"].get("eval_reference")
    if teacher and not args.reference:
        print(f"it was distilled from {teacher}: add --reference {teacher} to compare its "
              f"rollouts with its teacher's")
    return 0


def _odepairs(args: argparse.Namespace) -> int:
    cfg = _build(PairsConfig, args, teacher=args.teacher, shards=args.shards, out=args.out)
    try:
        out = make_pairs(cfg)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(f"ODE pairs written to {out}; distil with training distill --teacher {args.teacher} "
          f"--pairs {out}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    try:
        flags = {k: v for k, v in given_fields(args, FitConfig).items() if k != "out"}
        cfg = distill_config(args.teacher, args.pairs, args.out, args.config, flags)
        summary = fit(cfg)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    if summary is not None and int(os.environ.get("RANK", "0")) == 0:
        val = "" if summary.val_loss is None else f", validation loss {summary.val_loss:.4f}"
        print(f"{summary.run}: step {summary.step}, loss {summary.loss:.4f}{val}; play it with "
              f"training play --ckpt {summary.run}")
    return 0


def _dmd(args: argparse.Namespace) -> int:
    try:
        values = read_toml(args.config, DmdConfig) if args.config else {}
        cfg = DmdConfig(**{**values, **given_fields(args, DmdConfig)})
        summary = train_dmd(cfg)
    except (*USER_ERRORS, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if int(os.environ.get("RANK", "0")) == 0 and summary.dmd_loss is not None:
        print(f"{summary.run}: step {summary.step}, DMD loss {summary.dmd_loss:.4f}, critic "
              f"loss {summary.critic_loss:.4f}; play it with training play --ckpt {summary.run}")
    return 0


def _play(args: argparse.Namespace) -> int:
    try:
        run_ = load_run(args.ckpt, args.vae, ema=not args.no_ema, device=args.device)
        cfg = StreamConfig.recorded(run_.stream, **given_fields(args, StreamConfig))
        if args.interactive:
            if args.actions is not None:
                raise ValueError("--interactive takes the actions from the keyboard, not from "
                                 "--actions")
            play_interactive(run_, args.image, args.out, cfg, fps=args.fps,
                             max_blocks=args.max_blocks, window=not args.no_window)
            return 0
        if args.actions is None:
            raise ValueError("give --actions (an action file), or --interactive to play")
        stats = play(run_, args.image, args.actions, args.out, cfg, key=args.key,
                     frames=args.frames, fps=args.fps, progress=not args.no_progress)
    except USER_ERRORS as exc:
        raise UsageError(str(exc)) from None
    print(f"{args.out}: {stats.frames} frames in {stats.blocks} blocks, "
          f"{stats.fps:.1f} frames/s after the first block")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="training", description="Train action-conditioned DiT world models on shards.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ins = sub.add_parser("inspect", help="a preset's parameter names and shapes (no weights)")
    ins.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    ins.add_argument("--json", action="store_true",
                     help='print {"params": {name: shape}, "count": N}')

    imp = sub.add_parser("import", help="a run folder from released Matrix-Game 2.0 weights")
    config_flags(imp, ImportConfig, "import (ImportConfig; see docs/training.md)")
    config_flags(imp, StreamConfig, "streaming settings to record (default: as released)",
                 skip=PLAY_SETTINGS)

    vae = sub.add_parser("vae", help="train a Wan VAE from scratch on shards")
    vae.add_argument("shards", help="shard folder (curation filter output), or its URL")
    vae.add_argument("--out", type=Path, required=True,
                     help="run folder (must not exist, unless --resume true)")
    config_flags(vae, VaeConfig, "VAE training (VaeConfig; see docs/training.md)",
                 skip=("shards", "out"))

    enc = sub.add_parser("encode", help="add VAE latents (latents.npy) to every clip of shards")
    enc.add_argument("shards", help="shard folder to read (never modified), or its URL")
    enc.add_argument("--out", type=Path, required=True, help="new shard folder")
    config_flags(enc, EncodeConfig, "encoding (EncodeConfig)", skip=("shards", "out"))

    fit_ = sub.add_parser("fit", help="train the DiT with flow matching on shards")
    fit_.add_argument("--config", type=Path, help="TOML file of FitConfig fields (flags win)")
    config_flags(fit_, FitConfig, "training (FitConfig; see docs/training.md)")

    smp = sub.add_parser("sample", help="a video from an image and an action file")
    smp.add_argument("--ckpt", type=Path, required=True, help="run folder or step folder")
    smp.add_argument("--image", type=Path, required=True,
                     help="first frame: an image, or a video (its first frame)")
    smp.add_argument("--actions", type=Path, required=True,
                     help="an episode's actions.csv (or its folder), or a shard tar; resampled "
                          "to the frame rate the model trained at, as curation does")
    smp.add_argument("--key", help="the clip of a shard tar (default: its first)")
    smp.add_argument("--out", type=Path, required=True, help="output MP4")
    smp.add_argument("--frames", type=int, help="frames to generate (default: every action)")
    smp.add_argument("--vae", type=Path, help="VAE folder (default: the run's)")
    smp.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    smp.add_argument("--overlay", action="store_true", help="draw the inputs over the video")
    smp.add_argument("--fps", type=float, help="frame rate of the MP4 (default: that of the "
                     "footage the model trained on, at which it takes its inputs either way)")
    smp.add_argument("--device", default="cpu", help="torch device")
    smp.add_argument("--no-progress", action="store_true")
    config_flags(smp, SamplerConfig, "sampling (SamplerConfig)")

    ev = sub.add_parser("eval", help="does the model's video follow its inputs? (probe-scored)")
    ev.add_argument("--ckpt", type=Path, required=True, help="run folder or step folder")
    ev.add_argument("--shards", required=True,
                    help="shard folder of held-out clips, or its URL")
    ev.add_argument("--out", type=Path,
                    help=f"report folder (default: <ckpt>/{EVAL_DIR}/step-N; replaced)")
    ev.add_argument("--vae", type=Path, help="VAE folder (default: the run's)")
    ev.add_argument("--reference", type=Path,
                    help="a run to compare the rollouts with, pixel by pixel (e.g. a student's "
                    "teacher)")
    ev.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    ev.add_argument("--device", default="cpu", help="torch device")
    ev.add_argument("--tensorboard", type=Path, help="also write eval/... scalars here")
    ev.add_argument("--no-progress", action="store_true")
    config_flags(ev, EvalConfig, "evaluation (EvalConfig; see docs/training.md)")
    config_flags(ev, SamplerConfig, "sampling (SamplerConfig; the rollouts of training fit's "
                 "--eval-every use the same defaults)", defaults=EVAL_SAMPLER)

    pairs = sub.add_parser("odepairs", help="a teacher's ODE trajectories for distillation")
    pairs.add_argument("--teacher", type=Path, required=True, help="run of training fit")
    pairs.add_argument("--shards", required=True,
                       help="shard folder (or its URL) the first frames come from")
    pairs.add_argument("--out", type=Path, required=True, help="new shard folder of pairs")
    config_flags(pairs, PairsConfig, "pairs (PairsConfig; see docs/training.md)",
                 skip=("teacher", "shards", "out"))

    dis = sub.add_parser("distill", help="a block-causal few-step student from ODE pairs")
    dis.add_argument("--teacher", type=Path, required=True, help="run of training fit")
    dis.add_argument("--pairs", type=Path, required=True, help="output of training odepairs")
    dis.add_argument("--out", type=Path, required=True, help="student run folder")
    dis.add_argument("--config", type=Path, help="TOML file of FitConfig fields (flags win)")
    config_flags(dis, FitConfig, "training (FitConfig; the teacher's and student defaults "
                 "otherwise; see docs/training.md)", skip=("out", "shards", "init_run"))

    dmd = sub.add_parser("dmd", help="distillation stage 2: DMD self-forcing of a student")
    dmd.add_argument("--config", type=Path, help="TOML file of DmdConfig fields (flags win)")
    config_flags(dmd, DmdConfig, "DMD (DmdConfig; see docs/training.md)")

    ply = sub.add_parser("play", help="stream a session block by block from an image and actions")
    ply.add_argument("--ckpt", type=Path, required=True, help="run folder or step folder")
    ply.add_argument("--image", type=Path, required=True,
                     help="first frame: an image, or a video (its first frame)")
    ply.add_argument("--actions", type=Path,
                     help="an episode's actions.csv (or its folder), or a shard tar; resampled "
                          "to the frame rate the model trained at, as curation does")
    ply.add_argument("--interactive", action="store_true",
                     help="play from the keyboard in this terminal, or in the window that "
                          "opens when a display exists (q quits)")
    ply.add_argument("--max-blocks", type=int, default=0,
                     help="with --interactive: stop after this many blocks (0: at q)")
    ply.add_argument("--no-window", action="store_true",
                     help="with --interactive: no window even when a display exists (the "
                          "newest frame goes to <out>.preview.png instead)")
    ply.add_argument("--key", help="the clip of a shard tar (default: its first)")
    ply.add_argument("--out", type=Path, required=True, help="output MP4")
    ply.add_argument("--frames", type=int, help="frames to play (default: every action)")
    ply.add_argument("--vae", type=Path, help="VAE folder (default: the run's)")
    ply.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    ply.add_argument("--fps", type=float, help="frame rate of the MP4 (default: that of the "
                     "footage the model trained on, at which it takes its inputs either way)")
    ply.add_argument("--device", default="cpu", help="torch device")
    ply.add_argument("--no-progress", action="store_true", help="no per-block lines")
    config_flags(ply, StreamConfig, "streaming (StreamConfig; see docs/training.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    commands = {"inspect": _inspect, "import": _import, "vae": _vae, "encode": _encode, "fit": _fit,
                "sample": _sample, "eval": _eval, "odepairs": _odepairs, "distill": _distill,
                "dmd": _dmd, "play": _play}
    return run(build_parser(), commands, argv, "nothing was written that a rerun cannot redo")


if __name__ == "__main__":
    sys.exit(main())
