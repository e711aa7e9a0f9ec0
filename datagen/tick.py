"""One frame as every recorder logs it: the inputs that produced it and the camera pose after.

:class:`Tick` is what a backend hands over per frame; ``row()`` is its ``actions.csv`` row in
the contract's columns (:mod:`datagen.episode`), so the built-in engine and the Unreal plugin
fill the CSV the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datagen.episode import KEYS
from datagen.keyboard import Keys


@dataclass
class Tick:
    """One frame's row: the inputs that produced it and the camera pose after them, plus the
    movers' poses the frame shows (not logged)."""

    keys: Keys
    mouse_dx: float
    mouse_dy: float
    position: np.ndarray  # camera, world frame, metres [3]
    quat: np.ndarray  # camera-to-world (w, x, y, z) [4]
    yaw: float
    pitch: float
    roll: float
    velocity: np.ndarray  # agent (feet), world frame, m/s [3]
    fov: float
    movers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [M, 3] x, y, heading

    def row(self) -> dict[str, float | int]:
        """The contract's ``actions.csv`` columns, without ``frame`` and ``t``."""
        row: dict[str, float | int] = {
            f"key_{k}": int(v) for k, v in zip(KEYS, self.keys, strict=True)}
        row |= {"mouse_dx": float(self.mouse_dx), "mouse_dy": float(self.mouse_dy)}
        row |= {f"pos_{a}": float(v) for a, v in zip("xyz", self.position, strict=True)}
        row |= {f"q{a}": float(v) for a, v in zip("wxyz", self.quat, strict=True)}
        row |= {"yaw": float(self.yaw), "pitch": float(self.pitch), "roll": float(self.roll)}
        row |= {f"vel_{a}": float(v) for a, v in zip("xyz", self.velocity, strict=True)}
        row["fov"] = float(self.fov)
        return row
