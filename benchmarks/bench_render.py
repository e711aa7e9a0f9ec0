"""Frames per second of the built-in renderer per scene, along a simple walking camera path.

Usage: ``python benchmarks/bench_render.py [--frames 300] [--size 640x360] [--backend tiny]
[--seed 0] [--scenes city,park,hills,rooms]``. Prints a markdown table: world build time,
renderer set-up time and frames/s (render + readback, the camera walking a slow circle at eye
height while turning, movers free-running along their routes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from datagen.builtin.render import Renderer
from datagen.builtin.scenes import SCENES, build_world
from datagen.command import parse_size
from datagen.rotation import quat_from_ypr


def camera_path(world, frames: int, fps: float = 30.0):
    """Positions and quaternions of a circle walk (1.4 m/s) around the playable area's centre."""
    x0, y0, x1, y1 = world.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    radius = 0.25 * min(x1 - x0, y1 - y0)
    t = np.arange(frames) / fps
    ang = t * 1.4 / radius
    xs, ys = cx + radius * np.cos(ang), cy + radius * np.sin(ang)
    zs = np.asarray(world.height_at(xs, ys)) + world.eye_height
    yaw = np.degrees(ang) + 90.0 + 20.0 * np.sin(t * 0.7)
    pitch = 5.0 * np.sin(t * 0.5)
    return np.stack([xs, ys, zs], 1), quat_from_ypr(yaw, pitch), t


def bench(scene: str, seed: int, frames: int, width: int, height: int, backend: str) -> dict:
    t0 = time.perf_counter()
    world = build_world(scene, seed)
    t1 = time.perf_counter()
    renderer = Renderer(world, width, height, 90.0, backend=backend)
    t2 = time.perf_counter()
    pos, quat, ts = camera_path(world, frames)
    movers = [world.mover_poses(t) for t in ts]
    renderer.render(pos[0], quat[0], movers[0])  # warm-up: first frame uploads textures
    t3 = time.perf_counter()
    for k in range(frames):
        renderer.render(pos[k], quat[k], movers[k])
    t4 = time.perf_counter()
    info = renderer.info()
    renderer.close()
    return {"scene": scene, "build_s": t1 - t0, "setup_s": t2 - t1, "fps": frames / (t4 - t3),
            "primitives": len(world.primitives), "movers": len(world.movers),
            "fog": world.settings.get("fog", "?"), "renderer": info["renderer"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--backend", default="tiny", choices=("tiny", "gl"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenes", default=",".join(SCENES))
    args = ap.parse_args()
    width, height = parse_size(args.size)
    rows = [bench(s, args.seed, args.frames, width, height, args.backend)
            for s in args.scenes.split(",")]
    print(f"renderer: {rows[0]['renderer']}, {width}x{height}, {args.frames} frames, "
          f"seed {args.seed}\n")
    print("| scene | primitives | movers | fog | build s | setup s | frames/s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scene']} | {r['primitives']} | {r['movers']} | {r['fog']} | "
              f"{r['build_s']:.3f} | {r['setup_s']:.3f} | {r['fps']:.0f} |")


if __name__ == "__main__":
    main()
