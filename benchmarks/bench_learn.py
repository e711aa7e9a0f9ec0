"""Does a preset learn on a CPU? Validation loss curve, true vs shuffled actions, sample videos.

Records built-in episodes (``--episodes`` city and park each, 160x90, balanced profile),
curates them to ``--size`` clips of ``--frames`` frames at 15 fps (a fifth of the episodes held
out as the val split), trains a VAE (``--vae-steps``), pre-encodes latents, then trains the
preset for ``--steps`` updates with a validation loss every ``--val-every``. At the end: the
validation loss with true, shuffled and zero actions (``training.ablation.action_use``, same
noise), a loss-curve PNG and validation videos (generated beside ground truth) in ``--out``.

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
from shards.reader import open_shards  # noqa: E402
from training import checkpoint  # noqa: E402
from training.ablation import action_use  # noqa: E402
from training.config import get_preset  # noqa: E402
from training.data import BatchBuilder, fixed_batches  # noqa: E402
from training.dit import WorldDiT  # noqa: E402
from training.encode import EncodeConfig, encode_shards  # noqa: E402
from training.fit import FitConfig, fit  # noqa: E402
from training.sample import SamplerConfig, validation_videos  # noqa: E402
from training.vae import WanVAE  # noqa: E402
from training.vae_train import VaeConfig, train_vae  # noqa: E402


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
    parser.add_argument("--vae-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="folder for data, runs, report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    for scene in ("city", "park"):
        assert datagen(["record", "--out", str(out / "raw"), "--scene", scene, "--episodes",
                        str(args.episodes), "--frames", "600", "--size", "160x90", "--streams",
                        "1", "--profile", "balanced", "--no-progress"]) == 0
    shards = out / "shards"
    assert curation(["filter", str(out / "raw"), "--out", str(shards), "--size", args.size,
                     "--clip-frames", str(args.frames), "--fps", "15", "--val-fraction", "0.2",
                     "--maxcount", "32", "--no-progress"]) == 0
    vae = train_vae(VaeConfig(shards=shards, out=out / "vae", steps=args.vae_steps,
                              batch_size=4, frames=9, eval_clips=4, stats_clips=16,
                              progress=False))
    latents = encode_shards(EncodeConfig(shards=shards, vae=vae, out=out / "latents",
                                         progress=False))
    data_s = time.perf_counter() - began
    cfg = FitConfig(out=str(out / "run"), shards=str(latents), vae=str(vae), preset=args.preset,
                    frames=args.frames, steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, warmup=50, ema_decay=0.995, val_every=args.val_every,
                    val_batches=4, checkpoint_every=0, shuffle=128, num_workers=1,
                    progress=True)
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
    ema = WorldDiT(model_cfg)
    ema.load_state_dict(checkpoint.load_weights(step_dir, ema=True))
    videos = validation_videos(ema.eval(), batches[0], WanVAE.load(vae), out / "videos",
                               SamplerConfig(steps=20), fps=15)
    vae_metrics = json.loads((Path(vae) / "metrics.json").read_text())
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": args.threads},
        "preset": args.preset, "steps": args.steps, "batch_size": args.batch_size,
        "size": args.size, "frames": args.frames,
        "clips_val": sum(len(b) for b in batches),
        "data_minutes": data_s / 60, "train_minutes": train_s / 60,
        "val_loss": val, "first_val_loss": summary.first_val_loss,
        "final_val_loss": summary.val_loss, "action_use": use,
        "vae_psnr": {k: vae_metrics[k]["psnr"] for k in ("start", "end")},
        "videos": [str(v) for v in videos],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
