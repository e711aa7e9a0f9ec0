"""``curation annotate``: infer keys and mouse from a camera trajectory (pose-only footage).

Pose-only footage (real video with camera trajectories, vehicle logs) has no key presses. From
the camera positions and orientations alone this module infers the contract's inputs:

- **mouse** exactly from the poses: ``mouse_dx[i] = -wrap(yaw[i] - yaw[i-1])`` and
  ``mouse_dy[i] = wrap(pitch[i] - pitch[i-1])`` (the contract's alignment identities).
- **W/S/A/D** from the horizontal velocity expressed in the camera's yaw frame, so climbing a
  slope while walking forward is W. A body driven by keys reaches its commanded velocity with
  bounded acceleration, so the velocity lags the key; each frame that is part of an acceleration
  ramp (world-frame velocity change above ``ramp_accel``, steady direction) takes the velocity
  at the end of its ramp as the commanded one (offline look-ahead). A change faster than any key
  can cause (``contact_accel``) is a wall: the keys before it are held while the body is blocked
  or slides along the wall. The commanded velocity is snapped to one of
  the eight key octants with angular hysteresis, and switched on and off with speed hysteresis.
- **shift** (sprint) from the commanded speed above the walking speed, **space** (jump) from
  vertical velocity spikes no walk on the ground explains, **ctrl** (crouch) from the camera
  stepping down (up) faster than the slope under it explains. These three are approximations
  on pose-only footage; :func:`accuracy` reports how good they are against exact labels.

Short blips and gaps are removed (``min_hold_frames``) so keys do not flicker.
:func:`annotate_episode` writes a new episode with the inferred columns; inputs are never touched.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from datagen.episode import (
    ACTIONS_FILE,
    KEY_COLUMNS,
    META_FILE,
    PARTIAL_SUFFIX,
    VIDEO_FILE,
    EpisodeError,
    episode_dir,
    format_cell,
    read_episode,
    write_meta,
)
from datagen.rotation import quat_normalize, wrap_deg, ypr_from_quat

METHOD = ("worldforge.annotate/2: yaw-frame velocity, ramp look-ahead, wall contacts hold keys, "
          "octant hysteresis")
# (w, s, a, d) for a commanded direction octant * 45 degrees left of the heading
OCTANT_KEYS = np.array([(1, 0, 0, 0), (1, 0, 1, 0), (0, 0, 1, 0), (0, 1, 1, 0),
                        (0, 1, 0, 0), (0, 1, 0, 1), (0, 0, 0, 1), (1, 0, 0, 1)], dtype=np.int64)
MOVE_KEYS = ("key_w", "key_s", "key_a", "key_d")


class AnnotateError(ValueError):
    """Input that cannot be annotated (wrong shapes, non-increasing time, existing output)."""


@dataclass(frozen=True)
class AnnotateConfig:
    # --- movement keys (W/S/A/D), from the commanded horizontal velocity in the yaw frame
    move_on: float = 0.3  # m/s: a still agent starts moving (keys pressed) above this speed
    move_off: float = 0.15  # m/s: a moving agent stops (keys released) below this speed
    octant_hysteresis: float = 7.5  # degrees beyond an octant's 22.5 half width before the key
    #                                 combination changes (must stay below 22.5)
    ramp_accel: float = 3.0  # m/s^2: a velocity change faster than this is an acceleration ramp
    ramp_cos: float = 0.8  # consecutive ramp steps stay one ramp while their directions'
    #                        cosine is above this
    ramp_max_frames: int = 15  # look at most this many frames ahead for the end of a ramp
    # --- contacts (walls): a velocity change faster than keys can cause is a collision; the
    # keys before it are held while the body is blocked or slides along the obstacle
    contact_accel: float = 18.0  # m/s^2: above the body's own acceleration and deceleration
    contact_hold_s: float = 2.0  # longest a blocked (still) body is assumed to push on
    slide_cos: float = 0.1  # sliding keeps the velocity within acos(slide_cos) of the keys'
    # --- shift (sprint): commanded speed above the walking speed, with hysteresis
    sprint_on: float = 2.6  # m/s
    sprint_off: float = 2.3  # m/s
    # --- space (jump): upward camera velocity above this starts a jump, held jump_hold_frames
    jump_vz: float = 3.0  # m/s (above what walking up a slope or standing up from a crouch gives)
    jump_hold_frames: int = 3
    jump_airtime_s: float = 1.2  # after a jump starts, vertical motion is the jump's, not ctrl
    # --- ctrl (crouch): the eye steps down (crouch) or up (stand) faster than the ground explains
    crouch_rate: float = 1.2  # m/s: vertical speed beyond the slope trend that makes a step
    crouch_drop: float = 0.4  # metres: the smallest step (built-in: eye 1.7 standing, 1.02 low)
    crouch_trend_s: float = 1.0  # running median of vertical speed: the slope's part of it
    # --- noise and flicker
    smooth_frames: int = 1  # centred moving average of positions before differencing (1: off)
    min_hold_frames: int = 3  # key presses and releases shorter than this are removed

    def __post_init__(self) -> None:
        errors = []
        if not 0 < self.move_off <= self.move_on:
            errors.append(f"need 0 < move_off <= move_on, got {self.move_off}, {self.move_on}")
        if not 0 < self.sprint_off <= self.sprint_on:
            errors.append(f"need 0 < sprint_off <= sprint_on, got {self.sprint_off}, "
                          f"{self.sprint_on}")
        if not 0 <= self.octant_hysteresis < 22.5:
            errors.append(f"octant_hysteresis must be in [0, 22.5) degrees, got "
                          f"{self.octant_hysteresis}")
        if not -1 < self.ramp_cos < 1:
            errors.append(f"ramp_cos must be in (-1, 1), got {self.ramp_cos}")
        if not -1 < self.slide_cos < 1:
            errors.append(f"slide_cos must be in (-1, 1), got {self.slide_cos}")
        for name in ("ramp_accel", "contact_accel", "contact_hold_s", "jump_vz", "jump_airtime_s",
                     "crouch_rate", "crouch_drop", "crouch_trend_s"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("ramp_max_frames", "jump_hold_frames", "smooth_frames", "min_hold_frames"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                errors.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if errors:
            raise AnnotateError("invalid AnnotateConfig: " + "; ".join(errors))


def _check_inputs(t: np.ndarray, pos: np.ndarray, quat: np.ndarray) -> None:
    n = len(t)
    if t.ndim != 1 or n < 2:
        raise AnnotateError(f"t must be a 1-D array of at least 2 times, got shape {t.shape}")
    if pos.shape != (n, 3) or quat.shape != (n, 4):
        raise AnnotateError(f"need pos [N, 3] and quat [N, 4] with N = len(t) = {n}, got "
                            f"{pos.shape} and {quat.shape}")
    for name, a in (("t", t), ("pos", pos), ("quat", quat)):
        if not np.all(np.isfinite(a)):
            raise AnnotateError(f"{name} has non-finite values")
    if np.any(np.diff(t) <= 0):
        row = int(np.argmax(np.diff(t) <= 0)) + 1
        raise AnnotateError(f"t must increase; it does not at row {row}")
    if np.any(np.linalg.norm(quat, axis=1) < 1e-9):
        raise AnnotateError("quat has zero-length rows")


def _velocity(t: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Backward finite differences ``(pos[i] - pos[i-1]) / dt``; row 0 is zero (contract rows)."""
    v = np.zeros_like(pos)
    v[1:] = np.diff(pos, axis=0) / np.diff(t)[:, None]
    return v


