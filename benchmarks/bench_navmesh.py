"""NavMesh build time and path-query latency on the ``city`` scene (about 100 m x 100 m).

Times ``find_path`` (A* plus the funnel pass) on pairs of random points from a seeded
generator, and ``clamp_step`` on short random moves (the per-tick collision call). Uses
``datagen.builtin.scenes.build_world("city", seed)`` when the scenes module is installed,
otherwise an equivalent 100 m x 100 m grid of city blocks built here. Prints a markdown table. Run:

    python benchmarks/bench_navmesh.py [--queries 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from shapely.geometry import box

from datagen.builtin.navmesh import NavMesh
from datagen.builtin.world import Atmosphere, Box, World
from datagen.navigation import Unreachable


def city_blocks(seed: int) -> World:
    """100 m x 100 m: 7 x 7 blocks of 1-3 buildings each, random sizes and turns (~50 boxes)."""
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(7):
        for j in range(7):
            cx, cy = 8 + 14 * i, 8 + 14 * j
            for _ in range(int(rng.integers(1, 4))):
                sx, sy = rng.uniform(3, 7, 2)
                x, y = cx + rng.uniform(-2.5, 2.5), cy + rng.uniform(-2.5, 2.5)
                boxes.append(Box((float(x), float(y), 0.0), (float(sx), float(sy), 12.0),
                                 "concrete", (0.6, 0.6, 0.6), yaw=float(rng.uniform(0, 90))))
    atmosphere = Atmosphere(12.0, (0.0, 0.0, -1.0), (1, 1, 1), (0.3, 0.3, 0.3), (0.2, 0.4, 0.8),
                            (0.7, 0.8, 0.9), (0.8, 0.8, 0.8), 0.0)
    return World("city_blocks", seed, (0.0, 0.0, 100.0, 100.0), box(0, 0, 100, 100), "asphalt",
                 (0.3, 0.3, 0.3), atmosphere, primitives=boxes)


def load_city(seed: int) -> World:
    try:
        from datagen.builtin.scenes import build_world
    except ImportError:  # the scenes module is not in this checkout yet
        return city_blocks(seed)
    return build_world("city", seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    world = load_city(args.seed)
    t0 = time.perf_counter()
    mesh = NavMesh.from_world(world)
    build_ms = (time.perf_counter() - t0) * 1e3
    stats = mesh.stats()

    rng = np.random.default_rng(args.seed)
    pairs = [(mesh.random_point(rng), mesh.random_point(rng)) for _ in range(args.queries)]
    mesh.find_path(*pairs[0])  # warm-up
    times, ratios, unreachable = [], [], 0
    for a, b in pairs:
        t0 = time.perf_counter()
        try:
            path = mesh.find_path(a, b)
        except Unreachable:
            unreachable += 1
            continue
        times.append(time.perf_counter() - t0)
        straight = float(np.hypot(*(b - a)))
        if straight > 1e-9:
            ratios.append(float(np.hypot(*np.diff(path, axis=0).T).sum()) / straight)
    ms = np.array(times) * 1e3

    steps = []
    for _ in range(args.queries):
        p = mesh.random_point(rng)
        q = p + rng.normal(0.0, 0.15, 2)  # about one tick of walking at 30 fps
        t0 = time.perf_counter()
        mesh.clamp_step(p, q)
        steps.append(time.perf_counter() - t0)
    step_us = np.array(steps) * 1e6

    print(f"NavMesh on `{world.scene}` seed {world.seed} ({platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()})\n")
    print("| metric | value |")
    print("|---|---|")
    print(f"| build time | {build_ms:.1f} ms |")
    print(f"| triangles / components / area | {stats['triangles']} / {stats['components']} / "
          f"{stats['area']:.0f} m^2 |")
    print(f"| find_path queries (unreachable) | {len(times)} ({unreachable}) |")
    print(f"| find_path median / p95 / p99 / max | {np.median(ms):.3f} / "
          f"{np.percentile(ms, 95):.3f} / {np.percentile(ms, 99):.3f} / {ms.max():.3f} ms |")
    print(f"| mean path / straight-line length | {np.mean(ratios):.3f} |")
    print(f"| clamp_step median / p99 | {np.median(step_us):.1f} / "
          f"{np.percentile(step_us, 99):.1f} us |")


if __name__ == "__main__":
    main()
