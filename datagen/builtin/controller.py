"""Plays like a person: turns the planner's activities into keys and mouse deltas, tick by tick.

:class:`Controller` follows the current activity: on a walk it steers towards a look-ahead point
on the path with the mouse (:mod:`datagen.mouse_hand`: eased, rate-limited, a little noisy,
sometimes overshooting) and picks the W/A/S/D combination closest to the wanted direction of
motion, plus shift for sprint legs, ctrl for crouch legs and short space taps for jumps
(:mod:`datagen.keyboard`, shared by every backend: minimum holds, hysteresis). Pauses, turns in
place and look-arounds use the mouse alone. A walk that makes no progress for ``stuck_s`` is
dropped and re-planned; keys that press straight into a wall corner are swapped for the
neighbouring combination that slides along it.

People (the world's movers) are treated as a person would. Someone standing on the path ahead
is walked round, beside them and back to the path past them, when there is room (see
``Controller._around_people``); a wall met on the way back to the path gets a fresh path to the
same goal. With no way round (a doorway), or after pressing against someone for
``give_way_notice_s``, or being stuck next to someone, the agent gives way: a step back and
aside, out of their path where there is room so they can walk on, a short wait facing the same
way, then the same walk if the way is clear now. If it is not, the agent waits again while they
pass, or steps further aside if they still wait for it (a door frame can cut a step back
short), a few times, before it takes a fresh leg whose first metres keep clear of the people
around. (Movers stop for the agent, so without this both would wait for each
other, the agent pressing against them with its keys held.)

:class:`Agent` is the facade the recorder uses: ``first()`` and ``step()`` return one
:class:`Tick` (one ``actions.csv`` row and the movers' poses) per frame, ``describe()`` what goes
into meta.json. The agent steps the world's :class:`~datagen.builtin.traffic.Traffic` after itself.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from datagen.builtin.body import HEAD_CLEARANCE, Body
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.spawn import spawn
from datagen.builtin.traffic import Traffic
from datagen.builtin.world import World
from datagen.episode import KEYS
from datagen.keyboard import FACING, NO_KEYS, OCTANT_KEYS, KeyHand, Keys, octant_keys
from datagen.mouse_hand import DEADBAND_DEG, MouseHand
from datagen.navigation import Unreachable
from datagen.planner import (
    DEFAULT_PROFILE,
    MODES,
    PROFILES,
    Activity,
    BehaviourProfile,
    LookAround,
    Move,
    Pause,
    Planner,
    TurnInPlace,
)
from datagen.rotation import wrap_deg

__all__ = ["PROFILES", "Agent", "BehaviourProfile", "Controller", "MouseHand", "Tick",
           "blocked_frames", "longest_stretch"]

Want = tuple[tuple[int, int, int, int], bool, bool]  # (w/s/a/d combination, shift, ctrl)
ARRIVE_M = 0.35
STEP_BACK_ARRIVE_M = 0.08  # a step back out of someone's way is taken to its end
# giving way to a person: the step back is tried straight away from them and turned by these
# angles (degrees; the side tried first is drawn), at the drawn distance and at half of it
GIVE_WAY_TURNS = (0.0, 25.0, 50.0, 75.0)  # under 90: every one of them moves away at once
GIVE_WAY_CLEAR_M = 0.25  # beyond the radius: the fresh leg's first metres keep this from people
GIVE_WAY_AHEAD_M = 4.0  # how many metres of the fresh leg are checked
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
# pressed against a wall (keys held, slower than PINNED_SPEED m/s) for PINNED_TICKS: the keys
# are chosen among the wanted octant and its neighbours by the progress a test step makes
PINNED_SPEED = 0.03
PINNED_TICKS = 3
OFF_PATH_M = 0.3  # this far off the path, with a wall before the carrot: a fresh path to the goal


@dataclass
class Tick:
    """One frame's row: the inputs that produced it and the camera pose after them, plus the
    movers' poses the frame shows (not logged)."""

    keys: Keys
    mouse_dx: float
    mouse_dy: float
    position: np.ndarray  # camera, world frame, metres [3]
    quat: np.ndarray  # camera-to-world (w, x, y, z) [4]
    yaw: float
    pitch: float
    roll: float
    velocity: np.ndarray  # agent (feet), world frame, m/s [3]
    fov: float
    movers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [M, 3] x, y, heading

    def row(self) -> dict[str, float | int]:
        """The contract's ``actions.csv`` columns, without ``frame`` and ``t``."""
        row: dict[str, float | int] = {
            f"key_{k}": int(v) for k, v in zip(KEYS, self.keys, strict=True)}
        row |= {"mouse_dx": float(self.mouse_dx), "mouse_dy": float(self.mouse_dy)}
        row |= {f"pos_{a}": float(v) for a, v in zip("xyz", self.position, strict=True)}
        row |= {f"q{a}": float(v) for a, v in zip("wxyz", self.quat, strict=True)}
        row |= {"yaw": float(self.yaw), "pitch": float(self.pitch), "roll": float(self.roll)}
        row |= {f"vel_{a}": float(v) for a, v in zip("xyz", self.velocity, strict=True)}
        row["fov"] = float(self.fov)
        return row


