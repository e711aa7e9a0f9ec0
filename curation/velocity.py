"""Velocity validity: stretches where the agent does not move are not training data.

A frame is invalid when the agent's speed ``||(vel_x, vel_y, vel_z)||`` is at most
``cfg.speed_eps`` m/s. A run of invalid frames lasting longer than ``cfg.invalid_tolerance_s``
(``run frames / fps`` seconds) is dropped and splits the episode; shorter runs (a stop at a
corner, the first frame of a recording) stay.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from curation.config import FilterConfig
from curation.redundancy import FRAME_EPS, true_runs


def agent_speed(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """float64 ``[N]``: the agent's speed in m/s from the CSV columns vel_x, vel_y, vel_z."""
    return np.sqrt(data["vel_x"] ** 2 + data["vel_y"] ** 2 + data["vel_z"] ** 2)


def invalid_runs(speed: np.ndarray, cfg: FilterConfig, fps: float) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of frames with speed <= ``cfg.speed_eps`` lasting longer than
    ``cfg.invalid_tolerance_s``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    speed = np.asarray(speed, dtype=np.float64)
    if speed.ndim != 1 or not np.isfinite(speed).all():
        raise ValueError("speed must be a 1-D array of finite numbers")
    return [(a, b) for a, b in true_runs(speed <= cfg.speed_eps)
            if b - a > cfg.invalid_tolerance_s * fps + FRAME_EPS]
