"""Movers that yield: advanced tick by tick along their routes, stopping for the agent.

Each :class:`~datagen.builtin.world.Mover` keeps an arc-length position and a speed on its closed
route.
Every tick a mover looks along its route ahead (its braking distance plus a margin): if the agent
stands in that stretch, within the mover's half-width plus the agent's radius plus a margin
sideways, the mover eases to a stop short of it, and resumes once the way is clear (a route that
comes back the way it went passes the agent twice: both count). Movers that share a route (the
cars of one loop) keep their distance from the one ahead. A last check makes it a guarantee: a
mover never takes a step that would bring its footprint (the oriented box around its parts)
within ``keep`` metres of the agent, or closer to the one ahead than it already is, so nothing
ever drives into the camera. With the agent out of the way the poses equal the
free-running :meth:`Mover.pose_at` of the same time. Pure float64 arithmetic in a fixed order:
the same inputs give the same poses.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from datagen.builtin.world import World

DECEL = 4.0  # m/s^2, a comfortable stop
EMERGENCY_DECEL = 12.0  # m/s^2, the hardest braking before the last-resort halt
ACCEL = 2.0  # m/s^2, pulling away again
STOP_MARGIN = 2.0  # metres left between a stopped mover's front and the agent's radius
LOOK_SLACK = 2.0  # metres looked ahead beyond the braking distance, so braking starts in time
SIDE_MARGIN = 0.5  # metres beyond half-width + agent radius that still count as "in the path"
FOLLOW_GAP = 1.5  # metres kept to the mover ahead on the same route
KEEP_MARGIN = 0.1  # a mover never comes closer to the agent than agent radius + this
PUSH_STEP = 0.5  # metres a mover is moved along its route at the start to clear the agent


class Traffic:
    """The movers of ``world`` simulated at ``fps``, yielding to an agent of ``agent_radius``.

    ``clear_of`` is the agent's starting point: a mover whose footprint starts there is moved
    ahead along its route until it is clear.
    """

    def __init__(self, world: World, fps: int, agent_radius: float, clear_of: np.ndarray) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if agent_radius < 0:
            raise ValueError(f"agent_radius must be non-negative, got {agent_radius}")
        self.dt = 1.0 / fps
        self.radius = float(agent_radius)
        self.keep = self.radius + KEEP_MARGIN
        movers = world.movers
        self._routes = []
        for m in movers:
            pts = np.vstack([m.route, m.route[:1]]).astype(np.float64)
            seg = np.diff(pts, axis=0)
            lengths = np.hypot(seg[:, 0], seg[:, 1])
            if len(m.route) < 2 or not (lengths > 0).all():
                raise ValueError(f"a mover's route needs at least 2 distinct consecutive points, "
                                 f"got {m.route.tolist()}")
            self._routes.append((pts, seg, lengths, np.concatenate([[0.0], np.cumsum(lengths)])))
        self.n = len(movers)
        self.total = np.array([r[3][-1] for r in self._routes], dtype=np.float64)
        self._plain = [tuple(a.tolist() for a in r) for r in self._routes]
        self._total = self.total.tolist()
        box = np.array([m.extent() for m in movers], dtype=np.float64).reshape(-1, 4)
        self.x0, self.x1, self.y0, self.y1 = box.T
        self._box = [tuple(b) for b in box.tolist()]
        self.half_width = np.maximum(np.abs(self.y0), np.abs(self.y1))
        # radius of the circle round the footprint about the mover's origin
        self.size = np.hypot(np.maximum(np.abs(self.x0), np.abs(self.x1)), self.half_width)
        self.cruise = np.array([m.speed for m in movers], dtype=np.float64)
        self.s = np.array([m.offset for m in movers], dtype=np.float64).reshape(-1) % self.total
        self.v = self.cruise.copy()
        xy = np.asarray(clear_of, dtype=np.float64)
        for k in range(self.n):
            for _ in range(int(self.total[k] / PUSH_STEP) + 1):
                if self._clearance_one(k, self.s[k], xy) >= self.keep:
                    break
                self.s[k] = (self.s[k] + PUSH_STEP) % self.total[k]
        self.leader = self._leaders(movers)
        self._poses: np.ndarray | None = None  # poses of the current state, computed on demand
        self._reach = (self.x1 + self.cruise**2 / (2 * DECEL) + STOP_MARGIN + self.radius
                       + LOOK_SLACK)

    def _leaders(self, movers) -> np.ndarray:
        """Index of the next mover ahead on the same route, or -1 when it has the route alone."""
        leader = np.full(self.n, -1)
        groups: dict[bytes, list[int]] = {}
        for k, m in enumerate(movers):
            groups.setdefault(np.ascontiguousarray(m.route).tobytes(), []).append(k)
        for members in groups.values():
            if len(members) < 2:
                continue
            order = sorted(members, key=lambda k: (self.s[k], k))
            for i, k in enumerate(order):
                leader[k] = order[(i + 1) % len(order)]
        return leader

    # --- geometry ---------------------------------------------------------------------------

    def _pose(self, k: int, s: float) -> tuple[float, float, float]:
        # plain floats and bisect: called for every mover several times a tick
        pts, seg, lengths, cum = self._plain[k]
        s = s % self._total[k]
        i = min(bisect_right(cum, s) - 1, len(lengths) - 1)
        f = (s - cum[i]) / lengths[i]
        return (pts[i][0] + f * seg[i][0], pts[i][1] + f * seg[i][1],
                math.atan2(seg[i][1], seg[i][0]))

    def _clearance_one(self, k: int, s: float, xy: np.ndarray) -> float:
        """Distance from ``xy`` to mover ``k``'s footprint box when it is at arc length ``s``."""
        x, y, h = self._pose(k, s)
        c, si = math.cos(h), math.sin(h)
        dx, dy = xy[0] - x, xy[1] - y
        lx, ly = c * dx + si * dy, -si * dx + c * dy
        x0, x1, y0, y1 = self._box[k]
        ex = max(x0 - lx, 0.0, lx - x1)
        ey = max(y0 - ly, 0.0, ly - y1)
        return math.hypot(ex, ey)

    def poses(self) -> np.ndarray:
        """``float64 [M, 3]``: ``(x, y, heading_deg)`` of every mover now."""
        if self._poses is None:
            out = [self._pose(k, s) for k, s in enumerate(self.s.tolist())]
            self._poses = np.array([(x, y, math.degrees(h)) for x, y, h in out],
                                   dtype=np.float64).reshape(-1, 3)
        return self._poses.copy()

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """``float64 [M]``: distance from ``xy`` to each mover's footprint now (0 inside)."""
        p = np.asarray(xy, dtype=np.float64)
        return np.array([self._clearance_one(k, self.s[k], p) for k in range(self.n)])

    def near(self, xy: np.ndarray, distance: float) -> list[int]:
        """Indices of the movers whose footprint may lie within ``distance`` of ``xy`` now."""
        if self.n == 0:
            return []
        centre = np.hypot(*(self.poses()[:, :2] - np.asarray(xy, dtype=np.float64)[:2]).T)
        return np.flatnonzero(centre <= distance + self.size).tolist()

    def clearance_of(self, ks: list[int], points: np.ndarray) -> np.ndarray:
        """``float64 [P, len(ks)]``: distance from each of ``points`` ``[P, 2]`` to the
        footprints of movers ``ks`` now (0 inside); ``[len(ks)]`` for one point ``[2]``."""
        p = np.asarray(points, dtype=np.float64)
        flat = p.reshape(-1, 2)
        out = np.empty((len(flat), len(ks)))
        for j, k in enumerate(ks):
            (lx, ly), (cx, cy), _ = self._in_box(k, flat)
            out[:, j] = np.hypot(lx - cx, ly - cy)
        return out[0] if p.ndim == 1 else out

    def _in_box(self, k: int, points: np.ndarray) -> tuple[tuple, tuple, tuple]:
        """``points`` ``[P, 2]`` in mover ``k``'s own frame now, the nearest points of its
        footprint box there (both as ``(x, y)`` arrays), and its pose ``(x, y, cos, sin)``."""
        x, y, h = self._pose(k, float(self.s[k]))
        c, si = math.cos(h), math.sin(h)
        dx, dy = points[:, 0] - x, points[:, 1] - y
        lx, ly = c * dx + si * dy, -si * dx + c * dy
        x0, x1, y0, y1 = self._box[k]
        return (lx, ly), (np.clip(lx, x0, x1), np.clip(ly, y0, y1)), (x, y, c, si)

    def corners(self, k: int) -> np.ndarray:
        """``float64 [4, 2]``: the corners of mover ``k``'s footprint box now."""
        x, y, h = self._pose(k, float(self.s[k]))
        c, si = math.cos(h), math.sin(h)
        x0, x1, y0, y1 = self._box[k]
        local = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        return np.array([x, y]) + local @ np.array([[c, si], [-si, c]])

    def _ahead_gap(self, k: int, xy: np.ndarray) -> float:
        """Free route length ahead of mover ``k`` before it must stop for the agent at ``xy``
        (``inf`` when the agent is not in its path).

        Every stretch of the route that passes the agent counts, the nearest ahead first: a
        route that comes back the way it went (into a room and out again) passes the same spot
        twice, and the agent stands in the mover's way on the way back as well.
        """
        pts, seg, lengths, cum = self._routes[k]
        rel = xy - pts[:-1]
        t = np.clip((rel * seg).sum(axis=1) / lengths**2, 0.0, 1.0)
        near = pts[:-1] + t[:, None] * seg
        dist = np.hypot(*(near - xy).T)
        beside = dist <= self.half_width[k] + self.radius + SIDE_MARGIN
        if not beside.any():
            return math.inf
        ahead = float(((cum[:-1] + t * lengths - self.s[k]) % self.total[k])[beside].min())
        if ahead > self._reach[k]:
            return math.inf
        return ahead - self.x1[k] - self.radius - STOP_MARGIN

    def in_path(self, k: int, xy: np.ndarray) -> bool:
        """Whether an agent at ``xy`` stands in mover ``k``'s way (so it stops for it)."""
        return self._ahead_gap(k, np.asarray(xy, dtype=np.float64)) < math.inf

    def nearest(self, k: int, xy: np.ndarray) -> np.ndarray:
        """``float64 [2]``: the point of mover ``k``'s footprint now closest to ``xy``."""
        _, (lx, ly), (x, y, c, si) = self._in_box(k, np.asarray(xy, dtype=np.float64)[None, :2])
        return np.array([x + c * lx[0] - si * ly[0], y + si * lx[0] + c * ly[0]])

    # --- simulation -------------------------------------------------------------------------

    def step(self, agent_xy: np.ndarray) -> None:
        """Advance every mover one tick, yielding to the agent standing at ``agent_xy``."""
        xy = np.asarray(agent_xy, dtype=np.float64)[:2]
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise ValueError(f"agent_xy must be finite (x, y), got {agent_xy!r}")
        dt = self.dt
        s_old, v_old = self.s.copy(), self.v.copy()
        centre = np.hypot(*(self.poses()[:, :2] - xy).reshape(-1, 2).T)
        near = centre <= self._reach + np.maximum(-self.x0, self.x1) + self.half_width
        for k in range(self.n):
            target = self.cruise[k]
            if near[k]:
                gap = self._ahead_gap(k, xy)
                if gap < math.inf:
                    target = min(target, _stoppable(gap, dt))
            lead = self.leader[k]
            if lead >= 0:
                gap = self._follow_gap(k, lead, s_old[k], s_old)
                target = min(target, _stoppable(gap + v_old[lead] ** 2 / (2 * DECEL), dt))
            change = target - v_old[k]
            limit = (ACCEL if change > 0 else EMERGENCY_DECEL) * dt
            v = v_old[k] + float(np.clip(change, -limit, limit))
            s = s_old[k] + v * dt
            # a mover that is not near cannot reach the agent in one tick
            if v > 0 and (near[k] or lead >= 0) and not self._allowed(k, s_old[k], s, xy,
                                                                      s_old):
                s, v = s_old[k], 0.0  # the last resort: halt rather than touch the agent
            self.s[k], self.v[k] = s % self.total[k], v
        self._poses = None

    def _follow_gap(self, k: int, lead: int, s: float, s_all: np.ndarray) -> float:
        """Free route length between mover ``k`` at ``s`` and the back of the one ahead."""
        ahead = (s_all[lead] - s) % self.total[k]
        return ahead - self.x1[k] + self.x0[lead] - FOLLOW_GAP

    def _allowed(self, k: int, s_from: float, s_to: float, xy: np.ndarray,
                 s_all: np.ndarray) -> bool:
        """Whether moving mover ``k`` from ``s_from`` to ``s_to`` keeps it off the agent and
        the mover ahead (or at least no closer than it already is)."""
        after = self._clearance_one(k, s_to, xy)
        if after < self.keep and after < self._clearance_one(k, s_from, xy):
            return False
        lead = self.leader[k]
        if lead >= 0:
            after = self._follow_gap(k, lead, s_to, s_all) + FOLLOW_GAP
            if after < 0 and after < self._follow_gap(k, lead, s_from, s_all) + FOLLOW_GAP:
                return False
        return True


def _stoppable(gap: float, dt: float) -> float:
    """The highest speed from which one more tick at that speed and then a ``DECEL`` stop still
    ends within ``gap`` metres: ``v dt + v^2 / (2 DECEL) = gap``."""
    if gap <= 0.0:
        return 0.0
    a_dt = DECEL * dt
    return -a_dt + math.sqrt(a_dt * a_dt + 2.0 * DECEL * gap)
