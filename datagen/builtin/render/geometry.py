"""Triangle meshes (numpy, engine-free) for the World's primitives, terrain, ground and sky.

Each builder returns :class:`Mesh` pieces keyed by material name, with per-vertex positions,
normals, texture coordinates (laid out as the material's
:class:`~datagen.builtin.render.textures.Material` says) and RGBA colours (the primitive's
tint). Triangles wind counter-clockwise seen from the front. Large faces are split into cells
of at most :data:`MAX_CELL` metres so per-vertex effects (fog) interpolate well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datagen.builtin.render.textures import BAY_WIDTH, FACADE_BAYS, STOREY, material
from datagen.builtin.world import Atmosphere, Box, Cone, Cylinder, Primitive, Sphere, Terrain

MAX_CELL = 10.0  # metres: the largest cell a flat face is drawn with


@dataclass
class Mesh:
    """Indexed triangles; ``colors`` are RGBA in 0..1."""

    positions: np.ndarray  # float64 [N, 3]
    normals: np.ndarray  # float64 [N, 3]
    uvs: np.ndarray  # float64 [N, 2]
    colors: np.ndarray  # float64 [N, 4]
    triangles: np.ndarray  # int64 [M, 3]


def merge(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all of ``meshes`` (indices shifted)."""
    offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.positions for m in meshes]),
        np.concatenate([m.normals for m in meshes]),
        np.concatenate([m.uvs for m in meshes]),
        np.concatenate([m.colors for m in meshes]),
        np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]),
    )


def _rgba(color: tuple[float, ...], n: int) -> np.ndarray:
    c = np.ones(4)
    c[: len(color)] = color
    return np.tile(c, (n, 1))


def _grid_triangles(nu: int, nv: int) -> np.ndarray:
    """Triangles of an ``(nu + 1) x (nv + 1)`` vertex grid stored row by row (v major)."""
    i, j = np.meshgrid(np.arange(nu), np.arange(nv))
    a = (j * (nu + 1) + i).ravel()
    b, c, d = a + 1, a + nu + 2, a + nu + 1
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def face(corner, edge_u, edge_v, uv0, uv1, color, max_cell: float = MAX_CELL) -> Mesh:
    """A flat parallelogram ``corner + a * edge_u + b * edge_v`` (a, b in 0..1), front side
    towards ``edge_u x edge_v``, with texture coordinates running from ``uv0`` to ``uv1``."""
    corner, edge_u, edge_v = (np.asarray(x, dtype=np.float64) for x in (corner, edge_u, edge_v))
    nu = max(1, math.ceil(np.linalg.norm(edge_u) / max_cell))
    nv = max(1, math.ceil(np.linalg.norm(edge_v) / max_cell))
    b, a = np.meshgrid(np.linspace(0, 1, nv + 1), np.linspace(0, 1, nu + 1), indexing="ij")
    a, b = a.ravel(), b.ravel()
    pos = corner + a[:, None] * edge_u + b[:, None] * edge_v
    normal = np.cross(edge_u, edge_v)
    normal /= np.linalg.norm(normal)
    uv = np.asarray(uv0) + np.stack([a, b], 1) * (np.asarray(uv1) - np.asarray(uv0))
    n = len(pos)
    return Mesh(pos, np.tile(normal, (n, 1)), uv, _rgba(color, n), _grid_triangles(nu, nv))


