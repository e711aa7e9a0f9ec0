"""How the built-in agent treats people (the world's movers): walking round them, giving way.

Someone standing on the path ahead is walked round, beside them and back to the path past them,
when there is room (:meth:`PeopleManners._around_people`). With no way round (a doorway), after
pressing against someone for ``give_way_notice_s``, or when stuck next to someone, the agent
gives way (:meth:`PeopleManners._give_way`): a step back and aside, out of their path where
there is room so they can walk on, and a short wait facing the same way; the controller then
walks on if the way is clear, waits again while they pass (or steps further aside if they still
wait for it) a few times, and else takes a fresh leg whose first metres keep clear of people
(:meth:`PeopleManners._near_people`). Movers stop for the agent, so without this both would wait
for each other.

:class:`PeopleManners` is a part of :class:`datagen.controller.Controller` kept in its
own module: it uses the controller's body, generator, profile, activity queue and giving-way
state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from datagen.keyboard import FACING, Want
from datagen.planner import MODES, Move, Pause, points_at
from datagen.rotation import wrap_deg

if TYPE_CHECKING:
    from datagen.controller import _Walk

# giving way to a person: the step back is tried straight away from them and turned by these
# angles (degrees; the side tried first is drawn), at the drawn distance and at half of it
GIVE_WAY_TURNS = (0.0, 25.0, 50.0, 75.0)  # under 90: every one of them moves away at once
GIVE_WAY_CLEAR_M = 0.25  # beyond the radius: the fresh leg's first metres keep this from people
GIVE_WAY_AHEAD_M = 4.0  # how many metres of the fresh leg are checked
STEP_BACK_ARRIVE_M = 0.08  # a step back out of someone's way is taken to its end
GIVE_WAY_TRIES = 4  # waits (or further steps back, if they still wait) before going elsewhere
# walking round people: the path is searched AROUND_LOOK_M ahead for someone in the way, and
# AROUND_PAST_M further for where it is free again; the detour keeps a berth of AROUND_CLEAR_M
# beyond the radius (the first if it can, else the squeeze); with no way round, someone within
# AROUND_CLOSE_M beyond the radius is given way to
AROUND_LOOK_M = 2.5
AROUND_PAST_M = 2.0
AROUND_REJOIN = 3  # path points (0.2 m apart) past the person where the detour rejoins it
AROUND_CLEAR_M = (0.2, 0.05)
AROUND_CLOSE_M = 0.5
STUCK_NEAR_M = 1.0  # a walk stuck with someone this close (beyond the radius) gives way to them


class PeopleManners:
    """The controller's people handling (see the module docstring)."""

    def _closest_mover(self, xy: np.ndarray, within: float) -> int:
        """The mover closest to ``xy`` if its footprint is within ``within`` beyond the
        radius, else -1."""
        traffic = self.body.traffic
        near = [] if traffic is None else traffic.near(xy, within + self.body.navmesh.agent_radius)
        if not near:
            return -1
        clearance = traffic.clearance_of(near, xy)
        k = int(np.argmin(clearance))
        return near[k] if clearance[k] < within + self.body.navmesh.agent_radius else -1

    def _around_people(self, xy: np.ndarray, walk: _Walk, carrot: np.ndarray,
                       to_goal: float) -> tuple[np.ndarray, int]:
        """``(carrot, blocker)``: the carrot moved to walk round anyone in the way, as a person
        steps round someone standing in the corridor.

        Someone is in the way when the next ``AROUND_LOOK_M`` of the path, or the straight line
        to the carrot, come within a berth of ``AROUND_CLEAR_M[0]`` beyond the radius of their
        footprint (or closer than the agent already is). The detour runs beside them, level
        with the first and the last point of the path in their way and offset across it by
        their footprint's extent plus radius and berth, then back to the path a little past
        them; every leg of it must lie on the mesh and keep the berth from everyone, else a
        narrower berth is tried. Of the two sides the one already taken is kept while it
        works (so the agent does not dither). The carrot heads for the farthest point of the
        detour in open sight. ``blocker`` is -1, -2 when someone
        stands on the goal within ``AROUND_LOOK_M``, or the mover to give way to when there is
        no way round and it is within ``AROUND_CLOSE_M``.
        """
        traffic = self.body.traffic
        radius = self.body.navmesh.agent_radius
        near = [] if traffic is None else traffic.near(xy, AROUND_LOOK_M + AROUND_PAST_M)
        if not near:
            self._side = 0.0
            return carrot, -1
        now = traffic.clearance_of(near, xy)

        def clear(points: np.ndarray, berth: float = AROUND_CLEAR_M[0]) -> np.ndarray:
            need = np.clip(now - 0.02, radius, radius + berth)
            return (traffic.clearance_of(near, points) >= need).all(axis=1)

        def open_line(a: np.ndarray, b: np.ndarray, berth: float) -> bool:
            steps = max(2, int(math.hypot(*(b - a)) / 0.1) + 1)
            points = a + np.linspace(0.0, 1.0, steps)[1:, None] * (b - a)
            return bool(clear(points, berth).all()) and self.body.navmesh.segment_clear(a, b)

        path, cum = walk.move.path, walk.cum
        along = walk.s + np.arange(0.2, AROUND_LOOK_M + AROUND_PAST_M, 0.2)
        along = along[along <= cum[-1]]
        ahead = points_at(path, cum, along)
        free = clear(ahead) if len(ahead) else np.ones(0, dtype=bool)
        line = xy + np.array([0.25, 0.5, 0.75, 1.0])[:, None] * (carrot - xy)
        soon = along < walk.s + AROUND_LOOK_M
        if free[soon].all() and clear(line).all():
            self._side = 0.0
            return carrot, -1
        if to_goal < AROUND_LOOK_M and not clear(path[-1:]).all():
            return carrot, -2
        blocked = np.flatnonzero(~free)
        first = int(blocked[0]) if blocked.size else 0
        past = np.flatnonzero(free[first + 1:])
        if past.size:
            last = first + int(past[0])  # the last point of the path in the way
            rejoin = ahead[min(last + 1 + AROUND_REJOIN, len(ahead) - 1)]
            k = near[int(np.argmin(traffic.clearance_of(near, ahead[first])))]
            tangent = ahead[min(last + 1, len(ahead) - 1)] - ahead[max(first - 1, 0)]
            normal = np.array([-tangent[1], tangent[0]]) / max(math.hypot(*tangent), 1e-9)
            spread = (traffic.corners(k) - ahead[first]) @ normal
            for berth in AROUND_CLEAR_M:
                targets = {}
                for side in (1.0, -1.0):
                    offset = side * ((spread.max() if side > 0 else -spread.min()) + radius
                                     + berth) * normal
                    chain = [ahead[first] + offset, ahead[last] + offset, rejoin]
                    # the farthest point of the chain in sight, and the rest of it open
                    seen = [j for j in range(3) if open_line(xy, chain[j], berth)]
                    if seen and all(open_line(chain[j], chain[j + 1], berth)
                                    for j in range(seen[-1], 2)):
                        targets[side] = chain[seen[-1]]
                if not targets:
                    continue
                if self._side not in targets:
                    self._side = min(targets, key=lambda s: math.hypot(*(targets[s] - xy)))
                target = targets[self._side]
                reach = math.hypot(*(carrot - xy))
                gap = math.hypot(*(target - xy))
                return (target if gap <= reach else xy + (target - xy) * (reach / gap)), -1
        closest = int(np.argmin(now))
        return carrot, near[closest] if now[closest] < radius + AROUND_CLOSE_M else -1

    def _give_way(self, xy: np.ndarray, k: int) -> Want | None:
        """Held up by mover ``k``: step back and aside, wait, then walk on clear of people;
        returns what to do now. Held up again while stepping back, the agent just stops there
        and waits.

        The step back is the most open of a few directions away from the mover's footprint
        (straight away, then turned further and further to either side), preferring one that
        leaves the mover's path (so it can walk on) and sideways to its heading; it is walked
        in the mode that keeps the camera facing about where it faced, as a person steps back
        from someone without turning away.
        """
        if self._giving_way and self._queue:
            return None  # (the step back ends here; the wait comes next)
        self._plan_give_way(xy, k)
        self.begin(self._queue.popleft())
        return self._want(xy)

    def _plan_give_way(self, xy: np.ndarray, k: int) -> None:
        """Queue the step back from mover ``k`` and the wait (see :meth:`_give_way`); a step
        back taken while already giving way (still in their path) keeps the walk to resume."""
        p, traffic, navmesh = self.profile, self.body.traffic, self.body.navmesh
        self.give_ways += 1
        away = xy - traffic.nearest(k, xy)
        if math.hypot(*away) < 1e-9:
            away = xy - traffic.poses()[k, :2]
        base = math.atan2(away[1], away[0])
        heading = math.radians(float(traffic.poses()[k, 2]))
        side = np.array([-math.sin(heading), math.cos(heading)])
        sign = 1.0 if self.rng.random() < 0.5 else -1.0
        length = float(self.rng.uniform(*p.give_way_back_m))
        everyone = list(range(traffic.n))
        keep = np.minimum(traffic.clearance(xy), navmesh.agent_radius + 0.05)
        best, best_score = None, -math.inf
        for scale in (1.0, 0.5):
            for turn in GIVE_WAY_TURNS:
                for turn_sign in ((sign, -sign) if turn else (1.0,)):
                    a = base + math.radians(turn_sign * turn)
                    direction = np.array([math.cos(a), math.sin(a)])
                    end = xy + scale * length * direction
                    steps = xy + np.array([0.25, 0.5, 0.75, 1.0])[:, None] * (end - xy)
                    if not navmesh.segment_clear(xy, end) or \
                            (traffic.clearance_of(everyone, steps) < keep).any():
                        continue
                    score = (math.cos(math.radians(turn)) + abs(float(direction @ side))
                             + (0.0 if traffic.in_path(k, end) else 1.0))
                    if score > best_score + 1e-9:
                        best, best_score = end, score
            if best is not None:
                break
        self._queue.clear()
        if best is not None:
            motion = math.degrees(math.atan2(*(best - xy)[::-1]))
            mode = min(MODES, key=lambda m: abs(wrap_deg(motion + FACING[m] - self.body.yaw)))
            self._queue.append(Move(path=np.array([xy, best]), gait="walk", mode=mode,
                                    arrive_m=STEP_BACK_ARRIVE_M))
        self._queue.append(Pause(float(self.rng.uniform(*p.give_way_wait_s))))
        if not self._giving_way:
            self._resume, self._yield_tries = self._rest_of_walk(), 1
        self._giving_way, self._yield_to = True, k

    def _near_people(self, path: np.ndarray) -> bool:
        """Whether the first ``GIVE_WAY_AHEAD_M`` of ``path`` come within ``GIVE_WAY_CLEAR_M``
        beyond the radius of a mover's footprint (or closer to it than the start is)."""
        traffic, radius = self.body.traffic, self.body.navmesh.agent_radius
        near = [] if traffic is None else traffic.near(path[0], GIVE_WAY_AHEAD_M + radius + 1.0)
        if not near:
            return False
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
        ahead = points_at(path, cum, np.arange(0.1, min(GIVE_WAY_AHEAD_M, cum[-1]) + 1e-9, 0.1))
        limit = np.minimum(radius + GIVE_WAY_CLEAR_M, traffic.clearance_of(near, path[0]) - 0.05)
        return bool((traffic.clearance_of(near, ahead) < limit).any())
