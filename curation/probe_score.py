"""How well actions read from video by the probe agree with the actions that were given.

One definition serves the probe's validation against recorded labels
(``benchmarks/bench_probe.py``) and ``training eval`` (generated video against the inputs it was
generated from), so a model's numbers and the probe's ceiling are comparable:

- ``unknown``: share of frames the probe could not measure (too little texture).
- ``mouse_median`` / ``mouse_p95``: ``|(dx, dy) - (dx, dy)_given|`` in degrees over known frames.
- ``direction``: on frames whose given mouse moves more than :data:`MOUSE_MOVING_DEG`
  (``|(dx, dy)| > 0.5``), the share where the probe's ``(dx, dy)`` lies within
  :data:`DIRECTION_TOLERANCE_DEG` of the given one; an unknown frame counts as a miss.
  ``direction_known``: the same over known frames only. This is the *mouse accuracy*.
- ``key_<k>``: per-key accuracy (the probe's key state equals the given one) over all frames,
  with ``pressed_<k>`` the share of frames the key was given pressed. ``keyboard``: the share
  of frames where all the scored movement keys (W, S, A, D, those the caller scores) agree at
  once: the *keyboard accuracy*.

Shift is never scored: sprinting shows only in the speed, which one camera cannot measure.
Frames are rows of the contract (row ``i`` is the action between frame ``i-1`` and ``i``).
"""

from __future__ import annotations

import numpy as np

from datagen.episode import KEY_COLUMNS, KEYS

MOUSE_MOVING_DEG = 0.5  # frames whose given mouse moves more than this are direction-scored
DIRECTION_TOLERANCE_DEG = 45.0  # the probe's mouse direction within this of the given one
SCORABLE_KEYS = ("w", "s", "a", "d", "space", "ctrl")  # what the probe can read
MOVEMENT_KEYS = ("w", "s", "a", "d")


def score_actions(keys: np.ndarray, mouse: np.ndarray, known: np.ndarray,
                  given_keys: np.ndarray, given_mouse: np.ndarray,
                  scored: tuple[str, ...] = SCORABLE_KEYS) -> dict[str, float]:
    """Scores (see the module docstring) of probed ``keys [T, 7]``, ``mouse [T, 2]`` (degrees)
    and ``known [T]`` against the given ``[T, 7]`` keys and ``[T, 2]`` mouse; ``scored``: key
    names to score (those an action space has). Fractions are in [0, 1]; a score with no frames
    to count (no moving mouse frame) is NaN."""
    keys, given_keys = np.asarray(keys), np.asarray(given_keys)
    mouse, given_mouse = np.asarray(mouse, np.float64), np.asarray(given_mouse, np.float64)
    known = np.asarray(known, bool)
    t = len(known)
    for name, a, cols in (("keys", keys, len(KEYS)), ("given keys", given_keys, len(KEYS)),
                          ("mouse", mouse, 2), ("given mouse", given_mouse, 2)):
        if a.shape != (t, cols):
            raise ValueError(f"{name} must be [{t}, {cols}] (as the known mask), got "
                             f"{list(a.shape)}")
    bad = [k for k in scored if k not in SCORABLE_KEYS]
    if bad:
        raise ValueError(f"cannot score keys {bad}: the probe reads only {list(SCORABLE_KEYS)}")
    err = np.linalg.norm(mouse - given_mouse, axis=1)[known]
    norm, given_norm = np.linalg.norm(mouse, axis=1), np.linalg.norm(given_mouse, axis=1)
    cos = np.sum(mouse * given_mouse, axis=1) / np.maximum(norm * given_norm, 1e-12)
    agree = known & (cos > np.cos(np.radians(DIRECTION_TOLERANCE_DEG)))
    big = given_norm > MOUSE_MOVING_DEG
    nan = float("nan")
    out = {"frames": float(t), "unknown": float(np.mean(~known)) if t else nan,
           "mouse_median": float(np.median(err)) if len(err) else nan,
           "mouse_p95": float(np.percentile(err, 95)) if len(err) else nan,
           "moving_frames": float(big.sum()),
           "direction": float(np.mean(agree[big])) if big.any() else nan,
           "direction_known": float(np.mean(agree[big & known])) if (big & known).any() else nan}
    moves = [KEY_COLUMNS.index(f"key_{k}") for k in scored if k in MOVEMENT_KEYS]
    out["keyboard"] = (float(np.mean(np.all(keys[:, moves] == given_keys[:, moves], axis=1)))
                       if moves and t else nan)
    for k in scored:
        j = KEY_COLUMNS.index(f"key_{k}")
        out[f"key_{k}"] = float(np.mean(keys[:, j] == given_keys[:, j])) if t else nan
        out[f"pressed_{k}"] = float(np.mean(given_keys[:, j] > 0)) if t else nan
    return out
