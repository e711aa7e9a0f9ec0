"""Temporally redundant frames: repeats (capture stutter), frozen stretches, static stretches.

Works on grey thumbnails (:func:`curation.thumbnails.thumbnails`) with OpenCV. The difference
of two frames is their mean absolute grey-level difference (0-255).

- **Repeat**: frame ``i`` differs from the last *kept* frame by at most ``cfg.dup_threshold``
  (exact duplicates, and near duplicates after H.264). Comparing with the last kept frame, not
  just the predecessor, means a slow drift is not eaten: once it adds up, a frame is kept.
  Frame 0 is never a repeat, and neither is an *idle* frame (:func:`idle_frames`: the camera did
  not move, the mouse did not turn, the agent stands): a still moment legitimately shows the
  same image again, while stutter repeats an image although its row says something moved.
- **Frozen stretch**: a run of more than ``cfg.max_merge`` consecutive repeats.
- **Static stretch**: a run of frames, each differing from its predecessor by less than
  ``cfg.static_threshold`` while the camera pose is unchanged (:func:`camera_still`), lasting at
  least ``cfg.static_min_s`` seconds (``run frames / fps``). The frame before the run is the
  last one that moved and is not part of it.

Runs are half-open ``[start, stop)`` frame ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from curation.config import FilterConfig
from datagen.action_coverage import runs
from datagen.rotation import wrap_deg

POS_TOL_M = 1e-3  # camera positions closer than this (metres) count as unchanged
ANGLE_TOL_DEG = 1e-2  # camera angles closer than this (degrees) count as unchanged
IDLE_SPEED = 1e-3  # m/s: an agent slower than this stands
FRAME_EPS = 1e-9  # slack when comparing a run's frame count with seconds * fps


@dataclass
class Redundancy:
    repeats: np.ndarray  # bool [N]: frame i repeats the last kept frame (diff <= dup_threshold)
    frozen: list[tuple[int, int]]  # [start, stop) runs of repeats longer than max_merge
    static: list[tuple[int, int]]  # [start, stop) stretches of >= static_min_s where nothing moves
    diff_kept: np.ndarray  # float64 [N]: difference from the last kept frame (0 for frame 0)
    diff_prev: np.ndarray  # float64 [N]: difference from the previous frame (0 for frame 0)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every maximal run of True in a 1-D boolean array."""
    starts, lengths = runs(mask)
    return [(int(a), int(a + n)) for a, n in zip(starts, lengths, strict=True)]


def camera_still(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """bool ``[N]``: frame ``i``'s camera pose equals frame ``i-1``'s within POS_TOL_M and
    ANGLE_TOL_DEG (from the CSV columns pos_*, yaw, pitch, roll); False for frame 0."""
    n = len(data["pos_x"])
    still = np.zeros(n, dtype=bool)
    if n < 2:
        return still
    pos = np.stack([data[c] for c in ("pos_x", "pos_y", "pos_z")], axis=1)
    moved = np.linalg.norm(np.diff(pos, axis=0), axis=1) > POS_TOL_M
    for c in ("yaw", "pitch", "roll"):
        moved |= np.abs(wrap_deg(np.diff(data[c]))) > ANGLE_TOL_DEG
    still[1:] = ~moved
    return still


def idle_frames(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """bool ``[N]``: nothing in row ``i`` should change the image: the camera did not move, the
    mouse did not turn and the agent stands (speed at most IDLE_SPEED)."""
    speed = np.linalg.norm(np.stack([data[c] for c in ("vel_x", "vel_y", "vel_z")]), axis=0)
    return (camera_still(data) & (data["mouse_dx"] == 0) & (data["mouse_dy"] == 0)
            & (speed <= IDLE_SPEED))


def detect(
    thumbs: np.ndarray, cfg: FilterConfig, fps: float, still: np.ndarray | None = None,
    idle: np.ndarray | None = None,
) -> Redundancy:
    """Find repeats, frozen and static stretches in uint8 grey thumbnails ``[N, H, W]``.

    ``still`` (bool ``[N]``, see :func:`camera_still`) says where the camera did not move; without
    it no stretch counts as static (the image alone cannot tell a still camera from a blank
    wall being panned across). ``idle`` (see :func:`idle_frames`) marks frames that are never
    repeats."""
    if not isinstance(thumbs, np.ndarray) or thumbs.dtype != np.uint8 or thumbs.ndim != 3:
        got = (f"{thumbs.dtype} {thumbs.shape}" if isinstance(thumbs, np.ndarray)
               else type(thumbs).__name__)
        raise ValueError(f"thumbnails must be a uint8 array [N, H, W], got {got}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = len(thumbs)
    for name, flags in (("camera-still", still), ("idle", idle)):
        if flags is not None and len(flags) != n:
            raise ValueError(f"{name} flags cover {len(flags)} frames, thumbnails {n}")
    idle = np.zeros(n, dtype=bool) if idle is None else np.asarray(idle, dtype=bool)
    pixels = float(thumbs.shape[1] * thumbs.shape[2]) or 1.0
    repeats = np.zeros(n, dtype=bool)
    diff_kept = np.zeros(n)
    diff_prev = np.zeros(n)
    kept = 0
    for i in range(1, n):
        diff_prev[i] = cv2.norm(thumbs[i], thumbs[i - 1], cv2.NORM_L1) / pixels
        diff_kept[i] = (diff_prev[i] if kept == i - 1
                        else cv2.norm(thumbs[i], thumbs[kept], cv2.NORM_L1) / pixels)
        if diff_kept[i] <= cfg.dup_threshold and not idle[i]:
            repeats[i] = True
        else:
            kept = i
    frozen = [(a, b) for a, b in true_runs(repeats) if b - a > cfg.max_merge]
    static: list[tuple[int, int]] = []
    if still is not None:
        quiet = (diff_prev < cfg.static_threshold) & np.asarray(still, dtype=bool)
        quiet[:1] = False
        static = [(a, b) for a, b in true_runs(quiet)
                  if b - a >= cfg.static_min_s * fps - FRAME_EPS]
    return Redundancy(repeats, frozen, static, diff_kept, diff_prev)
