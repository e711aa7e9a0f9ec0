"""The model-based key decoder behind ``curation annotate`` (see :mod:`curation.annotate`).

Two Viterbi decoders (the minimum-cost state sequence over the whole trajectory, so every
decision also sees the frames after it), each with a small body model as its motion model.
Costs are negative log-likelihoods; the settings are :class:`~curation.annotate.AnnotateConfig`.

1. **Vertical** (:func:`decode_vertical`): camera height = feet + eye. States: how far the eye
   is lowered (a grid over ``crouch_drop``; ctrl lowers it at ``eye_rate``, releasing ctrl raises
   it), ctrl, and on the ground or airborne. On the ground the feet's vertical speed follows the
   terrain (a running median of the camera's); in the air it is ballistic from a take-off
   (``jump_vz``, ``gravity``). Emission: the mismatch between the observed vertical speed and the
   state's. Gives ctrl, space (take-offs) and the airborne frames.
2. **Horizontal** (:func:`decode_horizontal`): movement octant (or none) x shift, with ctrl and
   airborne from step 1. Each state commands a velocity (direction: the octant in the camera's
   yaw frame; speed: gait, strafe and backward factors, ground slope) and predicts the next
   velocity from the observed current one with bounded acceleration (``accel`` towards a faster
   command, ``decel`` otherwise, times ``air_control`` in the air). Emission: the mismatch
   between predicted and observed velocity, or a wall contact: a wall takes away the predicted
   velocity's part along its normal, so the observed velocity lies on the circle over the
   diameter from 0 to the prediction (inside it on the first frame of a contact). After an
   abrupt stop (faster than ``decel``: something stopped the body) keys pushing that way are
   cheaper than released for up to ``contact_hold_s``. States carry their age, so a key
   combination changed before ``min_press_frames`` costs extra.

:func:`estimate_dynamics` measures walk, sprint and crouch speeds, strafe and backward factors,
acceleration and deceleration on the trajectory (modes of steady speeds and of ramp steps) where
it has enough of them; :func:`ground_grade` fits the ground's slope to the feet positions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from curation.annotate import AnnotateConfig

# (w, s, a, d) of movement state m: 0 = no key, m = 1 + k for octant k (k * 45 degrees left of
# the heading)
MOVE_KEYS = np.array([(0, 0, 0, 0), (1, 0, 0, 0), (1, 0, 1, 0), (0, 0, 1, 0), (0, 1, 1, 0),
                      (0, 1, 0, 0), (0, 1, 0, 1), (0, 0, 0, 1), (1, 0, 0, 1)], dtype=np.int64)
_GRID = 4  # eye-offset grid cells per frame of eye motion
_SLOPE_STEPS = 3  # slope factors tried on each side of the measured one
_LEVEL = 0.01  # ground with a smaller gradient (rise per metre) is level


@dataclass(frozen=True)
class Dynamics:
    """The body model the horizontal decoder uses (m/s, m/s^2) and the noise levels; see
    AnnotateConfig."""

    walk_speed: float
    sprint_speed: float
    crouch_speed: float
    strafe_factor: float
    backward_factor: float
    accel: float
    decel: float
    velocity_noise: float = 0.0  # m/s, the noise levels decoded with
    vertical_noise: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {f.name: round(float(getattr(self, f.name)), 4) for f in fields(self)}


@dataclass(frozen=True)
class Vertical:
    """Per frame: ctrl held, airborne, take-off frames, eye offset below standing (metres)."""

    ctrl: np.ndarray
    air: np.ndarray
    takeoff: np.ndarray
    eye_offset: np.ndarray


# --- vertical ---------------------------------------------------------------------------------

def _ground_trend(vz: np.ndarray, air_window: np.ndarray, frames: int) -> np.ndarray:
    """The terrain's share of the vertical speed: running median of ``vz`` over ``frames``,
    leaving out the frames that may be airborne (the window shrinks at the ends instead of
    repeating the first or last value, which would let a ramp there pass for terrain)."""
    half = max(1, frames // 2)
    x = np.where(air_window, np.nan, vz)
    padded = np.concatenate([np.full(half, np.nan), x, np.full(half, np.nan)])
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    count = np.sum(~np.isnan(window), axis=1)
    trend = np.zeros(len(vz))
    some = count > 0
    if some.any():
        trend[some] = np.nanmedian(window[some], axis=1)
        idx = np.arange(len(vz))
        trend[~some] = np.interp(idx[~some], idx[some], trend[some])
    return trend


def decode_vertical(t: np.ndarray, z: np.ndarray, cfg: AnnotateConfig) -> Vertical:
    """ctrl, jumps and airborne frames from the camera height ``z`` (see the module docstring)."""
    n = len(t)
    dt = np.diff(t)
    fps = 1.0 / float(np.median(dt))
    vz = np.zeros(n)
    vz[1:] = np.diff(z) / dt

    # take-off candidates and the ballistic vertical speed after the latest one
    cand = np.zeros(n, dtype=bool)
    cand[1:] = (vz[1:] > cfg.jump_vz) & (vz[:-1] <= cfg.jump_vz)
    ballistic = np.full(n, np.nan)
    last = -1
    for i in range(n):
        if cand[i]:
            last = i
        if last >= 0 and t[i] - t[last] <= cfg.jump_airtime_s:
            ballistic[i] = vz[last] - cfg.gravity * (t[i] - t[last])
    may_fly = ~np.isnan(ballistic)
    ground = _ground_trend(vz, may_fly, int(round(cfg.ground_trend_s * fps)))

    # states (o, c, a): eye offset o in grid cells (0 = standing .. top = crouched), ctrl c,
    # airborne a; index = (o * 2 + c) * 2 + a
    cell = cfg.eye_rate / fps / _GRID
    top = max(1, int(round(cfg.crouch_drop / cell)))
    o_of = np.repeat(np.arange(top + 1), 4)
    c_of = np.tile(np.repeat([0, 1], 2), top + 1)
    a_of = np.tile([0, 1], 2 * (top + 1))
    ns = len(o_of)
    # sources of each target state: previous offsets o_src with clip(o_src +- _GRID) == o, any
    # previous c and a; padded with -1
    width = 4 * (_GRID + 1)
    src = np.full((ns, width), -1, dtype=np.int64)
    for s in range(ns):
        move = _GRID if c_of[s] else -_GRID
        prev_o = [p for p in range(top + 1) if min(max(p + move, 0), top) == o_of[s]]
        cands = [(p * 2 + pc) * 2 + pa for p in prev_o for pc in (0, 1) for pa in (0, 1)]
        src[s, :len(cands)] = cands
    valid = src >= 0
    srcv = np.where(valid, src, 0)
    d_cells = o_of[:, None] - o_of[srcv]  # eye moved down by this many cells this frame
    switch = np.where(c_of[:, None] != c_of[srcv], cfg.ctrl_switch_cost, 0.0)
    lift = (a_of[:, None] == 1) & (a_of[srcv] == 0)  # take-off
    base = np.where(valid, switch + np.where(lift, cfg.takeoff_cost, 0.0), np.inf)

    inv = 1.0 / (2.0 * cfg.vertical_noise ** 2)
    cost = np.where((o_of == 0) & (c_of == 0) & (a_of == 0), 0.0, np.inf)
    cost[(o_of == top) & (c_of == 1) & (a_of == 0)] = cfg.ctrl_switch_cost  # may start crouched
    # a lowered eye that never comes back up may also end without a ramp (a step in the ground,
    # a tracking glitch) at eye_reset_cost; crouching costs crouch_cost a frame, so a crouch
    # that no ramp up ends is not kept for the rest of the footage
    crouch = np.where(c_of == 1, cfg.crouch_cost, 0.0)
    lowered = o_of > 0
    reset_to = np.flatnonzero((o_of == 0) & (c_of == 0))
    back = np.zeros((n, ns), dtype=np.int64)
    for i in range(1, n):
        feet = vz[i] + d_cells * (cell * fps)  # feet speed = camera speed + eye drop speed
        expect = np.where(a_of[:, None] == 1, ballistic[i], ground[i])
        emit = np.minimum((feet - expect) ** 2 * inv, cfg.outlier_cost)
        step = cost[srcv] + base + emit
        if cand[i]:  # a new ballistic curve starts here: only a take-off reaches it
            step[(a_of[:, None] == 1) & ~lift] = np.inf
        else:
            step[lift] = np.inf
        if not may_fly[i]:
            step[a_of == 1] = np.inf
        k = np.argmin(step, axis=1)
        back[i] = srcv[np.arange(ns), k]
        new = step[np.arange(ns), k]
        for target in reset_to:
            same = lowered & (a_of == a_of[target])
            if not same.any() or (a_of[target] == 1 and not may_fly[i]):
                continue
            j = int(np.argmin(np.where(same, cost, np.inf)))
            emit0 = min((vz[i] - (ballistic[i] if a_of[target] else ground[i])) ** 2 * inv,
                        cfg.outlier_cost)
            value = cost[j] + cfg.eye_reset_cost + emit0
            if value < new[target]:
                new[target], back[i, target] = value, j
        cost = new + crouch
    states = np.empty(n, dtype=np.int64)
    states[-1] = int(np.argmin(cost))
    for i in range(n - 1, 0, -1):
        states[i - 1] = back[i, states[i]]
    air = a_of[states].astype(bool)
    takeoff = np.zeros(n, dtype=bool)
    takeoff[1:] = air[1:] & ~air[:-1]
    return Vertical(ctrl=c_of[states].astype(np.int64), air=air, takeoff=takeoff,
                    eye_offset=o_of[states] * cell)


# --- dynamics estimation -----------------------------------------------------------------------

def _mode(values: np.ndarray, lo: float, hi: float, bin_width: float, min_count: int
          ) -> float | None:
    """The most common value in ``[lo, hi]`` (histogram peak, refined by the median of the
    values near it), or None when fewer than ``min_count`` values fall near the peak."""
    values = values[(values >= lo) & (values <= hi)]
    if len(values) < min_count:
        return None
    edges = np.arange(lo, hi + bin_width, bin_width)
    counts, edges = np.histogram(values, bins=edges)
    smooth = np.convolve(counts, np.ones(3), mode="same")
    k = int(np.argmax(smooth))
    centre = (edges[k] + edges[k + 1]) / 2
    near = values[np.abs(values - centre) <= 1.5 * bin_width]
    return float(np.median(near)) if len(near) >= min_count else None


def estimate_dynamics(v: np.ndarray, u: np.ndarray, fps: float, ctrl: np.ndarray,
                      air: np.ndarray, grade: np.ndarray, cfg: AnnotateConfig) -> Dynamics:
    """Speeds, factors and accelerations: the config's values, replaced by the trajectory's own
    where it has enough evidence (``cfg.estimate_dynamics``).

    ``v`` world-frame and ``u`` yaw-frame (forward, left) horizontal velocities ``[N, 2]``,
    ``grade`` the ground's grade along the motion. Steady frames (velocity unchanged over two
    frames, gentle slope, speed divided by the slope factor) give speed modes by direction
    (straight ahead, sideways, backwards); ramp frames (speed changing by a full step) give the
    acceleration and deceleration.
    """
    dyn = Dynamics(cfg.walk_speed, cfg.sprint_speed, cfg.crouch_speed, cfg.strafe_factor,
                   cfg.backward_factor, cfg.accel, cfg.decel)
    if not cfg.estimate_dynamics or len(v) < 4:
        return dyn
    need = cfg.estimate_min_frames
    dv = np.zeros(len(v))
    dv[1:] = np.hypot(*np.diff(v, axis=0).T) * fps  # m/s^2
    # flat-ground speeds: the observed ones over the slope factor of the grade along the motion
    factor = np.clip(1.0 - cfg.slope_slowdown * grade, cfg.slope_factor_min,
                     cfg.slope_factor_max)
    speed = np.hypot(v[:, 0], v[:, 1])
    flat_speed = speed / factor
    ground = ~air
    ground[1:] &= ~air[:-1]  # the frame after a landing still moved under air control
    steady = ground & (np.abs(grade) < 0.1) & (speed > 0.3)
    steady[1:] &= dv[1:] < 0.3
    steady[:-1] &= dv[1:] < 0.3  # unchanged into the next frame too
    angle = np.degrees(np.arctan2(u[:, 1], u[:, 0]))

    def direction(a: float) -> np.ndarray:
        return np.abs((angle - a + 180.0) % 360.0 - 180.0) < 8.0

    fwd = steady & direction(0)  # not the diagonals: a slide along a wall looks like one
    walk = _mode(flat_speed[fwd & (ctrl == 0)], 0.5 * cfg.walk_speed, 1.6 * cfg.walk_speed,
                 0.02, need)
    changes = {}
    if walk is not None:
        changes["walk_speed"] = walk
    base = changes.get("walk_speed", cfg.walk_speed)
    sprint = _mode(flat_speed[fwd & (ctrl == 0)], max(1.4 * base, 0.5 * cfg.sprint_speed),
                   1.6 * cfg.sprint_speed, 0.02, need)
    if sprint is not None:
        changes["sprint_speed"] = sprint
    crouch = _mode(flat_speed[fwd & (ctrl == 1)], 0.5 * cfg.crouch_speed,
                   1.6 * cfg.crouch_speed, 0.02, need)
    if crouch is not None:
        changes["crouch_speed"] = crouch
    side = steady & (ctrl == 0) & (direction(90) | direction(-90))
    strafe = _mode(flat_speed[side] / base, 0.6 * cfg.strafe_factor,
                   min(1.0, 1.4 * cfg.strafe_factor), 0.01, need)
    if strafe is not None:
        changes["strafe_factor"] = strafe
    backwards = steady & (ctrl == 0) & (direction(180) | direction(135) | direction(-135))
    backward = _mode(flat_speed[backwards] / base, 0.6 * cfg.backward_factor,
                     min(1.0, 1.4 * cfg.backward_factor), 0.01, need)
    if backward is not None:
        changes["backward_factor"] = backward
    # ramp steps: the speed grows (accel) or shrinks (decel) by a full step
    ramp = ground & (dv > 0.4 * min(cfg.accel, cfg.decel))
    dspeed = np.zeros(len(v))
    dspeed[1:] = np.diff(speed) * fps
    up = ramp & (dspeed > 0.9 * dv)
    down = ramp & (dspeed < -0.9 * dv)
    accel = _mode(dv[up], 0.5 * cfg.accel, 1.5 * cfg.accel, 0.1, need)
    if accel is not None:
        changes["accel"] = accel
    decel = _mode(dv[down], 0.5 * cfg.decel, 1.5 * cfg.decel, 0.1, need)
    if decel is not None:
        changes["decel"] = decel
    return replace(dyn, **changes)


# --- horizontal --------------------------------------------------------------------------------

def ground_grade(xy: np.ndarray, feet_z: np.ndarray, air: np.ndarray, radius: float
                 ) -> np.ndarray:
    """Per frame the ground's gradient ``[N, 2]`` (rise per metre in x and y): a least-squares
    plane through the feet positions on the ground within ``radius`` metres of path length,
    shrunk towards flat across the path (a straight path says nothing about the side slope)."""
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    lo = np.searchsorted(s, s - radius, side="left")
    hi = np.searchsorted(s, s + radius, side="right")
    w = (~air).astype(np.float64)
    c = xy - xy.mean(axis=0)
    zc = feet_z - (feet_z[~air].mean() if (~air).any() else 0.0)
    cols = [w, w * c[:, 0], w * c[:, 1], w * zc, w * c[:, 0] ** 2, w * c[:, 0] * c[:, 1],
            w * c[:, 1] ** 2, w * c[:, 0] * zc, w * c[:, 1] * zc]
    cum = np.vstack([np.zeros(len(cols)), np.cumsum(np.column_stack(cols), axis=0)])
    sums = cum[hi] - cum[lo]
    m, sx, sy, sz, sxx, sxy, syy, sxz, syz = sums.T
    m = np.maximum(m, 1e-9)
    cxx, cxy, cyy = sxx - sx * sx / m, sxy - sx * sy / m, syy - sy * sy / m
    cxz, cyz = sxz - sx * sz / m, syz - sy * sz / m
    ridge = m * (0.1 * radius) ** 2
    a11, a22 = cxx + ridge, cyy + ridge
    det = a11 * a22 - cxy * cxy
    gx = (a22 * cxz - cxy * cyz) / det
    gy = (a11 * cyz - cxy * cxz) / det
    out = np.column_stack([gx, gy])
    out[sums[:, 0] < 3] = 0.0
    return out


def _viterbi(emit: np.ndarray, trans: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Minimum-cost state sequence: ``emit`` ``[T, S]``, ``trans`` ``[S, S]`` (from, to),
    ``first`` ``[S]`` the cost of each state at frame 0 (added to ``emit[0]``)."""
    n, ns = emit.shape
    back = np.zeros((n, ns), dtype=np.int64)
    cost = first + emit[0]
    for i in range(1, n):
        total = cost[:, None] + trans
        back[i] = np.argmin(total, axis=0)
        cost = total[back[i], np.arange(ns)] + emit[i]
    states = np.empty(n, dtype=np.int64)
    states[-1] = int(np.argmin(cost))
    for i in range(n - 1, 0, -1):
        states[i - 1] = back[i, states[i]]
    return states


