"""The learning-rate schedule: linear warm-up, then a cosine decay to ``min_lr`` (nanoGPT's).

``learning_rate(step, ...)`` is a pure function of the update index, so a resumed run gets the
same rates as an uninterrupted one without saving any scheduler state.
"""

from __future__ import annotations

import math


def learning_rate(step: int, *, lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """The rate of update ``step`` (0 = the first update).

    Warm-up: ``lr * (step + 1) / (warmup + 1)`` for ``step < warmup``; then a half cosine from
    ``lr`` at ``step = warmup`` down to ``min_lr`` at ``step = total``; ``min_lr`` after that.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
