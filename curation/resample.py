"""Time resampling of a segment to another frame rate, keeping the inputs consistent.

Output frame ``j`` has time ``t0 + j / fps`` (``t0``: the segment's first frame), for every such
time within the segment's span, so ``T = floor(span * fps) + 1`` frames. It shows the segment
frame at or just before that time (nearest-previous; dropped repeats leave gaps, which are
handled the same way). Its pose, angles, velocity, fov and ``t`` are that frame's row, exactly.
Its mouse deltas are the sum of the mouse deltas of the segment rows after the previous output
frame's shown row up to its own shown row, so ``mouse_dx[j] == -(yaw[j] - yaw[j-1])`` (wrapped)
still holds; its keys are those rows' keys OR-ed. When no new row lies between two output
frames (upsampling shows a frame twice) the mouse deltas are zero and the keys are the shown
row's (held). Output frame 0 is the segment's frame 0 with its own row. Upsampling repeats
source frames, so ``source_frames`` is then non-decreasing rather than strictly increasing.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from curation.segments import LABEL_COLUMNS, MOUSE_COLUMNS, Segment
from datagen.episode import KEY_COLUMNS

METHOD = "nearest-previous frame, mouse summed, keys held"
TIME_EPS_S = 1e-6  # slack for float times: far below any frame interval (1/240 s at most fps)


def shown_rows(times: np.ndarray, fps: float) -> np.ndarray:
    """int64 ``[T]``: for each output time ``times[0] + j / fps``, the index of the last row of
    ``times`` (non-decreasing seconds) at or before it."""
    times = np.asarray(times, dtype=np.float64)
    count = math.floor((times[-1] - times[0]) * fps + TIME_EPS_S) + 1
    out_t = times[0] + np.arange(count) / fps
    return np.searchsorted(times, out_t + TIME_EPS_S, side="right").astype(np.int64) - 1


def merge_inputs(shown: np.ndarray, keys: np.ndarray, mouse: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of output frames that show rows ``shown`` (:func:`shown_rows`) of source rows
    with ``keys`` (0/1 ``[N, K]``) and ``mouse`` deltas (``[N, M]``): uint8 keys ``[T, K]`` OR-ed
    and float64 mouse ``[T, M]`` summed over the rows since the previous frame's, frame 0 row 0's
    alone; where no new row arrives, zero mouse and the shown row's keys (held)."""
    # Rows merged into output frame j: (shown[j-1], shown[j]]; frame 0 takes row 0 alone. The
    # non-empty ranges tile [0, shown[-1]] in order, so one reduceat sums them all.
    new_row = np.ones(len(shown), dtype=bool)
    new_row[1:] = shown[1:] > shown[:-1]
    starts = np.concatenate(([0], shown[:-1] + 1))[new_row]
    stop = shown[-1] + 1
    merged = np.zeros((len(shown), mouse.shape[1]))
    merged[new_row] = np.add.reduceat(np.asarray(mouse, dtype=np.float64)[:stop], starts, axis=0)
    held = np.asarray(keys)[shown].copy()  # the shown row's keys, kept where no new row arrives
    held[new_row] = np.maximum.reduceat(np.asarray(keys)[:stop], starts, axis=0)
    return held.astype(np.uint8), merged


def resample(segment: Segment, fps: float) -> Segment:
    """``segment`` at ``fps`` frames per second (see the module docstring)."""
    if not fps > 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if len(segment) == 0:
        raise ValueError(f"cannot resample an empty segment of episode {segment.episode}")
    problems = segment.problems()
    if problems:
        raise ValueError(f"segment of episode {segment.episode} is inconsistent: "
                         + "; ".join(problems))
    times = segment.labels["t"]
    if np.any(np.diff(times) < 0):
        raise ValueError(f"segment of episode {segment.episode}: times must not decrease")
    shown = shown_rows(times, fps)
    labels = {c: segment.labels[c][shown] for c in LABEL_COLUMNS}
    keys, mouse = merge_inputs(shown, np.stack([segment.labels[c] for c in KEY_COLUMNS], 1),
                               np.stack([segment.labels[c] for c in MOUSE_COLUMNS], 1))
    labels.update({c: keys[:, i].copy() for i, c in enumerate(KEY_COLUMNS)})
    labels.update({c: mouse[:, i].copy() for i, c in enumerate(MOUSE_COLUMNS)})
    from_fps = (segment.resampling or {}).get("from_fps", segment.fps)
    return dataclasses.replace(
        segment, source_frames=segment.source_frames[shown], labels=labels, fps=float(fps),
        resampling={"from_fps": from_fps, "to_fps": float(fps), "method": METHOD},
        extra=dict(segment.extra))
