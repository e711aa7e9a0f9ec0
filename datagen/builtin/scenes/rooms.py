"""The ``rooms`` scene: an indoor floor plan of rooms off one or two corridors.

A rectangular storey (about 28-40 m by 20-28 m, ceiling 2.7-3.3 m) has a main corridor along x
and sometimes a cross corridor along y. Rooms line both sides; every room has a 1.2 m doorway
onto a corridor and some have one into the next room. Walls are thin solid boxes with gaps for
the doors (a non-solid lintel above each), floors vary per room, ceiling lights glow. Furniture
stands against the walls, clear of doorways and of the people walking the corridors, going in
and out of rooms, or circling inside them.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString
from shapely.geometry import box as shapely_box

from datagen.builtin.scenes import props
from datagen.builtin.scenes.atmosphere import atmosphere_settings, sample_atmosphere
from datagen.builtin.world import Box, Cylinder, Mover, Primitive, Sphere, World

WALL = 0.16  # wall thickness
DOOR = 1.2  # doorway width
LINTEL = 2.1  # doorway height

PALETTES = {
    "office": {"walls": [(0.92, 0.92, 0.9), (0.85, 0.88, 0.92)], "floors": ["carpet", "tile"],
               "floor_tints": [(0.55, 0.58, 0.62), (0.85, 0.85, 0.82), (0.45, 0.5, 0.6)],
               "corridor": ("tile", (0.9, 0.88, 0.84)),
               "furniture": ["desk", "shelf", "cabinet", "table", "plant"]},
    "home": {"walls": [(0.95, 0.9, 0.8), (0.88, 0.8, 0.72), (0.8, 0.86, 0.8)],
             "floors": ["wood", "carpet"],
             "floor_tints": [(0.85, 0.7, 0.55), (0.7, 0.55, 0.42), (0.75, 0.45, 0.4)],
             "corridor": ("wood", (0.8, 0.66, 0.5)),
             "furniture": ["sofa", "bed", "table", "shelf", "plant"]},
    "school": {"walls": [(0.85, 0.92, 0.82), (0.95, 0.92, 0.8)], "floors": ["tile"],
               "floor_tints": [(0.8, 0.82, 0.76), (0.75, 0.72, 0.65)],
               "corridor": ("tile", (0.7, 0.72, 0.7)),
               "furniture": ["table", "desk", "shelf", "cabinet"]},
    "gallery": {"walls": [(0.97, 0.97, 0.97)], "floors": ["concrete", "wood"],
                "floor_tints": [(0.7, 0.7, 0.7), (0.85, 0.75, 0.6)],
                "corridor": ("concrete", (0.75, 0.75, 0.74)),
                "furniture": ["bench", "plant", "cabinet"]},
}

# name: (width along the wall, depth, height, material, colour)
FURNITURE = {
    "desk": (1.4, 0.7, 0.75, "wood", (0.75, 0.6, 0.45)),
    "shelf": (1.0, 0.4, 1.9, "wood", (0.6, 0.45, 0.32)),
    "cabinet": (0.8, 0.5, 1.2, "metal", (0.7, 0.72, 0.75)),
    "table": (1.6, 0.9, 0.75, "wood", (0.7, 0.52, 0.36)),
    "sofa": (2.0, 0.85, 0.8, "fabric", (0.45, 0.5, 0.6)),
    "bed": (1.6, 2.0, 0.5, "fabric", (0.85, 0.82, 0.78)),
    "bench": (1.8, 0.5, 0.45, "wood", (0.55, 0.4, 0.3)),
    "plant": (0.6, 0.6, 1.2, "leaves", (0.3, 0.5, 0.25)),
}


class _Plan:
    """Collects walls with door gaps, floors and doors while the layout is drawn."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.prims: list[Primitive] = []
        self.doors: list[tuple[float, float, bool]] = []  # (x, y, wall along x?)

    def wall(self, fixed: float, lo: float, hi: float, along_x: bool, doors: list[float],
             color) -> None:
        """A wall on the line ``y = fixed`` (along x) or ``x = fixed`` from ``lo`` to ``hi``,
        with a doorway centred at each of ``doors``."""
        cuts = [lo]
        for d in sorted(doors):
            cuts += [d - DOOR / 2, d + DOOR / 2]
            x, y = (d, fixed) if along_x else (fixed, d)
            self.doors.append((x, y, along_x))
            size = (DOOR, WALL, self.ceiling - LINTEL) if along_x else (WALL, DOOR,
                                                                         self.ceiling - LINTEL)
            self.prims.append(Box((x, y, LINTEL), size, "plaster", color, solid=False))
        cuts.append(hi)
        for a, b in zip(cuts[::2], cuts[1::2], strict=True):
            if b - a < 0.05:
                continue
            mid = (a + b) / 2
            centre = (mid, fixed, 0.0) if along_x else (fixed, mid, 0.0)
            size = (b - a, WALL, self.ceiling) if along_x else (WALL, b - a, self.ceiling)
            self.prims.append(Box(centre, size, "plaster", color))


