"""``curation annotate``: infer keys and mouse from a camera trajectory (pose-only footage).

Pose-only footage (real video with camera trajectories, vehicle logs) has no key presses. From
the camera positions and orientations alone this module infers the contract's inputs:

- **mouse** exactly: ``mouse_dx[i] = -wrap(yaw[i] - yaw[i-1])``, ``mouse_dy[i] = wrap(pitch[i] -
  pitch[i-1])`` (the contract's alignment identities).
- **keys** by decoding the most likely key sequence under a body model
  (:mod:`curation.annotate_decode`): a Viterbi over eye height, ctrl and airborne gives ctrl and
  space (jumps); a Viterbi over movement octant (or none) x shift, whose states predict the next
  horizontal velocity from the current one with bounded acceleration towards the velocity the
  keys command in the camera's yaw frame (so climbing a slope while walking forward is W), gives
  W/S/A/D and shift. Wall contacts, which take part of the velocity away, are a cheap
  explanation where the motion fits them; switching costs, not min-hold rules, keep keys from
  flickering.

The body model's speeds and accelerations are :class:`AnnotateConfig` settings, re-estimated from
each trajectory where it has enough steady stretches and ramps. :func:`accuracy` scores inferred
keys against exact labels; :func:`annotate_episode` writes a new episode with the inferred
columns (inputs are never touched).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import uniform_filter1d

from curation.annotate_decode import (
    Dynamics,
    decode_horizontal,
    decode_vertical,
    estimate_dynamics,
    ground_grade,
)
from datagen.episode import (
    ACTIONS_FILE,
    KEY_COLUMNS,
    META_FILE,
    PARTIAL_SUFFIX,
    VIDEO_FILE,
    EpisodeError,
    episode_dir,
    read_episode,
    write_meta,
)
from datagen.episode_writer import format_cell
from datagen.rotation import quat_normalize, wrap_deg, ypr_from_quat

METHOD = ("worldforge.annotate/3: Viterbi decoding under a bounded-acceleration body model "
          "(eye height, jumps, walls), speeds estimated per trajectory")


STILL_SPEED = 1e-6  # m/s: the built-in body's "has not moved" (positions are float64-exact)


class AnnotateError(ValueError):
    """Input that cannot be annotated (wrong shapes, non-increasing time, existing output)."""


@dataclass(frozen=True)
class AnnotateConfig:
    """Settings of the decoder. Costs are negative log-likelihoods (a cost of c makes an
    explanation e^-c times less likely); defaults suit exact engine logs at 30-60 fps."""

    # --- body model: what keys do to the body on level ground. With estimate_dynamics the
    # speeds, factors and accelerations are measured on each trajectory (modes of steady speeds
    # and of ramp steps); these values are used where it has too little evidence
    walk_speed: float = 2.0  # m/s, W or a W diagonal
    sprint_speed: float = 4.5  # m/s, W + shift (shift changes nothing without W)
    crouch_speed: float = 1.0  # m/s, with ctrl (before the strafe and backward factors)
    strafe_factor: float = 0.85  # speed factor for A or D alone
    backward_factor: float = 0.7  # speed factor whenever S is held
    accel: float = 10.0  # m/s^2 towards a faster commanded velocity
    decel: float = 14.0  # m/s^2 towards a slower one (releasing keys, turning)
    air_control: float = 0.25  # fraction of accel and decel left in the air
    estimate_dynamics: bool = True
    estimate_min_frames: int = 20  # steady frames (or ramp steps) a measured value needs
    # --- slopes: speed factor 1 - slope_slowdown * grade along the commanded direction,
    # clipped to [slope_factor_min, slope_factor_max]; the grade comes from a plane fitted to the
    # feet positions within grade_radius metres of path, good to about slope_noise (relative)
    slope_slowdown: float = 1.2
    slope_factor_min: float = 0.5
    slope_factor_max: float = 1.1
    grade_radius: float = 0.75
    slope_noise: float = 0.03
    # --- eye height (ctrl) and jumps (space)
    crouch_drop: float = 0.68  # metres the eye drops when crouching (built-in: 1.7 -> 1.02)
    eye_rate: float = 2.5  # m/s the eye moves while crouching or standing up
    jump_vz: float = 3.0  # m/s: a take-off's vertical speed exceeds this, walking's never does
    gravity: float = 9.81  # m/s^2: the airborne camera height is ballistic
    jump_airtime_s: float = 1.5  # longest flight considered after a take-off
    jump_hold_frames: int = 3  # frames space is reported held from a take-off
    ground_trend_s: float = 1.0  # running median of vertical speed: the terrain's part of it
    # --- observation noise
    velocity_noise: float = 0.015  # m/s: horizontal velocity around the model's prediction
    vertical_noise: float = 0.15  # m/s: feet vertical speed around the terrain's or a jump's
    estimate_noise: bool = True  # raise both to the noise measured on the trajectory, if higher
    smooth_frames: int = 1  # centred moving average of positions first (1: off; it bends the
    #                         body model's ramps, prefer the measured noise)
    outlier_cost: float = 40.0  # the most one frame can cost (glitches, landings)
    # --- how keys are pressed
    switch_cost: float = 12.0  # changing the movement keys
    shift_switch_cost: float = 12.0  # pressing or releasing shift (half with a movement change)
    shift_idle_cost: float = 3.0  # per frame of shift that changes nothing (no W, or ctrl)
    min_press_frames: int = 3  # a key combination is held at least this long, ...
    short_press_cost: float = 20.0  # ... or changing it costs this much more
    ctrl_switch_cost: float = 12.0  # pressing or releasing ctrl
    crouch_cost: float = 0.5  # per crouched frame (crouching is the exception)
    eye_reset_cost: float = 30.0  # a lowered eye back at standing height without a ramp up
    takeoff_cost: float = 10.0  # a jump
    # --- walls (and anything solid): a contact takes the velocity's part along its normal away
    contact_cost: float = 6.0  # per frame in contact
    hit_cost: float = 10.0  # the most the first frame of a contact costs (stopped part way)
    hold_cost: float = 4.0  # per frame of keys released while the body is blocked after an
    #                         abrupt stop (players keep pushing into what stopped them), ...
    contact_hold_s: float = 2.0  # ... for at most this long ...
    stuck_radius: float = 0.1  # ... while the body stays within this many metres of the spot
    still_speed: float = 0.05  # m/s: below this the body is still
    abrupt_margin: float = 0.2  # a stop is abrupt when faster than (1 + margin) * decel allows

    def __post_init__(self) -> None:
        errors = []
        positive = ("walk_speed", "sprint_speed", "crouch_speed", "strafe_factor",
                    "backward_factor", "accel", "decel", "air_control", "slope_factor_max",
                    "grade_radius", "slope_noise", "crouch_drop", "eye_rate", "jump_vz",
                    "gravity", "jump_airtime_s", "ground_trend_s", "velocity_noise",
                    "vertical_noise", "outlier_cost", "contact_hold_s", "stuck_radius",
                    "still_speed")
        for name in positive:
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be positive, got {getattr(self, name)}")
        non_negative = ("slope_slowdown", "slope_factor_min", "switch_cost", "shift_switch_cost",
                        "shift_idle_cost", "short_press_cost", "ctrl_switch_cost", "crouch_cost",
                        "eye_reset_cost", "takeoff_cost", "contact_cost", "hit_cost",
                        "hold_cost", "abrupt_margin")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                errors.append(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.slope_factor_min <= self.slope_factor_max:
            errors.append(f"need slope_factor_min <= slope_factor_max, got "
                          f"{self.slope_factor_min}, {self.slope_factor_max}")
        if not self.walk_speed < self.sprint_speed:
            errors.append(f"need walk_speed < sprint_speed, got {self.walk_speed}, "
                          f"{self.sprint_speed}")
        for name in ("estimate_min_frames", "min_press_frames", "jump_hold_frames",
                     "smooth_frames"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                errors.append(f"{name} must be an integer >= 1, got {value!r}")
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


def _noise(t: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """Noise of finite-difference velocities (horizontal, vertical; m/s) measured on the
    trajectory: white position noise makes third differences of positions spread by sqrt(10)
    times it; a robust spread (1.4826 MAD) ignores the key changes. Zero on exact logs."""
    if len(t) < 5:
        return 0.0, 0.0
    third = np.diff(_velocity(t, pos)[1:], n=2, axis=0)
    spread = 1.4826 * np.median(np.abs(third), axis=0) / np.sqrt(10.0)
    return float(np.hypot(spread[0], spread[1]) / np.sqrt(2.0)), float(spread[2])


def decode_trajectory(t: np.ndarray, pos: np.ndarray, quat: np.ndarray,
                      cfg: AnnotateConfig | None = None
                      ) -> tuple[dict[str, np.ndarray], Dynamics]:
    """The key and mouse columns of :func:`infer_actions` (no velocities) and the body model
    they were decoded with (the config's values, or the trajectory's own where estimated)."""
    cfg = cfg or AnnotateConfig()
    t = np.asarray(t, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    quat = np.asarray(quat, dtype=np.float64)
    _check_inputs(t, pos, quat)
    yaw, pitch, _ = ypr_from_quat(quat_normalize(quat))
    fps = 1.0 / float(np.median(np.diff(t)))
    smooth = uniform_filter1d(pos, cfg.smooth_frames, axis=0, mode="nearest") \
        if cfg.smooth_frames > 1 else pos

    if cfg.estimate_noise:
        found = _noise(t, smooth)
        cfg = dataclasses.replace(cfg, velocity_noise=max(cfg.velocity_noise, found[0]),
                                  vertical_noise=max(cfg.vertical_noise, found[1]))
    vert = decode_vertical(t, smooth[:, 2], cfg)
    v = _velocity(t, smooth)[:, :2]
    h = np.radians(yaw)
    u = np.column_stack([v[:, 0] * np.cos(h) + v[:, 1] * np.sin(h),
                         -v[:, 0] * np.sin(h) + v[:, 1] * np.cos(h)])  # yaw frame
    grade = ground_grade(smooth[:, :2], smooth[:, 2] + vert.eye_offset, vert.air,
                         cfg.grade_radius)
    along = np.einsum("nk,nk->n", grade, v) / np.maximum(np.hypot(v[:, 0], v[:, 1]), 1e-9)
    dyn = dataclasses.replace(estimate_dynamics(v, u, fps, vert.ctrl, vert.air, along, cfg),
                              velocity_noise=cfg.velocity_noise,
                              vertical_noise=cfg.vertical_noise)
    move, shift = decode_horizontal(smooth[:, :2], v, yaw, fps, vert, grade, dyn, cfg)

    space = np.zeros(len(t), dtype=np.int64)
    for start in np.flatnonzero(vert.takeoff):
        space[start:start + cfg.jump_hold_frames] = 1
    keys = {"key_w": move[:, 0], "key_s": move[:, 1], "key_a": move[:, 2], "key_d": move[:, 3],
            "key_space": space, "key_shift": shift, "key_ctrl": vert.ctrl}
    out = {name: keys[name] for name in KEY_COLUMNS}
    out["mouse_dx"] = np.concatenate([[0.0], -wrap_deg(np.diff(yaw))])
    out["mouse_dy"] = np.concatenate([[0.0], wrap_deg(np.diff(pitch))])
    return out, dyn


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
    out, _ = decode_trajectory(t, pos, quat, cfg)
    if vel is None:
        raw = _velocity(np.asarray(t, dtype=np.float64), np.asarray(pos, dtype=np.float64))
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


def unobservable_frames(labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per key, the frames whose label no pose sequence can show, from an episode's exact
    labels and recorded velocity (``vel_x``, ``vel_y``), for scoring on the rest:

    - *blocked* (W/S/A/D, shift): a movement key held while the body has not moved this frame
      nor the one before (pushing into a wall or a mover): any key, or none, gives these poses;
    - *idle shift*: shift held while it cannot change the speed (W not held, ctrl held, or
      blocked);
    - *space in the air*: space still held after the frame of the take-off; holding it longer
      changes nothing, so a tap's length is not in the poses (the annotator reports
      ``jump_hold_frames``).
    """
    speed = np.hypot(labels["vel_x"], labels["vel_y"])
    still = speed < STILL_SPEED
    moving_keys = np.any([labels[f"key_{k}"] == 1 for k in "wsad"], axis=0)
    blocked = moving_keys & still & np.concatenate([[False], still[:-1]])
    idle_shift = blocked | (labels["key_w"] == 0) | (labels["key_ctrl"] == 1)
    space = labels["key_space"] == 1
    out = {k: blocked for k in "wsad"}
    out["shift"] = idle_shift & ((labels["key_shift"] == 1) | blocked)
    out["space"] = space & np.concatenate([[False], space[:-1]])
    return out


