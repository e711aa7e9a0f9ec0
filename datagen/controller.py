"""Plays like a person: turns the planner's activities into keys and mouse deltas, tick by tick.

:class:`Controller` follows the current activity: on a walk it steers towards a look-ahead point
on the path with the mouse (eased, rate-limited, a little noisy, sometimes overshooting) and
picks the W/A/S/D combination closest to the wanted direction of motion (held at least
``min_hold_s``, with hysteresis), plus shift for sprint legs, ctrl for crouch legs and short
space taps for jumps. Pauses, turns in place and look-arounds use the mouse alone. A walk that
makes no progress for ``stuck_s`` is dropped and re-planned.

:class:`Agent` is the facade the recorder uses: ``first()`` and ``step()`` return one
:class:`Tick` (one ``actions.csv`` row and the movers' poses) per frame, ``describe()`` what goes
into meta.json. The agent steps the world's :class:`~datagen.traffic.Traffic` after itself.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import asdict, dataclass, field

import numpy as np

from datagen.agent import Body, Keys
from datagen.episode import KEYS
from datagen.navmesh import NavMesh
from datagen.planner import (
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
from datagen.traffic import Traffic
from datagen.world import World

__all__ = ["PROFILES", "Agent", "BehaviourProfile", "Controller", "MouseHand", "Tick"]

# (w, s, a, d) for a motion direction octant * 45 degrees left of the heading
OCTANT_KEYS = ((1, 0, 0, 0), (1, 0, 1, 0), (0, 0, 1, 0), (0, 1, 1, 0),
               (0, 1, 0, 0), (0, 1, 0, 1), (0, 0, 0, 1), (1, 0, 0, 1))
NO_KEYS = (0, 0, 0, 0)
Want = tuple[tuple[int, int, int, int], bool, bool]  # (w/s/a/d combination, shift, ctrl)
# camera heading minus direction of motion, per mode (strafe_left: motion 90 degrees left)
FACING = {"forward": 0.0, "backward": 180.0, "strafe_left": -90.0, "strafe_right": 90.0,
          "forward_left": -45.0, "forward_right": 45.0, "backward_left": -135.0,
          "backward_right": 135.0}
OCTANT_HYSTERESIS = 15.0  # degrees beyond the octant's half width before the keys change
ARRIVE_M = 0.35
DEADBAND_DEG = 0.3  # the hand rests once the aim is this close and the turn slow
REST_RATE = 20.0  # deg/s: below this a hand inside the dead band stops
NOISE_TAU_S = 0.15  # correlation time of the hand's jitter
NOISE_FULL_RATE = 30.0  # deg/s: the jitter grows with the turn rate up to this


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


class MouseHand:
    """Moves the camera towards an aim like a hand on a mouse.

    Per axis the turn rate is ``turn_gain * error`` (easing in near the aim), limited to
    ``max_turn_rate`` and changed by at most ``turn_accel`` per second; jitter proportional to
    the rate rides on it; a large new yaw aim is sometimes overshot, then corrected. Inside a
    small dead band the hand rests and the mouse reads exactly zero.
    """

    def __init__(self, profile: BehaviourProfile, rng: np.random.Generator, fps: int) -> None:
        self.profile = profile
        self.rng = rng
        self.dt = 1.0 / fps
        self.rate = np.zeros(2)  # yaw, pitch in deg/s
        self.noise = np.zeros(2)
        self.aim = np.zeros(2)  # yaw (unwrapped), pitch
        self.overshoot = 0.0
        self._decay = math.exp(-self.dt / NOISE_TAU_S)

    def set_aim(self, yaw: float, pitch: float) -> None:
        """Aim at unwrapped ``yaw`` and ``pitch`` (clipped inside the pitch limit)."""
        p = self.profile
        jump = yaw - self.aim[0]
        if abs(jump) > 30.0 and self.rng.random() < p.p_overshoot:
            self.overshoot = p.overshoot_frac * jump
        self.aim = np.array([yaw, float(np.clip(pitch, -p.pitch_limit + 1, p.pitch_limit - 1))])

    def resting(self) -> bool:
        return not self.rate.any()

    def move(self, yaw: float, pitch: float) -> tuple[float, float]:
        """This tick's ``(dyaw, dpitch)`` in degrees from unwrapped ``yaw`` and ``pitch``."""
        p, dt = self.profile, self.dt
        error = self.aim - np.array([yaw, pitch])
        if self.overshoot and abs(error[0] + self.overshoot) < 1.5:
            self.overshoot = 0.0
        error[0] += self.overshoot
        out = [0.0, 0.0]
        for axis in range(2):
            e = float(error[axis])
            if abs(e) < DEADBAND_DEG and abs(self.rate[axis]) < REST_RATE:
                self.rate[axis] = self.noise[axis] = 0.0
                continue
            desired = float(np.clip(p.turn_gain * e, -p.max_turn_rate, p.max_turn_rate))
            step = p.turn_accel * dt
            self.rate[axis] += float(np.clip(desired - self.rate[axis], -step, step))
            sigma = p.mouse_noise * min(1.0, abs(desired) / NOISE_FULL_RATE)
            self.noise[axis] = (self._decay * self.noise[axis]
                                + math.sqrt(1 - self._decay**2) * sigma * self.rng.normal())
            out[axis] = (self.rate[axis] + self.noise[axis]) * dt
        limit = p.pitch_limit
        out[1] = float(np.clip(pitch + out[1], -limit, limit) - pitch) if out[1] else 0.0
        return out[0], out[1]


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
        self.hold_ticks = max(1, round(profile.min_hold_s * fps))
        self.tap_ticks = max(1, round(profile.jump_tap_s * fps))
        self.replans = 0
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
        self._combo, self._combo_ticks = NO_KEYS, 0
        self._mods = {"shift": 0, "ctrl": 0}  # ticks held so far (0 = released)
        self._space_left = 0
        self._idle_pitch, self._wander_t = 0.0, 0.0
        self.hand.set_aim(self.yaw_u, 0.0)

    def inputs(self) -> tuple[Keys, float, float]:
        """Keys and ``(mouse_dx, mouse_dy)`` for the next tick; advances the controller's clock."""
        xy = self.body.feet[:2].copy()
        combo, shift, ctrl = NO_KEYS, False, False
        for _ in range(8):  # an activity may finish at once; a few retries always settle
            if self.activity is None:
                self.begin(self.planner.next(xy))
            want = self._want(xy)
            if want is not None:
                combo, shift, ctrl = want
                break
            self.activity = None
        self._wander_pitch()

        if combo != self._combo and self._combo_ticks < self.hold_ticks and self._combo != NO_KEYS:
            combo = self._combo  # keep a fresh combination for its minimum hold
        self._combo_ticks = self._combo_ticks + 1 if combo == self._combo else 1
        self._combo = combo
        held = {}
        for name, want_key in (("shift", shift), ("ctrl", ctrl)):
            ticks = self._mods[name]
            on = want_key or 0 < ticks < self.hold_ticks
            self._mods[name] = ticks + 1 if on else 0
            held[name] = int(on)
        space = int(self._space_left > 0)
        self._space_left = max(0, self._space_left - 1)

        dyaw, dpitch = self.hand.move(self.yaw_u, self.body.pitch)
        self.yaw_u += dyaw
        self._t += 1.0 / self.fps
        keys = (*combo, space, held["shift"], held["ctrl"])
        return keys, (-dyaw if dyaw else 0.0), dpitch

    # --- activities -------------------------------------------------------------------------

    def begin(self, activity: Activity) -> None:
        """Start ``activity`` now; the planner supplies the ones after it."""
        self.activity = activity
        self.counts[type(activity).__name__] += 1
        self._t = 0.0
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
            if act.jump and self._t >= self._jump_at and self.body.on_ground:
                self._tap_space()
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
        self._history.append(xy)
        if len(self._history) == self._history.maxlen and \
                math.hypot(*(xy - self._history[0])) < p.stuck_min_m:
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
        stop = max(ARRIVE_M, speed * speed / (2 * p.decel))
        to_goal = math.hypot(*(path[-1] - xy))
        if to_goal < stop or (walk.s >= total - 1e-6 and to_goal < 1.0):
            return None

        look = 0.5 + 0.35 * max(speed, 1.0)
        carrot = _point_at(path, cum, min(walk.s + look, total))
        if math.hypot(*(carrot - xy)) < 1e-6:
            carrot = path[-1]
        motion = math.degrees(math.atan2(carrot[1] - xy[1], carrot[0] - xy[0]))
        yaw = self.body.yaw
        self.hand.set_aim(self.yaw_u + wrap_deg(motion + FACING[walk.move.mode] - yaw),
                          self._idle_pitch)
        rel = wrap_deg(motion - yaw)
        octant = round(rel / 45.0) % 8
        if self._combo in OCTANT_KEYS:
            current = OCTANT_KEYS.index(self._combo)
            if abs(wrap_deg(rel - 45.0 * current)) < 22.5 + OCTANT_HYSTERESIS:
                octant = current
        combo = OCTANT_KEYS[octant]

        crouch = walk.move.gait == "crouch"
        jumps = walk.move.jumps
        if walk.next_jump < len(jumps) and walk.s >= jumps[walk.next_jump]:
            walk.next_jump += 1
            if self.body.on_ground and not crouch and not self.body.crouched:
                self._tap_space()
        sprint = walk.move.gait == "sprint" and combo[0] == 1
        return combo, sprint, crouch

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

    def _tap_space(self) -> None:
        self._space_left = self.tap_ticks

    def _wander_pitch(self) -> None:
        """Now and then pick a new idle pitch, as people glance up and down while walking."""
        p = self.profile
        self._wander_t -= 1.0 / self.fps
        if self._wander_t <= 0:
            self._wander_t = float(self.rng.exponential(p.pitch_wander_s))
            spread = p.pitch_wander_deg
            self._idle_pitch = float(np.clip(self.rng.normal(0.0, spread), -2 * spread,
                                             2 * spread))