def _debounce(x: np.ndarray, min_run: int) -> np.ndarray:
    """Fill 0-gaps shorter than ``min_run`` between presses, then drop shorter presses."""
    x = x.astype(np.int64).copy()
    if min_run <= 1:
        return x
    for value in (0, 1):  # gaps first, so a briefly interrupted hold stays one hold
        edges = np.flatnonzero(np.diff(np.concatenate([[-1], x, [-1]])) != 0)
        for start, stop in zip(edges[:-1], edges[1:], strict=True):
            inner = start > 0 and stop < len(x)  # a run touching an end may be cut by the clip
            if x[start] == value and stop - start < min_run and (inner or value == 1):
                x[start:stop] = 1 - value
    return x


def _hysteresis(x: np.ndarray, on: float, off: float) -> np.ndarray:
    out = np.zeros(len(x), dtype=np.int64)
    state = 0
    for i, value in enumerate(x):
        state = 1 if value > on else 0 if value < off else state
        out[i] = state
    return out


def _commanded(u: np.ndarray, vh: np.ndarray, dt: np.ndarray, cfg: AnnotateConfig
               ) -> np.ndarray:
    """Per frame, the velocity the keys ask for (``u``, yaw frame): the end of the acceleration
    ramp it is on. Ramps are found in the world frame (``vh``), where the body accelerates
    straight at its target even while the camera turns."""
    du = np.zeros_like(vh)
    du[1:] = np.diff(vh, axis=0)
    size = np.hypot(du[:, 0], du[:, 1])
    ramp = np.zeros(len(u), dtype=bool)
    ramp[1:] = size[1:] > cfg.ramp_accel * dt[1:]
    direction = du / np.maximum(size, 1e-12)[:, None]
    target = u.copy()
    n = len(u)
    for i in np.flatnonzero(ramp):
        j = i
        while (j + 1 < n and j + 1 - i < cfg.ramp_max_frames and ramp[j + 1]
               and direction[j + 1] @ direction[i] > cfg.ramp_cos):
            j += 1
        # the first frame after the ramp has reached the commanded velocity (the last, partial
        # step may be below the ramp threshold); it is only used when it starts no new ramp
        target[i] = u[j + 1] if j + 1 < n and not ramp[j + 1] else u[j]
    return target