def box_meshes(box: Box) -> list[tuple[str, Mesh]]:
    """Faces of ``box`` (the bottom only when it floats), as ``(material, mesh)`` pairs."""
    mat = material(box.material)
    sx, sy, sz = box.size
    c, s = math.cos(math.radians(box.yaw)), math.sin(math.radians(box.yaw))
    ax, ay, up = np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array([0.0, 0.0, 1.0])
    origin = np.asarray(box.base, dtype=np.float64)
    lo = origin - ax * sx / 2 - ay * sy / 2  # bottom corner at local (-x, -y)
    tu, tv = mat.tile
    z0 = box.base[2]
    # side faces, counter-clockwise around the box: (corner, horizontal edge, width)
    sides = [(lo, ax * sx, sx), (lo + ax * sx, ay * sy, sy),
             (lo + ax * sx + ay * sy, -ax * sx, sx), (lo + ay * sy, -ay * sy, sy)]
    out: list[tuple[str, Mesh]] = []
    for k, (corner, edge, width) in enumerate(sides):
        if mat.mapping == "facade":
            bays = max(1, round(width / BAY_WIDTH))
            storeys = max(1, round(sz / STOREY))
            u0 = ((int(abs(box.base[0]) * 7 + abs(box.base[1]) * 13) + k) % FACADE_BAYS)
            uv0 = (u0 / FACADE_BAYS, 0.0)
            uv1 = ((u0 + bays) / FACADE_BAYS, storeys / FACADE_BAYS)
        else:
            uv0, uv1 = (0.0, z0 / tv), (width / tu, (z0 + sz) / tv)
        out.append((box.material, face(corner, edge, up * sz, uv0, uv1, box.color)))
    top_name = mat.roof or box.material
    top = material(top_name)
    if top.mapping == "strip":
        uv0, uv1 = (-sx / 2 / top.tile[0], 0.0), (sx / 2 / top.tile[0], 1.0)
    else:
        uv0 = (-sx / 2 / top.tile[0], -sy / 2 / top.tile[1])
        uv1 = (sx / 2 / top.tile[0], sy / 2 / top.tile[1])
    out.append((top_name, face(lo + up * sz, ax * sx, ay * sy, uv0, uv1, box.color)))
    if z0 > 0.01:
        out.append((box.material, face(lo + ay * sy, ax * sx, -ay * sy, (0, 0),
                                       (sx / tu, sy / tv), box.color)))
    return out


def _segments(radius: float) -> int:
    return int(np.clip(round(radius * 24), 8, 16))


def cylinder_mesh(cyl: Cylinder) -> Mesh:
    tu, tv = material(cyl.material).tile
    n = _segments(cyl.radius)
    ang = np.linspace(0, 2 * np.pi, n + 1)
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1)
    base = np.asarray(cyl.base, dtype=np.float64)
    bottom = base + ring * cyl.radius
    top = bottom + [0, 0, cyl.height]
    pos = np.concatenate([bottom, top])
    u = ang * cyl.radius / tu
    uvs = np.concatenate([np.stack([u, np.full_like(u, base[2] / tv)], 1),
                          np.stack([u, np.full_like(u, (base[2] + cyl.height) / tv)], 1)])
    i = np.arange(n)
    tris = np.concatenate([np.stack([i, i + 1, i + n + 2], 1),
                           np.stack([i, i + n + 2, i + n + 1], 1)])
    side = Mesh(pos, np.concatenate([ring, ring]), uvs, _rgba(cyl.color, len(pos)), tris)
    return merge([side, _disc(base + [0, 0, cyl.height], cyl.radius, n, 1.0, cyl.color, tu)])


def _disc(centre, radius: float, n: int, up: float, color, tile: float) -> Mesh:
    """A horizontal disc facing up (``up`` = 1) or down (-1)."""
    ang = np.linspace(0, 2 * np.pi, n + 1)[:-1] * up
    rim = np.asarray(centre) + radius * np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], 1)
    pos = np.vstack([centre, rim])
    uvs = (pos[:, :2] - np.asarray(centre)[:2]) / tile
    i = np.arange(n)
    tris = np.stack([np.zeros(n, int), 1 + i, 1 + (i + 1) % n], 1)
    return Mesh(pos, np.tile([0.0, 0.0, up], (n + 1, 1)), uvs, _rgba(color, n + 1), tris)


def cone_mesh(cone: Cone) -> Mesh:
    tu, tv = material(cone.material).tile
    n = _segments(cone.radius)
    ang = np.linspace(0, 2 * np.pi, n + 1)
    mid = (ang[:-1] + ang[1:]) / 2
    base = np.asarray(cone.base, dtype=np.float64)
    slope = cone.radius / cone.height
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1)
    rim = base + ring * cone.radius
    apex = np.tile(base + [0, 0, cone.height], (n, 1))
    nrm = lambda a: np.stack([np.cos(a), np.sin(a), np.full_like(a, slope)], 1) / np.hypot(1, slope)  # noqa: E731
    pos = np.concatenate([rim, apex])
    normals = np.concatenate([nrm(ang), nrm(mid)])
    slant = math.hypot(cone.radius, cone.height)
    uvs = np.concatenate([np.stack([ang * cone.radius / tu, np.zeros_like(ang)], 1),
                          np.stack([mid * cone.radius / tu, np.full_like(mid, slant / tv)], 1)])
    i = np.arange(n)
    side = Mesh(pos, normals, uvs, _rgba(cone.color, len(pos)), np.stack([i, i + 1, n + 1 + i], 1))
    if cone.base[2] <= 0.01:
        return side
    return merge([side, _disc(base, cone.radius, n, -1.0, cone.color, tu)])