def annotate_episode(src: str | Path, out_root: str | Path,
                     cfg: AnnotateConfig | None = None) -> Path:
    """Write ``<out_root>/<scene>/<episode_id>/``: ``src`` with inferred keys and mouse.

    The video is copied byte for byte, the pose columns (and any extra columns) are kept, the
    key and mouse columns are replaced; velocity columns that are all zero (a pose-only recorder
    has none) are filled with finite differences. ``meta.json`` gains ``"annotation"``
    (``method``, ``config``, ``dynamics``: the body model and noise levels used, ``source``,
    ``velocity``). Written to ``<episode_id>.partial/`` then renamed; an existing output is
    never overwritten and ``src`` is never modified.
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
    inferred, dynamics = decode_trajectory(data["t"], pos, quat, cfg)
    if not has_vel:
        raw = _velocity(data["t"], pos)
        inferred |= {"vel_x": raw[:, 0], "vel_y": raw[:, 1], "vel_z": raw[:, 2]}
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
                  "dynamics": dynamics.as_dict(), "source": str(episode.path),
                  "velocity": "source" if has_vel else "inferred"}
    write_meta(partial / META_FILE, dataclasses.replace(
        meta, extra={**meta.extra, "annotation": annotation}))
    if final.exists():
        raise EpisodeError(f"{final} appeared while annotating; left in {partial}")
    os.rename(partial, final)
    return final
