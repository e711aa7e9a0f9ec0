"""What the Unreal recorder's own Python costs per frame inside the editor.

No Unreal Engine runs here, so this measures the plugin's side of a tick against the editor
double (tests/unreal_double.py) with the engine's work taken out: the double's capture returns
a ready-made image, so what is timed is what the recorder adds to every tick in a real editor:

  decide    the shared controller's next keys and look, and the console commands injecting them
  readback  placing the capture, the target exported as a PNG (here by OpenCV, in Unreal by
            its C++ PNG writer) and read back into an RGB array
  write     the CSV row and the frame handed to the H.264 encoder (EpisodeWriter.add_frame)
  tick      the whole post-tick callback (the three above, reading the pose and velocity)

plus the double's own game step, reported so it can be told apart. At a size the readback
dominates; the frames/s it allows is the ceiling of a recording whatever the GPU does.

    python benchmarks/bench_unreal.py [--size 640x360] [--frames 300]
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "ue_plugin" / "Content" / "Python")]

import unreal_double  # noqa: E402

from datagen.command import parse_size  # noqa: E402
from datagen.unreal.config import Job, UnrealConfig  # noqa: E402


def run(width: int, height: int, frames: int, tmp: Path) -> dict[str, float]:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    level = unreal_double.SceneLevel("rooms", (3.0e7, -2.0e7))
    level.render = lambda *args: image  # the engine's render is not the recorder's cost
    module, editor = level.editor()
    sys.modules["unreal"] = module
    for name in [m for m in sys.modules if m.startswith("worldforge_ue")]:
        del sys.modules[name]
    recorder_module = importlib.import_module("worldforge_ue.recorder")
    adapter = importlib.import_module("worldforge_ue.adapter")
    spent: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
                counts[name] += 1
        return wrapper

    grab = adapter.Capture.grab

    def grab_split(self, *args):
        start = time.perf_counter()
        out = grab(self, *args)
        spent["readback"] += time.perf_counter() - start
        counts["readback"] += 1
        return out

    adapter.Capture.grab = grab_split
    recorder_module.Recorder._decide = timed("decide", recorder_module.Recorder._decide)
    from datagen.episode_writer import EpisodeWriter
    EpisodeWriter.add_frame = timed("write", EpisodeWriter.add_frame)
    recorder_module.Recorder._record = timed("tick", recorder_module.Recorder._record)
    step = unreal_double._Game.step
    unreal_double._Game.step = timed("game", step)

    cfg = UnrealConfig(project="/p/Double.uproject", map="/Game/Maps/Double", frames=frames,
                       width=width, height=height, settle_ticks=5)
    job = Job(config=cfg, indices=(0,), out=str(tmp / "out"), events=str(tmp / "events.jsonl"))
    recorder = recorder_module.Recorder(job)
    recorder.start()
    editor.run(frames + 200)
    assert recorder.finished and (tmp / "out" / "Double" / "Double_0_00000").is_dir()
    per = {k: 1e3 * spent[k] / counts[k] for k in spent}
    return per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="640x360")
    p.add_argument("--frames", type=int, default=300)
    args = p.parse_args()
    width, height = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        per = run(width, height, args.frames, Path(tmp))
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {width}x{height}, {args.frames} frames")
    print("| part | ms per frame |\n|---|---|")
    for name in ("decide", "readback", "write", "tick", "game"):
        print(f"| {name} | {per[name]:.2f} |")
    print(f"recorder ceiling: {1e3 / per['tick']:.1f} frames/s (the tick callback alone)")


if __name__ == "__main__":
    main()
