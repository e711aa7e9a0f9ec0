"""The ``city`` scene: a 100 m x 100 m street grid with buildings, street furniture and traffic.

Two or three roads per axis cut the area into blocks; each block is a raised paving slab whose
road sides are sidewalks (street furniture along the curb, pedestrians in the middle) and whose
core is split into lots holding buildings of varied footprints and heights, small plazas or
lawns. Cars drive clockwise loops around blocks in the inner lane (right-hand traffic). A ring
of non-solid buildings outside the bounds closes the view at the ends of the streets.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import box as shapely_box

from datagen.builtin.scenes import props
from datagen.builtin.scenes.atmosphere import atmosphere_settings, sample_atmosphere
from datagen.builtin.world import Box, Mover, Primitive, World

HALF = 50.0  # the playable area is [-HALF, HALF]^2
SIDEWALK = 3.5  # curb zone (props) 0..1.5 m, walking line at 2.4 m, buildings from 3.5 m
WALK_LINE = 2.4
STOREY = 3.2

PALETTES = {
    "red_brick": {
        "facades": [("facade_brick", (1.0, 0.95, 0.9)), ("facade_brick", (0.82, 0.68, 0.62)),
                    ("facade_plaster", (0.95, 0.9, 0.8)), ("facade_brick", (0.95, 0.85, 0.7))],
        "paving": (0.88, 0.84, 0.8), "asphalt": (0.95, 0.95, 0.95), "leaf": (0.36, 0.56, 0.26),
        "metal": (0.18, 0.22, 0.2), "wood": (0.62, 0.45, 0.3)},
    "concrete_modern": {
        "facades": [("facade_concrete", (0.95, 0.95, 0.95)), ("facade_concrete", (0.8, 0.82, 0.85)),
                    ("facade_glass", (0.9, 0.95, 1.0)), ("facade_concrete", (0.9, 0.86, 0.8))],
        "paving": (0.92, 0.92, 0.92), "asphalt": (0.85, 0.85, 0.88), "leaf": (0.3, 0.5, 0.25),
        "metal": (0.45, 0.47, 0.5), "wood": (0.55, 0.42, 0.32)},
    "mediterranean": {
        "facades": [("facade_plaster", (1.0, 0.86, 0.62)), ("facade_plaster", (0.98, 0.74, 0.6)),
                    ("facade_plaster", (1.0, 1.0, 0.96)), ("facade_plaster", (0.8, 0.9, 0.85)),
                    ("facade_brick", (1.0, 0.9, 0.8))],
        "paving": (0.98, 0.9, 0.78), "asphalt": (1.0, 0.97, 0.92), "leaf": (0.4, 0.52, 0.24),
        "metal": (0.12, 0.16, 0.12), "wood": (0.7, 0.5, 0.32)},
    "downtown_glass": {
        "facades": [("facade_glass", (0.85, 0.95, 1.0)), ("facade_glass", (0.72, 0.82, 0.78)),
                    ("facade_concrete", (0.9, 0.9, 0.88)), ("facade_glass", (0.95, 0.9, 0.85))],
        "paving": (0.8, 0.8, 0.82), "asphalt": (0.8, 0.8, 0.82), "leaf": (0.28, 0.48, 0.22),
        "metal": (0.3, 0.3, 0.32), "wood": (0.5, 0.36, 0.25)},
}


def _road_lines(rng: np.random.Generator) -> list[float]:
    base = [-32.0, 0.0, 32.0] if rng.random() < 0.6 else [-17.0, 17.0]
    return sorted(b + float(rng.uniform(-3.0, 3.0)) for b in base)


def _blocks(lines_x, lines_y, half_road):
    """Blocks as ``(x0, y0, x1, y1, road_sides)`` with road_sides = (west, south, east, north)."""
    def spans(lines):
        edges = [-HALF, *lines, HALF]
        out = []
        for k in range(len(edges) - 1):
            lo = edges[k] + (half_road if k > 0 else 0.0)
            hi = edges[k + 1] - (half_road if k < len(edges) - 2 else 0.0)
            out.append((lo, hi, k > 0, k < len(edges) - 2))
        return out
    return [(x0, y0, x1, y1, (w, s, e, n))
            for (x0, x1, w, e) in spans(lines_x) for (y0, y1, s, n) in spans(lines_y)]


def _building(rng, x0, y0, x1, y1, palette, storeys) -> list[Primitive]:
    mat, tint = props.pick(rng, palette["facades"])
    tint = props.jitter(rng, tint, 0.05)
    height = storeys * STOREY + 0.5
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    out: list[Primitive] = [Box((cx, cy, 0.0), (x1 - x0, y1 - y0, height), mat, tint)]
    if rng.random() < 0.5:  # rooftop plant room
        w, d = (x1 - x0) * rng.uniform(0.3, 0.5), (y1 - y0) * rng.uniform(0.3, 0.5)
        out.append(Box((cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1), height),
                       (float(w), float(d), float(rng.uniform(1.5, 3.0))), "concrete",
                       props.jitter(rng, (0.8, 0.8, 0.8)), solid=False))
    return out


def _lots(rng, x0, y0, x1, y1, palette):
    """Buildings, plazas or lawns filling a block's core; returns (primitives, n_buildings)."""
    prims: list[Primitive] = []
    nx = max(1, round((x1 - x0) / rng.uniform(10.0, 18.0)))
    ny = max(1, round((y1 - y0) / rng.uniform(10.0, 18.0)))
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    count = 0
    for i in range(nx):
        for j in range(ny):
            a, b, c, d = xs[i], ys[j], xs[i + 1], ys[j + 1]
            centre = np.hypot((a + c) / 2, (b + d) / 2)
            roll = rng.random()
            if roll < 0.1 and (c - a) > 6 and (d - b) > 6:  # lawn with a tree or two
                prims.append(Box(((a + c) / 2, (b + d) / 2, 0.15), (c - a - 1, d - b - 1, 0.05),
                                 "grass", props.jitter(rng, (0.45, 0.65, 0.3)), solid=False))
                for _ in range(int(rng.integers(1, 3))):
                    tx, ty = rng.uniform(a + 2, c - 2), rng.uniform(b + 2, d - 2)
                    prims += props.tree(rng, float(tx), float(ty), 0.15, palette["leaf"])
                continue
            if roll < 0.18:  # small plaza: benches facing the middle
                bx, by = (a + c) / 2, (b + d) / 2
                prims += props.bench(float(bx), float(by - 1.5), 0.0, palette["wood"])
                prims += props.lamp_post(float(bx + 1.8), float(by + 1.0), palette["metal"])
                continue
            inset = rng.uniform(0.0, 1.2, 4)
            bx0, by0, bx1, by1 = a + inset[0], b + inset[1], c - inset[2], d - inset[3]
            if bx1 - bx0 < 5 or by1 - by0 < 5:
                continue
            top = 6 + int(9 * max(0.0, 1.0 - centre / 60.0))
            storeys = int(rng.integers(2, top + 1))
            prims += _building(rng, bx0, by0, bx1, by1, palette, storeys)
            count += 1
    return prims, count