def sphere_mesh(sph: Sphere) -> Mesh:
    tu, tv = material(sph.material).tile
    n_lon = int(np.clip(round(sph.radius * max(sph.scale[:2]) * 8), 8, 12))
    n_lat = n_lon // 2
    lat, lon = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1),
                           np.linspace(0, 2 * np.pi, n_lon + 1), indexing="ij")
    unit = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    unit = unit.reshape(-1, 3)
    scale = np.asarray(sph.scale, dtype=np.float64)
    pos = np.asarray(sph.center) + unit * sph.radius * scale
    normals = unit / scale
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    r = sph.radius * float(np.mean(scale))
    uvs = np.stack([lon.ravel() * r / tu, lat.ravel() * r / tv], 1)
    return Mesh(pos, normals, uvs, _rgba(sph.color, len(pos)), _grid_triangles(n_lon, n_lat))


def primitive_meshes(prim: Primitive) -> list[tuple[str, Mesh]]:
    """``(material, mesh)`` pieces of any World primitive."""
    if isinstance(prim, Box):
        return box_meshes(prim)
    if isinstance(prim, Cylinder):
        return [(prim.material, cylinder_mesh(prim))]
    if isinstance(prim, Cone):
        return [(prim.material, cone_mesh(prim))]
    if isinstance(prim, Sphere):
        return [(prim.material, sphere_mesh(prim))]
    raise TypeError(f"not a World primitive: {type(prim).__name__}")


def group_by_material(pieces: list[tuple[str, Mesh]]) -> dict[str, Mesh]:
    """Merge pieces sharing a material; materials in first-seen order (deterministic)."""
    groups: dict[str, list[Mesh]] = {}
    for name, mesh in pieces:
        groups.setdefault(name, []).append(mesh)
    return {name: merge(meshes) for name, meshes in groups.items()}


def _mottle(xy: np.ndarray) -> np.ndarray:
    """Smooth brightness variation (about +-10 %) breaking up texture repetition on the ground."""
    x, y = xy[:, 0], xy[:, 1]
    v = (np.sin(x * 0.11 + 2.0 * np.sin(y * 0.07)) + np.sin(y * 0.13 + 2.0 * np.sin(x * 0.05))
         + 0.5 * np.sin((x + y) * 0.31))
    return 1.0 + 0.04 * v