def _split(rng, lo: float, hi: float) -> list[float]:
    """Room boundaries from ``lo`` to ``hi``: widths of 5-9 m."""
    n = max(1, round((hi - lo) / rng.uniform(5.0, 9.0)))
    inner = (np.arange(1, n) + rng.uniform(-0.15, 0.15, n - 1)) / n
    return [lo] + [lo + (hi - lo) * float(f) for f in inner] + [hi]


def _furnish(rng, room, kinds, keep: props.Keepout) -> list[Primitive]:
    x0, y0, x1, y1 = room
    out: list[Primitive] = []
    for _ in range(int(rng.integers(2, 6))):
        kind = props.pick(rng, kinds)
        w, d, h, mat, color = FURNITURE[kind]
        for _attempt in range(12):
            side = int(rng.integers(4))
            gap = WALL / 2 + 0.05
            if side in (0, 1):  # against the south / north wall
                if x1 - x0 < w + 1:
                    continue
                x = float(rng.uniform(x0 + w / 2 + 0.3, x1 - w / 2 - 0.3))
                y = y0 + gap + d / 2 if side == 0 else y1 - gap - d / 2
                yaw = 0.0
            else:  # against the west / east wall
                if y1 - y0 < w + 1:
                    continue
                y = float(rng.uniform(y0 + w / 2 + 0.3, y1 - w / 2 - 0.3))
                x = x0 + gap + d / 2 if side == 2 else x1 - gap - d / 2
                yaw = 90.0
            piece = Box((x, y, 0.02), (w, d, h), mat, props.jitter(rng, color, 0.1), yaw=yaw)
            if kind == "plant":
                pot = Cylinder((x, y, 0.02), 0.25, 0.45, "concrete", (0.75, 0.45, 0.35))
                crown = Sphere((x, y, 0.95), 0.45, "leaves", props.jitter(rng, color, 0.1),
                               solid=False)
                if keep.free(pot.footprint().buffer(0.2)):
                    out += [pot, crown]
                    keep.add(pot.footprint().buffer(0.2))
                    break
                continue
            if keep.free(piece.footprint().buffer(0.15)):
                out.append(piece)
                keep.add(piece.footprint().buffer(0.15))
                break
    return out