def _curb_props(rng, block, palette) -> list[Primitive]:
    """Street furniture along the road sides of a block, in the curb zone."""
    x0, y0, x1, y1, (w, s, e, n) = block
    out: list[Primitive] = []
    # (road side present, start, end, fixed coordinate, along x?, sign into the block)
    sides = [(s, x0, x1, y0, True, 1.0), (n, x0, x1, y1, True, -1.0),
             (w, y0, y1, x0, False, 1.0), (e, y0, y1, x1, False, -1.0)]
    for present, lo, hi, fixed, along_x, into in sides:
        if not present:
            continue
        pos = lo + 5.0 + rng.uniform(0, 3)
        while pos < hi - 5.0:
            kind = rng.choice(4, p=[0.35, 0.3, 0.15, 0.2])
            off = fixed + into * 0.8

            def at(along: float, off: float = off, along_x: bool = along_x):
                return (along, off) if along_x else (off, along)
            x, y = at(pos)
            if kind == 0:
                out += props.lamp_post(x, y, palette["metal"])
            elif kind == 1:
                out.append(Box((x, y, 0.15), (1.2, 1.2, 0.45), "concrete",
                               props.jitter(rng, (0.75, 0.75, 0.72))))
                out += props.tree(rng, x, y, 0.6, palette["leaf"], scale=0.9)
            elif kind == 2:
                bx, by = at(pos, fixed + into * 1.2)
                yaw = (0.0 if into > 0 else 180.0) if along_x else (-90.0 if into > 0 else 90.0)
                out += props.bench(bx, by, yaw + 180.0, palette["wood"])
            else:
                out.append(props.litter_bin(x, y, props.jitter(rng, palette["metal"])))
            pos += rng.uniform(7.0, 11.0)
    return out


def _pedestrian_route(rng, block) -> np.ndarray | None:
    x0, y0, x1, y1, (w, s, e, n) = block
    if all((w, s, e, n)):
        return props.rect_loop(x0 + WALK_LINE, y0 + WALK_LINE, x1 - WALK_LINE, y1 - WALK_LINE,
                               chamfer=1.5, clockwise=bool(rng.random() < 0.5))
    sides = [k for k, present in enumerate((w, s, e, n)) if present]
    if not sides:
        return None
    side = sides[int(rng.integers(len(sides)))]
    xa, xb, ya, yb = x0 + 3, x1 - 3, y0 + 3, y1 - 3
    line = {0: [(x0 + WALK_LINE, ya), (x0 + WALK_LINE, yb)],
            1: [(xa, y0 + WALK_LINE), (xb, y0 + WALK_LINE)],
            2: [(x1 - WALK_LINE, ya), (x1 - WALK_LINE, yb)],
            3: [(xa, y1 - WALK_LINE), (xb, y1 - WALK_LINE)]}[side]
    return np.array(line, dtype=np.float64)