def _viterbi_min_press(emit: np.ndarray, trans: np.ndarray, first: np.ndarray,
                       pressed: np.ndarray, frames: int, short_cost: float) -> np.ndarray:
    """:func:`_viterbi` where leaving a state with ``pressed`` keys fewer than ``frames`` frames
    after entering it costs ``short_cost`` more: each state is split by its age (1 .. frames)."""
    ns = len(first)
    age = np.tile(np.arange(1, frames + 1), ns)
    of = np.repeat(np.arange(ns), frames)
    same = of[:, None] == of[None, :]
    stay = same & (np.minimum(age + 1, frames)[:, None] == age[None, :])
    young = (age < frames) & pressed[of]
    change = trans[of][:, of] + np.where(young, short_cost, 0.0)[:, None]
    change[same] = np.inf
    change[:, age != 1] = np.inf  # a new state starts at age 1
    full = np.where(stay, 0.0, change)
    start = np.where(age == frames, first[of], np.inf)
    return of[_viterbi(emit[:, of], full, start)]


def _commanded_speeds(dyn: Dynamics, m_of: np.ndarray, sh_of: np.ndarray) -> np.ndarray:
    """``[2, S]``: level-ground speed each state commands without and with ctrl. As in the
    built-in engine and most games: shift sprints only with W, S and A/D alone are slower."""
    keys = MOVE_KEYS[m_of]
    forward, side = keys[:, 0] - keys[:, 1], keys[:, 2] - keys[:, 3]
    factor = np.where(forward < 0, dyn.backward_factor,
                      np.where((forward == 0) & (side != 0), dyn.strafe_factor, 1.0))
    stand = np.where((sh_of == 1) & (forward > 0), dyn.sprint_speed, dyn.walk_speed)
    speeds = np.stack([stand * factor, np.full(len(m_of), dyn.crouch_speed) * factor])
    return np.where(m_of == 0, 0.0, speeds)


