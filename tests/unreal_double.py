"""A test double of the part of Unreal's Python API the recorder plugin uses.

It behaves like the editor where the plugin depends on it: double-precision ``Vector`` in
centimetres in Unreal's own left-handed frame, a NavMesh over a polygon world (the built-in
navmesh, built directly in Unreal's X/Y so nothing is mirrored here), paths that are invalid
when there is none, point projection within a query extent (``None`` when nothing is in
reach), the NavMeshBoundsVolume's bounds. tests/test_unreal_plugin.py checks that every class,
method and property defined here exists in the real API (the ``unreal-stub`` package), so the
double cannot invent what Unreal lacks.
"""

from __future__ import annotations

import math
import types

import numpy as np
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon

from datagen.builtin.navmesh import NavMesh
from datagen.navigation import Unreachable


class Vector:
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = float(x), float(y), float(z)


class World:
    pass


class NavigationPath:
    def __init__(self, points: list[Vector], valid: bool) -> None:
        self.path_points = points
        self._valid = valid

    def is_valid(self) -> bool:
        return self._valid

    def is_partial(self) -> bool:
        return False

    def get_path_length(self) -> float:
        return float(sum(math.dist((a.x, a.y, a.z), (b.x, b.y, b.z))
                         for a, b in zip(self.path_points[:-1], self.path_points[1:],
                                         strict=True)))


class NavMeshBoundsVolume:
    def __init__(self, origin: Vector, extent: Vector) -> None:
        self._bounds = (origin, extent)

    def get_actor_bounds(self, only_colliding_components: bool,
                         include_from_child_actors: bool = False) -> tuple[Vector, Vector]:
        return self._bounds


class UnrealEditorSubsystem:
    def __init__(self, world: World) -> None:
        self._world = world

    def get_editor_world(self) -> World:
        return self._world


def make_unreal(walkable_cm: Polygon | MultiPolygon, obstacles_cm: list[Polygon], floor_z_cm: float,
                bounds: tuple[Vector, Vector] | None) -> types.ModuleType:
    """An ``unreal`` module whose editor world has one level: ``walkable_cm`` minus
    ``obstacles_cm`` (Unreal X/Y centimetres) at height ``floor_z_cm``, and a
    NavMeshBoundsVolume of ``bounds`` ``(origin, extent)`` (none when ``None``)."""
    scale = 0.01
    mesh = NavMesh.build(_scaled(walkable_cm, scale), [_scaled(o, scale) for o in obstacles_cm],
                         agent_radius=0.35)
    world = World()
    volumes = [] if bounds is None else [NavMeshBoundsVolume(*bounds)]

    def on_mesh(xy: np.ndarray, extent_x: float, extent_y: float) -> np.ndarray | None:
        if mesh.contains(xy):
            return xy
        near = mesh.nearest_point(xy)
        return near if abs(near[0] - xy[0]) <= extent_x and abs(near[1] - xy[1]) <= extent_y \
            else None

    class GameplayStatics:
        @classmethod
        def get_all_actors_of_class(cls, world_context_object: World, actor_class: type) -> list:
            return [v for v in volumes if isinstance(v, actor_class)]

    class NavigationSystemV1:
        @classmethod
        def project_point_to_navigation(cls, world_context_object: World, point: Vector,
                                        nav_data: object, filter_class: object,
                                        query_extent: Vector = None) -> Vector | None:
            extent = query_extent or Vector()
            if abs(point.z - floor_z_cm) > extent.z:
                return None
            hit = on_mesh(np.array([point.x, point.y]) * scale, extent.x * scale,
                          extent.y * scale)
            return None if hit is None else Vector(hit[0] / scale, hit[1] / scale, floor_z_cm)

        @classmethod
        def find_path_to_location_synchronously(
                cls, world_context_object: World, path_start: Vector, path_end: Vector,
                pathfinding_context: object = None, filter_class: object = None
        ) -> NavigationPath:
            try:
                path = mesh.find_path(np.array([path_start.x, path_start.y]) * scale,
                                      np.array([path_end.x, path_end.y]) * scale)
            except Unreachable:
                return NavigationPath([], valid=False)
            return NavigationPath([Vector(x / scale, y / scale, floor_z_cm) for x, y in path],
                                  valid=True)

    module = types.ModuleType("unreal")
    module.Vector, module.World, module.NavigationPath = Vector, World, NavigationPath
    module.NavMeshBoundsVolume, module.UnrealEditorSubsystem = NavMeshBoundsVolume, \
        UnrealEditorSubsystem
    module.GameplayStatics, module.NavigationSystemV1 = GameplayStatics, NavigationSystemV1
    subsystem = UnrealEditorSubsystem(world)

    def get_editor_subsystem(subsystem_class: type) -> object:
        return subsystem if subsystem_class is UnrealEditorSubsystem else None

    module.get_editor_subsystem = get_editor_subsystem
    return module


def _scaled(geometry: Polygon | MultiPolygon, scale: float) -> Polygon | MultiPolygon:
    return shapely.affinity.scale(geometry, scale, scale, origin=(0.0, 0.0))