def _backdrop(rng, palette) -> list[Primitive]:
    """Non-solid buildings just outside the bounds, closing the view down the streets."""
    out: list[Primitive] = []
    for side in range(4):
        pos = -HALF - 20.0
        while pos < HALF + 20.0:
            width, depth = float(rng.uniform(8, 18)), float(rng.uniform(10, 16))
            mat, tint = props.pick(rng, palette["facades"])
            height = int(rng.integers(3, 15)) * STOREY + 0.5
            dist = HALF + 3.0 + depth / 2
            centre = pos + width / 2
            x, y, sx, sy = {0: (centre, -dist, width, depth), 1: (centre, dist, width, depth),
                            2: (-dist, centre, depth, width), 3: (dist, centre, depth, width)}[side]
            out.append(Box((x, y, 0.0), (sx, sy, height), mat, props.jitter(rng, tint, 0.05),
                           solid=False))
            pos += width + float(rng.uniform(0.0, 1.0))
    return out


def build(seed: int) -> World:
    """The city for ``seed``."""
    atm_rng, layout_rng, mover_rng = (np.random.default_rng(s)
                                      for s in np.random.SeedSequence(seed).spawn(3))
    atm, sky, fog = sample_atmosphere(atm_rng)
    rng = layout_rng
    palette_name = str(rng.choice(sorted(PALETTES)))
    palette = PALETTES[palette_name]
    road = float(rng.choice([8.0, 9.0, 10.0]))
    hr = road / 2
    lines_x, lines_y = _road_lines(rng), _road_lines(rng)
    prims: list[Primitive] = []
    asphalt = props.jitter(rng, palette["asphalt"], 0.03)
    for x in lines_x:
        prims.append(Box((x, 0.0, 0.0), (2 * HALF, road, 0.03), "road", asphalt, yaw=90.0,
                         solid=False))
    for y in lines_y:
        prims.append(Box((0.0, y, 0.0), (2 * HALF, road, 0.03), "road", asphalt, solid=False))
    for x in lines_x:
        for y in lines_y:
            prims.append(Box((x, y, 0.0), (road, road, 0.045), "asphalt", asphalt, solid=False))

    blocks = _blocks(lines_x, lines_y, hr)
    n_buildings = 0
    paving = props.jitter(rng, palette["paving"], 0.04)
    for block in blocks:
        x0, y0, x1, y1, (w, s, e, n) = block
        prims.append(Box(((x0 + x1) / 2, (y0 + y1) / 2, 0.0), (x1 - x0, y1 - y0, 0.15), "paving",
                         paving, solid=False))
        core = (x0 + SIDEWALK * w, y0 + SIDEWALK * s, x1 - SIDEWALK * e, y1 - SIDEWALK * n)
        lots, count = _lots(rng, *core, palette)
        prims += lots
        n_buildings += count
        prims += _curb_props(rng, block, palette)
    prims += _backdrop(rng, palette)

    movers: list[Mover] = []
    n_cars = 0
    for i in range(len(lines_x) - 1):
        for j in range(len(lines_y) - 1):
            loop = props.rect_loop(lines_x[i] + hr / 2, lines_y[j] + hr / 2,
                                   lines_x[i + 1] - hr / 2, lines_y[j + 1] - hr / 2,
                                   chamfer=3.0, clockwise=True)
            cars = int(mover_rng.integers(1, 4))
            speed = float(mover_rng.uniform(5.0, 9.0))
            length = props.route_length(loop)
            start = float(mover_rng.uniform(0, length))
            for k in range(cars):
                movers.append(Mover(props.car(mover_rng), loop, speed,
                                    offset=(start + k * length / cars) % length))
            n_cars += cars
    n_people = int(mover_rng.integers(8, 17))
    for _ in range(n_people):
        block = blocks[int(mover_rng.integers(len(blocks)))]
        route = _pedestrian_route(mover_rng, block)
        if route is not None:
            movers.append(props.mover(props.person(mover_rng), route,
                                      mover_rng.uniform(1.1, 1.6), mover_rng))

    settings = {
        "scene_size_m": [2 * HALF, 2 * HALF],
        "palette": palette_name,
        "road_width_m": road,
        "roads": len(lines_x) + len(lines_y),
        "blocks": len(blocks),
        "buildings": n_buildings,
        "primitives": len(prims),
        "cars": n_cars,
        "pedestrians": len(movers) - n_cars,
        **atmosphere_settings(atm, sky, fog),
    }
    area = shapely_box(-HALF, -HALF, HALF, HALF)
    return World(scene="city", seed=seed, bounds=(-HALF, -HALF, HALF, HALF), walkable=area,
                 ground_material="asphalt", ground_color=asphalt, atmosphere=atm,
                 primitives=prims, movers=movers, settings=settings)
