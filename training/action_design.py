"""A designed distribution of player inputs, for rollouts that need no recorded footage.

Self-forcing's generator is data-free: the actions of its rollouts (and of the teacher's ODE
pairs) are drawn from a distribution of what a person does, not read from shards. A sequence is
a run of *segments*, each held for a human-like time (at least ``hold_min_s``, mean
``hold_mean_s``), and each one of:

- **idle** (``idle``): no key, no mouse;
- **keys**: one movement key (W, S, A or D, W twice as likely as the others), or with
  probability ``combo`` a pair (W+A, W+D, S+A, S+D); shift is added to W with probability
  ``sprint``; a jump (space for ``jump_frames``) starts the segment with probability ``jump``;
- **mouse**, independently of the keys with probability ``turn``: a constant turn of
  ``turn_deg_s`` (uniform in the range, either way) and, with probability ``look``, a constant
  look up or down of ``look_deg_s``.

Row 0 (the action before the first frame) copies row 1, as a recorded clip's would. The same
seed gives the same sequence. Output is the contract's form: keys uint8 ``[T, 7]`` in the order
of ``datagen.episode.KEYS``, mouse float64 ``[T, 2]`` (``mouse_dx`` positive turns right,
``mouse_dy`` positive looks up, degrees per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.episode import KEYS

SINGLE = (("w",), ("w",), ("s",), ("a",), ("d",))  # W twice: forward is the common case
PAIRS = (("w", "a"), ("w", "d"), ("s", "a"), ("s", "d"))


@dataclass(frozen=True)
class ActionDesign:
    hold_min_s: float = 0.4  # a segment lasts at least this long (12 frames at 30 fps) ...
    hold_mean_s: float = 1.2  # ... and this long on average (exponential beyond the minimum)
    idle: float = 0.15  # share of idle segments (no key, no mouse)
    combo: float = 0.3  # share of key segments holding a pair (W+A, W+D, S+A, S+D)
    sprint: float = 0.15  # share of W segments with shift
    jump: float = 0.05  # share of key segments starting with a jump
    jump_frames: int = 3  # frames space is held for a jump
    turn: float = 0.5  # share of non-idle segments that turn
    turn_deg_s: tuple[float, float] = (15.0, 90.0)  # turn rate range, either way
    look: float = 0.3  # share of turning segments that also look up or down
    look_deg_s: tuple[float, float] = (5.0, 25.0)  # look rate range, either way

    def __post_init__(self) -> None:
        problems = []
        for name in ("idle", "combo", "sprint", "jump", "turn", "look"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.hold_min_s <= self.hold_mean_s:
            problems.append(f"need 0 < hold_min_s <= hold_mean_s, got {self.hold_min_s}, "
                            f"{self.hold_mean_s}")
        for name in ("turn_deg_s", "look_deg_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                problems.append(f"{name} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        if self.jump_frames < 1:
            problems.append(f"jump_frames must be at least 1, got {self.jump_frames}")
        if problems:
            raise ValueError("action design: " + "; ".join(problems))


def sample_actions(frames: int, fps: float, rng: np.random.Generator,
                   design: ActionDesign = ActionDesign()) -> tuple[np.ndarray, np.ndarray]:
    """Keys uint8 ``[frames, 7]`` and mouse float64 ``[frames, 2]`` (degrees per frame) drawn
    from ``design`` at ``fps``; see the module docstring."""
    if frames < 2 or not fps > 0:
        raise ValueError(f"need frames >= 2 and fps > 0, got {frames}, {fps}")
    keys = np.zeros((frames, len(KEYS)), dtype=np.uint8)
    mouse = np.zeros((frames, 2))
    col = {k: KEYS.index(k) for k in KEYS}
    i = 1
    while i < frames:
        hold = design.hold_min_s + rng.exponential(design.hold_mean_s - design.hold_min_s)
        end = min(frames, i + max(1, round(hold * fps)))
        if rng.random() >= design.idle:
            held = PAIRS[rng.integers(len(PAIRS))] if rng.random() < design.combo \
                else SINGLE[rng.integers(len(SINGLE))]
            for k in held:
                keys[i:end, col[k]] = 1
            if held == ("w",) and rng.random() < design.sprint:
                keys[i:end, col["shift"]] = 1
            if rng.random() < design.jump:
                keys[i:min(end, i + design.jump_frames), col["space"]] = 1
            if rng.random() < design.turn:
                mouse[i:end, 0] = rng.choice((-1, 1)) * rng.uniform(*design.turn_deg_s) / fps
                if rng.random() < design.look:
                    mouse[i:end, 1] = rng.choice((-1, 1)) * rng.uniform(*design.look_deg_s) / fps
        i = end
    keys[0], mouse[0] = keys[1], mouse[1]
    return keys, mouse