@dataclass
class _Walk:
    """Progress along a :class:`Move`."""

    move: Move
    cum: np.ndarray  # arc length at each path point
    s: float = 0.0
    next_jump: int = 0


class Controller:
    """Decides each tick's keys and mouse deltas for ``body`` from ``planner``'s activities."""

    def __init__(self, body: Body, planner: Planner, profile: BehaviourProfile,
                 rng: np.random.Generator, fps: int) -> None:
        self.body = body
        self.planner = planner
        self.profile = profile
        self.rng = rng
        self.fps = fps
        self.hand = MouseHand(profile, rng, fps)
        self.keys = KeyHand(profile, rng, fps)
        self.replans = 0  # walks dropped for lack of progress
        self.give_ways = 0  # times the agent gave way to someone
        self.reroutes = 0  # fresh paths to the same goal after walking round someone
        self.counts: Counter[str] = Counter()  # activities started, by kind
        self.activity: Activity | None = None
        self.yaw_u = body.yaw  # unwrapped yaw: the sum of every turn so far
        self._t = 0.0  # seconds into the current activity
        self._walk: _Walk | None = None
        self._glance = 0
        self._glance_t = 0.0
        self._glance_reached: float | None = None
        self._look_base = 0.0
        self._jump_at = math.inf
        self._history: deque[np.ndarray] = deque(maxlen=max(2, round(profile.stuck_s * fps)))
        self._idle_pitch, self._idle_yaw, self._wander_t = 0.0, 0.0, 0.0
        self.notice_ticks = max(1, round(profile.give_way_notice_s * fps))
        self._bumped_ticks = 0  # ticks lately that the body was refused a step by a mover
        self._pinned_ticks = 0  # ticks in a row with keys held and no motion
        self._queue: deque[Activity] = deque()  # the steps of giving way, before the planner's
        self._giving_way = False  # stepping back or waiting for someone
        self._resume: Move | None = None  # the walk given up for them, to take up again
        self._yield_to, self._yield_tries = -1, 0  # the mover given way to, steps back so far
        self._side = 0.0  # the side (+1 left, -1 right) people are being passed on, 0: none
        self.hand.set_aim(self.yaw_u, 0.0)

    def inputs(self) -> tuple[Keys, float, float]:
        """Keys and ``(mouse_dx, mouse_dy)`` for the next tick; advances the controller's clock."""
        xy = self.body.feet[:2].copy()
        combo, shift, ctrl = NO_KEYS, False, False
        for _ in range(8):  # an activity may finish at once; a few retries always settle
            if self.activity is None:
                self.begin(self._next(xy))
            want = self._want(xy)
            if want is not None:
                combo, shift, ctrl = want
                break
            self.activity = None
        self._wander_gaze()

        keys = self.keys.press(combo, shift, ctrl)
        dyaw, dpitch = self.hand.move(self.yaw_u, self.body.pitch)
        self.yaw_u += dyaw
        self._t += 1.0 / self.fps
        return keys, (-dyaw if dyaw else 0.0), dpitch

    # --- activities -------------------------------------------------------------------------

    def _next(self, xy: np.ndarray) -> Activity:
        """What comes after the current activity: the rest of giving way, then the planner's."""
        if self._queue:
            return self._queue.popleft()
        if self._giving_way:  # done waiting: walk on if the way is clear now, else elsewhere
            move = self._path_from(xy, self._resume)
            if move is not None and not self._near_people(move.path):
                self._giving_way = False
                return move
            k = self._yield_to
            if self._yield_tries < GIVE_WAY_TRIES:
                self._yield_tries += 1
                if self.body.traffic.in_path(k, xy):  # a door frame cut the step back short
                    self._plan_give_way(xy, k)
                    return self._queue.popleft()
                return Pause(float(self.rng.uniform(*self.profile.give_way_wait_s)))  # passing
            self._giving_way = False
            activity = self.planner.leg(xy, avoid=self._near_people)
            if isinstance(activity, Move):
                return activity
        return self.planner.next(xy)

    def begin(self, activity: Activity) -> None:
        """Start ``activity`` now; the planner supplies the ones after it."""
        self.activity = activity
        self.counts[type(activity).__name__] += 1
        self._t = 0.0
        self._bumped_ticks = self._pinned_ticks = 0
        self._history.clear()
        if isinstance(activity, Move):
            seg = np.hypot(*np.diff(activity.path, axis=0).T)
            self._walk = _Walk(activity, np.concatenate([[0.0], np.cumsum(seg)]))
        elif isinstance(activity, TurnInPlace):
            self.hand.set_aim(self.yaw_u + activity.angle, self._idle_pitch)
        elif isinstance(activity, LookAround):
            self._glance, self._glance_t, self._glance_reached = 0, 0.0, None
            self._look_base = self.yaw_u
        elif isinstance(activity, Pause) and activity.jump:
            self._jump_at = activity.duration / 2

    def _want(self, xy: np.ndarray) -> Want | None:
        """``(w/s/a/d combination, shift, ctrl)`` wanted now, or ``None`` once finished."""
        act = self.activity
        if isinstance(act, Move):
            return self._follow(xy)
        if isinstance(act, Pause):
            if self._t >= act.duration:
                return None
            if act.jump and self._t >= self._jump_at and self.body.on_ground and \
                    self._room_to_jump(xy[None, :]):
                self.keys.tap_space()
                self._jump_at = math.inf
            self.hand.set_aim(self.hand.aim[0], self._idle_pitch)
            return NO_KEYS, False, False
        if isinstance(act, TurnInPlace):
            timeout = abs(act.angle) / self.profile.max_turn_rate + 3.0
            done = abs(self.hand.aim[0] - self.yaw_u) < DEADBAND_DEG and self.hand.resting()
            return None if done or self._t > timeout else (NO_KEYS, False, False)
        if isinstance(act, LookAround):
            return self._look(act)
        raise TypeError(f"unknown activity {act!r}")

    def _follow(self, xy: np.ndarray) -> Want | None:
        walk, p = self._walk, self.profile
        path, cum = walk.move.path, walk.cum
        total = float(cum[-1])
        # ticks refused by a mover lately (a step that gets through only slows the count)
        self._bumped_ticks = (self._bumped_ticks + 1 if self.body.bumped >= 0
                              else max(0, self._bumped_ticks - 1))
        if self._bumped_ticks >= self.notice_ticks:
            return self._give_way(xy, self.body.bumped)
        # keys held and (nearly) no motion, with no one in the way: pressed against a wall
        pinned = self.keys.combo != NO_KEYS and \
            math.hypot(*self.body.velocity[:2]) < PINNED_SPEED
        self._pinned_ticks = self._pinned_ticks + 1 if pinned else 0
        self._history.append(xy)
        if len(self._history) == self._history.maxlen and \
                math.hypot(*(xy - self._history[0])) < p.stuck_min_m:
            k = self._closest_mover(xy, STUCK_NEAR_M)
            if k >= 0:  # dithering round someone who waits for the agent: let them pass
                return self._give_way(xy, k)
            self.replans += 1
            self.begin(self.planner.leg(xy))
            return self._want(xy)

        # progress: the best projection on the next few segments; never goes backwards
        first = int(np.clip(np.searchsorted(cum, walk.s, side="right") - 1, 0, len(path) - 2))
        best_d, best_s = math.inf, walk.s
        for k in range(first, min(first + 4, len(path) - 1)):
            a, b = path[k], path[k + 1]
            ab = b - a
            length2 = float(ab @ ab)
            t = 0.0 if length2 == 0 else float(np.clip((xy - a) @ ab / length2, 0.0, 1.0))
            d = math.hypot(*(a + t * ab - xy))
            if d < best_d:
                best_d, best_s = d, float(cum[k] + t * (cum[k + 1] - cum[k]))
        walk.s = max(walk.s, best_s)

        speed = math.hypot(*self.body.velocity[:2])
        stepping_back = self._giving_way and bool(self._queue)  # (the wait is queued next)
        stop = max(STEP_BACK_ARRIVE_M if stepping_back else ARRIVE_M,
                   speed * speed / (2 * p.decel))
        to_goal = math.hypot(*(path[-1] - xy))
        if to_goal < stop or (walk.s >= total - 1e-6 and to_goal < 1.0):
            return None

        look = 0.5 + 0.35 * max(speed, 1.0)
        carrot = _point_at(path, cum, min(walk.s + look, total))
        if best_d > OFF_PATH_M and not self.body.navmesh.segment_clear(xy, carrot) and \
                self._reroute(xy):  # off the path (round someone) with a wall in between
            walk = self._walk
            path, cum, total = walk.move.path, walk.cum, float(walk.cum[-1])
            carrot = _point_at(path, cum, min(look, total))
        if math.hypot(*(carrot - xy)) < 1e-6:
            carrot = path[-1]
        carrot, blocker = self._around_people(xy, walk, carrot, to_goal)
        if blocker == -2:
            return None  # someone stands on the goal: close enough
        if blocker >= 0:
            return self._give_way(xy, blocker)
        motion = math.degrees(math.atan2(carrot[1] - xy[1], carrot[0] - xy[0]))
        yaw = self.body.yaw
        aim = self.yaw_u + wrap_deg(motion + FACING[walk.move.mode] + self._idle_yaw - yaw)
        if self.hand.resting() and abs(aim - self.yaw_u) > max(p.rest_slack_deg, DEADBAND_DEG) \
                and self.rng.random() < p.p_pitch_with_turn:
            self._wander_t = 0.0  # a steering stroke that also looks up or down: a diagonal
            self._wander_gaze()
        self.hand.set_aim(aim, self._idle_pitch)
        rel = wrap_deg(motion - yaw)
        if self._pinned_ticks >= PINNED_TICKS:
            combo = OCTANT_KEYS[self._feel_along(xy, yaw, motion, round(rel / 45.0) % 8)]
        else:
            combo = octant_keys(rel, self.keys.combo)

        crouch = walk.move.gait == "crouch"
        jumps = walk.move.jumps
        flight = speed * 2 * p.jump_speed / p.gravity + self.body.navmesh.agent_radius
        if walk.next_jump < len(jumps) and walk.s >= jumps[walk.next_jump] and \
                self._room_to_jump(_points_at(path, cum, walk.s + np.arange(0.0, flight, 0.2))):
            walk.next_jump += 1  # (under a lintel the jump waits until past it)
            if self.body.on_ground and not crouch and not self.body.crouched:
                self.keys.tap_space()
        sprint = walk.move.gait == "sprint" and combo[0] == 1
        return combo, sprint, crouch

    def _feel_along(self, xy: np.ndarray, yaw: float, motion: float, octant: int) -> int:
        """The octant (of ``octant`` and its two neighbours) whose direction gets furthest
        towards ``motion`` (degrees) by a short test step against the walls: a corner the
        quantised keys press straight into is slid out of, as a person feels along a wall."""
        wanted = np.array([math.cos(math.radians(motion)), math.sin(math.radians(motion))])

        def progress(o: int) -> float:
            a = math.radians(yaw + 45.0 * o)
            step = self.body.navmesh.clamp_step(xy, xy + 0.1 * np.array([math.cos(a),
                                                                         math.sin(a)]))
            return float((step - xy) @ wanted)

        return max((octant, (octant + 1) % 8, (octant - 1) % 8), key=progress)

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

    def _reroute(self, xy: np.ndarray) -> bool:
        """Off the path with a wall between the agent and it (after walking round someone): a
        fresh path to the same goal from here, walked the same way, becomes the current walk
        (False if there is none). The stuck check counts on, so a goal that stays out of reach
        is still given up."""
        move = self._path_from(xy, self._rest_of_walk())
        if move is None:
            return False
        self.reroutes += 1
        self.activity = move
        seg = np.hypot(*np.diff(move.path, axis=0).T)
        self._walk = _Walk(move, np.concatenate([[0.0], np.cumsum(seg)]))
        return True

    def _rest_of_walk(self) -> Move:
        """The current walk, its jumps counted from where the agent is along it."""
        walk = self._walk
        jumps = tuple(j - walk.s for j in walk.move.jumps[walk.next_jump:] if j > walk.s)
        return replace(walk.move, jumps=jumps)

    def _path_from(self, xy: np.ndarray, move: Move | None) -> Move | None:
        """``move`` with a fresh path from ``xy`` to its goal, or None if there is none."""
        if move is None:
            return None
        try:
            path = self.body.navmesh.find_path(xy, move.path[-1])
        except Unreachable:
            return None
        return replace(move, path=path) if len(path) >= 2 else None

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
        ahead = _points_at(path, cum, along)
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
            self._queue.append(Move(path=np.array([xy, best]), gait="walk", mode=mode))
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
        ahead = _points_at(path, cum, np.arange(0.1, min(GIVE_WAY_AHEAD_M, cum[-1]) + 1e-9, 0.1))
        limit = np.minimum(radius + GIVE_WAY_CLEAR_M, traffic.clearance_of(near, path[0]) - 0.05)
        return bool((traffic.clearance_of(near, ahead) < limit).any())

    def _look(self, act: LookAround) -> Want | None:
        if self._glance >= len(act.glances):
            return None
        dyaw, pitch, dwell = act.glances[self._glance]
        self.hand.set_aim(self._look_base + dyaw, pitch)
        self._glance_t += 1.0 / self.fps
        if self._glance_reached is None:
            close = abs(self.hand.aim[0] - self.yaw_u) < 2.0 and \
                abs(self.hand.aim[1] - self.body.pitch) < 2.0
            if close or self._glance_t > 2.5:
                self._glance_reached = self._glance_t
        elif self._glance_t - self._glance_reached >= dwell:
            self._glance, self._glance_t, self._glance_reached = self._glance + 1, 0.0, None
        return NO_KEYS, False, False

    def _room_to_jump(self, points: np.ndarray) -> bool:
        """Whether a jump's highest head clears everything overhead at ``points`` ``[K, 2]``
        (people do not jump into a door's lintel)."""
        p, world = self.profile, self.body.world
        apex = world.eye_height + HEAD_CLEARANCE + p.jump_speed**2 / (2 * p.gravity)
        radius = self.body.navmesh.agent_radius
        return all(world.headroom(q, radius) >= apex for q in points)

    def _wander_gaze(self) -> None:
        """Now and then pick a new idle pitch, and a yaw offset from the way a walk goes, as
        people glance up, down and aside while walking."""
        p = self.profile
        self._wander_t -= 1.0 / self.fps
        if self._wander_t <= 0:
            self._wander_t = float(self.rng.exponential(p.pitch_wander_s))
            spread = p.pitch_wander_deg
            self._idle_pitch = float(np.clip(self.rng.normal(0.0, spread), -2 * spread,
                                             2 * spread))
            if p.gaze_yaw_deg > 0:
                spread = p.gaze_yaw_deg
                self._idle_yaw = float(np.clip(self.rng.normal(0.0, spread), -2 * spread,
                                               2 * spread))


