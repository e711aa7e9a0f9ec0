"""What the behaviour layer needs from any navigation system, built-in or an engine's own.

The built-in :class:`datagen.builtin.navmesh.NavMesh` implements it; the Unreal Engine recorder
wraps ``unreal.NavigationSystemV1`` in the same two calls, so the planner runs unchanged on top
of it. Points are float64 ``[2]`` arrays ``(x, y)`` in the contract's world frame (metres, Z up).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Unreachable(ValueError):
    """A path query whose start or goal is off the navigable area, or not connected to it."""


class Navigator(Protocol):
    def find_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Smoothed path ``[K, 2]`` from ``start`` to ``goal`` (both included), or
        :class:`Unreachable`."""
        ...

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """A navigable point drawn uniformly by area; deterministic for the generator's state."""
        ...
