"""GTA V recorder: what streaming costs the game thread, and how exact synchronisation is.

1. **Game-thread cost.** The plugin's real script runs against its simulator as fast as it can
   (``wfgta_sim_host``, no pacing) for the same frames, streaming to the real collector,
   connected but not recording, and with no collector at all (the sender reconnecting, its
   queue full). The difference per frame is what building and queueing a message costs the
   game thread; the queue never blocks it.
2. **Synchronisation.** Simulated sessions (tests/gta_sim_session.py: the C++ core and its
   simulator, a window on Xvfb, real OBS at 30 fps, ``datagen record --backend gta``) at several
   game frame rates: the share of video frames whose image is the game frame their row names
   (found by rendering the poses around it), against the same recording aligned by OBS's
   STARTED time alone (the baseline), the capture latency the marker allows, and how long
   synchronising a recording takes per second of video.

Run: ``python benchmarks/bench_gta.py [--seconds 10] [--rates 30,60,20,45]`` (needs cmake, g++,
Debian's obs-studio and xvfb).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from gta_build import build_portable  # noqa: E402
from gta_game_view import street_grid  # noqa: E402
from gta_sim_session import free_port, plugin_ini, run_session, shown_offsets  # noqa: E402

from datagen.builtin.scenes import build_world  # noqa: E402
from datagen.episode import find_episodes, read_episode  # noqa: E402
from datagen.gta.collector import Collector  # noqa: E402
from datagen.gta.session import resync  # noqa: E402


def game_thread_cost(work: Path, frames: int) -> list[dict]:
    """Seconds per frame of the script plus the simulator, run whole, per collector case."""
    binaries = build_portable()
    world = work / "world.json"
    world.write_text(json.dumps(street_grid(build_world("city", 3))))
    rows = []
    for n, case in enumerate(("streaming", "connected, not recording", "no collector")):
        port = free_port()
        collector = None if case == "no collector" else Collector(work / f"c{n}", port=port)
        if case == "streaming":
            collector.start("bench")  # sent on the plugin's hello: it streams from frame 1
        t0 = time.perf_counter()
        subprocess.run([str(binaries.sim_host), "--world", str(world), "--config",
                        str(plugin_ini(work / f"p{n}.ini", port)), "--fps", "60", "--truth",
                        str(work / "t.csv"), "--frames", str(frames)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                       check=True)
        seconds = time.perf_counter() - t0
        received = 0
        if collector is not None:
            time.sleep(0.3)
            received = collector.counts["frames"]
            collector.close()
        rows.append({"case": case, "us_per_frame": seconds / frames * 1e6,
                     "received": received})
    return rows


def synchronisation(work: Path, rates: list[float], seconds: float) -> list[dict]:
    rows = []
    for fps in rates:
        folder = work / f"sync{fps:g}"
        folder.mkdir()
        session = run_session(folder, fps, seconds, keep_obs_file=True)
        if session.returncode != 0:
            raise RuntimeError(f"session at {fps} fps failed:\n{session.log}")
        (path,), _ = find_episodes(session.out)
        ep = read_episode(path)
        off = shown_offsets(ep, step=3)
        sync = ep.meta.extra["sync"]
        low, high = sync["marker"]["latency_ms"]
        video_seconds = ep.meta.frames / ep.meta.fps
        shutil.rmtree(path)
        session_dir = next((session.out / "gta_sessions").iterdir())
        t0 = time.perf_counter()
        resync(session_dir, report=lambda line: None)
        sync_s = time.perf_counter() - t0
        # the baseline: OBS's STARTED time alone, no marker (latency 0)
        for path in find_episodes(session.out)[0]:
            shutil.rmtree(path)
        (path,) = resync(session_dir, offset_ms=0.0, report=lambda line: None).episodes
        started_only = shown_offsets(read_episode(path), step=3)
        rows.append({
            "game_fps": fps, "frames": ep.meta.frames, "checked": len(off),
            "exact": float(np.mean(off == 0)), "off_by_one": float(np.mean(np.abs(off) == 1)),
            "exact_started_only": float(np.mean(started_only == 0)),
            "latency_ms": [round(low, 1), round(high, 1)],
            "agree": f"{sync['marker']['agree']}/{sync['marker']['seen']}",
            "duplicated": sync["duplicated"], "accumulated": sync["accumulated"],
            "sync_s_per_video_s": sync_s / video_seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300000, help="game-thread cost: frames")
    parser.add_argument("--seconds", type=float, default=10.0, help="per simulated session")
    parser.add_argument("--rates", default="30,60,20,45", help="game frame rates to record")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("\ngame-thread cost (wfgta_sim_host, no pacing, "
              f"{args.frames} frames at a 60 fps game clock)")
        cost = game_thread_cost(work, args.frames)
        for row in cost:
            print(f"  {row['case']:<26} {row['us_per_frame']:8.1f} us/frame  "
                  f"received {row['received']}")
        base = next(r for r in cost if r["case"] == "connected, not recording")
        stream = next(r for r in cost if r["case"] == "streaming")
        print(f"  streaming adds {stream['us_per_frame'] - base['us_per_frame']:.1f} us per "
              "frame to the game thread")
        rates = [float(r) for r in args.rates.split(",")]
        print(f"\nsynchronisation ({args.seconds:g} s sessions, OBS at 30 fps, 640x360)")
        for row in synchronisation(work, rates, args.seconds):
            print(f"  game {row['game_fps']:>4g} fps: {row['frames']} frames, "
                  f"{row['exact']:.1%} of {row['checked']} checked show their row's game "
                  f"frame ({row['off_by_one']:.1%} the next or previous; by OBS's STARTED "
                  f"time alone {row['exact_started_only']:.1%}); marker latency "
                  f"{row['latency_ms'][0]}..{row['latency_ms'][1]} ms, {row['agree']} agree; "
                  f"duplicated {row['duplicated']}, accumulated {row['accumulated']}; "
                  f"sync {row['sync_s_per_video_s'] * 1000:.0f} ms per video second")


if __name__ == "__main__":
    main()
