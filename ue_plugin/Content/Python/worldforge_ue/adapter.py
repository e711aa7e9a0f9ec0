"""The one module of the plugin that imports ``unreal``: the editor's API as the recorder uses it.

Every ``unreal`` name used here exists in the UE 5.6 Python API with the arguments given
(tests/test_unreal_plugin.py checks them against the ``unreal-stub`` package, the editor's
generated ``unreal.py``), and the tests run this module against a double of that API.

:class:`UnrealNavigator` is the behaviour layer's navigator (:mod:`datagen.navigation`) on the
level's own NavMesh: ``find_path`` asks ``NavigationSystemV1.find_path_to_location_synchronously``
and refuses partial paths; ``random_point`` draws points from the run's own generator inside the
NavMeshBoundsVolumes and keeps the first that ``project_point_to_navigation`` puts on the mesh
right below it (rejection sampling: uniform by area, and deterministic for a seed, which Unreal's
``get_random_reachable_point_in_radius`` with its own random stream is not). Every query is
timed; ``stats()`` reports the latencies.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import unreal

from datagen.navigation import Unreachable
from datagen.unreal.convert import location_to_contract, location_to_unreal

PROJECT_EXTENT_M = (0.05, 0.05, 5.0)  # a drawn point counts when the mesh lies right below it
SNAP_EXTENT_M = (1.0, 1.0, 5.0)  # path ends: the nearest mesh point within a metre


def editor_world() -> unreal.World:
    """The level open in the editor."""
    return unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()


def navmesh_bounds(world: unreal.World) -> np.ndarray:
    """``[2, 3]`` contract-frame corners (min, max) of the union of the level's
    NavMeshBoundsVolumes; RuntimeError when it has none."""
    volumes = unreal.GameplayStatics.get_all_actors_of_class(world, unreal.NavMeshBoundsVolume)
    if not volumes:
        raise RuntimeError("the level has no NavMeshBoundsVolume: add one around the walkable "
                           "area and build paths (Build > Build Paths)")
    corners = []
    for volume in volumes:
        origin, extent = volume.get_actor_bounds(False)
        for sign in (-1.0, 1.0):
            corners.append(location_to_contract(np.array(
                [origin.x + sign * extent.x, origin.y + sign * extent.y,
                 origin.z + sign * extent.z])))
    corners = np.array(corners)
    return np.array([corners.min(axis=0), corners.max(axis=0)])


def _vector(p: np.ndarray) -> unreal.Vector:
    x, y, z = location_to_unreal(np.asarray(p, dtype=np.float64))
    return unreal.Vector(x=float(x), y=float(y), z=float(z))


def _extent(metres: tuple[float, float, float]) -> unreal.Vector:
    return unreal.Vector(x=metres[0] * 100.0, y=metres[1] * 100.0, z=metres[2] * 100.0)


def _point(v: unreal.Vector) -> np.ndarray:
    return location_to_contract(np.array([v.x, v.y, v.z], dtype=np.float64))


class UnrealNavigator:
    """:class:`datagen.navigation.Navigator` on Unreal's NavMesh (see the module docstring)."""

    def __init__(self, world: unreal.World, bounds: np.ndarray | None = None,
                 tries: int = 200) -> None:
        self.world = world
        self.bounds = navmesh_bounds(world) if bounds is None else np.asarray(bounds, float)
        self.tries = tries
        self.latencies: list[float] = []  # seconds per NavigationSystemV1 call

    @contextlib.contextmanager
    def _timed(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.latencies.append(time.perf_counter() - start)

    def _project(self, xy: np.ndarray, extent: tuple[float, float, float]) -> np.ndarray | None:
        z = (self.bounds[0, 2] + self.bounds[1, 2]) / 2
        reach = _extent((extent[0], extent[1],
                         extent[2] + (self.bounds[1, 2] - self.bounds[0, 2]) / 2))
        with self._timed():
            hit = unreal.NavigationSystemV1.project_point_to_navigation(
                self.world, _vector([xy[0], xy[1], z]), None, None, query_extent=reach)
        return None if hit is None else _point(hit)

    def find_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Unreal's path ``[K, 2]`` from ``start`` to ``goal`` in contract metres."""
        ends = []
        for what, xy in (("start", start), ("goal", goal)):
            snapped = self._project(np.asarray(xy, dtype=np.float64), SNAP_EXTENT_M)
            if snapped is None:
                raise Unreachable(f"the {what} {np.round(xy, 3).tolist()} is not on the NavMesh")
            ends.append(snapped)
        with self._timed():
            path = unreal.NavigationSystemV1.find_path_to_location_synchronously(
                self.world, _vector(ends[0]), _vector(ends[1]))
        if path is None or not path.is_valid() or path.is_partial():
            raise Unreachable(f"no complete path from {np.round(start, 3).tolist()} to "
                              f"{np.round(goal, 3).tolist()} on the NavMesh")
        points = np.array([_point(v)[:2] for v in path.path_points])
        if len(points) < 2:
            raise Unreachable("the NavMesh returned a path of fewer than two points")
        return points

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point on the NavMesh, uniform by area, deterministic for ``rng``'s state."""
        for _ in range(self.tries):
            xy = rng.uniform(self.bounds[0, :2], self.bounds[1, :2])
            hit = self._project(xy, PROJECT_EXTENT_M)
            if hit is not None:
                return hit[:2]
        raise Unreachable(f"no point on the NavMesh in {self.tries} draws inside its bounds; "
                          "are paths built?")

    def stats(self) -> dict:
        """Query count and latency (milliseconds: median, 95th percentile, max)."""
        ms = np.array(self.latencies) * 1000.0
        if not len(ms):
            return {"queries": 0}
        return {"queries": len(ms), "median_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max())}