def _contact_hold(u: np.ndarray, target: np.ndarray, contact: np.ndarray, fps: float,
                  cfg: AnnotateConfig) -> np.ndarray:
    """Hold the commanded velocity of the frame before each contact while the body is blocked
    (still, at most ``contact_hold_s``) or slides (velocity within ``acos(slide_cos)`` of it and
    no faster), until its own ramp brings it back to the commanded speed."""
    target = target.copy()
    speed = np.hypot(u[:, 0], u[:, 1])
    max_still = int(round(cfg.contact_hold_s * fps))
    n, i = len(u), 1
    while i < n:
        held = target[i - 1]
        held_speed = float(np.hypot(*held))
        if not contact[i] or held_speed < cfg.move_on:
            i += 1
            continue
        direction, still, start = held / held_speed, 0, i
        while i < n:
            if speed[i] < cfg.move_off:
                still += 1
                if still > max_still:
                    break
            elif not (u[i] @ direction > cfg.slide_cos * speed[i]
                      and speed[i] < held_speed + cfg.move_off
                      and np.hypot(*target[i]) < held_speed - cfg.move_off):
                break
            target[i] = held
            i += 1
        i = max(i, start + 1)
    return target


def _movement_keys(target: np.ndarray, cfg: AnnotateConfig) -> np.ndarray:
    """``[N, 4]`` W/S/A/D from commanded yaw-frame velocities (forward, left)."""
    speed = np.hypot(target[:, 0], target[:, 1])
    angle = np.degrees(np.arctan2(target[:, 1], target[:, 0]))
    tolerance = 22.5 + cfg.octant_hysteresis
    out = np.zeros((len(target), 4), dtype=np.int64)
    current = -1
    for i in range(len(target)):
        nearest = int(round(angle[i] / 45.0)) % 8
        if current < 0:
            current = nearest if speed[i] > cfg.move_on else -1
        elif speed[i] < cfg.move_off:
            current = -1
        elif abs(wrap_deg(angle[i] - 45.0 * current)) > tolerance:
            current = nearest
        if current >= 0:
            out[i] = OCTANT_KEYS[current]
    return out


def _jumps(vz: np.ndarray, cfg: AnnotateConfig) -> np.ndarray:
    up = vz > cfg.jump_vz
    starts = np.flatnonzero(up & ~np.concatenate([[False], up[:-1]]))
    space = np.zeros(len(vz), dtype=np.int64)
    for s in starts:
        space[s:s + cfg.jump_hold_frames] = 1
    return space


