"""Behaviour layer: an endless, seeded sequence of things to do (walk somewhere, pause, look).

Engine-agnostic by design: the planner talks to navigation only through the two calls of
:class:`datagen.navigation.Navigator` (``find_path`` and ``random_point``), so the Unreal Engine
recorder runs it unchanged on top of Unreal's own NavMesh. Everything it draws comes from one
``numpy`` generator, so a seed fixes the whole sequence of activities, down to the bytes.

Activities are plain frozen dataclasses; a controller (``datagen.controller`` for the
built-in engine) turns them into keyboard state and mouse deltas tick by tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from datagen.navigation import Navigator, Unreachable

GAITS = ("walk", "sprint", "crouch")
# which way a leg is walked, named after the keys it holds: W, S, A, D, W+A, W+D, S+A, S+D
MODES = ("forward", "backward", "strafe_left", "strafe_right", "forward_left", "forward_right",
         "backward_left", "backward_right")
SPRINT_MODES = ("forward", "forward_left", "forward_right")  # shift sprints only with W held


@dataclass(frozen=True)
class BehaviourProfile:
    """The configurable action mix: how the agent chooses what to do and how it moves.

    Probabilities are per decision (per leg or per interlude); times are seconds, distances
    metres, speeds m/s, angles degrees. The planner reads the behaviour fields, the controller the
    mouse and key fields, the built-in kinematics the speed and body fields.
    """

    name: str = "explore"
    # --- between legs: after each walk, one interlude is drawn with these probabilities
    p_pause: float = 0.15  # stand still for a while
    p_turn_in_place: float = 0.10  # rotate on the spot, mouse only
    p_look_around: float = 0.15  # a few glances (yaw and pitch), mouse only
    pause_s: tuple[float, float] = (0.5, 2.5)
    turn_in_place_deg: tuple[float, float] = (45.0, 200.0)
    glances: tuple[int, int] = (2, 4)  # glances per look-around
    # each glance is a stroke of the mouse from the last one, in a direction drawn uniformly
    # round the compass, of a length drawn from glance_stroke_deg, kept within
    # glance_yaw_deg of the start heading and glance_pitch_deg of level
    glance_stroke_deg: tuple[float, float] = (20.0, 70.0)
    glance_yaw_deg: float = 100.0
    glance_pitch_deg: float = 30.0
    glance_dwell_s: tuple[float, float] = (0.3, 1.2)
    # --- goals
    p_near_goal: float = 0.35  # goal within near_goal_m of the agent
    p_revisit: float = 0.10  # go back to an earlier goal
    near_goal_m: float = 8.0
    # --- waypoint jitter: the path is resampled every jitter_spacing_m and inner points moved
    # sideways by a normal offset (sigma jitter_m); a jittered point that find_path cannot reach
    # (or reaches only by a detour) keeps its original position
    jitter_m: float = 0.6
    jitter_spacing_m: float = 6.0
    # --- gait and direction of a leg. A leg walked in any mode but forward is cut to a length
    # drawn from side_leg_m, a crouched leg to one from crouch_leg_m (people side-step and sneak
    # for a few metres, not across the map); forward walk and sprint legs go all the way
    p_sprint: float = 0.20  # legs with W held (forward or a forward diagonal) sprinted with shift
    p_crouch: float = 0.07  # legs crouched with ctrl
    p_strafe: float = 0.25  # legs walked sideways (A or D alone)
    p_backward: float = 0.15  # legs walked backwards (S alone)
    p_diagonal: float = 0.0  # legs walked on a diagonal (W+A, W+D, S+A or S+D)
    side_leg_m: tuple[float, float] = (1.5, 5.0)
    crouch_leg_m: tuple[float, float] = (1.5, 4.0)
    jumps_per_100m: float = 3.0  # jumps per 100 m walked standing, spread evenly-ish over the
    # walks (gaps of 0.5 to 1.5 times the mean, carried from leg to leg; where the world allows)
    p_jump_in_pause: float = 0.10
    # --- mouse (controller)
    max_turn_rate: float = 220.0  # deg/s
    turn_accel: float = 900.0  # deg/s^2: how fast the turn rate itself may change (smoothness)
    turn_gain: float = 5.0  # 1/s: turn rate = gain * heading error, before limits (easing)
    mouse_noise: float = 6.0  # deg/s of jitter on the turn rate while the hand moves the mouse
    rest_slack_deg: float = 0.3  # a resting hand starts when the aim is this far off
    p_overshoot: float = 0.3  # chance a large turn overshoots its target, then corrects
    overshoot_frac: float = 0.12
    pitch_wander_deg: float = 6.0  # spread of the idle pitch while walking
    pitch_wander_s: float = 3.0  # mean time between new idle pitch targets
    gaze_yaw_deg: float = 0.0  # spread of the yaw offset from a walk's direction, drawn with
    # each idle pitch (people glance aside while they walk on)
    p_pitch_with_turn: float = 0.0  # a steering stroke from rest also picks a new idle pitch
    pitch_limit: float = 80.0
    # --- keys (controller)
    min_hold_s: float = 0.2  # a movement key combination is held at least this long
    jump_tap_s: tuple[float, float] = (0.08, 0.2)  # how long space is held for a jump
    # --- speeds and body (built-in kinematics)
    walk_speed: float = 2.0
    sprint_speed: float = 4.5
    crouch_speed: float = 1.0
    backward_factor: float = 0.7  # speed factor when S is held
    strafe_factor: float = 0.85  # speed factor for pure A or D
    accel: float = 10.0  # m/s^2 towards a faster desired velocity
    decel: float = 14.0  # m/s^2 when slowing down or changing direction
    air_control: float = 0.25  # fraction of accel available in the air
    jump_speed: float = 4.0  # initial vertical speed of a jump
    gravity: float = 9.81
    crouch_eye_ratio: float = 0.6  # crouched eye height over standing eye height
    eye_rate: float = 2.5  # m/s the eye moves when crouching or standing up
    slope_slowdown: float = 1.2  # speed factor 1 - slowdown * grade (grade = rise over run)
    slope_factor_range: tuple[float, float] = (0.5, 1.1)
    # --- getting unstuck
    stuck_s: float = 1.5  # no progress for this long in a walk -> re-plan
    stuck_min_m: float = 0.25
    # --- giving way to people (controller): with no way round someone in the way, or after
    # pressing against them for give_way_notice_s, the agent steps back (and aside, out of their
    # path) by give_way_back_m and waits give_way_wait_s, then walks on if the way is clear,
    # else to a fresh goal by a path that keeps clear of the people around it
    give_way_notice_s: float = 0.3
    give_way_back_m: tuple[float, float] = (0.8, 1.5)
    give_way_wait_s: tuple[float, float] = (0.6, 1.8)

    def __post_init__(self) -> None:
        probs = {k: v for k, v in asdict(self).items() if k.startswith("p_")}
        bad = [f"{k}={v}" for k, v in probs.items() if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"profile {self.name!r}: probabilities must lie in [0, 1]: {bad}")
        if self.p_pause + self.p_turn_in_place + self.p_look_around > 1.0:
            raise ValueError(f"profile {self.name!r}: p_pause + p_turn_in_place + p_look_around "
                             "must not exceed 1")
        sums = {"p_near_goal + p_revisit": self.p_near_goal + self.p_revisit,
                "p_sprint + p_crouch": self.p_sprint + self.p_crouch,
                "p_strafe + p_backward + p_diagonal":
                    self.p_strafe + self.p_backward + self.p_diagonal}
        bad = [f"{k} = {v:g}" for k, v in sums.items() if v > 1.0 + 1e-12]
        if bad:
            raise ValueError(f"profile {self.name!r}: these sums must not exceed 1: {bad}")
        ranges = ("pause_s", "turn_in_place_deg", "glance_stroke_deg", "glance_dwell_s",
                  "side_leg_m", "crouch_leg_m", "jump_tap_s", "give_way_back_m",
                  "give_way_wait_s")
        bad = [f"{k}={getattr(self, k)}" for k in ranges
               if not 0.0 < getattr(self, k)[0] <= getattr(self, k)[1]]
        if bad:
            raise ValueError(f"profile {self.name!r}: these (low, high) ranges need "
                             f"0 < low <= high: {bad}")
        positive = ("walk_speed", "sprint_speed", "crouch_speed", "accel", "decel", "gravity",
                    "max_turn_rate", "turn_accel", "turn_gain", "eye_rate", "stuck_s",
                    "give_way_notice_s")
        bad = [f"{k}={getattr(self, k)}" for k in positive if getattr(self, k) <= 0]
        if bad:
            raise ValueError(f"profile {self.name!r}: these must be positive: {bad}")
        if not 0.0 < self.pitch_limit < 90.0:
            raise ValueError(f"profile {self.name!r}: pitch_limit must lie in (0, 90), "
                             f"got {self.pitch_limit}")


DEFAULT_PROFILE = "balanced"  # datagen record's: footage made for training (docs/recording.md)
PROFILES: dict[str, BehaviourProfile] = {
    # natural play: mostly W with turns, some sprint, occasional side and back steps, a little
    # crouching, rare jumps, pauses and look-arounds
    "explore": BehaviourProfile(
        p_pause=0.2, p_turn_in_place=0.1, p_look_around=0.2, p_sprint=0.25, p_crouch=0.12,
        p_strafe=0.08, p_backward=0.05, p_diagonal=0.1),
    # footage for training world models: every key, the key pairs and all 8 mouse directions
    # show up often (the goals in datagen.action_coverage; benchmarks/bench_action_mix.py)
    "balanced": BehaviourProfile(
        name="balanced", p_pause=0.1, p_turn_in_place=0.08, p_look_around=0.3, glances=(3, 6),
        glance_yaw_deg=60.0, glance_pitch_deg=45.0, p_near_goal=0.9, near_goal_m=10.0,
        p_sprint=0.25, p_crouch=0.12, p_strafe=0.25, p_backward=0.1, p_diagonal=0.4,
        side_leg_m=(2.0, 7.0), crouch_leg_m=(2.0, 5.0), jumps_per_100m=75.0,
        p_jump_in_pause=0.6, jump_tap_s=(0.1, 0.3), rest_slack_deg=4.0, pitch_wander_deg=20.0,
        pitch_wander_s=0.6, gaze_yaw_deg=12.0, p_pitch_with_turn=0.6),
    # slow walks, long pauses, gentle mouse
    "calm": BehaviourProfile(
        name="calm", p_pause=0.3, p_turn_in_place=0.05, p_look_around=0.2, pause_s=(1.5, 4.0),
        p_sprint=0.0, p_crouch=0.0, p_strafe=0.05, p_backward=0.02, jumps_per_100m=0.0,
        p_jump_in_pause=0.0, max_turn_rate=90.0, turn_accel=300.0, turn_gain=3.0,
        mouse_noise=2.0, p_overshoot=0.1, pitch_wander_deg=3.0),
}


@dataclass(frozen=True)
class Move:
    """Follow ``path`` ``[K, 2]`` with one gait; ``mode`` says which way the camera faces."""

    path: np.ndarray
    gait: str  # one of GAITS
    mode: str  # one of MODES: forward, backward (S), strafe_left (A), strafe_right (D)
    jumps: tuple[float, ...] = ()  # distances along the path where space is tapped
    arrive_m: float | None = None  # this close to the end counts as there (None: the
    # controller's default; a step back out of someone's way is taken to its end)

    def length(self) -> float:
        return _length(self.path)


@dataclass(frozen=True)
class Pause:
    """Stand still, hands off; optionally tap space half-way."""

    duration: float
    jump: bool = False


@dataclass(frozen=True)
class TurnInPlace:
    """Turn on the spot by ``angle`` degrees (positive = left), mouse only."""

    angle: float


@dataclass(frozen=True)
class LookAround:
    """Glances ``(yaw offset from the start heading, pitch, dwell seconds)``, mouse only."""

    glances: tuple[tuple[float, float, float], ...]


Activity = Move | Pause | TurnInPlace | LookAround
Avoid = Callable[[np.ndarray], bool]  # vetoes a candidate path [K, 2] when it returns True


class Quota:
    """Seeded draws from fixed probabilities whose counts stay close to their expected shares.

    Each draw adds every category's probability to its credit, picks a category with chance
    proportional to the positive credits (among ``allowed`` ones) and takes one off the
    winner's credit. So a category with probability ``p`` is drawn about ``p * n`` times in any
    ``n`` draws give or take one or two, where independent draws scatter by ``sqrt(p * n)``:
    short episodes get the mix the profile promises, and the order stays random.
    """

    def __init__(self, probabilities: dict[str, float]) -> None:
        self.names = tuple(probabilities)
        self.p = np.clip(np.array(list(probabilities.values()), dtype=np.float64), 0.0, None)
        self.credit = np.zeros(len(self.p))

    def draw(self, rng: np.random.Generator, allowed: tuple[str, ...] | None = None) -> str:
        """One category name; only names in ``allowed`` when given."""
        mask = np.array([allowed is None or n in allowed for n in self.names], dtype=np.float64)
        self.credit += self.p
        weights = np.clip(self.credit, 0.0, None) * mask
        if weights.sum() <= 0.0:
            weights = self.p * mask if (self.p * mask).sum() > 0.0 else mask
        k = int(rng.choice(len(weights), p=weights / weights.sum()))
        self.credit[k] -= 1.0
        return self.names[k]


class Planner:
    """Draws activities one at a time; deterministic for the generator it is given."""

    def __init__(self, navigator: Navigator, rng: np.random.Generator,
                 profile: BehaviourProfile, allow_jump: bool = True) -> None:
        self.navigator = navigator
        self.rng = rng
        self.profile = profile
        self.allow_jump = allow_jump
        self.goals: list[np.ndarray] = []  # goals of the legs planned so far (for revisits)
        self._moved_last = False
        self._to_jump = self._jump_gap() if profile.jumps_per_100m > 0 else math.inf
        p = profile
        self._interludes = Quota({"pause": p.p_pause, "turn": p.p_turn_in_place,
                                  "look": p.p_look_around,
                                  "none": 1.0 - p.p_pause - p.p_turn_in_place - p.p_look_around})
        self._gaits = Quota({"sprint": p.p_sprint, "crouch": p.p_crouch,
                             "walk": 1.0 - p.p_sprint - p.p_crouch})
        sideways = (p.p_strafe / 2,) * 2 + (p.p_diagonal / 4,) * 4
        self._modes = Quota(dict(zip(MODES, (1.0 - p.p_strafe - p.p_backward - p.p_diagonal,
                                             p.p_backward, *sideways), strict=True)))

    def next(self, position: np.ndarray) -> Activity:
        """The activity to start at ``position`` ``[2]``: a leg, or an interlude after a leg."""
        if self._moved_last:
            p, kind = self.profile, self._interludes.draw(self.rng)
            self._moved_last = False
            if kind == "pause":
                jump = self.allow_jump and self.rng.random() < p.p_jump_in_pause
                return Pause(float(self.rng.uniform(*p.pause_s)), jump)
            if kind == "turn":
                angle = self.rng.uniform(*p.turn_in_place_deg)
                return TurnInPlace(float(angle if self.rng.random() < 0.5 else -angle))
            if kind == "look":
                return self._look_around()
        return self.leg(position)

    def leg(self, position: np.ndarray, avoid: Avoid | None = None) -> Activity:
        """A walk from ``position`` to a fresh goal (also what a re-plan asks for).

        ``avoid(path)``, when given, vetoes a candidate path ``[K, 2]`` (after jitter): the
        controller passes one that keeps a re-planned leg clear of a person who blocked the
        way; the planner itself still knows nothing but paths. Falls back to a short pause
        when no goal can be reached from ``position`` (or every path is vetoed).
        """
        start = np.asarray(position, dtype=np.float64)
        for _ in range(20):
            goal = self._goal(start)
            try:
                path = self.navigator.find_path(start, goal)
            except Unreachable:
                continue
            if len(path) < 2 or np.hypot(*(path[-1] - path[0])) < 0.5:
                continue
            path = self.jitter(path)
            if avoid is not None and avoid(path):
                continue
            move = self._dress(path)
            self.goals.append(move.path[-1].copy())
            self._moved_last = True
            return move
        return Pause(0.5)

    def jitter(self, path: np.ndarray) -> np.ndarray:
        """Resample ``path`` every ``jitter_spacing_m``, move inner points sideways, re-path.

        Uses only ``find_path``: a jittered point it cannot reach, or reaches only by a detour
        (more than 1.5 times the direct distance plus a metre), keeps its original position.
        """
        p = self.profile
        points = _resample(np.asarray(path, dtype=np.float64), p.jitter_spacing_m)
        if p.jitter_m <= 0 or len(points) < 3:
            return points
        pieces = [points[:1]]
        current = points[0]
        for k in range(1, len(points)):
            original = points[k]
            candidates = [original]
            if k < len(points) - 1:
                tangent = points[k + 1] - points[k - 1]
                norm = np.hypot(*tangent)
                if norm > 1e-9:
                    normal = np.array([-tangent[1], tangent[0]]) / norm
                    offset = float(np.clip(self.rng.normal(0.0, p.jitter_m), -2 * p.jitter_m,
                                           2 * p.jitter_m))
                    candidates.insert(0, original + offset * normal)
            for target in candidates:
                try:
                    piece = self.navigator.find_path(current, target)
                except Unreachable:
                    continue
                direct = np.hypot(*(target - current))
                if target is not original and _length(piece) > 1.5 * direct + 1.0:
                    continue
                pieces.append(piece[1:])
                current = piece[-1]
                break
        return np.vstack(pieces)

    def _goal(self, start: np.ndarray) -> np.ndarray:
        p, u = self.profile, self.rng.random()
        if u < p.p_revisit and len(self.goals) > 1:
            return self.goals[int(self.rng.integers(len(self.goals) - 1))]
        if u < p.p_revisit + p.p_near_goal:
            best = None
            for _ in range(12):
                q = np.asarray(self.navigator.random_point(self.rng), dtype=np.float64)
                d = np.hypot(*(q - start))
                if 1.0 < d < p.near_goal_m:
                    return q
                if best is None or d < np.hypot(*(best - start)):
                    best = q
            return best
        # far: the farther of two uniform points spreads the walks over the whole map
        a, b = (np.asarray(self.navigator.random_point(self.rng), dtype=np.float64)
                for _ in range(2))
        return a if np.hypot(*(a - start)) >= np.hypot(*(b - start)) else b

    def _dress(self, path: np.ndarray) -> Move:
        """Choose gait, mode and jump spots for a leg along ``path``; cut side and crouch legs."""
        p = self.profile
        gait = self._gaits.draw(self.rng)
        mode = self._modes.draw(self.rng, SPRINT_MODES if gait == "sprint" else MODES)
        if mode != "forward":
            path = _cut(path, float(self.rng.uniform(*p.side_leg_m)))
        if gait == "crouch":
            path = _cut(path, float(self.rng.uniform(*p.crouch_leg_m)))
        jumps: list[float] = []
        if self.allow_jump and gait != "crouch" and p.jumps_per_100m > 0:
            length, walked = _length(path), 0.0
            while walked + self._to_jump <= length:
                walked += self._to_jump
                jumps.append(walked)
                self._to_jump = self._jump_gap()
            self._to_jump -= length - walked
        return Move(path=path, gait=gait, mode=mode, jumps=tuple(jumps))

    def _jump_gap(self) -> float:
        """Metres walked (standing) from one jump to the next: 0.5 to 1.5 times the mean gap."""
        return 100.0 / self.profile.jumps_per_100m * float(self.rng.uniform(0.5, 1.5))

    def _look_around(self) -> LookAround:
        """Glances as strokes in uniformly drawn directions (see ``glance_stroke_deg``), then
        back to the start heading, level."""
        p = self.profile
        n = int(self.rng.integers(p.glances[0], p.glances[1] + 1))
        yaw = pitch = 0.0
        glances = []
        for _ in range(n):
            angle = self.rng.uniform(0.0, 2 * math.pi)
            stroke = self.rng.uniform(*p.glance_stroke_deg)
            yaw = float(np.clip(yaw + stroke * math.cos(angle), -p.glance_yaw_deg,
                                p.glance_yaw_deg))
            pitch = float(np.clip(pitch + stroke * math.sin(angle), -p.glance_pitch_deg,
                                  p.glance_pitch_deg))
            glances.append((yaw, pitch, float(self.rng.uniform(*p.glance_dwell_s))))
        home = (0.0, 0.0, float(self.rng.uniform(*p.glance_dwell_s)))
        return LookAround((*glances, home))


def _length(path: np.ndarray) -> float:
    return float(np.hypot(*np.diff(path, axis=0).T).sum()) if len(path) > 1 else 0.0


def _cut(path: np.ndarray, length: float) -> np.ndarray:
    """The first ``length`` metres of ``path`` (all of it when it is shorter)."""
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    if length >= cum[-1]:
        return path
    k = int(np.searchsorted(cum, length, side="right"))  # first point beyond the cut
    t = (length - cum[k - 1]) / (cum[k] - cum[k - 1])
    return np.vstack([path[:k], path[k - 1] + t * (path[k] - path[k - 1])])


def _resample(path: np.ndarray, spacing: float) -> np.ndarray:
    """Insert points on every segment longer than ``spacing`` so none is longer."""
    out = [path[:1]]
    for a, b in zip(path[:-1], path[1:], strict=True):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / spacing)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + t * (b - a))
    return np.vstack(out)


def points_at(path: np.ndarray, cum: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``[len(s), 2]``: the points at arc lengths ``s`` along ``path`` (see :func:`point_at`)."""
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(path) - 2)
    span = cum[k + 1] - cum[k]
    t = np.clip(np.divide(s - cum[k], span, out=np.zeros(len(k)), where=span > 0), 0.0, 1.0)
    return path[k] + t[:, None] * (path[k + 1] - path[k])


def point_at(path: np.ndarray, cum: np.ndarray, s: float) -> np.ndarray:
    k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(path) - 2))
    span = cum[k + 1] - cum[k]
    t = 0.0 if span == 0 else (s - cum[k]) / span
    return path[k] + min(max(t, 0.0), 1.0) * (path[k + 1] - path[k])
