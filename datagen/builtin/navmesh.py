"""Navigation mesh of a scene: where an agent of a given radius can stand, and how it gets around.

The navigable region is the walkable area eroded by the agent radius minus every obstacle
footprint grown by the radius. It is cut into triangles (a constrained Delaunay triangulation);
everything a query needs is precomputed at build time: triangle vertices and inward edge tests,
edge adjacency with the shared edges as portals, connected components, a uniform grid for point
location and cumulative areas for uniform sampling. A path query is A* over the triangles
followed by a funnel (string-pulling) pass, so paths are smooth, stay on the mesh and keep the
agent radius from every obstacle.

One tolerance policy holds for every query: a point is on the mesh (``contains``) when it lies
within ``TOLERANCE`` of a triangle, measured along each edge's normal, and a segment is clear when
the walk along it through the triangles never leaves them by more than that, going through a
boundary vertex it meets into the triangle there that holds its direction. ``segment_clear``,
``clamp_step`` and the straight shortcut of ``find_path`` are that one walk; the other legs of a
path run between mesh vertices through its corridor, and pass it too.

Circles are approximated by polygons whose sides are tangent-or-outside the true circle (the
buffer distance is divided by ``cos(pi / (4 * ARC_SEGMENTS))``), so the clearance is never less
than the agent radius, at the cost of a slightly (about 3 %) wider berth around rounded corners.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from datagen.builtin.world import World
from datagen.navigation import Unreachable

ARC_SEGMENTS = 3  # segments per quarter circle when growing obstacles by the agent radius
TOLERANCE = 1e-9  # metres: a point this close to the mesh counts as on it
_NUDGE = 1e-7  # metres: how far points pushed back onto the mesh land inside it
_MAX_WALK = 100_000  # triangle-walk step limit (a safety net; real walks take a handful)

HeightFn = Callable[[float, float], float]


class NavMesh:
    """Triangulated navigable region with path, sampling and collision queries."""

    agent_radius: float
    region: Polygon | MultiPolygon
    triangles: np.ndarray  # float64 [T, 3, 2], counter-clockwise

    def __init__(self, region: Polygon | MultiPolygon, blocked: Polygon | MultiPolygon,
                 walkable: Polygon | MultiPolygon, agent_radius: float,
                 height_fn: HeightFn | None) -> None:
        """Use :meth:`build` or :meth:`from_world`; this triangulates an already-made region."""
        self.agent_radius = float(agent_radius)
        self.region = region
        self._walkable = walkable
        self._blocked = blocked  # union of the raw obstacle footprints (for error messages)
        self._height_fn = height_fn
        for geom in (region, walkable, blocked):
            shapely.prepare(geom)
        self.triangles = _triangulate(region)
        self._index_triangles()
        self._last_tri = -1  # where the last clamp_step ended: the next one usually starts there
        self._strtree: shapely.STRtree | None = None  # made on first need (nearest_point)

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, walkable: Polygon | MultiPolygon, obstacles: Sequence[Polygon],
              agent_radius: float = 0.4, height_fn: HeightFn | None = None) -> NavMesh:
        """Navigation mesh of ``walkable`` minus ``obstacles``, for an agent of ``agent_radius`` m.

        ``height_fn(x, y)`` gives the ground height (``0`` everywhere when it is ``None``).
        Raises ``ValueError`` when the input is not a valid area or nothing is left to walk on.
        """
        if not isinstance(walkable, (Polygon, MultiPolygon)) or walkable.is_empty:
            raise ValueError(f"walkable must be a non-empty shapely Polygon or MultiPolygon, "
                             f"got {type(walkable).__name__}")
        if not walkable.is_valid:
            raise ValueError(f"walkable polygon is invalid: {shapely.is_valid_reason(walkable)}")
        if not (math.isfinite(agent_radius) and agent_radius >= 0):
            raise ValueError(f"agent_radius must be a finite number >= 0, got {agent_radius}")
        for k, obstacle in enumerate(obstacles):
            if not isinstance(obstacle, (Polygon, MultiPolygon)):
                raise ValueError(f"obstacle {k} must be a shapely Polygon, "
                                 f"got {type(obstacle).__name__}")
        grow = agent_radius / math.cos(math.pi / (4 * ARC_SEGMENTS))
        blocked = shapely.unary_union([shapely.make_valid(o) for o in obstacles])
        inner = walkable.buffer(-grow, quad_segs=ARC_SEGMENTS) if grow > 0 else walkable
        region = inner.difference(blocked.buffer(grow, quad_segs=ARC_SEGMENTS))
        region = _polygons_only(region)
        if region.is_empty or region.area <= 0:
            raise ValueError(f"nothing is navigable: the walkable area (area "
                             f"{walkable.area:.3g} m^2) is covered by obstacles or narrower "
                             f"than the agent (radius {agent_radius} m)")
        return cls(region, _polygons_only(blocked), walkable, agent_radius, height_fn)

    @classmethod
    def from_world(cls, world: World, agent_radius: float = 0.4) -> NavMesh:
        """Navigation mesh of a generated scene: its walkable area minus its solid primitives."""
        return cls.build(world.walkable, world.obstacles(), agent_radius, world.height_at)

    def _index_triangles(self) -> None:
        tri = self.triangles
        n = len(tri)
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        areas = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                       - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
        self._areas = areas
        # Plain Python tuples: the per-query loops below run faster on them than on numpy.
        self._pts = [tuple(map(float, t.ravel())) for t in tri]
        # Inward unit normal of edge i (vertex i to i+1): n.(p - v_i) is p's depth inside it.
        edges = np.roll(tri, -1, axis=1) - tri
        lengths = np.hypot(edges[..., 0], edges[..., 1])
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1) / lengths[..., None]
        self._normals = [tuple(map(float, m.ravel())) for m in normals]

        # Edge adjacency through shared vertex ids (the triangulation shares exact coordinates).
        _, vid = np.unique(tri.reshape(-1, 2), axis=0, return_inverse=True)
        vid = vid.reshape(n, 3)
        # Vertex fans: every (triangle, corner) at each vertex, for walks that pass through it.
        self._vid = [tuple(map(int, v)) for v in vid]
        self._fan: list[list[tuple[int, int]]] = [[] for _ in range(int(vid.max()) + 1)]
        for t in range(n):
            for k in range(3):
                self._fan[int(vid[t, k])].append((t, k))
        owner: dict[tuple[int, int], tuple[int, int]] = {}
        self._nbr = [[-1, -1, -1] for _ in range(n)]
        for t in range(n):
            for i in range(3):
                u, v = int(vid[t, i]), int(vid[t, (i + 1) % 3])
                key = (u, v) if u < v else (v, u)
                other = owner.pop(key, None)
                if other is None:
                    owner[key] = (t, i)
                else:
                    self._nbr[t][i] = other[0]
                    self._nbr[other[0]][other[1]] = t
        # A* successors: (neighbour, shared edge start x, y, its vector x, y, 1 / its length^2)
        self._succ = [[_portal(m, *self._edge(t, i)) for i, m in enumerate(self._nbr[t]) if m >= 0]
                      for t in range(n)]

        # Connected components (breadth-first, in triangle order: deterministic labels).
        comp = [-1] * n
        count = 0
        for seed in range(n):
            if comp[seed] >= 0:
                continue
            comp[seed] = count
            stack = [seed]
            while stack:
                t = stack.pop()
                for m in self._nbr[t]:
                    if m >= 0 and comp[m] < 0:
                        comp[m] = count
                        stack.append(m)
            count += 1
        self._comp = np.asarray(comp, dtype=np.int64)
        self._n_components = count
        self._cum_area = np.cumsum(areas)
        self._comp_tris = [np.flatnonzero(self._comp == k) for k in range(count)]
        self._comp_cum = [np.cumsum(areas[ts]) for ts in self._comp_tris]

        # Uniform grid for point location: each cell lists the triangles whose box overlaps it.
        lo, hi = tri.reshape(-1, 2).min(axis=0), tri.reshape(-1, 2).max(axis=0)
        cell = max(math.sqrt((hi - lo).prod() / max(n, 1)) * 1.5, 1e-6)
        nx, ny = (np.floor((hi - lo) / cell).astype(int) + 1).tolist()
        grid: list[list[int]] = [[] for _ in range(nx * ny)]
        tlo = np.floor((tri.min(axis=1) - TOLERANCE - lo) / cell).astype(int)
        thi = np.floor((tri.max(axis=1) + TOLERANCE - lo) / cell).astype(int)
        tlo = np.clip(tlo, 0, [nx - 1, ny - 1])
        thi = np.clip(thi, 0, [nx - 1, ny - 1])
        for t in range(n):
            for j in range(tlo[t, 1], thi[t, 1] + 1):
                row = j * nx
                for i in range(tlo[t, 0], thi[t, 0] + 1):
                    grid[row + i].append(t)
        self._grid = grid
        self._grid_lo = (float(lo[0]), float(lo[1]))
        self._grid_cell = cell
        self._grid_shape = (nx, ny)

    # ------------------------------------------------------------------ point queries

    def _locate(self, x: float, y: float, hint: int = -1) -> int:
        """Index of a triangle containing ``(x, y)`` (within TOLERANCE), or -1."""
        if hint >= 0 and self._inside(hint, x, y):
            return hint
        nx, ny = self._grid_shape
        i = math.floor((x - self._grid_lo[0]) / self._grid_cell)
        j = math.floor((y - self._grid_lo[1]) / self._grid_cell)
        if not (0 <= i < nx and 0 <= j < ny):
            return -1
        for t in self._grid[j * nx + i]:
            if self._inside(t, x, y):
                return t
        return -1

    def _inside(self, t: int, x: float, y: float) -> bool:
        ax, ay, bx, by, cx, cy = self._pts[t]
        n0x, n0y, n1x, n1y, n2x, n2y = self._normals[t]
        return (n0x * (x - ax) + n0y * (y - ay) >= -TOLERANCE
                and n1x * (x - bx) + n1y * (y - by) >= -TOLERANCE
                and n2x * (x - cx) + n2y * (y - cy) >= -TOLERANCE)

    def contains(self, p: Sequence[float] | np.ndarray) -> bool:
        """Whether ``p = (x, y)`` is on the navigable area (within ``TOLERANCE`` m)."""
        x, y = _xy(p)
        return self._locate(x, y) >= 0

    def nearest_point(self, p: Sequence[float] | np.ndarray) -> np.ndarray:
        """The navigable point closest to ``p`` (``p`` itself when it is on the mesh)."""
        x, y = _xy(p)
        if self._locate(x, y) >= 0:
            return np.array([x, y])
        near = shapely.shortest_line(self.region.boundary, shapely.Point(x, y))
        bx, by = shapely.get_coordinates(near)[0]
        return self._onto_mesh(float(bx), float(by))

    def _onto_mesh(self, x: float, y: float) -> np.ndarray:
        """A point on the mesh within a few _NUDGE of ``(x, y)``, which lies on its boundary."""
        t = self._locate(x, y)
        if t < 0:  # rounding put it just outside: take the nearest triangle
            t = int(self._tree().query_nearest(shapely.Point(x, y))[0])
        ax, ay, bx, by, cx, cy = self._pts[t]
        gx, gy = (ax + bx + cx) / 3, (ay + by + cy) / 3
        cx_, cy_ = _closest_on_triangle(self._pts[t], x, y)
        d = math.hypot(gx - cx_, gy - cy_)
        step = min(_NUDGE, 0.5 * d) / d if d > 0 else 0.0
        return np.array([cx_ + (gx - cx_) * step, cy_ + (gy - cy_) * step])

    def _tree(self) -> shapely.STRtree:
        if self._strtree is None:
            self._strtree = shapely.STRtree(shapely.polygons(self.triangles))
        return self._strtree

    def height(self, p: Sequence[float] | np.ndarray) -> float:
        """Ground height under ``p`` (0 when the mesh was built without a height function)."""
        x, y = _xy(p)
        return 0.0 if self._height_fn is None else float(self._height_fn(x, y))

    def component(self, p: Sequence[float] | np.ndarray) -> int:
        """Label of the connected part of the mesh that holds ``p``; Unreachable off the mesh."""
        x, y = _xy(p)
        return int(self._comp[self._require(x, y, "point")])

    def random_point(self, rng: np.random.Generator,
                     reachable_from: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """A navigable point drawn uniformly by area; deterministic for the generator's state.

        With ``reachable_from``, only points connected to that point are drawn.
        """
        u, r1, r2 = rng.random(3)
        if reachable_from is None:
            tris, cum = None, self._cum_area
        else:
            k = self.component(reachable_from)
            tris, cum = self._comp_tris[k], self._comp_cum[k]
        k = min(int(np.searchsorted(cum, u * cum[-1], side="right")), len(cum) - 1)
        t = k if tris is None else int(tris[k])
        if r1 + r2 > 1:
            r1, r2 = 1 - r1, 1 - r2
        a, b, c = self.triangles[t]
        return a + r1 * (b - a) + r2 * (c - a)

    # ------------------------------------------------------------------ segment queries

    def segment_clear(self, a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
                      ) -> bool:
        """Whether the straight segment from ``a`` to ``b`` stays on the navigable area.

        Within ``TOLERANCE``, by the same walk ``clamp_step`` and ``find_path`` use: every leg of
        a path from ``find_path`` passes, and ``clamp_step(a, b)`` returns ``b`` exactly when
        this is true.
        """
        (ax, ay), (bx, by) = _xy(a), _xy(b)
        t = self._locate(ax, ay)
        return t >= 0 and self._walk(t, ax, ay, bx, by) is None

    def clamp_step(self, p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray
                   ) -> np.ndarray:
        """Move from ``p`` (on the mesh) towards ``q``, like a game's collision.

        Returns ``q`` when the straight move stays on the mesh. Otherwise the move stops where it
        meets the boundary and the rest of it slides along that edge (once), stopping again at
        the next boundary. The result is always on the mesh. ``p`` off the mesh raises
        ``ValueError``.
        """
        (px, py), (qx, qy) = _xy(p), _xy(q)
        t = self._locate(px, py, self._last_tri)
        if t < 0:
            raise ValueError(f"clamp_step starts at ({px:.6g}, {py:.6g}), which is not on the "
                             f"navigation mesh; start from a point on it (see nearest_point)")
        self._last_tri = t
        hit = self._walk(t, px, py, qx, qy)
        if hit is None:
            return np.array([qx, qy])
        t, s, edge = hit
        hx, hy = self._pull_inside(t, edge, px + s * (qx - px), py + s * (qy - py))
        # Slide: the part of the remaining move along the edge that stopped us.
        ex, ey = self._edge_direction(t, edge)
        along = (qx - hx) * ex + (qy - hy) * ey
        sx, sy = self._pull_inside(t, edge, hx + along * ex, hy + along * ey)
        second = self._walk(t, hx, hy, sx, sy) if self._inside(t, hx, hy) else (t, 0.0, edge)
        if second is None:
            rx, ry = sx, sy
        else:
            t2, s2, edge2 = second
            rx, ry = self._pull_inside(t2, edge2, hx + s2 * (sx - hx), hy + s2 * (sy - hy))
        for x, y in ((rx, ry), (hx, hy)):
            t_end = self._locate(x, y)
            if t_end >= 0:
                self._last_tri = t_end
                return np.array([x, y])
        return np.array([px, py])

    def _walk(self, t: int, px: float, py: float, qx: float, qy: float
              ) -> tuple[int, float, int] | None:
        """Follow the segment p -> q through the triangles from ``t`` (which holds p).

        Returns None when q is reached on the mesh, else ``(triangle, s, edge)``: the segment
        leaves the mesh at ``p + s (q - p)`` through boundary ``edge`` of ``triangle``. A segment
        that meets a boundary edge within TOLERANCE of one of its vertices goes on into the
        triangle round that vertex that holds its direction, if there is one: paths turn at
        boundary vertices, and grazing one is not leaving the mesh.
        """
        prev = -1
        for _ in range(_MAX_WALK):
            pts, nrm, nbr = self._pts[t], self._normals[t], self._nbr[t]
            exit_edge, exit_s = -1, math.inf
            for i in range(3):
                vx, vy, nx, ny = pts[2 * i], pts[2 * i + 1], nrm[2 * i], nrm[2 * i + 1]
                dq = nx * (qx - vx) + ny * (qy - vy)
                if dq >= -TOLERANCE or nbr[i] == prev and prev >= 0:
                    continue
                dp = nx * (px - vx) + ny * (py - vy)
                s = max(dp, 0.0) / (max(dp, 0.0) - dq)
                if s < exit_s:
                    exit_edge, exit_s = i, s
            if exit_edge < 0:
                return None
            prev, nxt = t, nbr[exit_edge]
            if nxt < 0:
                nxt = self._through_vertex(t, exit_edge, px + exit_s * (qx - px),
                                           py + exit_s * (qy - py), qx, qy)
                if nxt < 0:
                    return t, exit_s, exit_edge
                prev = -1  # the fan triangle need not share an edge with this one
            t = nxt
        return t, 0.0, 0

    def _through_vertex(self, t: int, edge: int, x: float, y: float, qx: float, qy: float
                        ) -> int:
        """Where a walk leaving ``t`` through boundary ``edge`` at ``(x, y)`` towards ``q`` goes on.

        When ``(x, y)`` is within TOLERANCE of an end of the edge, that is the triangle round
        the vertex there which holds ``q``'s direction by the walk's own edge test (so the walk
        does not leave it through that vertex again); otherwise, or if there is none, -1.
        """
        pts = self._pts[t]
        for k in (edge, (edge + 1) % 3):
            vx, vy = pts[2 * k], pts[2 * k + 1]
            if abs(x - vx) > TOLERANCE or abs(y - vy) > TOLERANCE:
                continue
            for m, j in self._fan[self._vid[t][k]]:
                mp, mn = self._pts[m], self._normals[m]
                i = (j + 2) % 3  # edges j (from the vertex) and j - 1 (into it) meet there
                if (mn[2 * j] * (qx - mp[2 * j]) + mn[2 * j + 1] * (qy - mp[2 * j + 1])
                        >= -TOLERANCE
                        and mn[2 * i] * (qx - mp[2 * i]) + mn[2 * i + 1] * (qy - mp[2 * i + 1])
                        >= -TOLERANCE):
                    return m
        return -1

    def _edge(self, t: int, i: int) -> tuple[float, float, float, float]:
        """Edge ``i`` of triangle ``t``: from vertex ``i`` to vertex ``i + 1`` (x, y, x, y)."""
        pts, j = self._pts[t], (i + 1) % 3
        return pts[2 * i], pts[2 * i + 1], pts[2 * j], pts[2 * j + 1]

    def _edge_direction(self, t: int, edge: int) -> tuple[float, float]:
        nx, ny = self._normals[t][2 * edge], self._normals[t][2 * edge + 1]
        return ny, -nx

    def _pull_inside(self, t: int, edge: int, x: float, y: float) -> tuple[float, float]:
        """``(x, y)`` moved _NUDGE into triangle ``t`` across its boundary ``edge``."""
        nx, ny = self._normals[t][2 * edge], self._normals[t][2 * edge + 1]
        vx, vy = self._pts[t][2 * edge], self._pts[t][2 * edge + 1]
        depth = nx * (x - vx) + ny * (y - vy)
        shift = _NUDGE - depth if depth < _NUDGE else 0.0
        return x + shift * nx, y + shift * ny

    # ------------------------------------------------------------------ paths

    def find_path(self, start: Sequence[float] | np.ndarray, goal: Sequence[float] | np.ndarray
                  ) -> np.ndarray:
        """Shortest-corridor smoothed path ``[K, 2]`` from ``start`` to ``goal``, both included.

        No two consecutive points are equal, so ``start == goal`` gives the single point
        ``[1, 2]``. Every leg passes :meth:`segment_clear`; when the straight segment does, the
        path is exactly ``[start, goal]``. Raises :class:`Unreachable` naming the point when start
        or goal is off the mesh (outside the walkable area, inside an obstacle, or within the
        agent radius of one) or when the two lie in parts of the mesh that are not connected.
        """
        (sx, sy), (gx, gy) = _xy(start), _xy(goal)
        ts = self._require(sx, sy, "start")
        tg = self._require(gx, gy, "goal")
        if self._comp[ts] != self._comp[tg]:
            raise Unreachable(
                f"goal ({gx:.3f}, {gy:.3f}) cannot be reached from start ({sx:.3f}, {sy:.3f}): "
                f"they lie in separate parts of the navigable area (components "
                f"{self._comp[ts]} and {self._comp[tg]} of {self._n_components})")
        if sx == gx and sy == gy:
            return np.array([[sx, sy]])
        if self._walk(ts, sx, sy, gx, gy) is None:
            return np.array([[sx, sy], [gx, gy]])
        corridor = self._astar(ts, tg, sx, sy, gx, gy)
        portals = [(sx, sy, sx, sy)]
        for t, m in zip(corridor[:-1], corridor[1:], strict=True):
            ax, ay, bx, by = self._edge(t, self._nbr[t].index(m))
            portals.append((bx, by, ax, ay))  # leaving a counter-clockwise triangle: b is left
        portals.append((gx, gy, gx, gy))
        return np.asarray(_funnel(portals), dtype=np.float64)

    def _require(self, x: float, y: float, what: str) -> int:
        """Triangle holding ``(x, y)``, or Unreachable saying why the point is not navigable."""
        t = self._locate(x, y)
        if t >= 0:
            return t
        where = f"{what} ({x:.3f}, {y:.3f})"
        if not shapely.contains_xy(self._walkable, x, y):
            raise Unreachable(f"{where} is outside the walkable area")
        if shapely.intersects_xy(self._blocked, x, y):
            raise Unreachable(f"{where} is inside an obstacle")
        raise Unreachable(f"{where} is within the agent radius ({self.agent_radius} m) of an "
                          f"obstacle or of the edge of the walkable area")

    def _astar(self, ts: int, tg: int, sx: float, sy: float, gx: float, gy: float) -> list[int]:
        """Triangle corridor from ``ts`` to ``tg``.

        A triangle's position is the point of its entry portal closest to the position of the
        triangle it was entered from (the start point for ``ts``): closer to the true path
        length than portal midpoints, so the corridor is more often the shortest one.
        """
        succ = self._succ
        g = {ts: 0.0}
        pos = {ts: (sx, sy)}
        came = {ts: -1}
        heap = [(math.hypot(gx - sx, gy - sy), ts)]
        closed = set()
        while heap:
            _, t = heapq.heappop(heap)
            if t == tg:
                break
            if t in closed:
                continue
            closed.add(t)
            tx, ty = pos[t]
            gt = g[t]
            for m, ax, ay, dx, dy, inv_len2 in succ[t]:
                if m in closed:
                    continue
                u = ((tx - ax) * dx + (ty - ay) * dy) * inv_len2
                u = 0.0 if u < 0.0 else 1.0 if u > 1.0 else u
                mx, my = ax + u * dx, ay + u * dy
                cost = gt + math.hypot(mx - tx, my - ty)
                if cost < g.get(m, math.inf):
                    g[m], pos[m], came[m] = cost, (mx, my), t
                    heapq.heappush(heap, (cost + math.hypot(gx - mx, gy - my), m))
        corridor = [tg]
        while came[corridor[-1]] >= 0:
            corridor.append(came[corridor[-1]])
        corridor.reverse()
        return corridor

    def stats(self) -> dict:
        """What meta.json records about the mesh."""
        return {"triangles": int(len(self.triangles)),
                "area": float(self._cum_area[-1]),
                "components": int(self._n_components),
                "agent_radius": self.agent_radius}


def _portal(m: int, ax: float, ay: float, bx: float, by: float
            ) -> tuple[int, float, float, float, float, float]:
    dx, dy = bx - ax, by - ay
    return m, ax, ay, dx, dy, 1.0 / (dx * dx + dy * dy)


def _xy(p: Sequence[float] | np.ndarray) -> tuple[float, float]:
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape[-1:] != (2,) and arr.shape[-1:] != (3,) or arr.ndim != 1:
        raise ValueError(f"expected a point (x, y), got an array of shape {arr.shape}")
    x, y = float(arr[0]), float(arr[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"point ({x}, {y}) is not finite")
    return x, y


def _polygons_only(geom: shapely.Geometry) -> Polygon | MultiPolygon:
    """The polygonal part of ``geom`` (set operations may leave stray lines or points)."""
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _triangulate(region: Polygon | MultiPolygon) -> np.ndarray:
    """Constrained Delaunay triangles of ``region`` as float64 ``[T, 3, 2]``, counter-clockwise."""
    parts = shapely.get_parts(shapely.constrained_delaunay_triangles(region))
    coords = np.stack([shapely.get_coordinates(t)[:3] for t in parts]).astype(np.float64)
    a, b, c = coords[:, 0], coords[:, 1], coords[:, 2]
    cw = ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) < 0
    coords[cw] = coords[cw][:, [0, 2, 1]]
    return coords


def _closest_on_triangle(pts: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
    """Closest point to ``(x, y)`` on the edges of the triangle ``pts``."""
    best, best_d2 = (pts[0], pts[1]), math.inf
    for i in range(3):
        ax, ay = pts[2 * i], pts[2 * i + 1]
        bx, by = pts[(2 * i + 2) % 6], pts[(2 * i + 3) % 6]
        dx, dy = bx - ax, by - ay
        u = ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)
        u = min(max(u, 0.0), 1.0)
        cx, cy = ax + u * dx, ay + u * dy
        d2 = (cx - x) ** 2 + (cy - y) ** 2
        if d2 < best_d2:
            best, best_d2 = (cx, cy), d2
    return best


def _cross(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
    """Twice the signed area of (a, b, c): positive when c is left of a -> b."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def _funnel(portals: list[tuple[float, float, float, float]]) -> list[tuple[float, float]]:
    """String-pull through ``portals`` ``(left x, y, right x, y)``; the first and last are the
    start and goal. A corner equal to the previous point (the start, or a vertex that several
    portals share) is not repeated."""
    ax, ay = portals[0][0], portals[0][1]
    lx, ly, rx, ry = portals[0]
    li = ri = 0
    path = [(ax, ay)]
    i = 1
    while i < len(portals):
        plx, ply, prx, pry = portals[i]
        # Tighten the right side (the new right must not be right of the current one).
        if _cross(ax, ay, rx, ry, prx, pry) >= 0:
            if (ax, ay) == (rx, ry) or _cross(ax, ay, lx, ly, prx, pry) < 0:
                rx, ry, ri = prx, pry, i
            else:  # right crossed over left: the left point is a corner
                ax, ay = lx, ly
                if path[-1] != (ax, ay):
                    path.append((ax, ay))
                rx, ry, ri, i = ax, ay, li, li + 1
                continue
        # Tighten the left side.
        if _cross(ax, ay, lx, ly, plx, ply) <= 0:
            if (ax, ay) == (lx, ly) or _cross(ax, ay, rx, ry, plx, ply) > 0:
                lx, ly, li = plx, ply, i
            else:  # left crossed over right: the right point is a corner
                ax, ay = rx, ry
                if path[-1] != (ax, ay):
                    path.append((ax, ay))
                lx, ly, li, i = ax, ay, ri, ri + 1
                continue
        i += 1
    end = (portals[-1][0], portals[-1][1])
    if path[-1] != end:
        path.append(end)
    return path