def _crouch(t: np.ndarray, vz: np.ndarray, jump: np.ndarray, cfg: AnnotateConfig) -> np.ndarray:
    """Crouch state from eye-height steps: a quick drop (not a jump's fall) starts a crouch, a
    quick rise (not a jump) ends it. Slopes are removed as the running median of ``vz``."""
    fps = (len(t) - 1) / (t[-1] - t[0])
    trend = median_filter(vz, size=max(3, int(round(cfg.crouch_trend_s * fps)) | 1),
                          mode="nearest")
    residual = vz - trend
    dt = np.concatenate([[0.0], np.diff(t)])
    after_jump = np.zeros(len(t), dtype=bool)
    for start in np.flatnonzero(jump & ~np.concatenate([[False], jump[:-1].astype(bool)])):
        after_jump[start:start + int(round(cfg.jump_airtime_s * fps))] = True
    crouch = np.zeros(len(t), dtype=np.int64)
    state, i, n = 0, 0, len(t)
    while i < n:
        sign = np.sign(residual[i]) if abs(residual[i]) > cfg.crouch_rate else 0
        if sign == 0:
            crouch[i] = state
            i += 1
            continue
        j = i
        while j + 1 < n and np.sign(residual[j + 1]) == sign and \
                abs(residual[j + 1]) > cfg.crouch_rate:
            j += 1
        step = float(np.sum(residual[i:j + 1] * dt[i:j + 1]))
        if not after_jump[i:j + 1].any() and abs(step) >= cfg.crouch_drop:
            state = 1 if step < 0 else 0
        crouch[i:j + 1] = state
        i = j + 1
    return crouch


