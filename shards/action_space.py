"""Action spaces: map worldforge's 7 keys + mouse degrees to a model's inputs, and back.

This is the one place where the recorded actions (contract part 2: ``keys.npy`` uint8 ``[T, 7]``
in the order ``w s a d space shift ctrl``; ``mouse.npy`` ``[T, 2]`` = ``mouse_dx, mouse_dy`` in
degrees) become a model's action tensors. Shards always hold the recorded form.

Mouse sign convention (documented, and flippable per space):

- ``mouse_dx`` is the camera's yaw change in degrees, **positive = turn right**;
  ``mouse_dy`` is the pitch change, **positive = look up** (contract part 2).
- Matrix-Game 2.0's mouse action is a per-frame ``[pitch, yaw]`` delta in units of 15 degrees.
  We map ``pitch = mouse_dy / 15`` and ``yaw = mouse_dx / 15``: a positive MG2 yaw turns the
  camera right and a positive MG2 pitch looks up, the same senses as a physical mouse. We could
  not check this against the released MG2 code; if a checkpoint turns the other way, use
  ``dataclasses.replace(SPACES["mg2_universal"], flip_yaw=True)`` (or ``flip_pitch=True``).

Matrix-Game 2.0 spaces: ``mg2_universal`` = keyboard ``[W, S, A, D]`` multi-hot + mouse;
``mg2_driving`` (the GTA driving model) = keyboard ``[W, S]`` + mouse (its released config keeps
the mouse branch: steering shows up as a yaw change). ``worldforge`` is the identity: all 7 keys,
mouse ``[dx, dy]`` in degrees. ``keys7`` is the 7 keys without a mouse: the width of the
keyboard-only Temple Run model (whose released actions are 7 one-hot game moves, not our keys).

Round trips: ``to_space(*from_space(kb, ms, s), s)`` returns ``kb, ms`` exactly; the other way
round keys outside the space come back as 0 and the mouse within float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.episode import KEYS

MOUSE_AXES = ("yaw", "pitch")  # yaw = mouse_dx (positive right), pitch = mouse_dy (positive up)


@dataclass(frozen=True)
class ActionSpace:
    name: str
    keys: tuple[str, ...]  # our key names, in the order of the model's keyboard columns
    mouse: bool  # whether the model takes a mouse action
    mouse_unit_deg: float = 1.0  # degrees per model mouse unit (MG2: 15)
    mouse_order: tuple[str, str] = ("yaw", "pitch")  # model mouse columns; yaw/pitch as above
    flip_yaw: bool = False  # model yaw = -mouse_dx / unit (a model whose positive yaw turns left)
    flip_pitch: bool = False  # model pitch = -mouse_dy / unit (positive pitch looks down)

    def __post_init__(self) -> None:
        problems = []
        unknown = [k for k in self.keys if k not in KEYS]
        if unknown:
            problems.append(f"unknown keys {unknown} (known: {list(KEYS)})")
        if len(set(self.keys)) != len(self.keys):
            problems.append(f"keys must not repeat, got {list(self.keys)}")
        if not self.mouse_unit_deg > 0:
            problems.append(f"mouse_unit_deg must be positive, got {self.mouse_unit_deg}")
        if sorted(self.mouse_order) != sorted(MOUSE_AXES):
            problems.append(f"mouse_order must order {MOUSE_AXES}, got {self.mouse_order}")
        if problems:
            raise ValueError(f"action space {self.name!r}: " + "; ".join(problems))

    @property
    def key_index(self) -> list[int]:
        """Columns of our ``[T, 7]`` keys array that make the model's keyboard, in order."""
        return [KEYS.index(k) for k in self.keys]

    def _signs(self) -> np.ndarray:
        """Per model mouse column: -1 where that axis is flipped, else +1."""
        flips = {"yaw": self.flip_yaw, "pitch": self.flip_pitch}
        return np.array([-1.0 if flips[a] else 1.0 for a in self.mouse_order])

    def _mouse_columns(self) -> list[int]:
        """Column of our ``[dx, dy]`` mouse array behind each model mouse column."""
        return [MOUSE_AXES.index(a) for a in self.mouse_order]


