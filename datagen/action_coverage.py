"""Action coverage: how often each key, key pair and mouse direction appears, and how keys are held.

Computed here once for every place that shows it: ``meta.json`` of each episode, the summary at
the end of ``datagen record``, ``dataset.json`` and ``curation report`` per split, and
``benchmarks/bench_action_mix.py``. Two layers:

- :func:`count_actions` turns the labels of one sequence (keys ``[N, 7]`` in the contract's
  order, mouse ``[N, 2]`` as ``mouse_dx, mouse_dy`` degrees) into integer counts (JSON) that
  :func:`merge_counts` adds up over episodes or clips;
- :func:`coverage` turns counts into shares and checks them against :data:`GOALS`, the coverage
  a world model's training footage needs; :func:`summary` prints that on one screen.

Definitions. A *pair* such as ``w+a`` counts the frames where both are held, whatever else is;
``moving`` is any of W/S/A/D. The mouse *moves* in a frame when ``hypot(dx, dy)`` is at least
:data:`MOUSE_MOVING_DEG`; its *direction* is the nearest of 8 compass directions of
``(dx, dy)`` (``right`` is ``dx > 0``, ``up`` is ``dy > 0``). A *hold* is a run of frames with
a key held; the number of holds of each length is kept (and binned by ``HOLD_EDGES`` for
charts), but only for holds that start and end inside the sequence (the others are counted as
``cut``). *Idle* frames have no key held and a still mouse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from datagen.episode import KEYS

ACTION_WINDOW = 12  # frames of actions one latent of Matrix-Game's action module sees
MOUSE_MOVING_DEG = 0.05  # per frame: a slower mouse counts as still
DIRECTIONS = ("right", "up_right", "up", "up_left", "left", "down_left", "down", "down_right")
PAIRS = {"w+a": ("w", "a"), "w+d": ("w", "d"), "s+a": ("s", "a"), "s+d": ("s", "d"),
         "w+shift": ("w", "shift"), "moving+ctrl": ("moving", "ctrl"),
         "w+space": ("w", "space")}
HOLD_EDGES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)  # frames; bins [a, b), last open
MAGNITUDE_EDGES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # deg/frame; bins [a, b), last open
TOP_COMBOS = 12


@dataclass(frozen=True)
class Goal:
    """One coverage goal: ``low <= value <= high``."""

    name: str
    value: float
    low: float
    high: float = float("inf")

    @property
    def met(self) -> bool:
        return self.low <= self.value <= self.high

    def describe(self) -> str:
        if self.high == float("inf"):
            return f"{self.name} {self.value:.3g} (goal >= {self.low:g})"
        return f"{self.name} {self.value:.3g} (goal {self.low:g} to {self.high:g})"


# the goals of footage made for training (issue 13): shares of frames, mouse directions as a
# multiple of their uniform share among moving frames, idle as frames in idle stretches of at
# least one action window
KEY_GOAL = 0.05
PAIR_GOAL = 0.01
DIRECTION_GOAL = (0.5, 2.0)
IDLE_GOAL = 0.03


def _check(keys: np.ndarray, mouse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys)
    mouse = np.asarray(mouse, dtype=np.float64)
    if keys.ndim != 2 or keys.shape[1] != len(KEYS):
        raise ValueError(f"keys must have shape [N, {len(KEYS)}], got {keys.shape}")
    if mouse.shape != (len(keys), 2):
        raise ValueError(f"mouse must have shape [{len(keys)}, 2] to match keys, "
                         f"got {mouse.shape}")
    if not np.isin(keys, (0, 1)).all():
        raise ValueError("keys must be 0/1")
    if not np.isfinite(mouse).all():
        raise ValueError("mouse must be finite")
    return keys.astype(bool), mouse


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the maximal runs of ``True`` in a 1-D ``mask`` (the one run
    finder: curation's ``true_runs`` and the built-in agent's ``longest_stretch`` use it)."""
    edges = np.diff(np.r_[0, np.asarray(mask, dtype=bool).astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts, stops - starts


def _histogram(values: np.ndarray, edges: tuple[float, ...]) -> list[int]:
    """Counts per bin ``[edges[i], edges[i+1])``, the last bin open; values below the first
    edge are not counted."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right") - 1
    return np.bincount(index[index >= 0], minlength=len(edges)).astype(int).tolist()


def count_actions(keys: np.ndarray, mouse: np.ndarray) -> dict:
    """Integer counts of one sequence's labels (see the module docstring); JSON-ready and
    additive with :func:`merge_counts`."""
    held, mouse = _check(keys, mouse)
    n = len(held)
    column = {k: held[:, i] for i, k in enumerate(KEYS)}
    column["moving"] = held[:, :4].any(axis=1)
    combos = Counter("+".join(k for k, on in zip(KEYS, row, strict=True) if on) or "none"
                     for row in held.tolist())
    size = np.hypot(mouse[:, 0], mouse[:, 1])
    moving = size >= MOUSE_MOVING_DEG
    sector = np.round(np.arctan2(mouse[:, 1], mouse[:, 0]) / (np.pi / 4)).astype(int) % 8
    holds = {}
    for k in KEYS:
        starts, lengths = runs(column[k])
        whole = (starts > 0) & (starts + lengths < n)
        values, number = np.unique(lengths[whole], return_counts=True)
        holds[k] = {"lengths": {str(v): int(c) for v, c in zip(values, number, strict=True)},
                    "cut": int((~whole).sum())}
    idle = ~held.any(axis=1) & ~moving
    _, idle_lengths = runs(idle)
    return {
        "frames": n,
        "keys": {k: int(column[k].sum()) for k in KEYS},
        "pairs": {name: int((column[a] & column[b]).sum()) for name, (a, b) in PAIRS.items()},
        "combos": dict(sorted(combos.items())),
        "mouse_moving": int(moving.sum()),
        "directions": {d: int((moving & (sector == i)).sum()) for i, d in enumerate(DIRECTIONS)},
        "magnitudes": _histogram(size[moving], MAGNITUDE_EDGES),
        "holds": holds,
        "idle": int(idle.sum()),
        "idle_windows": int(idle_lengths[idle_lengths >= ACTION_WINDOW].sum()),
    }


def merge_counts(counts: list[dict]) -> dict:
    """The sum of several :func:`count_actions` results (an empty list gives zero counts)."""
    total = count_actions(np.zeros((0, len(KEYS)), dtype=np.uint8), np.zeros((0, 2)))

    def add(into: dict, part: dict) -> None:
        for name, value in part.items():
            if isinstance(value, dict):
                add(into.setdefault(name, {}), value)
            elif isinstance(value, list):
                into[name] = [a + b for a, b in zip(into[name], value, strict=True)]
            else:
                into[name] = into.get(name, 0) + value

    for part in counts:
        add(total, part)
    total["combos"] = dict(sorted(total["combos"].items()))
    for h in total["holds"].values():
        h["lengths"] = dict(sorted(h["lengths"].items(), key=lambda kv: int(kv[0])))
    return total


def coverage(counts: dict) -> dict:
    """Shares, hold-length statistics and goal checks of ``counts`` (JSON-ready); keeps the
    counts under ``"counts"`` so coverages can still be merged."""
    n = counts["frames"]
    moving = counts["mouse_moving"]

    def share(count: int, of: int = n) -> float:
        return count / of if of else 0.0

    holds = {}
    for k in KEYS:  # (canonical orders: counts read back from sorted JSON are alphabetical)
        lengths = np.array([int(v) for v in counts["holds"][k]["lengths"]], dtype=np.int64)
        number = np.array(list(counts["holds"][k]["lengths"].values()), dtype=np.int64)
        total = int(number.sum())
        holds[k] = {"holds": total, "cut": counts["holds"][k]["cut"],
                    "mean_frames": share(int((lengths * number).sum()), total),
                    "median_frames": _median(lengths, number),
                    "within_window": share(int(number[lengths <= ACTION_WINDOW].sum()), total),
                    "histogram": _histogram(np.repeat(lengths, number), HOLD_EDGES)}
    directions = {d: share(counts["directions"][d], moving) for d in DIRECTIONS}
    top = sorted(counts["combos"].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_COMBOS]
    cov = {
        "frames": n,
        "keys": {k: share(counts["keys"][k]) for k in KEYS},
        "pairs": {p: share(counts["pairs"][p]) for p in PAIRS},
        "combos": [{"keys": c, "fraction": share(k)} for c, k in top],
        "mouse_moving": share(moving),
        "directions": directions,
        "magnitude_edges_deg": list(MAGNITUDE_EDGES),
        "hold_edges_frames": list(HOLD_EDGES),
        "holds": holds,
        "idle": share(counts["idle"]),
        "idle_windows": share(counts["idle_windows"]),
        "counts": counts,
    }
    goals = check_goals(cov)
    cov["goals"] = [{"name": g.name, "value": g.value, "low": g.low,
                     "high": None if g.high == float("inf") else g.high, "met": g.met}
                    for g in goals]
    cov["goals_met"] = sum(g.met for g in goals)
    return cov


def check_goals(cov: dict) -> list[Goal]:
    """The coverage goals of footage for training, each with its value in ``cov`` (a
    :func:`coverage` result, also one read back from JSON)."""
    goals = [Goal(f"key {k}", cov["keys"][k], KEY_GOAL) for k in KEYS]
    goals += [Goal(f"pair {p}", cov["pairs"][p], PAIR_GOAL) for p in PAIRS]
    goals += [Goal(f"mouse {d} (x uniform)", cov["directions"][d] * len(DIRECTIONS),
                   *DIRECTION_GOAL) for d in DIRECTIONS]
    goals.append(Goal(f"idle in {ACTION_WINDOW}+ frame stretches", cov["idle_windows"],
                      IDLE_GOAL))
    return goals


def _median(values: np.ndarray, number: np.ndarray) -> float:
    """The median of ``values`` each occurring ``number`` times (0 for none)."""
    if not number.sum():
        return 0.0
    order = np.argsort(values)
    values, cum = values[order], np.cumsum(number[order])
    half = cum[-1] / 2
    low = values[np.searchsorted(cum, half)]  # the lower middle, and the upper one for an even n
    high = values[np.searchsorted(cum, half, side="right")] if cum[-1] % 2 == 0 else low
    return float(low + high) / 2


def summary(cov: dict, fps: float | None = None) -> str:
    """One screen of text: shares of keys, pairs, mouse directions, hold lengths, idle and
    which goals are missed (what ``datagen record`` prints at the end of a run)."""
    n = cov["frames"]
    if not n:
        return "action coverage: no frames"
    length = f" ({n / fps / 60:.1f} min at {fps:g} fps)" if fps else ""

    def row(label: str, items: dict, fmt: str = "{:.1%}") -> str:
        return f"  {label:<7}" + "  ".join(f"{k} {fmt.format(v)}" for k, v in items.items())

    holds = cov["holds"]
    goals = check_goals(cov)
    missed = [g.describe() for g in goals if not g.met]
    lines = [
        f"action coverage over {n} frames{length}:",
        row("keys", {k: cov["keys"][k] for k in KEYS}) + f"   (goal >= {KEY_GOAL:.0%} each)",
        row("pairs", {p: cov["pairs"][p] for p in PAIRS}) + f"   (goal >= {PAIR_GOAL:.0%} each)",
        f"  mouse  moving in {cov['mouse_moving']:.1%} of frames; direction x uniform "
        f"(goal {DIRECTION_GOAL[0]:g} to {DIRECTION_GOAL[1]:g}):",
        row("", {d: cov["directions"][d] * len(DIRECTIONS) for d in DIRECTIONS}, "{:.2f}"),
        row("holds", {k: holds[k]["median_frames"] for k in KEYS}, "{:.0f}")
        + "   (median frames per press)",
        row("", {k: holds[k]["within_window"] for k in KEYS}, "{:.0%}")
        + f"   (presses of {ACTION_WINDOW} frames or fewer)",
        f"  idle   {cov['idle']:.1%} of frames, {cov['idle_windows']:.1%} in stretches of "
        f"{ACTION_WINDOW}+ frames (goal >= {IDLE_GOAL:.0%})",
        f"  goals  {len(goals) - len(missed)} of {len(goals)} met"
        + (": missed " + "; ".join(missed) if missed else ""),
    ]
    return "\n".join(lines)