def terrain_mesh(terrain: Terrain, rock_color=(0.55, 0.52, 0.48)) -> Mesh:
    """The height field as a grid; slopes steeper than ~20 degrees fade to bare rock colour."""
    h = np.asarray(terrain.heights, dtype=np.float64)
    ny, nx = h.shape
    ys, xs = np.mgrid[0:ny, 0:nx] * terrain.cell
    xs, ys = xs + terrain.origin[0], ys + terrain.origin[1]
    dzdy, dzdx = np.gradient(h, terrain.cell)
    normals = np.stack([-dzdx, -dzdy, np.ones_like(h)], -1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    slope = np.degrees(np.arccos(normals[..., 2]))
    rock = np.clip((slope - 18.0) / 14.0, 0.0, 1.0)[..., None]
    color = np.asarray(terrain.color) * (1 - rock) + np.asarray(rock_color) * rock
    tu, tv = material(terrain.material).tile
    pos = np.stack([xs, ys, h], -1).reshape(-1, 3)
    colors = np.concatenate([color.reshape(-1, 3) * _mottle(pos)[:, None], np.ones((nx * ny, 1))],
                            1)
    uvs = np.stack([xs.ravel() / tu, ys.ravel() / tv], 1)
    return Mesh(pos, normals.reshape(-1, 3), uvs, colors, _grid_triangles(nx - 1, ny - 1))


def ground_mesh(bounds: tuple[float, float, float, float], name: str, color,
                extent: float = 500.0) -> Mesh:
    """Flat ground at z = 0 reaching ``extent`` metres past ``bounds``; cells grow outside."""
    def axis(lo: float, hi: float) -> np.ndarray:
        inner = np.linspace(lo, hi, max(2, math.ceil((hi - lo) / MAX_CELL) + 1))
        steps = np.cumsum(MAX_CELL * 1.5 ** np.arange(1, 12))
        steps = np.append(steps[steps < extent], extent)
        return np.concatenate([lo - steps[::-1], inner, hi + steps])

    xs, ys = axis(bounds[0], bounds[2]), axis(bounds[1], bounds[3])
    gx, gy = np.meshgrid(xs, ys)
    pos = np.stack([gx, gy, np.zeros_like(gx)], -1).reshape(-1, 3)
    tu, tv = material(name).tile
    n = len(pos)
    colors = _rgba(color, n)
    colors[:, :3] *= _mottle(pos)[:, None]
    return Mesh(pos, np.tile([0.0, 0.0, 1.0], (n, 1)), pos[:, :2] / [tu, tv], np.clip(colors, 0, 1),
                _grid_triangles(len(xs) - 1, len(ys) - 1))


def sky_mesh(atm: Atmosphere, radius: float) -> Mesh:
    """An inward-facing dome centred on the origin, coloured horizon to zenith, with the sun's
    glow around its direction and haze at the horizon thickening with the fog."""
    n_lon, n_lat = 48, 16
    lat, lon = np.meshgrid(np.linspace(-0.35, np.pi / 2, n_lat + 1),
                           np.linspace(0, 2 * np.pi, n_lon + 1), indexing="ij")
    unit = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    unit = unit.reshape(-1, 3)
    elev = np.clip(unit[:, 2], 0.0, 1.0)
    t = (elev ** 0.6)[:, None]
    color = np.asarray(atm.sky_horizon) * (1 - t) + np.asarray(atm.sky_zenith) * t
    haze = np.clip(atm.fog_density * 40.0, 0.0, 0.9) * np.exp(-elev / 0.25)[:, None]
    color = color * (1 - haze) + np.asarray(atm.fog_color) * haze
    to_sun = -np.asarray(atm.sun_direction, dtype=np.float64)
    cos_sun = np.clip(unit @ to_sun, -1.0, 1.0)
    glow = (0.45 * np.exp(-(1 - cos_sun) / 0.03) + 0.2 * np.exp(-(1 - cos_sun) / 0.25))[:, None]
    color = color + glow * np.asarray(atm.sun_color) * (1 - 0.7 * haze)
    below = unit[:, 2] < 0
    color[below] *= 0.9
    colors = np.concatenate([np.clip(color, 0, 1), np.ones((len(unit), 1))], 1)
    tris = _grid_triangles(n_lon, n_lat)[:, ::-1]  # seen from inside
    return Mesh(unit * radius, -unit, np.zeros((len(unit), 2)), colors, tris)


def sun_mesh(atm: Atmosphere, distance: float, radius: float) -> Mesh:
    """The sun's disc (a flat fan facing the origin); the dome carries its glow."""
    to_sun = -np.asarray(atm.sun_direction, dtype=np.float64)
    side = np.cross(to_sun, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    up = np.cross(side, to_sun)
    n = 24
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.cos(ang)[:, None] * side + np.sin(ang)[:, None] * up
    centre = to_sun * distance
    pos = np.vstack([centre, centre + ring * radius])
    sun = np.asarray(atm.sun_color, dtype=np.float64)
    color = np.clip(0.9 + 0.1 * sun / max(float(sun.max()), 1e-6), 0, 1)  # brighter than glow
    i = np.arange(n)
    tris = np.stack([np.zeros(n, int), 1 + (i + 1) % n, 1 + i], 1)
    return Mesh(pos, np.tile(-to_sun, (n + 1, 1)), np.zeros((n + 1, 2)), _rgba(color, n + 1),
                tris)