SPACES: dict[str, ActionSpace] = {
    "worldforge": ActionSpace("worldforge", KEYS, mouse=True),
    "mg2_universal": ActionSpace("mg2_universal", ("w", "s", "a", "d"), mouse=True,
                                 mouse_unit_deg=15.0, mouse_order=("pitch", "yaw")),
    "mg2_driving": ActionSpace("mg2_driving", ("w", "s"), mouse=True, mouse_unit_deg=15.0,
                               mouse_order=("pitch", "yaw")),
    "keys7": ActionSpace("keys7", KEYS, mouse=False),
}


def get_space(space: str | ActionSpace) -> ActionSpace:
    """The space named ``space`` (a key of :data:`SPACES`), or ``space`` itself."""
    if isinstance(space, ActionSpace):
        return space
    if space not in SPACES:
        raise ValueError(f"unknown action space {space!r}; known: {sorted(SPACES)}")
    return SPACES[space]


def _check(name: str, a: np.ndarray, cols: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{name} must have shape [T, {cols}], got {list(a.shape)}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite values")
    return a


def to_space(
    keys: np.ndarray, mouse: np.ndarray, space: str | ActionSpace = "worldforge"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Recorded ``keys`` (uint8 ``[T, 7]``, 0/1) and ``mouse`` (``[T, 2]`` dx, dy degrees) to
    the space's keyboard (float32 ``[T, K]``) and mouse (float32 ``[T, 2]``, or None when the
    space has no mouse)."""
    s = get_space(space)
    keys = _check("keys", keys, len(KEYS))
    mouse = _check("mouse", mouse, 2)
    if len(keys) != len(mouse):
        raise ValueError(f"keys and mouse differ in length: {len(keys)} vs {len(mouse)}")
    if not np.all((keys == 0) | (keys == 1)):
        raise ValueError("keys must be multi-hot (only 0 and 1)")
    keyboard = keys[:, s.key_index].astype(np.float32)
    if not s.mouse:
        return keyboard, None
    model_mouse = mouse[:, s._mouse_columns()].astype(np.float64) * s._signs() / s.mouse_unit_deg
    return keyboard, model_mouse.astype(np.float32)


def from_space(
    keyboard: np.ndarray, mouse: np.ndarray | None, space: str | ActionSpace = "worldforge"
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_space`: a model's keyboard ``[T, K]`` (0/1) and mouse ``[T, 2]`` (or
    None) to our keys (uint8 ``[T, 7]``, keys outside the space 0) and mouse (float64 ``[T, 2]``
    dx, dy degrees; zeros when the space has no mouse)."""
    s = get_space(space)
    keyboard = _check("keyboard", keyboard, len(s.keys))
    if not np.all((keyboard == 0) | (keyboard == 1)):
        raise ValueError("keyboard must be multi-hot (only 0 and 1)")
    n = len(keyboard)
    keys = np.zeros((n, len(KEYS)), dtype=np.uint8)
    keys[:, s.key_index] = keyboard
    ours = np.zeros((n, 2), dtype=np.float64)
    if s.mouse:
        if mouse is None:
            raise ValueError(f"action space {s.name!r} has a mouse: mouse must not be None")
        mouse = _check("mouse", mouse, 2)
        if len(mouse) != n:
            raise ValueError(f"keyboard and mouse differ in length: {n} vs {len(mouse)}")
        ours[:, s._mouse_columns()] = mouse.astype(np.float64) * s.mouse_unit_deg * s._signs()
    elif mouse is not None:
        raise ValueError(f"action space {s.name!r} has no mouse: pass mouse=None")
    return keys, ours
