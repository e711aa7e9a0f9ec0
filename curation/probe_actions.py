"""The contract's keys and mouse from a camera-motion probe (:mod:`curation.probe`).

- **mouse**: ``mouse_dx = -yaw``, ``mouse_dy = pitch`` of each frame's relative rotation
  (contract angles in the camera frame of the frame before: exact for a level camera; at pitch
  ``p`` the yaw reads ``cos(p)`` of the turn, under 1 % short within 8 degrees of level).
  Unknown frames get 0.
- **W/S/A/D** from the direction of travel in the camera's horizontal plane, decoded over the
  whole clip with the minimum-press Viterbi of ``curation annotate``
  (:func:`curation.annotate_decode._viterbi_min_press`, states as its ``MOVE_KEYS``: no
  movement key or one of eight octants). A frame costs a movement state how far its direction
  of travel lies from the state's (von Mises, ``direction_sigma_deg``, weighted by how surely
  the camera translated), and costs the no-key state how surely it translated (window parallax
  between the probe's ``weak_parallax_px`` and ``parallax_px``); switching costs and a minimum
  press length smooth the keys over the frames of a press. Unknown frames cost nothing (the
  decoder bridges them). The body accelerates over several frames, so the keys are moved
  ``key_lead_s`` earlier than the motion they explain, and a release (the body keeps moving
  while it slows down) ``release_lead_s`` more.
- **space and ctrl** where the eye height shows them: the direction of travel rises (a take-off,
  standing up) or falls (a descent, crouching). A rise followed by a fall within
  ``jump_airtime_s`` is a jump (space held ``jump_hold_frames`` from its start, ctrl off); a
  steep fall outside a jump starts a crouch (ctrl held) and a steep rise outside one ends it.
- **shift** is not inferred (always 0): sprinting shows only in the speed, which one camera
  cannot measure without the scene's scale.

:func:`probe_actions` returns keys ``[T, 7]`` (contract order), mouse ``[T, 2]`` and the known
mask; :func:`annotate_video` writes a contract ``actions.csv`` for a video without one
(``curation annotate --from-video``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.annotate_decode import MOVE_KEYS, _viterbi_min_press
from curation.probe import DEFAULT_FOV, ProbeConfig, ProbeResult, probe_video
from datagen.episode import ACTIONS_FILE, COLUMNS, KEY_COLUMNS, META_FILE, VIDEO_FILE, read_actions
from datagen.episode_writer import format_cell
from datagen.rotation import compose_turn, ypr_from_quat

_STATE_ANGLE = np.radians(45.0 * np.arange(8))  # octant k: k * 45 degrees left of forward
EXTRA_COLUMNS = ("probe_known", "probe_confidence", "probe_parallax")  # after the contract's
METHOD = ("worldforge.probe/1: KLT tracks, rotation-only and windowed essential-matrix fits; "
          "keys by minimum-press Viterbi on the direction of travel")


class ProbeActionsError(ValueError):
    """Settings or inputs the mapping cannot use."""


@dataclass(frozen=True)
class ActionConfig:
    """Settings of the mapping from probe measurements to keys. Costs are negative
    log-likelihoods, as in :class:`curation.annotate.AnnotateConfig`; defaults were tuned on
    built-in recordings of seed 0 (the benchmark reports other seeds)."""

    direction_sigma_deg: float = 15.0  # spread of the measured direction of travel
    moving_cost: float = 6.0  # what a frame that surely translated costs the no-key state
    still_cost: float = 4.0  # what a frame without parallax costs each movement state
    weak_weight: float = 0.3  # weight of a direction measured on weak parallax (sure: 1)
    switch_cost: float = 10.0  # changing the movement keys
    min_press_s: float = 0.1  # a key combination is held at least this long, ...
    short_press_cost: float = 15.0  # ... or changing it costs this much more
    key_lead_s: float = 0.033  # keys lead the motion they cause by this much, ...
    release_lead_s: float = 0.07  # ... and a release this much more (the body slows down)
    # --- space and ctrl from vertical travel
    lift_deg: float = 20.0  # elevation of the direction of travel of a take-off or a descent
    steep_deg: float = 45.0  # ... of crouching (falling) or standing up (rising) outside a jump
    jump_airtime_s: float = 1.0  # longest gap from the end of a rise to the fall of a jump
    jump_hold_frames: int = 3  # frames space is reported held from a take-off, ...
    takeoff_delay_frames: int = 1  # ... which is this long after the rise starts (the probe's
    #                                window sees a rise that early)
    min_vertical_frames: int = 2  # shortest rise or fall counted

    def __post_init__(self) -> None:
        errors = []
        for name in ("direction_sigma_deg", "min_press_s", "lift_deg", "steep_deg",
                     "jump_airtime_s"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("moving_cost", "still_cost", "switch_cost", "short_press_cost",
                     "key_lead_s", "release_lead_s"):
            if not getattr(self, name) >= 0:
                errors.append(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 < self.weak_weight <= 1:
            errors.append(f"weak_weight must be in (0, 1], got {self.weak_weight}")
        for name, low in (("jump_hold_frames", 1), ("min_vertical_frames", 1),
                          ("takeoff_delay_frames", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                errors.append(f"{name} must be an integer >= {low}, got {value!r}")
        if errors:
            raise ProbeActionsError("invalid ActionConfig: " + "; ".join(errors))


def strength(result: ProbeResult, probe_cfg: ProbeConfig | None = None) -> np.ndarray:
    """``[T]`` in [0, 1]: how surely the camera translated (0 up to ``weak_parallax_px`` of
    window parallax, 1 from ``parallax_px``)."""
    cfg = probe_cfg or ProbeConfig()
    span = max(cfg.parallax_px - cfg.weak_parallax_px, 1e-9)
    return np.clip((result.parallax - cfg.weak_parallax_px) / span, 0.0, 1.0)


def _movement(result: ProbeResult, fps: float, cfg: ActionConfig, sure: np.ndarray
              ) -> np.ndarray:
    """``[T, 4]`` W/S/A/D (see the module docstring)."""
    n = result.frames
    t = result.translation
    horizontal = np.hypot(t[:, 0], t[:, 1])
    heading = np.arctan2(t[:, 1], t[:, 0])
    measured = result.known & (horizontal > 0)  # steep travel counts little (weight)
    kappa = 1.0 / np.radians(cfg.direction_sigma_deg) ** 2
    weight = np.where(measured, (cfg.weak_weight + (1.0 - cfg.weak_weight) * sure)
                      * horizontal ** 2, 0.0)
    emit = np.zeros((n, 9))
    emit[:, 1:] = (kappa * (1.0 - np.cos(heading[:, None] - _STATE_ANGLE[None, :]))
                   * weight[:, None])
    emit[:, 0] = np.where(result.known, cfg.moving_cost * sure, 0.0)
    emit[:, 1:] += np.where(result.known, cfg.still_cost * (1.0 - sure), 0.0)[:, None]
    emit[0] = 0.0
    trans = np.where(np.eye(9, dtype=bool), 0.0, cfg.switch_cost)
    first = np.where(np.arange(9) == 0, 0.0, cfg.switch_cost)
    frames = max(1, int(round(cfg.min_press_s * fps)))
    states = _viterbi_min_press(emit, trans, first, np.arange(9) > 0, frames,
                                cfg.short_press_cost)
    lead = int(round(cfg.key_lead_s * fps))
    if lead:  # keys lead the motion they cause: the body accelerates over several frames
        states = np.concatenate([states[:1], states[1 + lead:], np.repeat(states[-1:], lead)])
    lead = int(round(cfg.release_lead_s * fps))
    if lead:
        none = states == 0
        for start in np.flatnonzero(none[1:] & ~none[:-1]) + 1:
            states[max(1, start - lead):start] = 0
    return MOVE_KEYS[states]


def _runs(mask: np.ndarray, shortest: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of True at least ``shortest`` long."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= shortest]


def _vertical(result: ProbeResult, fps: float, cfg: ActionConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """``([T] space, [T] ctrl)`` from rises and falls of the direction of travel."""
    n = result.frames
    t = result.translation
    elevation = np.degrees(np.arctan2(t[:, 2], np.hypot(t[:, 0], t[:, 1])))
    ok = result.known & (np.linalg.norm(t, axis=1) > 0)
    shortest = cfg.min_vertical_frames
    lifts = _runs(ok & (elevation > cfg.lift_deg), shortest)
    drops = _runs(ok & (elevation < -cfg.lift_deg), shortest)
    gap = int(round(cfg.jump_airtime_s * fps))
    space = np.zeros(n, dtype=np.int64)
    jumps: list[tuple[int, int]] = []
    used: set[tuple[int, int]] = set()
    for a, b in lifts:  # a jump: a rise, then a fall within the airtime
        fall = next((d for d in drops if d not in used and b - 1 <= d[0] <= b + gap), None)
        if fall is not None:
            used.add(fall)
            jumps.append((a, fall[1]))
            start = a + cfg.takeoff_delay_frames
            space[start:start + cfg.jump_hold_frames] = 1
    in_jump = np.zeros(n, dtype=bool)
    for a, b in jumps:
        in_jump[a:b] = True
    events = [(a, 0) for a, _ in jumps]  # one cannot jump crouched: ctrl is off by then
    events += [(a, 1) for a, _ in _runs(ok & (elevation < -cfg.steep_deg) & ~in_jump,
                                        shortest)]
    events += [(a, 0) for a, _ in _runs(ok & (elevation > cfg.steep_deg) & ~in_jump,
                                        shortest)]
    ctrl = np.zeros(n, dtype=np.int64)
    state, last = 0, 0
    for frame, value in sorted(events):
        ctrl[last:frame] = state
        state, last = value, frame
    ctrl[last:] = state
    return space, ctrl


def probe_actions(result: ProbeResult, fps: float, cfg: ActionConfig | None = None,
                  probe_cfg: ProbeConfig | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys uint8 ``[T, 7]`` (contract order: w, s, a, d, space, shift, ctrl), mouse float64
    ``[T, 2]`` (``mouse_dx, mouse_dy`` in degrees, row 0 zero, 0 on unknown frames) and the
    known mask bool ``[T]`` of a probed clip at ``fps`` frames per second; ``probe_cfg``: the
    settings ``result`` was measured with (for its parallax thresholds)."""
    cfg = cfg or ActionConfig()
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ProbeActionsError(f"fps must be positive, got {fps!r}")
    keys = np.zeros((result.frames, len(KEY_COLUMNS)), dtype=np.uint8)
    keys[:, :4] = _movement(result, float(fps), cfg, strength(result, probe_cfg))
    space, ctrl = _vertical(result, float(fps), cfg)
    keys[:, KEY_COLUMNS.index("key_space")] = space
    keys[:, KEY_COLUMNS.index("key_ctrl")] = ctrl
    mouse = np.zeros((result.frames, 2))
    mouse[:, 0] = np.where(result.known, -result.ypr[:, 0], 0.0)
    mouse[:, 1] = np.where(result.known, result.ypr[:, 1], 0.0)
    mouse[0] = 0.0
    return keys, mouse, result.known.copy()