def _predict(v: np.ndarray, target_dir: np.ndarray, speed: np.ndarray, slope: np.ndarray,
             uncertain: np.ndarray, on_ground: np.ndarray, fps: float, dyn: Dynamics,
             cfg: AnnotateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each state's predicted velocity ``[N, S, 2]`` and its free-motion cost ``[N, S]``.

    The command is ``target_dir * speed * slope``; the body moves from the previous observed
    velocity towards it by at most accel (or decel) / fps. Where the slope factor is
    ``uncertain`` (measured on sloping ground, not ahead of the body) factors within
    2 ``slope_noise`` of it are tried at a Gaussian prior cost; the best one is kept.
    """
    prev = np.zeros_like(v)
    prev[1:] = v[:-1]
    inv = 1.0 / (2.0 * cfg.velocity_noise ** 2)
    ground = np.where(on_ground, 1.0, cfg.air_control)[:, None]
    best = np.full(speed.shape, np.inf)
    pred = np.zeros((*speed.shape, 2))
    for rel in np.linspace(-2.0, 2.0, 2 * _SLOPE_STEPS + 1) * cfg.slope_noise:
        factor = np.where(uncertain[:, None], np.clip(slope * (1.0 + rel), cfg.slope_factor_min,
                                                      cfg.slope_factor_max), slope)
        prior = np.where(uncertain, 0.5 * (rel / cfg.slope_noise) ** 2,
                         0.0 if rel == 0 else np.inf)
        target = target_dir * (speed * factor)[:, :, None]
        change = target - prev[:, None, :]
        size = np.linalg.norm(change, axis=-1)
        faster = np.linalg.norm(target, axis=-1) > np.linalg.norm(prev, axis=-1)[:, None] + 1e-6
        limit = np.where(faster, dyn.accel, dyn.decel) / fps * ground
        scale = np.where(size > limit, limit / np.maximum(size, 1e-12), 1.0)
        guess = prev[:, None, :] + change * scale[:, :, None]
        cost = np.sum((guess - v[:, None, :]) ** 2, axis=-1) * inv + prior[:, None]
        better = cost < best
        best = np.where(better, cost, best)
        pred = np.where(better[:, :, None], guess, pred)
    return pred, best


def _contact_cost(v: np.ndarray, pred: np.ndarray, cfg: AnnotateConfig) -> np.ndarray:
    """``[N, S]``: the cost of a wall explaining the observed velocity. A wall takes away the
    prediction's part along its normal, so the removed part ``r = pred - v`` is perpendicular to
    ``v`` while sliding (``v`` on the circle over the diameter 0..pred); on the first frame of a
    contact the body stops part way (``r . v > 0``, inside the circle), at most ``hit_cost``."""
    speed = np.hypot(v[:, 0], v[:, 1])
    unit = v / np.maximum(speed, 1e-9)[:, None]
    along = np.einsum("nsk,nk->ns", pred - v[:, None, :], unit)
    along = np.where(speed[:, None] > 0.5 * cfg.still_speed, along, 0.0)
    bent = along ** 2 / (2.0 * cfg.velocity_noise ** 2)
    return np.where(along > 0, np.minimum(bent, cfg.hit_cost), bent)


def _blocked(xy: np.ndarray, v: np.ndarray, fps: float, dyn: Dynamics, cfg: AnnotateConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    """Frames after an abrupt stop (faster than ``decel`` allows: something stopped the body)
    while it stays within ``stuck_radius`` of the spot, at most ``contact_hold_s``; and per frame
    the direction ``[N, 2]`` it was moving in when it was stopped."""
    n = len(v)
    speed = np.hypot(v[:, 0], v[:, 1])
    still = speed < cfg.still_speed
    abrupt = np.zeros(n, dtype=bool)
    abrupt[1:] = still[1:] & (speed[:-1] > (1.0 + cfg.abrupt_margin) * dyn.decel / fps)
    hold = np.zeros(n, dtype=bool)
    into = np.zeros((n, 2))
    longest = int(round(cfg.contact_hold_s * fps))
    for start in np.flatnonzero(abrupt):
        if hold[start]:
            continue
        stop = min(n, start + longest)
        away = np.hypot(*(xy[start:stop] - xy[start]).T) > cfg.stuck_radius
        stop = start + int(np.argmax(away)) if away.any() else stop
        hold[start:stop] = True
        into[start:stop] = v[start - 1] / speed[start - 1]
    return hold, into


def decode_horizontal(xy: np.ndarray, v: np.ndarray, yaw_deg: np.ndarray, fps: float,
                      vert: Vertical, grade: np.ndarray, dyn: Dynamics, cfg: AnnotateConfig
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``([N, 4] w/s/a/d, [N] shift)`` from horizontal positions ``xy`` and velocities ``v``
    ``[N, 2]`` (world frame; row ``i`` of ``v``: displacement from frame ``i-1`` to ``i`` over
    dt, row 0 zero), the camera's yaw (degrees), the vertical decoding and the ground's gradient.
    """
    m_of = np.repeat(np.arange(9), 2)  # decoder state -> movement state (0: no key) ...
    sh_of = np.tile([0, 1], 9)  # ... and shift
    octant = np.radians(45.0 * (m_of - 1))
    local = np.column_stack([np.cos(octant), np.sin(octant)]) * (m_of > 0)[:, None]  # [S, 2]
    h = np.radians(yaw_deg)[:, None]
    direction = np.stack([np.cos(h) * local[:, 0] - np.sin(h) * local[:, 1],
                          np.sin(h) * local[:, 0] + np.cos(h) * local[:, 1]], axis=-1)
    on_ground = np.ones(len(v), dtype=bool)
    on_ground[1:] = ~vert.air[:-1]  # the horizontal step of frame i runs before its landing
    slope = np.clip(1.0 - cfg.slope_slowdown * np.einsum("nk,nsk->ns", grade, direction),
                    cfg.slope_factor_min, cfg.slope_factor_max)
    slope = np.where(on_ground[:, None], slope, 1.0)
    # on level ground, and in the air, the slope factor is exact
    uncertain = on_ground & (np.hypot(grade[:, 0], grade[:, 1]) > _LEVEL)
    speed = _commanded_speeds(dyn, m_of, sh_of)[vert.ctrl]  # [N, S]
    pred, free = _predict(v, direction, speed, slope, uncertain, on_ground, fps, dyn, cfg)

    # a wall costs contact_cost a frame, except for keys pushing into whatever stopped the body
    # abruptly (towards where it was going): those are free, and released keys cost hold_cost
    hold, into = _blocked(xy, v, fps, dyn, cfg)
    pushing = hold[:, None] & (np.einsum("nsk,nk->ns", direction, into) > 0)
    contact = _contact_cost(v, pred, cfg) + np.where(pushing, 0.0, cfg.contact_cost)
    emit = np.minimum(np.minimum(free, contact), cfg.outlier_cost)
    emit[:, m_of == 0] += np.where(hold, cfg.hold_cost, 0.0)[:, None]
    # shift that changes nothing (no W, or ctrl) is not held for long: people press it to sprint
    no_w = MOVE_KEYS[m_of, 0] <= MOVE_KEYS[m_of, 1]
    idle = (sh_of == 1)[None, :] & (no_w[None, :] | (vert.ctrl == 1)[:, None])
    emit += np.where(idle, cfg.shift_idle_cost, 0.0)
    emit[0] = 0.0

    # shift pressed or released together with a movement change costs half as much
    moved = m_of[:, None] != m_of[None, :]
    trans = (np.where(moved, cfg.switch_cost, 0.0)
             + np.where(sh_of[:, None] != sh_of[None, :],
                        np.where(moved, 0.5, 1.0) * cfg.shift_switch_cost, 0.0))
    first = np.where(m_of == 0, 0.0, cfg.switch_cost) + sh_of * cfg.shift_switch_cost
    states = _viterbi_min_press(emit, trans, first, m_of > 0, cfg.min_press_frames,
                                cfg.short_press_cost)
    return MOVE_KEYS[m_of[states]], sh_of[states].astype(np.int64)