def _points_at(path: np.ndarray, cum: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``[len(s), 2]``: the points at arc lengths ``s`` along ``path`` (see ``_point_at``)."""
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(path) - 2)
    span = cum[k + 1] - cum[k]
    t = np.clip(np.divide(s - cum[k], span, out=np.zeros(len(k)), where=span > 0), 0.0, 1.0)
    return path[k] + t[:, None] * (path[k + 1] - path[k])


def _point_at(path: np.ndarray, cum: np.ndarray, s: float) -> np.ndarray:
    k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(path) - 2))
    span = cum[k + 1] - cum[k]
    t = 0.0 if span == 0 else (s - cum[k]) / span
    return path[k] + min(max(t, 0.0), 1.0) * (path[k + 1] - path[k])


class Agent:
    """The built-in agent: planner, controller and kinematics behind ``first()`` / ``step()``."""

    def __init__(self, world: World, navmesh: NavMesh, seed: int, fps: int, fov: float = 90.0,
                 profile: BehaviourProfile = PROFILES[DEFAULT_PROFILE]) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(fps, (int, np.integer)) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if not 0.0 < fov < 180.0:
            raise ValueError(f"fov must lie in (0, 180) degrees, got {fov}")
        self.world, self.navmesh, self.seed, self.fps = world, navmesh, int(seed), int(fps)
        self.fov, self.profile = float(fov), profile
        start_rng, plan_rng, hand_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(3))
        self.start_xy, self.start_yaw = spawn(world, navmesh, start_rng)
        self.traffic = Traffic(world, self.fps, navmesh.agent_radius, self.start_xy)
        self.body = Body(world, navmesh, profile, self.start_xy, self.start_yaw, self.fps,
                         traffic=self.traffic)
        planner = Planner(navmesh, plan_rng, profile, allow_jump=world.allow_jump)
        self.controller = Controller(self.body, planner, profile, hand_rng, self.fps)
        self.frames = 0

    def first(self) -> Tick:
        """Frame 0: no inputs, the initial pose (random reachable start, open heading)."""
        if self.frames:
            raise RuntimeError("first() must come before any step()")
        return self._tick((0,) * 7, 0.0, 0.0)

    def step(self) -> Tick:
        """Advance one tick (``1 / fps`` seconds) and return the new frame's row."""
        keys, dx, dy = self.controller.inputs()
        self.body.apply(keys, dx, dy)
        self.traffic.step(self.body.feet[:2])
        self.frames += 1
        return self._tick(keys, dx, dy)

    def describe(self) -> dict:
        """What meta.json's ``engine.agent`` records: profile, body, speeds, start, counters."""
        return {
            "profile": self.profile.name,
            "profile_values": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in asdict(self.profile).items()},
            "agent_radius": self.navmesh.agent_radius,
            "eye_height": float(self.world.eye_height),
            "crouch_eye_height": float(self.world.eye_height * self.profile.crouch_eye_ratio),
            "max_speeds": {"walk": self.profile.walk_speed, "sprint": self.profile.sprint_speed,
                           "crouch": self.profile.crouch_speed},
            "allow_jump": bool(self.world.allow_jump),
            "fps": self.fps, "fov": self.fov, "seed": self.seed,
            "start": [float(v) for v in self.start_xy], "start_yaw": self.start_yaw,
            "replans": self.controller.replans,
            "give_ways": self.controller.give_ways, "reroutes": self.controller.reroutes,
            "activities": dict(sorted(self.controller.counts.items())),
        }

    def _tick(self, keys: Keys, dx: float, dy: float) -> Tick:
        b = self.body
        return Tick(keys=tuple(int(k) for k in keys), mouse_dx=float(dx), mouse_dy=float(dy),
                    position=b.camera_position, quat=b.quat.copy(), yaw=b.yaw, pitch=b.pitch,
                    roll=b.roll, velocity=b.velocity.copy(), fov=self.fov,
                    movers=self.traffic.poses())


BLOCKED_STEP_M = 1e-3  # a frame that moves the agent less than this has not moved it


def blocked_frames(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``bool [N]``: frames where a movement key (W/S/A/D) is held while the horizontal
    position has not changed (by ``BLOCKED_STEP_M``) this frame nor the one before: the agent
    pressing against something (a wall's collision may still slide it by a hair).
    ``keys`` ``[N, 7]`` in the contract's order, ``positions`` ``[N, 2+]``."""
    keys, xy = np.asarray(keys), np.asarray(positions, dtype=np.float64)[:, :2]
    still = np.hypot(*np.diff(xy, axis=0).T) < BLOCKED_STEP_M
    out = np.zeros(len(xy), dtype=bool)
    out[2:] = still[1:] & still[:-1]
    return out & keys[:, :4].any(axis=1).astype(bool)


def longest_stretch(mask: np.ndarray) -> int:
    """Length of the longest run of ``True`` in ``mask``."""
    edges = np.diff(np.r_[0, np.asarray(mask, dtype=np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((stops - starts).max()) if starts.size else 0