def _point_at(path: np.ndarray, cum: np.ndarray, s: float) -> np.ndarray:
    k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(path) - 2))
    span = cum[k + 1] - cum[k]
    t = 0.0 if span == 0 else (s - cum[k]) / span
    return path[k] + min(max(t, 0.0), 1.0) * (path[k + 1] - path[k])


def open_heading(navmesh: NavMesh, xy: np.ndarray, rng: np.random.Generator,
                 clear_m: float = 6.0, tries: int = 12) -> float:
    """A random heading (degrees) with at least ``clear_m`` of free walking ahead, as a player
    would face after spawning; the most open of ``tries`` random headings if none is that clear.
    """
    best, best_free = 0.0, -1.0
    for yaw in rng.uniform(-180.0, 180.0, tries):
        direction = np.array([math.cos(math.radians(yaw)), math.sin(math.radians(yaw))])
        free = next((d for d in (clear_m, clear_m / 2, clear_m / 4, 0.0)
                     if d == 0.0 or navmesh.segment_clear(xy, xy + d * direction)), 0.0)
        if free >= clear_m:
            return float(yaw)
        if free > best_free:
            best, best_free = float(yaw), free
    return best


class Agent:
    """The built-in agent: planner, controller and kinematics behind ``first()`` / ``step()``."""

    def __init__(self, world: World, navmesh: NavMesh, seed: int, fps: int, fov: float = 90.0,
                 profile: BehaviourProfile = PROFILES["explore"]) -> None:
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
        self.start_xy = np.asarray(navmesh.random_point(start_rng), dtype=np.float64)
        self.start_yaw = open_heading(navmesh, self.start_xy, start_rng)
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
            "activities": dict(sorted(self.controller.counts.items())),
        }

    def _tick(self, keys: Keys, dx: float, dy: float) -> Tick:
        b = self.body
        return Tick(keys=tuple(int(k) for k in keys), mouse_dx=float(dx), mouse_dy=float(dy),
                    position=b.camera_position, quat=b.quat.copy(), yaw=b.yaw, pitch=b.pitch,
                    roll=b.roll, velocity=b.velocity.copy(), fov=self.fov,
                    movers=self.traffic.poses())

