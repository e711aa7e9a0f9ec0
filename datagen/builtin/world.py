"""Engine-neutral description of a generated scene: what the renderer draws and the navmesh walks.

A scene generator (``datagen.builtin.scenes``) turns a seed into a :class:`World`; the renderer
(``datagen.builtin.render``) draws it, and the navigation mesh (``datagen.builtin.navmesh``) is
built from its walkable area minus the footprints of its solid primitives. Coordinates follow
the episode contract: right-handed, Z up, metres; ``yaw`` in degrees, counter-clockwise from +X.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box

OVERHANG_MIN_Z = 1.0  # a non-solid box lifted this far off the floor is overhead (a lintel)


@dataclass(frozen=True)
class Box:
    """An oriented box standing on ``base`` (the centre of its bottom face)."""

    base: tuple[float, float, float]
    size: tuple[float, float, float]  # extent along its own x, y and z
    material: str
    color: tuple[float, float, float]
    yaw: float = 0.0
    solid: bool = True

    def footprint(self) -> Polygon:
        sx, sy = self.size[0] / 2, self.size[1] / 2
        c, s = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        corners = [(-sx, -sy), (sx, -sy), (sx, sy), (-sx, sy)]
        return Polygon([(self.base[0] + c * x - s * y, self.base[1] + s * x + c * y)
                        for x, y in corners])


@dataclass(frozen=True)
class Cylinder:
    """An upright cylinder (trunks, poles, pillars) standing on ``base``."""

    base: tuple[float, float, float]
    radius: float
    height: float
    material: str
    color: tuple[float, float, float]
    solid: bool = True

    def footprint(self) -> Polygon:
        return shapely.Point(self.base[:2]).buffer(self.radius, quad_segs=4)


@dataclass(frozen=True)
class Cone:
    """An upright cone (conifer crowns, roofs); ``radius`` at the base, apex ``height`` above."""

    base: tuple[float, float, float]
    radius: float
    height: float
    material: str
    color: tuple[float, float, float]
    solid: bool = False

    def footprint(self) -> Polygon:
        return shapely.Point(self.base[:2]).buffer(self.radius, quad_segs=4)


@dataclass(frozen=True)
class Sphere:
    """A sphere or, with ``scale``, an ellipsoid (leafy crowns, rocks, bushes)."""

    center: tuple[float, float, float]
    radius: float
    material: str
    color: tuple[float, float, float]
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    solid: bool = True

    def footprint(self) -> Polygon:
        return shapely.affinity.scale(
            shapely.Point(self.center[:2]).buffer(self.radius, quad_segs=4),
            self.scale[0], self.scale[1])


Primitive = Box | Cylinder | Cone | Sphere


@dataclass(frozen=True)
class Terrain:
    """A height field sampled on a regular grid: ``heights[j, i]`` at ``origin + (i, j) * cell``."""

    origin: tuple[float, float]
    cell: float
    heights: np.ndarray  # float64 [ny, nx]
    material: str
    color: tuple[float, float, float]

    def height_at(self, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
        """Bilinear height; points outside the grid take the height of its nearest edge."""
        ny, nx = self.heights.shape
        u = np.clip((np.asarray(x, dtype=np.float64) - self.origin[0]) / self.cell, 0, nx - 1)
        v = np.clip((np.asarray(y, dtype=np.float64) - self.origin[1]) / self.cell, 0, ny - 1)
        i0 = np.minimum(np.floor(u).astype(int), nx - 2)
        j0 = np.minimum(np.floor(v).astype(int), ny - 2)
        fu, fv = u - i0, v - j0
        h = self.heights
        z = ((h[j0, i0] * (1 - fu) + h[j0, i0 + 1] * fu) * (1 - fv)
             + (h[j0 + 1, i0] * (1 - fu) + h[j0 + 1, i0 + 1] * fu) * fv)
        return float(z) if np.ndim(z) == 0 else z


@dataclass(frozen=True)
class Mover:
    """Something that moves by itself (a pedestrian, a car): ``parts`` placed in its own frame
    (+X forward, origin on the ground) and carried along the closed polyline ``route`` at
    ``speed`` m/s, starting ``offset`` metres along it. Movers are not obstacles for the
    navmesh; ``datagen.builtin.traffic`` moves them along their routes and makes them yield to
    the agent.
    """

    parts: tuple[Primitive, ...]
    route: np.ndarray  # float64 [K, 2], closed loop (last point connects back to the first)
    speed: float
    offset: float = 0.0

    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of its parts' footprints in its own frame: the oriented
        box that is its footprint in the world (``datagen.builtin.traffic`` keeps it off the
        agent)."""
        if not self.parts:
            raise ValueError("a Mover needs at least one part")
        xmin, ymin, xmax, ymax = shapely.union_all([p.footprint() for p in self.parts]).bounds
        return float(xmin), float(xmax), float(ymin), float(ymax)

    def pose_at(self, t: float) -> tuple[float, float, float]:
        """``(x, y, heading_deg)`` at time ``t`` seconds."""
        pts = np.vstack([self.route, self.route[:1]])
        seg = np.diff(pts, axis=0)
        lengths = np.hypot(seg[:, 0], seg[:, 1])
        s = (self.offset + self.speed * t) % lengths.sum()
        k = int(np.searchsorted(np.cumsum(lengths), s, side="right"))
        k = min(k, len(lengths) - 1)
        frac = (s - (lengths[:k].sum())) / lengths[k]
        x, y = pts[k] + frac * seg[k]
        return float(x), float(y), math.degrees(math.atan2(seg[k, 1], seg[k, 0]))


