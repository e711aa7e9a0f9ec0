"""Velocity validity: long stretches where the camera stands still are not training data.

A frame is stationary when the agent's speed ``||(vel_x, vel_y, vel_z)||`` is at most
``cfg.speed_eps`` m/s and the camera turns by at most ``cfg.turn_eps`` degrees
(``hypot(mouse_dx, mouse_dy)``): standing and looking round moves the view, and that is what a
world model must learn from the mouse. A run of stationary frames lasting longer than
``cfg.invalid_tolerance_s`` (``run frames / fps`` seconds) is dropped and splits the episode
(a stuck agent, a paused game); shorter runs (a stop at a corner, a pause of a few seconds:
the model must also learn that nothing changes without input) stay.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from curation.config import FilterConfig
from curation.redundancy import FRAME_EPS, true_runs


def agent_speed(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """float64 ``[N]``: the agent's speed in m/s from the CSV columns vel_x, vel_y, vel_z."""
    return np.sqrt(data["vel_x"] ** 2 + data["vel_y"] ** 2 + data["vel_z"] ** 2)


def camera_turn(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """float64 ``[N]``: how far the camera turns each frame, degrees, from mouse_dx, mouse_dy."""
    return np.hypot(data["mouse_dx"], data["mouse_dy"])


def invalid_runs(speed: np.ndarray, cfg: FilterConfig, fps: float,
                 turn: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of stationary frames (speed <= ``cfg.speed_eps`` and, when
    ``turn`` is given, turn <= ``cfg.turn_eps``) lasting longer than
    ``cfg.invalid_tolerance_s``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    still = np.asarray(speed, dtype=np.float64)
    if turn is not None:
        turn = np.asarray(turn, dtype=np.float64)
        if turn.shape != still.shape or not np.isfinite(turn).all():
            raise ValueError("turn must be finite numbers, one per frame like speed")
    if still.ndim != 1 or not np.isfinite(still).all():
        raise ValueError("speed must be a 1-D array of finite numbers")
    stationary = still <= cfg.speed_eps
    if turn is not None:
        stationary &= turn <= cfg.turn_eps
    return [(a, b) for a, b in true_runs(stationary)
            if b - a > cfg.invalid_tolerance_s * fps + FRAME_EPS]
