"""Trainer throughput on the CPU: samples/s and the share of step time spent waiting on data.

Records built-in episodes (city and park, 160x90), curates them into clips (``--size``,
``--frames`` frames at 15 fps), trains a tiny VAE briefly (its quality does not matter for
speed) and pre-encodes latents, then runs ``training fit`` for ``--steps`` updates for each
preset: on the pre-encoded latents with ``first.png`` (what ``training encode`` writes), on the
same latents without it (shards encoded before it existed: the image condition's first frame
is decoded from the MP4), and encoding every clip with the VAE on the fly.
Reported: the median samples/s and the mean ``data_wait`` (share of a step spent waiting on
the loader) over the steps after the first ``--warmup``, from the run's ``metrics.jsonl``.

    python benchmarks/bench_train.py [--presets tiny,small] [--steps 40] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from curation.cli import main as curation
from datagen.cli import main as datagen
from shards.reader import FIRST
from training.encode import EncodeConfig, encode_shards
from training.fit import FitConfig, fit
from training.vae_train import VaeConfig, train_vae


def make_data(root: Path, episodes: int, size: str, frames: int) -> tuple[Path, Path, Path]:
    """(plain shards, shards with latents, VAE folder) under ``root``."""
    for scene in ("city", "park"):
        assert datagen(["record", "--out", str(root / "raw"), "--scene", scene, "--episodes",
                        str(episodes), "--frames", "600", "--size", "160x90", "--streams",
                        "1", "--no-progress"]) == 0
    shards, latents, vae = root / "shards", root / "latents", root / "vae"
    assert curation(["filter", str(root / "raw"), "--out", str(shards), "--size", size,
                     "--clip-frames", str(frames), "--fps", "15", "--val-fraction", "0.2",
                     "--maxcount", "16", "--no-progress"]) == 0
    train_vae(VaeConfig(shards=shards, out=vae, frames=frames, steps=20, batch_size=2,
                        eval_clips=1, stats_clips=4, progress=False))
    encode_shards(EncodeConfig(shards=shards, vae=vae, out=latents, frames=frames,
                               progress=False))
    return shards, latents, vae


DATA = {"latents": "latents.npy + first.png", "latents-mp4": "latents.npy, first from mp4",
        "shards": "VAE on the fly"}


def without_member(src: Path, dst: Path, member: str) -> Path:
    """A copy of the shard folder ``src`` whose tars lack every ``*.<member>``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.tar"))
    for tar in sorted(src.glob("*.tar")):
        with tarfile.open(tar) as old, tarfile.open(dst / tar.name, "w") as new:
            for info in old:
                if not info.name.endswith("." + member):
                    new.addfile(info, old.extractfile(info))
    return dst


def measure(preset: str, shards: Path, vae: Path, out: Path, args: argparse.Namespace) -> dict:
    cfg = FitConfig(out=str(out), shards=str(shards), vae=str(vae), preset=preset,
                    frames=args.frames, steps=args.steps, batch_size=args.batch_size,
                    warmup=5, lr=1e-4, val_every=0, checkpoint_every=0, num_workers=1,
                    shuffle=32, progress=False)
    began = time.perf_counter()
    fit(cfg)
    wall = time.perf_counter() - began
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = [r for r in rows if r.get("step", 0) > args.warmup and "samples_per_s" in r]
    return {"preset": preset, "data": DATA[shards.name],
            "samples_per_s": statistics.median(r["samples_per_s"] for r in steady),
            "data_wait": statistics.fmean(r["data_wait"] for r in steady),
            "wall_s": wall, "steps": args.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="64x32")
    parser.add_argument("--episodes", type=int, default=2, help="per scene")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the trainer")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        shards, latents, vae = make_data(root, args.episodes, args.size, args.frames)
        older = without_member(latents, root / "latents-mp4", FIRST)
        results = []
        for preset in args.presets.split(","):
            for data in (latents, older, shards):
                r = measure(preset, data, vae, root / f"run-{preset}-{data.name}", args)
                results.append(r)
                print(f"{r['preset']:6s} {r['data']:28s} {r['samples_per_s']:7.1f} samples/s  "
                      f"data wait {100 * r['data_wait']:5.1f} %  ({r['wall_s']:.0f} s)",
                      flush=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch": torch.__version__, "threads": args.threads}
    print(json.dumps({"machine": machine, "size": args.size, "frames": args.frames,
                      "batch_size": args.batch_size, "results": results}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=1))


if __name__ == "__main__":
    main()
