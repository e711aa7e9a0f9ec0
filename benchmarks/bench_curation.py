"""Curation throughput: source frames/s per worker of ``curation filter``, against an ffmpeg floor.

Records built-in episodes (``datagen record``, half city and half park), then in the same run:

- the floor: the ffmpeg binary alone decodes each episode's video and re-encodes it with the
  clip settings (libx264, preset veryfast, CRF 20, two threads) to ``-f null``, one episode at
  a time and then two at a time (the two-worker floor);
- ``curation.pipeline.run_filter`` over the same episodes with 1 and then 2 workers (default
  settings: 57-frame clips, 640x360, every stage from validation to shards), into fresh folders.

It prints a markdown table for benchmarks/RESULTS.md: frames/s, frames/s per worker, the ratio
to the floor with the same parallelism (target at least 0.7) and the 1 -> 2 worker scaling,
with the load average before and after (other jobs on the machine slow every row). The CPU
ratio (the floor's CPU seconds over curation's, both counting every process they start) is
steadier than the wall-time ratio on a shared machine: other jobs stretch wall time far more
than CPU time.

    python benchmarks/bench_curation.py [--episodes 4] [--frames 600] [--size 640x360]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from curation.config import FilterConfig
from curation.pipeline import run_filter
from datagen.cli import main as datagen
from datagen.episode import VIDEO_FILE, find_episodes


def record(root: Path, episodes: int, frames: int, size: str) -> list[Path]:
    """``episodes`` built-in episodes under ``root``: the first half city, the rest park."""
    city = (episodes + 1) // 2
    for scene, count, first in (("city", city, 0), ("park", episodes - city, city)):
        if count:
            datagen(["record", "--out", str(root), "--scene", scene, "--episodes", str(count),
                     "--first-index", str(first), "--frames", str(frames), "--size", size,
                     "--no-progress"])
    finished, _ = find_episodes(root)
    return sorted(finished)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every finished process it started."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                resource.getrusage(resource.RUSAGE_CHILDREN)))


def floor_seconds(videos: list[Path], parallel: int, crf: int) -> float:
    """Wall time for ffmpeg alone to decode and re-encode every video, ``parallel`` at once."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    start = time.perf_counter()
    pending = list(videos)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < parallel:
            running.append(subprocess.Popen(
                [*cmd, "-i", str(pending.pop(0)), "-an", "-c:v", "libx264", "-preset",
                 "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", "2", "-f",
                 "null", "-"]))
        proc = running.pop(0)
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed with exit code {proc.returncode}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="640x360")
    args = ap.parse_args()
    cfg = FilterConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        episodes = record(root / "episodes", args.episodes, args.frames, args.size)
        frames = args.episodes * args.frames
        load_before = os.getloadavg()
        rows = []
        for workers in (1, 2):
            cpu_start = cpu_seconds()
            floor = frames / floor_seconds([p / VIDEO_FILE for p in episodes], workers, cfg.crf)
            cpu_floor = cpu_seconds()
            summary = run_filter([root / "episodes"], root / f"shards-{workers}", cfg,
                                 workers=workers, progress=False)
            floor_cpu, curation_cpu = cpu_floor - cpu_start, cpu_seconds() - cpu_floor
            if summary.frames != frames:
                raise RuntimeError(f"curation read {summary.frames} frames, expected {frames}")
            rate = summary.frames / summary.seconds
            rows.append((workers, rate, floor, floor_cpu / curation_cpu, summary.clips,
                         sum(summary.rejects.values())))
        load_after = os.getloadavg()
    print(f"\n{args.episodes} episodes x {args.frames} frames at {args.size} (city/park), clips "
          f"of {cfg.clip_frames} frames at {cfg.width}x{cfg.height}, CRF {cfg.crf}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    print("| workers | curation frames/s | per worker | ffmpeg floor frames/s | ratio | "
          "CPU ratio | clips | rejects |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, rate, floor, cpu_ratio, clips, rejects in rows:
        print(f"| {workers} | {rate:.0f} | {rate / workers:.0f} | {floor:.0f} | "
              f"**{rate / floor:.2f}** | {cpu_ratio:.2f} | {clips} | {rejects} |")
    print(f"\nscaling 1 -> 2 workers: **{rows[1][1] / rows[0][1]:.2f}x** "
          f"(the floor: {rows[1][2] / rows[0][2]:.2f}x)")


if __name__ == "__main__":
    main()
