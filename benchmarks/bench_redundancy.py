"""Precision and recall of the repeated-frame detector on recordings with injected stutter.

Records built-in episodes, then rewrites each with duplicate frames inserted at known places,
as a capture stutter makes them: a copy of the previous decoded frame, re-encoded (so a near
duplicate after H.264), with a row whose mouse deltas are zero and whose pose and velocity are
the previous row's (the game did not advance although the agent moves). A copy inserted where
the agent stands still and does not turn is a legitimate still frame (``idle_frames``): it is
neither expected nor counted. Single and double duplicates are scattered over the episode,
plus a couple of frozen runs.
The detector (:func:`curation.redundancy.detect` on :func:`curation.thumbnails.thumbnails`)
is scored against the inserted frames for several ``dup_threshold`` values; a markdown table
for benchmarks/RESULTS.md is printed. "missed on keyframes" counts missed duplicates that the
writer encoded as keyframes (every ``round(fps)``-th frame): an intra-coded copy of an
inter-coded frame differs from it by more codec noise than a P-frame copy does.

    python benchmarks/bench_redundancy.py [--scenes city,park,hills] [--frames 300]
        [--size 320x180] [--profile explore] [--thresholds 0.25,0.5,1,2,3]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from curation.config import FilterConfig
from curation.redundancy import camera_still, detect, idle_frames
from curation.thumbnails import thumbnails
from datagen.cli import main as datagen_main
from datagen.episode import ROW_COLUMNS, read_episode
from datagen.episode_writer import EpisodeWriter
from datagen.video import read_frames

FROZEN_RUNS = (6, 10)  # lengths of the frozen runs inserted into each episode


def stutter_plan(frames: int, seed: int) -> dict[int, int]:
    """``{source frame: duplicates inserted after it}``: about one stutter per 12 frames (single
    or double), plus the frozen runs, never back to back."""
    rng = np.random.default_rng(seed)
    spots = rng.choice(np.arange(5, frames - 5, 3), size=frames // 12 + len(FROZEN_RUNS),
                       replace=False)
    counts = rng.integers(1, 3, len(spots))
    counts[: len(FROZEN_RUNS)] = FROZEN_RUNS
    return {int(s): int(c) for s, c in zip(spots, counts, strict=True)}


def inject_stutter(source: Path, root: Path, dups: dict[int, int]) -> tuple[Path, np.ndarray]:
    """Rewrite ``source`` under ``root`` with ``dups[i]`` duplicates of frame ``i`` after it;
    returns the new episode and the indices of the inserted frames."""
    ep = read_episode(source)
    meta = dataclasses.replace(ep.meta, episode_id=ep.meta.episode_id + "_stutter")
    inserted = []
    with EpisodeWriter(root, meta) as writer:
        for i, image in enumerate(read_frames(source / "video.mp4")):
            row = {c: ep.data[c][i].item() for c in ROW_COLUMNS}
            writer.add_frame(image, row)
            for _ in range(dups.get(i, 0)):
                inserted.append(writer.frames)
                writer.add_frame(image, {**row, "mouse_dx": 0.0, "mouse_dy": 0.0})
        path = writer.finish()
    return path, np.array(inserted, dtype=np.int64)


def score(found: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of a boolean detection."""
    return (int((found & truth).sum()), int((found & ~truth).sum()), int((~found & truth).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default="city,park,hills")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--profile", default="explore", help="the recorder's behaviour profile")
    parser.add_argument("--thresholds", default="0.25,0.5,1,2,3")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    default = FilterConfig().dup_threshold
    if default not in thresholds:
        thresholds = sorted([*thresholds, default])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        episodes = []
        idle_inserted = 0
        for k, scene in enumerate(args.scenes.split(",")):
            datagen_main(["record", "--out", str(tmp / "rec"), "--scene", scene, "--frames",
                          str(args.frames), "--size", args.size, "--streams", "1",
                          "--profile", args.profile,
                          "--seed", str(k), "--no-progress"])
            [source] = sorted((tmp / "rec" / scene).iterdir())
            path, inserted = inject_stutter(source, tmp / "stutter",
                                            stutter_plan(args.frames, seed=k))
            start = time.perf_counter()
            thumbs = thumbnails(path / "video.mp4")
            decode_s = time.perf_counter() - start
            ep = read_episode(path)
            truth = np.zeros(len(thumbs), dtype=bool)
            truth[inserted] = True
            idle = idle_frames(ep.data)
            idle_inserted += int((truth & idle).sum())
            truth &= ~idle  # a copy at an idle moment is a legitimate still frame, not stutter
            episodes.append((scene, ep, thumbs, truth, decode_s, idle))
        rows = []
        for threshold in thresholds:
            cfg = FilterConfig(dup_threshold=threshold)
            tp = fp = fn = fn_key = 0
            frozen_found = 0
            detect_s = 0.0
            for _, ep, thumbs, truth, _, idle in episodes:
                start = time.perf_counter()
                red = detect(thumbs, cfg, ep.meta.fps, camera_still(ep.data), idle)
                detect_s += time.perf_counter() - start
                a, b, c = score(red.repeats, truth)
                tp, fp, fn = tp + a, fp + b, fn + c
                missed = np.flatnonzero(truth & ~red.repeats)
                fn_key += int((missed % round(ep.meta.fps) == 0).sum())
                frozen_found += sum(b - a for a, b in red.frozen)
            rows.append((threshold, tp, fp, fn, fn_key, frozen_found, detect_s))
    frames = sum(len(e[2]) for e in episodes)
    inserted = sum(int(e[3].sum()) for e in episodes)
    frozen_truth = len(episodes) * sum(FROZEN_RUNS)
    print(f"{len(episodes)} episodes ({args.scenes}, profile {args.profile}), {frames} frames "
          f"at {args.size} after injection, {inserted} inserted duplicates ({frozen_truth} of "
          f"them in frozen runs of {', '.join(map(str, FROZEN_RUNS))} frames; {idle_inserted} "
          "more fell on idle moments, where a repeat is a legitimate still frame, and are not "
          "counted)")
    print(f"thumbnails (decode + grey 160x90): "
          f"{frames / sum(e[4] for e in episodes):.0f} frames/s\n")
    print("| dup_threshold | precision | recall | false repeats | missed (on keyframes) | "
          "frames in frozen runs found | detect frames/s |")
    print("|---|---|---|---|---|---|---|")
    for threshold, tp, fp, fn, fn_key, frozen_found, detect_s in rows:
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        mark = " (default)" if threshold == default else ""
        print(f"| {threshold:g}{mark} | {precision:.3f} | {recall:.3f} | {fp} | {fn} ({fn_key}) | "
              f"{frozen_found}/{frozen_truth} | {frames / detect_s:.0f} |")


if __name__ == "__main__":
    main()
