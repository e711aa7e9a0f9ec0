"""Where an episode starts: a random reachable point and a heading with an open view ahead.

Frame 0 is the image a world model is conditioned on; one that faces a wall (or a parked car)
from a step away shows nothing of the scene. So the start faces the most open of several random
headings, judged by the distance to the nearest solid footprint, mover (where the movers stand
at time 0) or edge of the playable area over the middle of the view, and a start point whose
best view is shorter than ``MIN_VIEW_M`` is drawn again.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import LineString

from datagen.builtin.navmesh import NavMesh
from datagen.builtin.world import World

VIEW_HALF_DEG = 20.0  # the middle of the view: this far either side of the heading
VIEW_RAYS = 9
OPEN_VIEW_M = 6.0  # a heading this open is taken at once
MIN_VIEW_M = 3.0  # a start whose most open heading is shorter is drawn again
REACH_M = 50.0
HEADINGS = 16  # random headings tried per start point
POINTS = 20  # start points tried


def view_clearance(solid: shapely.Geometry, xy: np.ndarray, yaw: float) -> float:
    """Metres from ``xy`` to the first solid boundary over the middle of the view at ``yaw``
    (degrees): the shortest of ``VIEW_RAYS`` rays across ``+-VIEW_HALF_DEG``, at most
    ``REACH_M``."""
    point, nearest = shapely.Point(xy), REACH_M
    for a in np.radians(np.linspace(yaw - VIEW_HALF_DEG, yaw + VIEW_HALF_DEG, VIEW_RAYS)):
        ray = LineString([xy, xy + REACH_M * np.array([math.cos(a), math.sin(a)])])
        hit = ray.intersection(solid)
        if not hit.is_empty:
            nearest = min(nearest, float(shapely.distance(point, hit)))
    return nearest


def solid_boundaries(world: World) -> shapely.Geometry:
    """Every solid footprint's outline, every mover's at time 0 and the playable area's edge,
    as one geometry."""
    movers = []
    for mover, (x, y, heading) in zip(world.movers, world.mover_poses(0.0), strict=True):
        x0, x1, y0, y1 = mover.extent()
        box = shapely.affinity.rotate(shapely.box(x0, y0, x1, y1), heading, origin=(0.0, 0.0))
        movers.append(shapely.affinity.translate(box, x, y).exterior)
    return shapely.unary_union([o.exterior for o in world.obstacles()] + movers
                               + [world.bounds_polygon().exterior])


def spawn(world: World, navmesh: NavMesh, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``(xy, yaw)``: a reachable start point and a heading (degrees) with an open view; the
    best found when no start in ``POINTS`` tries reaches ``MIN_VIEW_M``."""
    solid = solid_boundaries(world)
    best = (-1.0, None, 0.0)
    for _ in range(POINTS):
        xy = np.asarray(navmesh.random_point(rng), dtype=np.float64)
        for yaw in rng.uniform(-180.0, 180.0, HEADINGS):
            view = view_clearance(solid, xy, float(yaw))
            if view > best[0]:
                best = (view, xy, float(yaw))
            if view >= OPEN_VIEW_M:
                return xy, float(yaw)
        if best[0] >= MIN_VIEW_M:
            break
    return best[1], best[2]
