"""The ``park`` scene: 120 m x 120 m of lawn with a ring of dirt paths, trees, rocks and a pond.

A wobbly ring path with spokes to a central plaza carries walkers, joggers and their dogs; trees
(leafy or conifer), rocks, benches and lamps fill the lawn clear of the paths; a pond edged with
stones sits between two spokes; hedges line the border and a non-solid wood rings the outside.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import shapely
from shapely.geometry import LineString, Point
from shapely.geometry import box as shapely_box

from datagen.builtin.scenes import props
from datagen.builtin.scenes.atmosphere import atmosphere_settings, sample_atmosphere
from datagen.builtin.world import Box, Cylinder, Mover, Primitive, World

HALF = 60.0
PATH_WIDTH = 2.6

PALETTES = {
    "summer": {"grass": (0.42, 0.62, 0.28), "leaf": [(0.3, 0.52, 0.22), (0.26, 0.46, 0.2)],
               "conifer": (0.2, 0.38, 0.22), "dirt": (0.74, 0.62, 0.46),
               "hedge": (0.28, 0.46, 0.22), "rock": (0.64, 0.62, 0.6), "conifers": 0.25},
    "late_summer": {"grass": (0.62, 0.64, 0.34), "leaf": [(0.45, 0.56, 0.25), (0.38, 0.5, 0.22)],
                    "conifer": (0.24, 0.38, 0.22), "dirt": (0.8, 0.68, 0.5),
                    "hedge": (0.36, 0.48, 0.24), "rock": (0.7, 0.66, 0.6), "conifers": 0.2},
    "autumn": {"grass": (0.5, 0.56, 0.3), "leaf": [(0.88, 0.45, 0.15), (0.76, 0.3, 0.12),
                                                    (0.92, 0.7, 0.22), (0.42, 0.5, 0.2)],
               "conifer": (0.2, 0.34, 0.2), "dirt": (0.66, 0.52, 0.38),
               "hedge": (0.4, 0.42, 0.2), "rock": (0.58, 0.57, 0.56), "conifers": 0.3},
    "spring": {"grass": (0.46, 0.72, 0.3), "leaf": [(0.52, 0.74, 0.3), (0.96, 0.76, 0.82),
                                                     (0.98, 0.95, 0.95)],
               "conifer": (0.22, 0.42, 0.24), "dirt": (0.76, 0.64, 0.5),
               "hedge": (0.3, 0.55, 0.24), "rock": (0.66, 0.64, 0.62), "conifers": 0.15},
}


def _segment_box(a: np.ndarray, b: np.ndarray, color, z: float = 0.0) -> Box:
    mid = (a + b) / 2
    d = b - a
    return Box((float(mid[0]), float(mid[1]), z), (float(np.hypot(*d)) + PATH_WIDTH, PATH_WIDTH,
                                                   0.03), "dirt", color,
               yaw=math.degrees(math.atan2(d[1], d[0])), solid=False)


def _offset_ring(ring: np.ndarray, lateral: float) -> np.ndarray:
    r = np.linalg.norm(ring, axis=1, keepdims=True)
    return ring * (1 + lateral / r)


def _tree_at(rng, x, y, palette, solid: bool = True) -> list[Primitive]:
    conifer = bool(rng.random() < palette["conifers"])
    leaf = palette["conifer"] if conifer else props.pick(rng, palette["leaf"])
    parts = props.tree(rng, x, y, 0.0, leaf, conifer=conifer, scale=float(rng.uniform(0.9, 1.5)))
    return parts if solid else [dataclasses.replace(p, solid=False) for p in parts]


def build(seed: int) -> World:
    """The park for ``seed``."""
    atm_rng, rng, mover_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(3))
    atm, sky, fog = sample_atmosphere(atm_rng)
    palette_name = str(rng.choice(sorted(PALETTES)))
    pal = PALETTES[palette_name]
    dirt = props.jitter(rng, pal["dirt"], 0.04)
    prims: list[Primitive] = []
    keep = props.Keepout()

    ring = props.ring_loop(0.0, 0.0, float(rng.uniform(32.0, 42.0)), 9, rng, wobble=0.12)
    n_spokes = int(rng.integers(2, 4))
    spoke_ids = sorted(rng.choice(len(ring), n_spokes, replace=False).tolist())
    for k in range(len(ring)):
        prims.append(_segment_box(ring[k], ring[(k + 1) % len(ring)], dirt))
    plaza = 5.0
    prims.append(Cylinder((0.0, 0.0, 0.0), plaza, 0.035, "dirt", dirt, solid=False))
    for k in spoke_ids:
        prims.append(_segment_box(ring[k] * 0.0, ring[k], dirt))
    paths = [props.route_line(ring)] + [LineString([(0, 0), ring[k]]) for k in spoke_ids]
    path_area = shapely.union_all([p.buffer(PATH_WIDTH / 2 + 1.2) for p in paths]
                                  + [Point(0, 0).buffer(plaza + 1.0)])
    keep.add(path_area)

    # pond: in the widest gap between spokes, shrunk until clear of the paths
    angles = sorted(math.atan2(ring[k][1], ring[k][0]) for k in spoke_ids)
    gaps = [((angles[(i + 1) % len(angles)] - a) % (2 * math.pi), a) for i, a in enumerate(angles)]
    width, start = max(gaps)
    mid = start + width / 2
    dist = float(rng.uniform(15.0, 19.0))
    pond_xy = (dist * math.cos(mid), dist * math.sin(mid))
    pond_r = float(rng.uniform(6.0, 9.0))
    while pond_r > 3.0 and Point(pond_xy).buffer(pond_r + 1.0).intersects(path_area):
        pond_r -= 0.5
    water = props.jitter(rng, (0.55, 0.7, 0.75), 0.05)
    prims.append(Cylinder((pond_xy[0], pond_xy[1], 0.0), pond_r, 0.06, "water", water))
    for a in np.arange(0, 2 * math.pi, 2.0 / (pond_r + 0.4)):
        x, y = pond_xy[0] + (pond_r + 0.3) * math.cos(a), pond_xy[1] + (pond_r + 0.3) * math.sin(a)
        prims.append(props.rock(rng, float(x), float(y), 0.0, pal["rock"],
                                float(rng.uniform(0.35, 0.6))))
    keep.add(Point(pond_xy).buffer(pond_r + 2.5))

    # hedges along the border, with gaps
    n_hedges = 0
    for side in range(4):
        pos = -HALF + 3.0
        while pos < HALF - 6.0:
            length = float(min(rng.uniform(8, 16), HALF - 3.0 - pos))
            c = pos + length / 2
            edge = HALF - 1.5
            x, y, sx, sy = {0: (c, -edge, length, 1.0), 1: (c, edge, length, 1.0),
                            2: (-edge, c, 1.0, length), 3: (edge, c, 1.0, length)}[side]
            hedge = Box((x, y, 0.0), (sx, sy, float(rng.uniform(1.1, 1.6))), "hedge",
                        props.jitter(rng, pal["hedge"]))
            prims.append(hedge)
            keep.add(hedge.footprint().buffer(0.5))
            n_hedges += 1
            pos += length + float(rng.uniform(3, 7))

    def scatter(count: int, radius: float, make) -> int:
        placed = 0
        for _ in range(count * 20):
            if placed == count:
                break
            x, y = (float(v) for v in rng.uniform(-HALF + 4, HALF - 4, 2))
            spot = Point(x, y).buffer(radius)
            if keep.free(spot):
                prims.extend(make(x, y))
                keep.add(spot)
                placed += 1
        return placed

    n_trees = scatter(int(rng.integers(40, 71)), 1.8, lambda x, y: _tree_at(rng, x, y, pal))
    n_rocks = scatter(int(rng.integers(8, 17)), 1.6, lambda x, y: [props.rock(
        rng, x, y, 0.0, pal["rock"], float(rng.uniform(0.5, 1.3)))])

    # benches and lamps beside the ring path (outside the walkers' lanes)
    wood = props.jitter(rng, (0.6, 0.45, 0.3))
    for k in rng.choice(len(ring), int(rng.integers(4, 8)), replace=False):
        a, b = ring[k], ring[(k + 1) % len(ring)]
        mid_pt = (a + b) / 2
        d = (b - a) / np.linalg.norm(b - a)
        out = np.array([d[1], -d[0]])  # right of travel = outward for a counter-clockwise ring
        if np.dot(out, mid_pt) < 0:
            out = -out
        bx, by = mid_pt + out * 2.4
        yaw = math.degrees(math.atan2(-out[1], -out[0])) - 90.0  # seat faces the path
        prims += props.bench(float(bx), float(by), yaw, wood)
        lx, ly = a + (b - a) * 0.25 - out * 2.0
        prims += props.lamp_post(float(lx), float(ly), (0.15, 0.17, 0.15))

    # a wood outside the bounds closes the horizon
    for _ in range(48):
        ang, r = rng.uniform(0, 2 * math.pi), rng.uniform(HALF + 6, HALF + 35)
        prims += _tree_at(rng, float(r * math.cos(ang)), float(r * math.sin(ang)), pal,
                          solid=False)

    movers: list[Mover] = []
    counts = {"walkers": 0, "joggers": 0, "dogs": 0}
    for _ in range(int(mover_rng.integers(5, 11))):
        lane = float(mover_rng.uniform(-0.7, 0.7))
        reverse = bool(mover_rng.random() < 0.5)
        route = _offset_ring(ring, lane)
        route = route[::-1].copy() if reverse else route
        jogger = bool(mover_rng.random() < 0.2)
        speed = float(mover_rng.uniform(2.4, 3.2) if jogger else mover_rng.uniform(1.0, 1.5))
        walker = props.mover(props.person(mover_rng), route, speed, mover_rng)
        movers.append(walker)
        counts["joggers" if jogger else "walkers"] += 1
        if not jogger and mover_rng.random() < 0.35:  # a dog trotting beside its walker
            dog_route = _offset_ring(ring, lane + (0.8 if lane < 0 else -0.8))
            dog_route = dog_route[::-1].copy() if reverse else dog_route
            movers.append(Mover(props.dog(mover_rng), dog_route, speed,
                                offset=walker.offset + 1.2))
            counts["dogs"] += 1
    for k in spoke_ids[: int(mover_rng.integers(1, len(spoke_ids) + 1))]:
        end = ring[k] * (1 - 3.0 / np.linalg.norm(ring[k]))
        start = ring[k] * (plaza / np.linalg.norm(ring[k]))
        movers.append(props.mover(props.person(mover_rng), np.array([start, end]),
                                  mover_rng.uniform(1.0, 1.4), mover_rng))
        counts["walkers"] += 1

    settings = {
        "scene_size_m": [2 * HALF, 2 * HALF], "palette": palette_name,
        "trees": n_trees, "rocks": n_rocks, "hedges": n_hedges, "pond_radius_m": pond_r,
        "primitives": len(prims), **counts, **atmosphere_settings(atm, sky, fog),
    }
    return World(scene="park", seed=seed, bounds=(-HALF, -HALF, HALF, HALF),
                 walkable=shapely_box(-HALF, -HALF, HALF, HALF), ground_material="grass",
                 ground_color=props.jitter(rng, pal["grass"], 0.04), atmosphere=atm,
                 primitives=prims, movers=movers, settings=settings)
