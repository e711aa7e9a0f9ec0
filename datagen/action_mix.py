"""Action-mix statistics: how often each key, key combination and mouse direction appears.

Works on the label arrays of one episode or of many stacked together (keys ``[N, 7]`` in the
contract's order, mouse ``[N, 2]`` as ``mouse_dx, mouse_dy`` degrees). The result is plain JSON
for meta.json and reports, and is how a profile's coverage of the action space is checked.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from datagen.episode import KEYS as KEY_NAMES

MOUSE_BINS = ("still", "left", "right", "up", "down", "up_left", "up_right", "down_left",
              "down_right")
TOP_COMBOS = 12


def action_mix(keys: np.ndarray, mouse: np.ndarray, threshold: float = 1e-3) -> dict:
    """Fractions of frames per key, the most common key combinations and per mouse direction.

    A mouse axis counts as moving when its absolute delta exceeds ``threshold`` degrees; the
    direction bin combines the two axes (``right`` is ``mouse_dx > 0``, ``up`` is
    ``mouse_dy > 0``). Combinations are named like ``"w+a+shift"``, ``"none"`` for no key.
    """
    keys = np.asarray(keys)
    mouse = np.asarray(mouse, dtype=np.float64)
    if keys.ndim != 2 or keys.shape[1] != len(KEY_NAMES):
        raise ValueError(f"keys must have shape [N, {len(KEY_NAMES)}], got {keys.shape}")
    if mouse.shape != (len(keys), 2):
        raise ValueError(f"mouse must have shape [{len(keys)}, 2] to match keys, "
                         f"got {mouse.shape}")
    if not np.isin(keys, (0, 1)).all():
        raise ValueError("keys must be 0/1")
    n = len(keys)
    frac = (lambda count: float(count) / n) if n else (lambda count: 0.0)

    combos = Counter("+".join(k for k, on in zip(KEY_NAMES, row, strict=True) if on) or "none"
                     for row in keys.tolist())
    dx, dy = mouse[:, 0], mouse[:, 1]
    horizontal = np.where(dx > threshold, "right", np.where(dx < -threshold, "left", ""))
    vertical = np.where(dy > threshold, "up", np.where(dy < -threshold, "down", ""))
    names = [f"{v}_{h}" if v and h else v or h or "still"
             for v, h in zip(vertical.tolist(), horizontal.tolist(), strict=True)]
    bins = Counter(names)
    return {
        "frames": n,
        "keys": {k: frac(keys[:, i].sum()) for i, k in enumerate(KEY_NAMES)},
        "combos": [{"keys": c, "fraction": frac(count)}
                   for c, count in sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))
                   [:TOP_COMBOS]],
        "mouse": {b: frac(bins[b]) for b in MOUSE_BINS},
        "mouse_threshold_deg": float(threshold),
        "mean_abs_dx": float(np.abs(dx).mean()) if n else 0.0,
        "mean_abs_dy": float(np.abs(dy).mean()) if n else 0.0,
    }


def summary_line(mixes: list[dict]) -> str:
    """One line of key and mouse-direction percentages over several episodes' mixes, weighted
    by their frame counts (what ``datagen record`` prints at the end of a run)."""
    total = sum(m["frames"] for m in mixes)
    if not total:
        return "action mix: no frames"

    def pct(part: str, name: str) -> str:
        share = sum(m[part][name] * m["frames"] for m in mixes) / total
        return f"{name} {100 * share:.0f}%"

    keys = " ".join(pct("keys", k) for k in KEY_NAMES)
    mouse = " ".join(pct("mouse", b) for b in MOUSE_BINS)
    return f"action mix over {total} frames: keys {keys} | mouse {mouse}"
