"""Plays like a person: turns the planner's activities into keys and mouse deltas, tick by tick.

Shared by every recorder backend: the controller sees the agent only through the small
:class:`Body` protocol (where the feet are, how fast they move, where the camera looks, the
navigation it walks on, the movers it meets), so the built-in engine's kinematics
(:mod:`datagen.builtin.body`) and an Unreal pawn read back each tick drive it alike.

:class:`Controller` follows the current activity: on a walk it steers towards a look-ahead point
on the path with the mouse (:mod:`datagen.mouse_hand`: eased, rate-limited, a little noisy,
sometimes overshooting) and picks the W/A/S/D combination closest to the wanted direction of
motion, plus shift for sprint legs, ctrl for crouch legs and short space taps for jumps
(:mod:`datagen.keyboard`, shared by every backend: minimum holds, hysteresis). Pauses, turns in
place and look-arounds use the mouse alone. A walk that makes no progress for ``stuck_s`` is
dropped and re-planned; keys that press straight into a wall corner are swapped for the
neighbouring combination that slides along it.

People (the world's movers) are walked round or given way to as a person would: the controller's
:class:`~datagen.manners.PeopleManners` part, in its own module (a body with no movers
has no one to meet). A wall met on the way
back to the path after walking round someone gets a fresh path to the same goal.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from datagen.keyboard import FACING, NO_KEYS, OCTANT_KEYS, KeyHand, Keys, Want, octant_keys
from datagen.manners import GIVE_WAY_TRIES, STUCK_NEAR_M, PeopleManners
from datagen.mouse_hand import DEADBAND_DEG, MouseHand
from datagen.navigation import Unreachable
from datagen.planner import (
    Activity,
    BehaviourProfile,
    LookAround,
    Move,
    Pause,
    Planner,
    TurnInPlace,
    point_at,
    points_at,
)
from datagen.rotation import wrap_deg

ARRIVE_M = 0.35
# pressed against a wall (keys held, slower than PINNED_SPEED m/s) for PINNED_TICKS: the keys
# are chosen among the wanted octant and its neighbours by the progress a test step makes
PINNED_SPEED = 0.03
PINNED_TICKS = 3
OFF_PATH_M = 0.3  # this far off the path, with a wall before the carrot: a fresh path to the goal


class Body(Protocol):
    """What the controller reads of the agent each tick (contract frame, metres, degrees).

    ``navmesh`` offers the :class:`~datagen.navigation.Navigator` calls plus ``agent_radius``,
    ``segment_clear(a, b)`` (a straight walk from ``a`` to ``b`` stays on the mesh) and
    ``clamp_step(a, b)`` (how far towards ``b`` a step from ``a`` gets); ``traffic`` is the
    movers (:class:`datagen.builtin.traffic.Traffic`'s queries) or ``None``; ``bumped`` the
    mover that refused the last step, ``-1`` when none did.
    """

    feet: np.ndarray  # [3]
    velocity: np.ndarray  # [3], m/s
    yaw: float
    pitch: float
    on_ground: bool
    bumped: int
    navmesh: Any
    traffic: Any

    @property
    def crouched(self) -> bool: ...

    def room_to_jump(self, points: np.ndarray) -> bool:
        """Whether a jump's highest head clears everything overhead at ``points`` ``[K, 2]``."""


@dataclass
class _Walk:
    """Progress along a :class:`Move`."""

    move: Move
    cum: np.ndarray  # arc length at each path point
    s: float = 0.0
    next_jump: int = 0


class Controller(PeopleManners):
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
                    self.body.room_to_jump(xy[None, :]):
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
        arrive = ARRIVE_M if walk.move.arrive_m is None else walk.move.arrive_m
        stop = max(arrive, speed * speed / (2 * p.decel))
        to_goal = math.hypot(*(path[-1] - xy))
        if to_goal < stop or (walk.s >= total - 1e-6 and to_goal < 1.0):
            return None

        look = 0.5 + 0.35 * max(speed, 1.0)
        carrot = point_at(path, cum, min(walk.s + look, total))
        if best_d > OFF_PATH_M and not self.body.navmesh.segment_clear(xy, carrot) and \
                self._reroute(xy):  # off the path (round someone) with a wall in between
            walk = self._walk
            path, cum, total = walk.move.path, walk.cum, float(walk.cum[-1])
            carrot = point_at(path, cum, min(look, total))
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
                self.body.room_to_jump(points_at(path, cum, walk.s + np.arange(0.0, flight, 0.2))):
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