def build(seed: int) -> World:
    """The floor plan for ``seed``."""
    atm_rng, rng, mover_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(3))
    atm, sky, fog = sample_atmosphere(atm_rng, indoor=True)
    palette_name = str(rng.choice(sorted(PALETTES)))
    pal = PALETTES[palette_name]
    W, D = float(rng.uniform(28.0, 40.0)), float(rng.uniform(20.0, 28.0))
    ceiling = float(rng.uniform(2.7, 3.3))
    cw = float(rng.uniform(2.2, 2.8))  # corridor width
    cy = float(rng.uniform(-2.0, 2.0))
    cross = bool(rng.random() < 0.6)
    cx = float(rng.uniform(-W / 4, W / 4)) if cross else None
    wall_color = props.pick(rng, pal["walls"])
    plan = _Plan(ceiling)

    # rooms: (x0, y0, x1, y1, side of the main corridor: -1 south, +1 north)
    x_spans = [(-W / 2, cx - cw / 2), (cx + cw / 2, W / 2)] if cross else [(-W / 2, W / 2)]
    rooms: list[tuple[float, float, float, float, int]] = []
    for lo, hi in x_spans:
        xs = _split(rng, lo, hi)
        for a, b in zip(xs[:-1], xs[1:], strict=True):
            rooms.append((a, -D / 2, b, cy - cw / 2, -1))
            rooms.append((a, cy + cw / 2, b, D / 2, 1))

    # outer walls (inside the bounds)
    h = WALL / 2
    plan.wall(-D / 2 + h, -W / 2, W / 2, True, [], wall_color)
    plan.wall(D / 2 - h, -W / 2, W / 2, True, [], wall_color)
    plan.wall(-W / 2 + h, -D / 2 + WALL, D / 2 - WALL, False, [], wall_color)
    plan.wall(W / 2 - h, -D / 2 + WALL, D / 2 - WALL, False, [], wall_color)
    # main corridor walls with one door per room
    for side in (-1, 1):
        fixed = cy + side * cw / 2
        for lo, hi in x_spans:
            doors = [float(rng.uniform(r[0] + 0.6 + DOOR / 2, r[2] - 0.6 - DOOR / 2))
                     for r in rooms if r[4] == side and lo <= r[0] < hi]
            plan.wall(fixed, lo, hi, True, doors, wall_color)
    # cross corridor walls (doors into the rooms beside it, sometimes)
    if cross:
        for x in (cx - cw / 2, cx + cw / 2):
            for y_lo, y_hi in ((-D / 2 + WALL, cy - cw / 2), (cy + cw / 2, D / 2 - WALL)):
                doors = [float(rng.uniform(y_lo + 0.8 + DOOR / 2, y_hi - 0.8 - DOOR / 2))] \
                    if rng.random() < 0.5 and y_hi - y_lo > DOOR + 2 else []
                plan.wall(x, y_lo, y_hi, False, doors, wall_color)
    # walls between neighbouring rooms, some with a connecting door
    for a in rooms:
        for b in rooms:
            if b[4] == a[4] and abs(b[0] - a[2]) < 1e-9:
                y_lo, y_hi = (a[1] + WALL, a[3]) if a[4] < 0 else (a[1], a[3] - WALL)
                doors = [float(rng.uniform(y_lo + 0.6 + DOOR / 2, y_hi - 0.6 - DOOR / 2))] \
                    if rng.random() < 0.35 else []
                plan.wall(a[2], y_lo, y_hi, False, doors, wall_color)

    prims = plan.prims
    # floors, ceiling and lights
    corridor_mat, corridor_tint = pal["corridor"]
    for x0, y0, x1, y1, _ in rooms:
        prims.append(Box(((x0 + x1) / 2, (y0 + y1) / 2, 0.0), (x1 - x0, y1 - y0, 0.02),
                         props.pick(rng, pal["floors"]),
                         props.jitter(rng, props.pick(rng, pal["floor_tints"])), solid=False))
        prims.append(Box(((x0 + x1) / 2, (y0 + y1) / 2, ceiling - 0.05), (1.2, 0.6, 0.04),
                         "light", (1.0, 0.97, 0.9), solid=False))
    prims.append(Box((0.0, cy, 0.0), (W, cw, 0.025), corridor_mat, corridor_tint, solid=False))
    if cross:
        prims.append(Box((cx, 0.0, 0.0), (cw, D, 0.024), corridor_mat, corridor_tint,
                         solid=False))
    for x in np.arange(-W / 2 + 3.0, W / 2 - 2.0, 6.0):
        prims.append(Box((float(x), cy, ceiling - 0.05), (0.6, 0.6, 0.04), "light",
                         (1.0, 0.97, 0.9), solid=False))
    prims.append(Box((0.0, 0.0, ceiling), (W, D, 0.1), "plaster", (0.95, 0.95, 0.94),
                     solid=False))

    # people: corridor pacers, visitors going in and out of rooms, people circling in rooms
    keep = props.Keepout()
    for x, y, _ in plan.doors:  # keep every doorway's approaches clear
        keep.add(shapely_box(x - 1.4, y - 1.4, x + 1.4, y + 1.4))
    movers: list[Mover] = []
    for _ in range(int(mover_rng.integers(1, 3))):
        lane = cy + float(mover_rng.uniform(-0.4, 0.4))
        route = np.array([(-W / 2 + 1.5, lane), (W / 2 - 1.5, lane)])
        movers.append(props.mover(props.person(mover_rng), route, mover_rng.uniform(1.0, 1.4),
                                  mover_rng))
    if cross:
        route = np.array([(cx, -D / 2 + 1.5), (cx, D / 2 - 1.5)])
        movers.append(props.mover(props.person(mover_rng), route, mover_rng.uniform(1.0, 1.4),
                                  mover_rng))
    main_doors = [(x, y) for x, y, along_x in plan.doors
                  if along_x and abs(abs(y - cy) - cw / 2) < 1e-6]
    for k in mover_rng.choice(len(main_doors), min(len(main_doors), int(mover_rng.integers(2, 5))),
                              replace=False):
        dx, dy = main_doors[int(k)]
        into = -1.0 if dy < cy else 1.0  # direction from the corridor into the room
        room = next(r for r in rooms if r[0] <= dx <= r[2] and r[4] == into)
        centre = ((room[0] + room[2]) / 2, (room[1] + room[3]) / 2)
        along = float(np.clip(dx + mover_rng.choice([-3.0, 3.0]), -W / 2 + 1.5, W / 2 - 1.5))
        pts = [centre, (dx, dy + into * 1.0), (dx, dy - into * 0.9), (along, cy)]
        route = np.array(pts + pts[2:0:-1])
        movers.append(props.mover(props.person(mover_rng), route, mover_rng.uniform(0.9, 1.3),
                                  mover_rng))
        keep.add(LineString(np.vstack([route, route[:1]])).buffer(0.7))
    for room in rooms:
        x0, y0, x1, y1, _ = room
        if x1 - x0 > 5.5 and y1 - y0 > 5.5 and mover_rng.random() < 0.3:
            route = props.rect_loop(x0 + 1.9, y0 + 1.9, x1 - 1.9, y1 - 1.9, chamfer=1.0)
            movers.append(props.mover(props.person(mover_rng), route,
                                      mover_rng.uniform(0.8, 1.2), mover_rng))
            keep.add_route(route, 0.7)

    n_furniture = 0
    for room in rooms:
        x0, y0, x1, y1, _ = room
        items = _furnish(rng, (x0, y0, x1, y1), pal["furniture"], keep)
        prims += items
        n_furniture += sum(1 for p in items if p.solid)

    settings = {
        "scene_size_m": [round(W, 3), round(D, 3)], "palette": palette_name,
        "ceiling_m": round(ceiling, 3), "rooms": len(rooms), "corridors": 2 if cross else 1,
        "doors": len(plan.doors), "furniture": n_furniture, "people": len(movers),
        "primitives": len(prims), **atmosphere_settings(atm, sky, fog),
    }
    return World(scene="rooms", seed=seed, bounds=(-W / 2, -D / 2, W / 2, D / 2),
                 walkable=shapely_box(-W / 2, -D / 2, W / 2, D / 2),
                 ground_material="concrete", ground_color=(0.6, 0.6, 0.6), atmosphere=atm,
                 primitives=prims, movers=movers, ceiling=ceiling,
                 settings=settings)
