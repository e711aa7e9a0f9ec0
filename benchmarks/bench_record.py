"""Recording throughput: each stage alone, one overlapped stream, and streams against cores.

Stages, each timed alone in the same run on the same poses and frames:
  render  Renderer.render of the agent's poses (Panda3D offscreen, framebuffer layout)
  log     agent step + CSV row formatting and writing
  encode  H264Writer fed already-rendered frames (ffmpeg/libx264 in its own process)
then ``record_episode`` (all three overlapped), then whole ``datagen record`` runs, start-up
included: one stream confined to one core (``taskset -c 0``) against N streams on N cores.

    python benchmarks/bench_record.py [--scene city] [--frames 600] [--size 640x360]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datagen.builtin.agent import Agent
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.record import RecordConfig, episode_seed, record_episode
from datagen.builtin.render import Renderer
from datagen.builtin.scenes import build_world
from datagen.command import parse_size
from datagen.episode import COLUMNS, KEY_COLUMNS
from datagen.episode_writer import format_cell
from datagen.planner import PROFILES
from datagen.streams import usable_cores
from datagen.video import H264Writer


def time_stages(cfg: RecordConfig, tmp: Path, repeats: int) -> dict[str, float]:
    """Frames/s of each stage alone and of the overlapped pipeline, on the same episode's poses
    and frames; each the best of ``repeats`` runs (the machine is shared, so the best run is
    the one least disturbed)."""
    seed = episode_seed(cfg, 0)
    world = build_world(cfg.scene, seed)
    navmesh = NavMesh.from_world(world)
    columns = COLUMNS[2:]
    is_key = [c in KEY_COLUMNS for c in columns]
    best: dict[str, float] = {}

    def keep(name: str, seconds: float, cpu: float, frames: int = cfg.frames) -> None:
        """Keep the fastest run of a stage, with its CPU time (ms per frame, all threads and
        child processes) and the cores it kept busy on average."""
        if frames / seconds > best.get(name, 0.0):
            best[name] = frames / seconds
            best[f"{name}_cpu_ms"] = 1e3 * cpu / frames
            best[f"{name}_cores"] = cpu / seconds

    for r in range(repeats):
        agent = Agent(world, navmesh, seed=seed, fps=cfg.fps, fov=cfg.fov,
                      profile=PROFILES[cfg.profile])
        start, cpu = time.perf_counter(), cpu_seconds()
        ticks = [agent.first()]
        with open(tmp / "log.csv", "w") as csv:
            for i in range(cfg.frames):
                if i:
                    ticks.append(agent.step())
                row = ticks[-1].row()
                cells = [str(i), repr(i / cfg.fps)]
                cells += [format_cell(c, row[c], k)
                          for c, k in zip(columns, is_key, strict=True)]
                csv.write(",".join(cells) + "\n")
        keep("log", time.perf_counter() - start, cpu_seconds() - cpu)

        renderer = Renderer(world, cfg.width, cfg.height, cfg.fov, backend=cfg.renderer)
        # frames in the layout the recorder asks for: the framebuffer's own, no conversion
        renderer.render(ticks[0].position, ticks[0].quat, ticks[0].movers)  # builds textures
        start, cpu = time.perf_counter(), cpu_seconds()
        frames = [renderer.render(t.position, t.quat, t.movers, native=True) for t in ticks]
        keep("render", time.perf_counter() - start, cpu_seconds() - cpu)
        renderer.close()

        start, cpu = time.perf_counter(), cpu_seconds()
        with H264Writer(tmp / "encode.mp4", cfg.width, cfg.height, cfg.fps, crf=cfg.crf,
                        preset=cfg.preset, threads=cfg.encoder_threads,
                        pix_fmt=renderer.pix_fmt) as video:
            for frame in frames:
                video.write(frame)
        keep("encode", time.perf_counter() - start, cpu_seconds() - cpu)
        del frames

        # The pipeline from its first frame to the finished episode (encoder flush included),
        # like the stages above; scene, navmesh and renderer set-up are timed apart.
        first_frame: list[float] = []

        def mark(n: int, first_frame: list[float] = first_frame) -> None:
            if n == 1:
                first_frame += [time.perf_counter(), cpu_seconds()]

        start = time.perf_counter()
        record_episode(cfg, 0, tmp / f"pipeline{r}", on_frame=mark)
        end, cpu = time.perf_counter(), cpu_seconds()  # ffmpeg's share counts once it exits
        keep("pipeline", end - first_frame[0], cpu - first_frame[1], cfg.frames - 1)
        best["setup_s"] = min(best.get("setup_s", float("inf")), first_frame[0] - start)
    return best


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_cli(cfg: RecordConfig, tmp: Path, streams: int, cores: str | None,
             episodes: int) -> float:
    """Frames/s of a whole ``datagen record`` run, process start-up included."""
    out = tmp / f"cli_{streams}_{cores}"
    cmd = [sys.executable, "-m", "datagen.cli", "record", "--scene", cfg.scene,
           "--episodes", str(episodes), "--frames", str(cfg.frames),
           "--size", f"{cfg.width}x{cfg.height}", "--streams", str(streams),
           "--out", str(out), "--no-progress"]
    if cores is not None:
        cmd = ["taskset", "-c", cores, *cmd]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return episodes * cfg.frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="city")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many stage runs")
    parser.add_argument("--max-streams", type=int, default=None,
                        help="largest stream count tried (default: usable cores + 1)")
    args = parser.parse_args()
    w, h = parse_size(args.size)
    cfg = RecordConfig(scene=args.scene, frames=args.frames, width=w, height=h)
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        stages = time_stages(cfg, Path(tmp), args.repeats)
        one_core = time_cli(cfg, Path(tmp), 1, "0", 2) if shutil.which("taskset") else None
        by_streams = {n: time_cli(cfg, Path(tmp), n, None, max(2, n))
                      for n in range(1, (args.max_streams or cores + 1) + 1)}

    slowest = min(stages["render"], stages["log"], stages["encode"])
    print(f"# Recording throughput: {cfg.scene}, {w}x{h}, {cfg.frames} frames, "
          f"x264 {cfg.preset} CRF {cfg.crf}, {cfg.encoder_threads} encoder threads, "
          f"stages best of {args.repeats}\n")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"({cores} usable), Python {platform.python_version()}\n")
    print("| stage | frames/s | CPU ms per frame | cores busy |")
    print("|---|---|---|---|")
    for name in ("render", "log", "encode", "pipeline"):
        print(f"| {name}{' (overlapped, one stream)' if name == 'pipeline' else ' alone'} | "
              f"{stages[name]:.0f} | {stages[name + '_cpu_ms']:.2f} | "
              f"{stages[name + '_cores']:.2f} |")
    demand = sum(stages[f"{n}_cpu_ms"] for n in ("render", "log", "encode"))
    print(f"\none stream / slowest stage alone = {stages['pipeline'] / slowest:.2f} "
          f"(target >= 0.8); per-episode set-up (scene, navmesh, renderer, first frame) "
          f"{stages['setup_s']:.2f} s")
    print(f"the stages alone need {demand:.2f} ms of CPU per frame together: at most "
          f"{1e3 * cores / demand:.0f} frames/s on {cores} cores "
          f"({1e3 * cores / demand / slowest:.2f} of the slowest stage) before any contention\n")
    print("| `datagen record` run (start-up included) | frames/s | vs one stream on one core |")
    print("|---|---|---|")
    if one_core is not None:
        print(f"| 1 stream, `taskset -c 0` | {one_core:.0f} | 1.00x |")
    for n, fps in by_streams.items():
        ratio = f"{fps / one_core:.2f}x" if one_core else "n/a"
        print(f"| {n} stream(s), all cores | {fps:.0f} | {ratio} |")
    best = max(by_streams, key=by_streams.get)
    print(f"\nmost frames/s here: --streams {best}")


if __name__ == "__main__":
    main()
