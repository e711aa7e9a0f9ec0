"""Shared scene pieces: people, cars, animals, trees, street furniture and closed mover routes.

Builders return World primitives (placed in world coordinates, or in a mover's own frame: +X
forward, origin on the ground). Colours are jittered from the generator passed in, so every
call is deterministic for the generator's state.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from datagen.builtin.world import Box, Cone, Cylinder, Mover, Primitive, Sphere

Color = tuple[float, float, float]

SKIN = ((0.95, 0.78, 0.65), (0.85, 0.64, 0.5), (0.66, 0.47, 0.34), (0.45, 0.32, 0.24))
CLOTHES = ((0.2, 0.25, 0.45), (0.55, 0.12, 0.1), (0.25, 0.4, 0.25), (0.8, 0.78, 0.7),
           (0.15, 0.15, 0.17), (0.7, 0.55, 0.2), (0.45, 0.3, 0.5), (0.3, 0.55, 0.7))
CAR_PAINT = ((0.75, 0.08, 0.06), (0.1, 0.2, 0.55), (0.85, 0.85, 0.85), (0.12, 0.12, 0.13),
             (0.55, 0.57, 0.6), (0.9, 0.75, 0.15), (0.15, 0.4, 0.25), (0.95, 0.95, 0.93))


def jitter(rng: np.random.Generator, color: Color, amount: float = 0.06) -> Color:
    c = np.clip(np.asarray(color) * (1.0 + rng.uniform(-amount, amount, 3)), 0.0, 1.0)
    return float(c[0]), float(c[1]), float(c[2])


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


# --- movers' bodies (own frame: +X forward, origin on the ground) ----------------------------

def person(rng: np.random.Generator) -> tuple[Primitive, ...]:
    scale = float(rng.uniform(0.9, 1.08))
    legs, shirt = jitter(rng, pick(rng, CLOTHES)), jitter(rng, pick(rng, CLOTHES))
    skin = pick(rng, SKIN)
    return (
        Box((0.0, 0.0, 0.0), (0.26, 0.38, 0.86 * scale), "fabric", legs),
        Box((0.0, 0.0, 0.86 * scale), (0.3, 0.46, 0.58 * scale), "fabric", shirt),
        Sphere((0.02, 0.0, 1.58 * scale), 0.13 * scale, "skin", skin),
    )


def car(rng: np.random.Generator) -> tuple[Primitive, ...]:
    paint = jitter(rng, pick(rng, CAR_PAINT), 0.04)
    length = float(rng.uniform(3.8, 4.6))
    tyre = (0.08, 0.08, 0.09)
    wheels = tuple(Box((sx * length * 0.32, sy * 0.8, 0.0), (0.62, 0.24, 0.62), "metal", tyre)
                   for sx in (-1, 1) for sy in (-1, 1))
    return (
        Box((0.0, 0.0, 0.28), (length, 1.78, 0.68), "paint", paint),
        Box((-0.15, 0.0, 0.96), (length * 0.52, 1.6, 0.52), "glass", (0.9, 0.92, 0.95)),
        Box((-0.15, 0.0, 1.46), (length * 0.5, 1.56, 0.06), "paint", paint),
    ) + wheels


def dog(rng: np.random.Generator) -> tuple[Primitive, ...]:
    fur = jitter(rng, pick(rng, ((0.55, 0.38, 0.2), (0.15, 0.12, 0.1), (0.85, 0.75, 0.55))))
    return (
        Box((0.0, 0.0, 0.25), (0.7, 0.26, 0.28), "wool", fur),
        Box((0.4, 0.0, 0.45), (0.24, 0.18, 0.2), "wool", fur),
        Box((-0.2, 0.0, 0.0), (0.1, 0.2, 0.27), "wool", fur),
        Box((0.2, 0.0, 0.0), (0.1, 0.2, 0.27), "wool", fur),
    )


def sheep(rng: np.random.Generator) -> tuple[Primitive, ...]:
    wool = jitter(rng, (0.92, 0.9, 0.84), 0.05)
    return (
        Sphere((0.0, 0.0, 0.62), 0.42, "wool", wool, scale=(1.4, 0.95, 0.85)),
        Box((0.62, 0.0, 0.55), (0.3, 0.2, 0.26), "skin", (0.16, 0.14, 0.13)),
        Box((-0.3, 0.0, 0.0), (0.12, 0.4, 0.35), "skin", (0.16, 0.14, 0.13)),
        Box((0.3, 0.0, 0.0), (0.12, 0.4, 0.35), "skin", (0.16, 0.14, 0.13)),
    )


# --- static props (world coordinates) --------------------------------------------------------

def tree(rng: np.random.Generator, x: float, y: float, z: float, leaf: Color,
         conifer: bool = False, scale: float = 1.0) -> list[Primitive]:
    """A solid trunk with non-solid crowns raised above head height."""
    bark = jitter(rng, (0.5, 0.4, 0.32))
    height = float(rng.uniform(2.4, 3.6)) * scale
    trunk = Cylinder((x, y, z - 0.2), 0.16 * scale + 0.06, height + 0.2, "bark", bark)
    if conifer:
        crowns: list[Primitive] = []
        radius = float(rng.uniform(1.8, 2.4)) * scale
        base = z + height * 0.7
        for k in range(3):
            crowns.append(Cone((x, y, base + k * 1.5 * scale), radius * (1 - 0.25 * k),
                               3.0 * scale, "leaves", jitter(rng, leaf, 0.1), solid=False))
        return [trunk, *crowns]
    crowns = []
    radius = float(rng.uniform(1.6, 2.4)) * scale
    crowns.append(Sphere((x, y, z + height + radius * 0.6), radius, "leaves",
                         jitter(rng, leaf, 0.1), scale=(1.0, 1.0, 0.85), solid=False))
    for _ in range(int(rng.integers(0, 3))):
        ang = rng.uniform(0, 2 * np.pi)
        off = radius * 0.6
        crowns.append(Sphere((x + off * math.cos(ang), y + off * math.sin(ang),
                              z + height + radius * float(rng.uniform(0.3, 0.9))),
                             radius * float(rng.uniform(0.55, 0.8)), "leaves",
                             jitter(rng, leaf, 0.12), solid=False))
    return [trunk, *crowns]


def rock(rng: np.random.Generator, x: float, y: float, z: float, color: Color,
         size: float) -> Sphere:
    sx, sy, sz = rng.uniform(0.7, 1.4), rng.uniform(0.7, 1.3), rng.uniform(0.45, 0.8)
    return Sphere((x, y, z - size * sz * 0.3), size, "rock", jitter(rng, color, 0.1),
                  scale=(float(sx), float(sy), float(sz)))


def bench(x: float, y: float, yaw: float, wood: Color) -> list[Primitive]:
    c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    back = (x - 0.22 * -s, y - 0.22 * c)  # behind the seat (seat faces +local y)
    return [Box((x, y, 0.0), (1.8, 0.5, 0.45), "wood", wood, yaw=yaw),
            Box((back[0], back[1], 0.45), (1.8, 0.08, 0.45), "wood", wood, yaw=yaw,
                solid=False)]


def lamp_post(x: float, y: float, metal: Color) -> list[Primitive]:
    return [Cylinder((x, y, 0.0), 0.08, 4.2, "metal", metal),
            Box((x, y, 4.2), (0.5, 0.5, 0.35), "light", (1.0, 0.95, 0.8), solid=False)]


def litter_bin(x: float, y: float, color: Color) -> Cylinder:
    return Cylinder((x, y, 0.0), 0.28, 0.9, "metal", color)


# --- routes ---------------------------------------------------------------------------------

def rect_loop(x0: float, y0: float, x1: float, y1: float, chamfer: float = 2.0,
              clockwise: bool = False) -> np.ndarray:
    """Closed route around a rectangle with cut corners (``[K, 2]``, float64)."""
    c = min(chamfer, (x1 - x0) / 3, (y1 - y0) / 3)
    pts = np.array([(x0 + c, y0), (x1 - c, y0), (x1, y0 + c), (x1, y1 - c),
                    (x1 - c, y1), (x0 + c, y1), (x0, y1 - c), (x0, y0 + c)], dtype=np.float64)
    return pts[::-1].copy() if clockwise else pts


def ring_loop(cx: float, cy: float, radius: float, n: int, rng: np.random.Generator,
              wobble: float = 0.15) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi)
    r = radius * (1 + rng.uniform(-wobble, wobble, n))
    return np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1)


def route_line(route: np.ndarray) -> LineString:
    """The closed route as a line (first point repeated at the end)."""
    return LineString(np.vstack([route, route[:1]]))


def route_length(route: np.ndarray) -> float:
    return float(route_line(route).length)


def mover(parts: tuple[Primitive, ...], route: np.ndarray, speed: float,
          rng: np.random.Generator) -> Mover:
    """A Mover starting at a random point of its route."""
    return Mover(parts=parts, route=np.asarray(route, dtype=np.float64), speed=float(speed),
                 offset=float(rng.uniform(0, route_length(route))))


class Keepout:
    """Accumulated areas that new solid props must stay clear of (routes, paths, other props)."""

    def __init__(self) -> None:
        self._shapes: list = []

    def add(self, geom) -> None:
        self._shapes.append(geom)

    def add_route(self, route: np.ndarray, clearance: float) -> None:
        self.add(route_line(route).buffer(clearance, quad_segs=2))

    def free(self, footprint: Polygon) -> bool:
        return not self._shapes or not shapely.intersects(self._shapes, footprint).any()
