"""Does a preset learn on a CPU? Validation loss curve, true vs shuffled actions, sample videos.

Records built-in episodes (``--episodes`` city and park each, 160x90, balanced profile), curates
them to ``--size`` clips of ``--frames`` frames at 15 fps (a fifth of the episodes held out as the
val split), trains a VAE (``--vae-steps``, ``--vae-image-steps``), pre-encodes latents, then trains
the preset for ``--steps`` updates with a validation loss every ``--val-every`` (and ``training
eval`` every ``--eval-every``). At the end: the validation loss with true, shuffled and zero
actions (``training.ablation.action_use``, same noise; over training's noise levels and at each of
``NOISE_LEVELS``), a loss-curve PNG, validation videos (generated beside ground truth) and a full
``training eval`` report (``--eval-clips`` held-out clips, every designed script) in ``--out``.
Stages whose output is already in ``--out`` (recordings, shards, VAE, latents) are reused, so a
second run changes only the training. ``--data DIR`` takes the recordings and shards of another
run's folder, ``--vae DIR`` a VAE trained elsewhere (``training vae``; latents are then encoded
with it), so runs can compare models or VAEs on the same footage.

    python benchmarks/bench_learn.py --preset small --steps 3000 --out bench-small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from curation.cli import main as curation  # noqa: E402
from datagen.cli import main as datagen  # noqa: E402
from shards.action_space import get_space  # noqa: E402
from shards.location import open_shards  # noqa: E402
from training import checkpoint  # noqa: E402
from training.ablation import action_use  # noqa: E402
from training.config import get_preset  # noqa: E402
from training.data import BatchBuilder, fixed_batches  # noqa: E402
from training.dit import WorldDiT  # noqa: E402
from training.encode import EncodeConfig, encode_shards  # noqa: E402
from training.eval_report import headline, summary_table  # noqa: E402
from training.evaluate import EvalConfig, evaluate  # noqa: E402
from training.fit import FitConfig, fit  # noqa: E402
from training.sample import SamplerConfig, load_run, validation_videos  # noqa: E402
from training.vae import WanVAE  # noqa: E402
from training.vae_train import VaeConfig, train_vae  # noqa: E402

NOISE_LEVELS = (0.2, 0.4, 0.6, 0.8, 0.9, 1.0)  # sigmas at which action use is also scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--val-every", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--episodes", type=int, default=6, help="per scene (city, park)")
    parser.add_argument("--size", default="64x32")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--data", type=Path, help="reuse raw/ and shards/ of this folder")
    parser.add_argument("--vae", type=Path, help="a trained VAE (training vae run) to use")
    parser.add_argument("--vae-steps", type=int, default=200)
    parser.add_argument("--vae-image-steps", type=int, default=0,
                        help="of --vae-steps, the first on single frames (training vae)")
    parser.add_argument("--vae-batch-size", type=int, default=4)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=0, help="training eval during fit")
    parser.add_argument("--eval-clips", type=int, default=8, help="held-out clips, final eval")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="folder for data, runs, report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    data = args.data or out
    for scene in ("city", "park"):
        if not (data / "raw" / scene).is_dir():
            assert datagen(["record", "--out", str(data / "raw"), "--scene", scene,
                            "--episodes", str(args.episodes), "--frames", "600", "--size",
                            "160x90", "--streams", "1", "--profile", "balanced",
                            "--no-progress"]) == 0
    shards = data / "shards"
    if not (shards / "dataset.json").is_file():
        assert curation(["filter", str(data / "raw"), "--out", str(shards), "--size", args.size,
                         "--clip-frames", str(args.frames), "--fps", "15", "--val-fraction",
                         "0.2", "--maxcount", "32", "--no-progress"]) == 0
    vae = args.vae or out / "vae"
    if not args.vae and not (vae / "metrics.json").is_file():
        vae = train_vae(VaeConfig(shards=shards, out=vae, steps=args.vae_steps,
                                  image_steps=args.vae_image_steps,
                                  batch_size=args.vae_batch_size, lr=args.vae_lr, frames=9,
                                  eval_clips=4, stats_clips=16, progress=False))
    latents = out / "latents"
    if not (latents / "dataset.json").is_file():
        latents = encode_shards(EncodeConfig(shards=shards, vae=vae, out=latents,
                                             progress=False))
    data_s = time.perf_counter() - began
    cfg = FitConfig(out=str(out / "run"), shards=str(latents), vae=str(vae), preset=args.preset,
                    frames=args.frames, steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, warmup=50, ema_decay=0.995, val_every=args.val_every,
                    val_batches=4, checkpoint_every=0, shuffle=128, num_workers=1,
                    eval_every=args.eval_every, progress=True)
    t0 = time.perf_counter()
    summary = fit(cfg)
    train_s = time.perf_counter() - t0

    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(*zip(*train, strict=True), lw=0.6, alpha=0.5, label="training loss")
    ax.plot(*zip(*val, strict=True), "o-", label="validation loss (held-out episodes)")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_title(f"{args.preset}: {args.steps} steps on a CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png")

    model_cfg = get_preset(args.preset)
    step_dir = checkpoint.latest(cfg.out)
    model = WorldDiT(model_cfg)
    model.load_state_dict(checkpoint.load_weights(step_dir))
    model.eval()
    builder = BatchBuilder(model_cfg, torch.device("cpu"))
    batches = fixed_batches(open_shards(latents, "val"), builder, batch_size=8, count=8,
                            frames=args.frames, space=get_space(model_cfg.space))
    use = action_use(model, batches, cfg)
    use_by_noise = {level: action_use(model, batches, cfg, seeds=(1, 2), noise_level=level)
                    for level in NOISE_LEVELS}
    ema = WorldDiT(model_cfg)
    ema.load_state_dict(checkpoint.load_weights(step_dir, ema=True))
    videos = validation_videos(ema.eval(), batches[0], WanVAE.load(vae), out / "videos",
                               SamplerConfig(steps=20), fps=15)
    final_eval = evaluate(load_run(Path(cfg.out)), latents, out / "eval",
                          EvalConfig(clips=args.eval_clips, script_images=4), progress=True)
    print(summary_table(final_eval))
    trained = Path(vae) / "metrics.json"  # absent for a VAE not made by training vae
    vae_metrics = json.loads(trained.read_text()) if trained.is_file() else None
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": args.threads},
        "preset": args.preset, "steps": args.steps, "batch_size": args.batch_size,
        "size": args.size, "frames": args.frames,
        "clips_val": sum(len(b) for b in batches),
        "data_minutes": data_s / 60, "train_minutes": train_s / 60,
        "val_loss": val, "first_val_loss": summary.first_val_loss,
        "final_val_loss": summary.val_loss, "action_use": use,
        "action_use_by_noise_level": use_by_noise,
        "vae": str(vae),
        "vae_psnr": vae_metrics and {k: vae_metrics[k]["psnr"] for k in ("start", "end")},
        "videos": [str(v) for v in videos],
        "eval": {"report": str(out / "eval" / "index.html"), **headline(final_eval)},
        "eval_during_fit": [{k: v for k, v in r.items() if k == "step" or k.startswith("eval")}
                            for r in rows if any(k.startswith("eval") for k in r)],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
