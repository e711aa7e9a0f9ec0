"""The ``hills`` scene: 150 m x 150 m of rolling height-field terrain with trees, rocks, hikers
and sheep.

The terrain is a sum of random long-wavelength waves, scaled so its steepest slope inside the
bounds hits a drawn target between 20 and 28 degrees (walking climbs and descends), and rises
into a rim of higher hills beyond the bounds that closes the horizon. Hikers walk wide loops,
sheep graze in small flocks on slow loops; trees and rocks sit on the ground clear of them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from shapely.geometry import Point
from shapely.geometry import box as shapely_box

from datagen.builtin.scenes import props
from datagen.builtin.scenes.atmosphere import atmosphere_settings, sample_atmosphere
from datagen.builtin.world import Mover, Primitive, Terrain, World

HALF = 75.0
MARGIN = 90.0  # terrain reaches this far past the bounds
CELL = 3.0

PALETTES = {
    "meadow": {"grass": (0.45, 0.62, 0.3), "leaf": (0.3, 0.5, 0.22), "conifer": (0.2, 0.36, 0.22),
               "rock": (0.62, 0.6, 0.58), "conifers": 0.4},
    "dry_grassland": {"grass": (0.7, 0.64, 0.4), "leaf": (0.44, 0.5, 0.26),
                      "conifer": (0.3, 0.38, 0.24), "rock": (0.72, 0.66, 0.58), "conifers": 0.2},
    "moor": {"grass": (0.5, 0.46, 0.32), "leaf": (0.62, 0.42, 0.2), "conifer": (0.2, 0.3, 0.2),
             "rock": (0.55, 0.54, 0.55), "conifers": 0.6},
    "alpine": {"grass": (0.38, 0.58, 0.32), "leaf": (0.28, 0.46, 0.24),
               "conifer": (0.16, 0.3, 0.2), "rock": (0.68, 0.68, 0.7), "conifers": 0.85},
}


def _heights(rng: np.random.Generator, max_slope_deg: float) -> tuple[np.ndarray, tuple]:
    n = int(round(2 * (HALF + MARGIN) / CELL)) + 1
    origin = (-(HALF + MARGIN), -(HALF + MARGIN))
    coords = origin[0] + np.arange(n) * CELL
    x, y = np.meshgrid(coords, coords)
    h = np.zeros_like(x)
    for _ in range(9):
        wavelength = rng.uniform(45.0, 170.0)
        ang = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / wavelength
        h += wavelength * rng.uniform(0.5, 1.0) * np.sin(
            k * (x * math.cos(ang) + y * math.sin(ang)) + rng.uniform(0, 2 * np.pi))
    inside = (np.abs(x) <= HALF) & (np.abs(y) <= HALF)
    gy, gx = np.gradient(h, CELL)
    steepest = np.hypot(gx, gy)[inside].max()
    h *= math.tan(math.radians(max_slope_deg)) / steepest
    h -= h[inside].mean()
    # the rim: beyond the bounds the ground climbs into higher hills
    out = np.maximum(np.maximum(np.abs(x), np.abs(y)) - HALF, 0.0)
    h += 0.22 * out * (1.0 + 0.5 * np.sin(x / 23.0 + y / 31.0)) + 0.0015 * out ** 2
    return h, origin


def build(seed: int) -> World:
    """The hills for ``seed``."""
    atm_rng, rng, mover_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(3))
    atm, sky, fog = sample_atmosphere(atm_rng)
    palette_name = str(rng.choice(sorted(PALETTES)))
    pal = PALETTES[palette_name]
    max_slope = float(rng.uniform(20.0, 28.0))
    heights, origin = _heights(rng, max_slope)
    grass = props.jitter(rng, pal["grass"], 0.05)
    terrain = Terrain(origin=origin, cell=CELL, heights=heights, material="grass", color=grass)
    keep = props.Keepout()

    movers: list[Mover] = []
    n_hikers = int(mover_rng.integers(2, 5))
    for _ in range(n_hikers):
        cx, cy = mover_rng.uniform(-HALF + 30, HALF - 30, 2)
        route = props.ring_loop(float(cx), float(cy), float(mover_rng.uniform(12, 28)), 10,
                                mover_rng, wobble=0.2)
        movers.append(props.mover(props.person(mover_rng), route, mover_rng.uniform(0.9, 1.3),
                                  mover_rng))
        keep.add_route(route, 1.5)
    n_sheep = 0
    for _ in range(int(mover_rng.integers(1, 4))):
        fx, fy = mover_rng.uniform(-HALF + 15, HALF - 15, 2)
        for _ in range(int(mover_rng.integers(3, 8))):
            cx, cy = np.array([fx, fy]) + mover_rng.normal(0, 4.0, 2)
            route = props.ring_loop(float(cx), float(cy), float(mover_rng.uniform(2.0, 6.0)), 6,
                                    mover_rng, wobble=0.3)
            route = np.clip(route, -HALF + 2, HALF - 2)
            movers.append(props.mover(props.sheep(mover_rng), route,
                                      mover_rng.uniform(0.2, 0.5), mover_rng))
            keep.add_route(route, 1.2)
            n_sheep += 1

    prims: list[Primitive] = []

    def scatter(count: int, radius: float, make, lo: float = -HALF + 3, hi: float = HALF - 3):
        placed = 0
        for _ in range(count * 20):
            if placed == count:
                break
            x, y = (float(v) for v in rng.uniform(lo, hi, 2))
            spot = Point(x, y).buffer(radius)
            if keep.free(spot):
                prims.extend(make(x, y, float(terrain.height_at(x, y))))
                keep.add(spot)
                placed += 1
        return placed

    def tree(x, y, z):
        conifer = bool(rng.random() < pal["conifers"])
        return props.tree(rng, x, y, z, pal["conifer"] if conifer else pal["leaf"],
                          conifer=conifer, scale=float(rng.uniform(0.9, 1.6)))

    # trees grow in a few groves plus scattered singles
    n_trees = 0
    for _ in range(int(rng.integers(3, 6))):
        gx, gy = rng.uniform(-HALF + 15, HALF - 15, 2)
        n_trees += _grove(rng, keep, prims, terrain, float(gx), float(gy),
                          float(rng.uniform(8, 16)), tree)
    n_trees += scatter(int(rng.integers(8, 18)), 1.6, tree)
    n_rocks = scatter(int(rng.integers(12, 26)), 1.8, lambda x, y, z: [props.rock(
        rng, x, y, z, pal["rock"], float(rng.uniform(0.5, 1.6)))])
    # scattered non-solid trees on the rim
    for _ in range(40):
        ang, r = rng.uniform(0, 2 * math.pi), rng.uniform(HALF + 8, HALF + 60)
        x, y = float(r * math.cos(ang)), float(r * math.sin(ang))
        prims += [dataclasses.replace(p, solid=False)
                  for p in tree(x, y, float(terrain.height_at(x, y)))]

    m = int(MARGIN / CELL)
    inside = heights[m:-m, m:-m]
    settings = {
        "scene_size_m": [2 * HALF, 2 * HALF], "palette": palette_name,
        "max_slope_deg": round(max_slope, 3),
        "relief_m": round(float(inside.max() - inside.min()), 3),
        "trees": n_trees, "rocks": n_rocks, "hikers": n_hikers, "sheep": n_sheep,
        "primitives": len(prims), **atmosphere_settings(atm, sky, fog),
    }
    return World(scene="hills", seed=seed, bounds=(-HALF, -HALF, HALF, HALF),
                 walkable=shapely_box(-HALF, -HALF, HALF, HALF), ground_material="grass",
                 ground_color=grass, atmosphere=atm, primitives=prims, movers=movers,
                 terrain=terrain, settings=settings)


def _grove(rng, keep, prims, terrain, gx, gy, radius, make) -> int:
    """Plant a grove of trees around ``(gx, gy)``; returns how many found room."""
    placed, target = 0, int(rng.integers(5, 12))
    for _ in range(target * 10):
        if placed == target:
            break
        x, y = (float(v) for v in np.clip(np.array([gx, gy]) + rng.normal(0, radius / 2, 2),
                                          -HALF + 3, HALF - 3))
        spot = Point(x, y).buffer(1.6)
        if keep.free(spot):
            prims.extend(make(x, y, float(terrain.height_at(x, y))))
            keep.add(spot)
            placed += 1
    return placed
