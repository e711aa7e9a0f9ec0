"""The closed loop at CPU scale: a trained teacher distilled into a streaming student, played.

Given a teacher run (``training fit``, e.g. the ``small`` run of ``bench_learn.py``) and its
shard folder (with latents), runs ``training odepairs`` (``--pairs`` train + ``--val-pairs``),
stage 1 (``training distill``, ``--ode-steps``) and stage 2 (``training dmd``, ``--dmd-steps``),
then ``training eval`` of the teacher, of the student at its start (the teacher's weights played
block by block, before any distillation) and of both students on the same held-out clips and
scripts, the students against the teacher (``--reference``: PSNR of their frames against the
teacher's, agreement of their responses to the scripts; the teacher against itself at another
seed as the level to reach), and the students' play speed (``training play`` on
``--play-frames`` frames of designed actions, VAE decode included). Prints markdown tables and
writes ``report.json`` in ``--out``. Stages already in ``--out`` (pairs, students) are reused, so
a second run only evaluates.

    python benchmarks/bench_distill.py --teacher DIR/run --shards DIR/latents --out DIR2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training import checkpoint
from training.action_design import sample_actions
from training.distill import distill_config
from training.dmd import DmdConfig, train_dmd
from training.eval_report import headline
from training.evaluate import EVAL_SAMPLER, EvalConfig, Reference, evaluate
from training.fit import fit
from training.generator import Generator, StreamConfig
from training.ode_pairs import PairsConfig, make_pairs
from training.play import PlayStats, timed_blocks
from training.run_log import METRICS_FILE
from training.sample import load_run


def play_speed(run_dir: Path, frames: int) -> float:
    """Frames per second of block-by-block play after the first block, decode included."""
    run = load_run(run_dir)
    gen = Generator(run.model, run.vae, run.images, run.space, StreamConfig.recorded(run.stream))
    size = run.size or (128, 64)
    gen.reset(torch.rand(1, 3, size[1], size[0]) * 2 - 1)
    keys, mouse = sample_actions(frames, run.fps or 15.0, np.random.default_rng(0))
    blocks = list(timed_blocks(gen, keys, mouse))
    return PlayStats(frames, [n for _, n, _ in blocks], [s for _, _, s in blocks]).fps


def spread(values: list[float | None]) -> str:
    """Mean and range of one number over eval seeds ("n/a" where any seed has none)."""
    if any(v is None for v in values):
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.2f}" + ("" if len(values) == 1 else f" ({min(values):.2f}-{max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--val-pairs", type=int, default=16)
    parser.add_argument("--ode-steps", type=int, default=400)
    parser.add_argument("--dmd-steps", type=int, default=40)
    parser.add_argument("--dmd-lr", type=float, default=1e-5, help="the DMD generator's")
    parser.add_argument("--critic-lr", type=float, default=1e-5, help="the DMD critic's")
    parser.add_argument("--eval-clips", type=int, default=4)
    parser.add_argument("--eval-seeds", default="0",
                        help="eval noise seeds, comma-separated: the table against the teacher "
                             "gives their mean and range, the probe's table the first's")
    parser.add_argument("--play-frames", type=int, default=201)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    began = time.perf_counter()
    pairs = out / "pairs"
    if not (pairs / "dataset.json").is_file():
        make_pairs(PairsConfig(teacher=args.teacher, shards=args.shards, out=pairs,
                               count=args.pairs, val_count=args.val_pairs, progress=True))
    timings["odepairs_min"] = (time.perf_counter() - began) / 60
    began = time.perf_counter()
    student = out / "student"
    if checkpoint.latest(student) is None:
        fit(distill_config(args.teacher, pairs, student, flags={
            "steps": args.ode_steps, "batch_size": 4, "lr": 5e-4, "warmup": 20,
            "val_every": max(1, args.ode_steps // 4), "val_batches": 4, "checkpoint_every": 0,
            "num_workers": 1, "shuffle": 64}))
        timings["ode_min"] = (time.perf_counter() - began) / 60
    began = time.perf_counter()
    dmd = out / "dmd"
    if checkpoint.latest(dmd) is None:
        train_dmd(DmdConfig(out=str(dmd), student=str(student), teacher=str(args.teacher),
                            shards=str(args.shards), steps=args.dmd_steps, lr=args.dmd_lr,
                            critic_lr=args.critic_lr, checkpoint_every=0, num_workers=1))
        timings["dmd_min"] = (time.perf_counter() - began) / 60
    val_losses = [r["val_loss"] for r in map(json.loads, (student / METRICS_FILE).read_text(
        ).splitlines()) if "val_loss" in r]
    cfg = EvalConfig(clips=args.eval_clips, scripts="w,s,a,d,turn-left,turn-right,idle",
                     script_images=2)
    teacher = load_run(args.teacher)
    reference = Reference(teacher)  # its rollouts are made once for the three students
    models = {"teacher": teacher,
              "student (start)": replace(teacher, stream=load_run(student).stream),
              "student (ODE)": load_run(student), "student (DMD)": load_run(dmd)}
    seeds = [int(s) for s in args.eval_seeds.split(",")]
    scores, against = {}, {}
    for name, run in models.items():
        tag = name.split()[-1].strip("()").lower()
        for seed in seeds:
            folder = out / "eval" / tag / ("" if seeds == [0] else f"seed-{seed}")
            results = evaluate(run, args.shards, folder, cfg, replace(EVAL_SAMPLER, seed=seed),
                               reference=None if run is teacher else reference)
            scores.setdefault(name, headline(results))
            if run is not teacher:
                against.setdefault(name, []).append(results["reference"]["model"])
                if name == "student (start)":  # the teacher's own numbers, the same each time
                    against.setdefault("teacher (another seed)", []).append(
                        results["reference"]["reference_self"])
    speeds = {name: play_speed(run, args.play_frames)
              for name, run in (("student (ODE)", student), ("student (DMD)", dmd))}
    report = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "threads": args.threads, "torch": torch.__version__},
              "ode_val_loss": [val_losses[0], val_losses[-1]], "timings": timings,
              "eval": scores, "against_teacher": against, "play_fps": speeds}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print("| model | keyboard / mouse (recorded) | keyboard / mouse (scripts) | unknown | "
          "sharpness at the end | play frames/s |")
    print("|---|---|---|---|---|---|")
    for name, s in scores.items():
        fps = (f"{speeds[name]:.1f}" if name in speeds else
               "(many-step sampler)" if name == "teacher" else "n/a")
        print(f"| {name} | {100 * s['recorded_keyboard']:.1f} / {100 * s['recorded_mouse']:.1f} % "
              f"| {100 * s['scripts_keyboard']:.1f} / {100 * s['scripts_mouse']:.1f} % | "
              f"{100 * s['recorded_unknown']:.0f} % | {s['drift_sharpness']:.3f} | {fps} |")
    print()
    print(f"| against the teacher (eval seeds {args.eval_seeds}) | PSNR, recorded (dB) | PSNR, "
          f"scripts (dB) | response cosine | response size ratio |")
    print("|---|---|---|---|---|")
    for name, per_seed in against.items():
        cells = [spread([a["psnr"] for a in per_seed]),
                 spread([a["scripts_psnr"] for a in per_seed])]
        cells += [spread([(a.get("response") or {}).get(k) for a in per_seed])
                  for k in ("cosine", "ratio")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