def infer_actions(
    t: np.ndarray, pos: np.ndarray, quat: np.ndarray, cfg: AnnotateConfig | None = None,
    vel: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Infer the contract's key and mouse columns from a camera trajectory.

    ``t`` ``[N]`` seconds (increasing), ``pos`` ``[N, 3]`` camera positions (world, Z up, metres),
    ``quat`` ``[N, 4]`` camera-to-world ``(w, x, y, z)``. Returns ``key_w .. key_ctrl`` (int64
    0/1), ``mouse_dx`` and ``mouse_dy`` (degrees, contract rows: row 0 is 0) and, when ``vel`` is
    not given, ``vel_x/vel_y/vel_z`` (finite differences of ``pos``, m/s; row 0 is 0).
    """
    cfg = cfg or AnnotateConfig()
    t = np.asarray(t, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    quat = np.asarray(quat, dtype=np.float64)
    _check_inputs(t, pos, quat)
    yaw, pitch, _ = ypr_from_quat(quat_normalize(quat))
    dt = np.concatenate([[np.inf], np.diff(t)])

    smooth = uniform_filter1d(pos, cfg.smooth_frames, axis=0, mode="nearest") \
        if cfg.smooth_frames > 1 else pos
    v = _velocity(t, smooth)
    h = np.radians(yaw)
    forward = v[:, 0] * np.cos(h) + v[:, 1] * np.sin(h)
    left = -v[:, 0] * np.sin(h) + v[:, 1] * np.cos(h)
    u = np.stack([forward, left], axis=1)
    contact = np.zeros(len(t), dtype=bool)
    contact[1:] = np.hypot(*np.diff(v[:, :2], axis=0).T) > cfg.contact_accel * dt[1:]
    fps = (len(t) - 1) / (t[-1] - t[0])
    target = _contact_hold(u, _commanded(u, v[:, :2], dt, cfg), contact, fps, cfg)

    move = _movement_keys(target, cfg)
    space = _jumps(v[:, 2], cfg)
    sprint = _hysteresis(target[:, 0], cfg.sprint_on, cfg.sprint_off) * move[:, 0]
    keys = {name: _debounce(move[:, j], cfg.min_hold_frames) for j, name in enumerate(MOVE_KEYS)}
    keys["key_space"] = space
    keys["key_shift"] = _debounce(sprint, cfg.min_hold_frames)
    keys["key_ctrl"] = _debounce(_crouch(t, v[:, 2], space, cfg), cfg.min_hold_frames)

    out: dict[str, np.ndarray] = {name: keys[name] for name in KEY_COLUMNS}
    out["mouse_dx"] = np.concatenate([[0.0], -wrap_deg(np.diff(yaw))])
    out["mouse_dy"] = np.concatenate([[0.0], wrap_deg(np.diff(pitch))])
    if vel is None:
        raw = _velocity(t, pos)
        out |= {"vel_x": raw[:, 0], "vel_y": raw[:, 1], "vel_z": raw[:, 2]}
    return out


def accuracy(inferred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per key: accuracy, balanced accuracy, precision, recall, F1 (NaN where there is nothing
    to count, e.g. recall of a key never pressed) and the true press rate;
    mouse: the largest and mean absolute error (degrees) of ``mouse_dx`` and ``mouse_dy``."""
    result: dict[str, Any] = {}
    for name in KEY_COLUMNS:
        if name not in inferred or name not in truth:
            raise AnnotateError(f"both inferred and truth need {name}")
        p = np.asarray(inferred[name]) != 0
        y = np.asarray(truth[name]) != 0
        if p.shape != y.shape:
            raise AnnotateError(f"{name}: inferred has {p.shape} rows, truth {y.shape}")
        tp, tn = int(np.sum(p & y)), int(np.sum(~p & ~y))
        fp, fn = int(np.sum(p & ~y)), int(np.sum(~p & y))
        nan = float("nan")  # a rate with nothing to count (no presses, or none inferred)
        recall = tp / (tp + fn) if tp + fn else nan
        specificity = tn / (tn + fp) if tn + fp else nan
        result[name.removeprefix("key_")] = {
            "accuracy": (tp + tn) / len(y),
            "balanced_accuracy": float(np.nanmean([recall, specificity])),
            "precision": tp / (tp + fp) if tp + fp else nan, "recall": recall,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
            "pressed": float(np.mean(y)), "frames": int(len(y)),
        }
    for name in ("mouse_dx", "mouse_dy"):
        err = np.abs(wrap_deg(np.asarray(inferred[name]) - np.asarray(truth[name])))
        result[name] = {"max_abs_error": float(np.max(err)), "mean_abs_error": float(np.mean(err))}
    return result


def annotate_episode(src: str | Path, out_root: str | Path,
                     cfg: AnnotateConfig | None = None) -> Path:
    """Write ``<out_root>/<scene>/<episode_id>/``: ``src`` with inferred keys and mouse.

    The video is copied byte for byte, the pose columns (and any extra columns) are kept, the
    key and mouse columns are replaced; velocity columns that are all zero (a pose-only recorder
    has none) are filled with finite differences. ``meta.json`` gains ``"annotation"``
    (``method``, ``config``, ``source``). Written to ``<episode_id>.partial/`` then renamed;
    an existing output is never overwritten and ``src`` is never modified.
    """
    cfg = cfg or AnnotateConfig()
    episode = read_episode(src)
    meta, data = episode.meta, episode.data
    final = episode_dir(out_root, meta.scene, meta.episode_id)
    if final.resolve() == episode.path.resolve():
        raise AnnotateError(f"output {final} is the source episode; choose another --out")
    if final.exists():
        raise AnnotateError(f"{final} already exists; refusing to overwrite it")
    vel = np.stack([data["vel_x"], data["vel_y"], data["vel_z"]], axis=1)
    has_vel = bool(np.any(vel != 0))
    pos = np.stack([data["pos_x"], data["pos_y"], data["pos_z"]], axis=1)
    quat = np.stack([data["qw"], data["qx"], data["qy"], data["qz"]], axis=1)
    inferred = infer_actions(data["t"], pos, quat, cfg, vel=vel if has_vel else None)
    columns = {**data, **inferred}

    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)  # a leftover of an interrupted annotation, never finished
    partial.mkdir(parents=True)
    shutil.copyfile(episode.path / VIDEO_FILE, partial / VIDEO_FILE)
    is_key = [c in KEY_COLUMNS for c in episode.columns]
    lines = [",".join(episode.columns)]
    for i in range(len(data["frame"])):
        lines.append(",".join(
            str(int(columns[c][i])) if c == "frame"
            else format_cell(c, columns[c][i].item(), k)
            for c, k in zip(episode.columns, is_key, strict=True)))
    with open(partial / ACTIONS_FILE, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    annotation = {"method": METHOD, "config": dataclasses.asdict(cfg),
                  "source": str(episode.path), "velocity": "source" if has_vel else "inferred"}
    write_meta(partial / META_FILE, dataclasses.replace(
        meta, extra={**meta.extra, "annotation": annotation}))
    if final.exists():
        raise EpisodeError(f"{final} appeared while annotating; left in {partial}")
    os.rename(partial, final)
    return final