def orientation(mouse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera orientation relative to frame 0 (level, yaw 0) from mouse deltas ``[T, 2]``,
    composed tick by tick as the built-in engine does (:func:`datagen.rotation.compose_turn`):
    quaternions ``[T, 4]`` and ``(yaw, pitch, roll)`` ``[T, 3]`` degrees, so the contract's
    identities ``mouse_dx[i] == -(yaw[i] - yaw[i-1])``, ``mouse_dy[i] == pitch[i] -
    pitch[i-1]`` hold (while the pitch stays within +-90 degrees)."""
    quat = np.empty((len(mouse), 4))
    q = np.array([1.0, 0.0, 0.0, 0.0])
    for i, (dx, dy) in enumerate(mouse):
        if i:
            q = compose_turn(q, -float(dx), float(dy))
        quat[i] = q
    return quat, np.stack(ypr_from_quat(quat), axis=1)


@dataclass
class VideoAnnotation:
    """What :func:`annotate_video` wrote and measured."""

    path: Path
    frames: int
    fps: float
    fov: float
    fov_source: str  # "actions.csv", "flag" or "default"
    unknown: int  # frames too poor in texture to measure
    seconds: float  # probe time


def _source(src: Path, fov: float | None, fps: float | None
            ) -> tuple[Path, float, float, str]:
    """The video of ``src`` (an MP4, or an episode folder), its frame rate, the field of view
    to use and where it came from."""
    from datagen.episode import load_meta
    from datagen.video import probe as video_info

    if src.is_dir():
        video = src / VIDEO_FILE
        if not video.is_file():
            raise ProbeActionsError(f"{src} has no {VIDEO_FILE}")
        if fps is None and (src / META_FILE).is_file():
            fps = float(load_meta(src / META_FILE).fps)
        if fov is None and (src / ACTIONS_FILE).is_file():
            _, data = read_actions(src / ACTIONS_FILE)
            if "fov" in data and len(data["fov"]):
                return video, fps or video_info(video, count=False).fps, \
                    float(data["fov"][0]), ACTIONS_FILE
    elif src.is_file():
        video = src
    else:
        raise ProbeActionsError(f"no such video or episode folder: {src}")
    if fps is None:
        fps = video_info(video, count=False).fps
    if not fps or fps <= 0:
        raise ProbeActionsError(f"{video}: no frame rate in the file; give --fps")
    return video, float(fps), float(fov if fov is not None else DEFAULT_FOV), \
        "flag" if fov is not None else "default"


def annotate_video(src: str | Path, out: str | Path, fov: float | None = None,
                   fps: float | None = None, cfg: ActionConfig | None = None,
                   probe_cfg: ProbeConfig | None = None) -> VideoAnnotation:
    """Write ``out``, a contract ``actions.csv`` for the video ``src`` (an MP4, or an episode
    folder whose video is probed; its CSV, if any, gives only the field of view), from pixels.

    Columns: the contract's, then ``probe_known`` (0/1), ``probe_confidence`` and
    ``probe_parallax`` (px). Keys and mouse come from :func:`probe_actions`; ``t = frame /
    fps``; the orientation columns are the camera's relative to frame 0 (:func:`orientation`);
    **positions and velocities are unknown and written as 0**; ``fov`` is the one used (from
    ``src``'s CSV, else ``fov``, else :data:`~curation.probe.DEFAULT_FOV`). ``out`` is written
    whole (a temporary file renamed) and never overwritten.
    """
    src, out = Path(src), Path(out)
    if out.exists():
        raise ProbeActionsError(f"{out} already exists; refusing to overwrite it")
    video, fps, fov, fov_source = _source(src, fov, fps)
    result = probe_video(video, fov, probe_cfg)
    keys, mouse, known = probe_actions(result, fps, cfg, probe_cfg)
    quat, ypr = orientation(mouse)
    n = result.frames
    zeros = np.zeros(n)
    columns = {
        "frame": np.arange(n), "t": np.arange(n) / fps,
        **{name: keys[:, j] for j, name in enumerate(KEY_COLUMNS)},
        "mouse_dx": mouse[:, 0], "mouse_dy": mouse[:, 1],
        "pos_x": zeros, "pos_y": zeros, "pos_z": zeros,
        "qw": quat[:, 0], "qx": quat[:, 1], "qy": quat[:, 2], "qz": quat[:, 3],
        "yaw": ypr[:, 0], "pitch": ypr[:, 1], "roll": ypr[:, 2],
        "vel_x": zeros, "vel_y": zeros, "vel_z": zeros, "fov": np.full(n, fov),
        "probe_known": known.astype(np.int64), "probe_confidence": result.confidence,
        "probe_parallax": result.parallax,
    }
    names = (*COLUMNS, *EXTRA_COLUMNS)
    is_key = [c in KEY_COLUMNS or c == "probe_known" for c in names]
    lines = [",".join(names)]
    for i in range(n):
        lines.append(",".join(
            str(i) if c == "frame" else format_cell(c, columns[c][i].item(), k)
            for c, k in zip(names, is_key, strict=True)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return VideoAnnotation(out, n, fps, fov, fov_source, int(np.sum(~known)), result.seconds)