@dataclass(frozen=True)
class Atmosphere:
    """Lighting and sky of one episode; every value is drawn from the episode seed."""

    time_of_day: float  # hours, 0..24
    sun_direction: tuple[float, float, float]  # unit vector pointing from the sun into the scene
    sun_color: tuple[float, float, float]
    ambient_color: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    fog_color: tuple[float, float, float]
    fog_density: float  # exponential fog density per metre (0 = none)


@dataclass
class World:
    """One generated scene, fully determined by ``(scene name, seed)``."""

    scene: str
    seed: int
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax of the playable area
    walkable: Polygon  # where the agent may stand before obstacles are removed
    ground_material: str
    ground_color: tuple[float, float, float]
    atmosphere: Atmosphere
    primitives: list[Primitive] = field(default_factory=list)
    movers: list[Mover] = field(default_factory=list)
    terrain: Terrain | None = None
    ceiling: float | None = None  # height of an indoor ceiling above the floor, if any (see
    # headroom() for what else is overhead)
    allow_jump: bool = True
    eye_height: float = 1.7
    settings: dict = field(default_factory=dict)  # what meta.json's "settings" records

    def height_at(self, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
        """Ground height under ``(x, y)``: the terrain where there is one, else 0."""
        if self.terrain is None:
            return 0.0 if np.ndim(x) == 0 else np.zeros(np.shape(x))
        return self.terrain.height_at(x, y)

    def mover_poses(self, t: float) -> np.ndarray:
        """``float64 [M, 3]``: every mover's free-running ``(x, y, heading_deg)`` at ``t`` seconds
        (no yielding; ``datagen.builtin.traffic`` simulates the poses an episode shows)."""
        return np.array([m.pose_at(t) for m in self.movers], dtype=np.float64).reshape(-1, 3)

    def headroom(self, xy: np.ndarray, margin: float) -> float:
        """Height above the floor of the lowest thing overhead within ``margin`` of ``xy``: an
        overhang (a non-solid box lifted at least ``OVERHANG_MIN_Z`` off the floor, such as a
        door's lintel) or else the ceiling; ``inf`` in the open."""
        lowest = math.inf if self.ceiling is None else float(self.ceiling)
        bounds, heights, shapes = self._overhangs
        if len(heights):
            x, y = float(xy[0]), float(xy[1])
            near = np.flatnonzero((bounds[:, 0] - margin <= x) & (x <= bounds[:, 2] + margin)
                                  & (bounds[:, 1] - margin <= y) & (y <= bounds[:, 3] + margin))
            point = shapely.Point(x, y)
            for k in near:
                if heights[k] < lowest and shapes[k].distance(point) <= margin:
                    lowest = float(heights[k])
        return lowest

    @cached_property
    def _overhangs(self) -> tuple[np.ndarray, np.ndarray, list[Polygon]]:
        boxes = [p for p in self.primitives
                 if isinstance(p, Box) and not p.solid and p.base[2] >= OVERHANG_MIN_Z]
        shapes = [b.footprint() for b in boxes]
        bounds = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(-1, 4)
        return bounds, np.array([b.base[2] for b in boxes], dtype=np.float64), shapes

    def obstacles(self) -> list[Polygon]:
        """Footprints of every solid primitive (what the navmesh must keep clear of)."""
        return [p.footprint() for p in self.primitives if p.solid]

    def bounds_polygon(self) -> Polygon:
        return shapely_box(*self.bounds)
