"""Designed action scripts for ``training eval``: each key alone, pairs, turns, looks, idle.

A script is ``frames`` rows of contract actions (keys uint8 ``[T, 7]`` in the order of
``datagen.episode.KEYS``, mouse ``[T, 2]`` = ``mouse_dx, mouse_dy`` in degrees), held from row 1
to the end; row 0 is the first frame, which no action precedes. Turns and looks move at
``turn_deg_s`` and ``look_deg_s``, well inside what the built-in engine's controllers do (their
default turn rate limit is 220 deg/s), so a model trained on its footage has seen such rates.
"""

from __future__ import annotations

import numpy as np

from datagen.episode import KEYS
from shards.action_space import ActionSpace

# name -> (keys held, mouse direction (dx, dy): +dx turns right, +dy looks up)
SCRIPTS: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "idle": ((), (0, 0)),
    "w": (("w",), (0, 0)),
    "s": (("s",), (0, 0)),
    "a": (("a",), (0, 0)),
    "d": (("d",), (0, 0)),
    "w+a": (("w", "a"), (0, 0)),
    "w+d": (("w", "d"), (0, 0)),
    "s+a": (("s", "a"), (0, 0)),
    "s+d": (("s", "d"), (0, 0)),
    "turn-left": ((), (-1, 0)),
    "turn-right": ((), (1, 0)),
    "look-up": ((), (0, 1)),
    "look-down": ((), (0, -1)),
    "w+turn-left": (("w",), (-1, 0)),
    "w+turn-right": (("w",), (1, 0)),
}


def script_names(spec: str) -> list[str]:
    """Names from a comma-separated ``spec`` ("all": every script, "": none), checked."""
    if spec.strip() == "all":
        return list(SCRIPTS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        raise ValueError(f"unknown action scripts {unknown}; known: {', '.join(SCRIPTS)}")
    return names


def fits_space(name: str, space: ActionSpace) -> bool:
    """Whether a model with action ``space`` can be given script ``name`` (its keys are in the
    space's keyboard, and it turns or looks only if the space has a mouse)."""
    keys, (dx, dy) = SCRIPTS[name]
    return all(k in space.keys for k in keys) and (space.mouse or (dx == 0 and dy == 0))


def script_actions(name: str, frames: int, fps: float, turn_deg_s: float = 45.0,
                   look_deg_s: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Keys uint8 ``[frames, 7]`` and mouse float64 ``[frames, 2]`` (degrees per frame) of
    script ``name`` at ``fps`` frames per second."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown action script {name!r}; known: {', '.join(SCRIPTS)}")
    if frames < 2 or not fps > 0:
        raise ValueError(f"a script needs frames >= 2 and fps > 0, got {frames}, {fps}")
    held, (dx, dy) = SCRIPTS[name]
    keys = np.zeros((frames, len(KEYS)), dtype=np.uint8)
    for k in held:
        keys[1:, KEYS.index(k)] = 1
    mouse = np.zeros((frames, 2))
    mouse[1:] = (dx * turn_deg_s / fps, dy * look_deg_s / fps)
    return keys, mouse
