"""The action-coverage section of ``curation report``: per split, the goals and four charts.

The numbers come from :mod:`datagen.action_coverage` (the one definition, also behind
``dataset.json`` and the summary of ``datagen record``): shares of keys and key pairs against
their goals, the 8 mouse directions as a multiple of uniform against the band the goals allow,
mouse speeds, and how long keys are held against the 12-frame action window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.html_page import ACCENT, esc, figure, img, save_png, table
from datagen.action_coverage import (
    ACTION_WINDOW,
    DIRECTION_GOAL,
    DIRECTIONS,
    HOLD_EDGES,
    KEY_GOAL,
    MAGNITUDE_EDGES,
    PAIR_GOAL,
    check_goals,
    count_actions,
    coverage,
    merge_counts,
)
from datagen.episode import KEYS

MISSED = "#c0392b"


def split_coverage(clips: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """Coverage per split and over ``"all"`` from ``(split, keys [T, 7], mouse [T, 2])`` per
    clip (each clip counted on its own, as training sees it)."""
    counts: dict[str, list[dict]] = {}
    for split, keys, mouse in clips:
        counts.setdefault(split, []).append(count_actions(keys, mouse))
    out = {split: coverage(merge_counts(c)) for split, c in sorted(counts.items())}
    out["all"] = coverage(merge_counts([c for cs in counts.values() for c in cs]))
    return out


def coverage_html(covs: dict[str, dict], folder: Path) -> list[str]:
    """The section's HTML parts; draws one PNG per split into ``folder``."""
    splits = list(covs)
    goals = {s: check_goals(covs[s]) for s in splits}
    parts = ["<h2>Action coverage</h2>",
             "<p>What a world model can learn from these clips: every key and listed key pair "
             f"held in at least {KEY_GOAL:.0%} and {PAIR_GOAL:.0%} of frames, each mouse "
             f"direction between {DIRECTION_GOAL[0]:g} and {DIRECTION_GOAL[1]:g} times its "
             "uniform share of the frames the mouse moves in, and idle stretches kept. "
             "Counted per clip, as training sees them.</p>"]
    rows = []
    for i, goal in enumerate(goals[splits[0]]):
        target = (f">= {goal.low:g}" if goal.high == float("inf")
                  else f"{goal.low:g} to {goal.high:g}")
        cells = [f"{goals[s][i].value:.3g}" + ("" if goals[s][i].met else "  (missed)")
                 for s in splits]
        rows.append([goal.name, target, *cells])
    parts.append(table(["goal", "target", *splits], rows, set(range(2, 2 + len(splits)))))
    met = ", ".join(f"{s}: {sum(g.met for g in goals[s])} of {len(goals[s])}" for s in splits)
    parts.append(f"<p>Goals met: {esc(met)}.</p>")
    parts.append("<details><summary>key presses per split</summary>" + table(
        ["split", "key", "presses", "median frames", "mean frames",
         f"{ACTION_WINDOW} frames or fewer", "cut by a clip edge"],
        [[s, k, h["holds"], f"{h['median_frames']:.0f}", f"{h['mean_frames']:.1f}",
          f"{h['within_window']:.0%}", h["cut"]]
         for s in splits for k, h in covs[s]["holds"].items()], {2, 3, 4, 5, 6}) + "</details>")
    parts.append("<div class=grid>")
    parts += [img(_coverage_png(folder, s, covs[s]), f"action coverage of {s}") for s in splits]
    parts.append("</div>")
    return parts


def _coverage_png(folder: Path, split: str, cov: dict) -> str:
    fig, ax = figure(9.0, 6.4)
    fig.delaxes(ax)
    axes = fig.subplots(2, 2)
    fig.suptitle(f"{split}: {cov['frames']} frames", fontsize=10)
    _shares(axes[0, 0], cov)
    _directions(axes[0, 1], cov)
    _magnitudes(axes[1, 0], cov)
    _holds(axes[1, 1], cov)
    for a in axes.flat:
        for side in ("top", "right"):
            a.spines[side].set_visible(False)
        a.tick_params(labelsize=7)
    return save_png(fig, folder, f"coverage-{split}.png")


def _shares(ax: object, cov: dict) -> None:
    names = [*cov["keys"], *cov["pairs"]]
    values = [*cov["keys"].values(), *cov["pairs"].values()]
    goals = [KEY_GOAL] * len(cov["keys"]) + [PAIR_GOAL] * len(cov["pairs"])
    x = np.arange(len(names))
    ax.bar(x, values, color=[ACCENT if v >= g else MISSED for v, g in zip(values, goals,
                                                                           strict=True)])
    ax.hlines(goals, x - 0.4, x + 0.4, colors="#333", linewidth=1)
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("share of frames held (goal: black)", fontsize=8)


def _directions(ax: object, cov: dict) -> None:
    values = [len(DIRECTIONS) * cov["directions"][d] for d in DIRECTIONS]
    x = np.arange(len(DIRECTIONS))
    low, high = DIRECTION_GOAL
    ax.axhspan(low, high, color="#2a9d4b", alpha=0.12)
    ax.bar(x, values, color=[ACCENT if low <= v <= high else MISSED for v in values])
    ax.axhline(1.0, color="#333", linewidth=0.8)
    ax.set_xticks(x, [d.replace("_", " ") for d in DIRECTIONS], rotation=45, ha="right")
    ax.set_ylabel(f"x uniform (mouse moves in {cov['mouse_moving']:.0%} of frames)", fontsize=8)


def _magnitudes(ax: object, cov: dict) -> None:
    counts = cov["counts"]["magnitudes"]
    labels = [f"{a:g}-{b:g}" for a, b in zip(MAGNITUDE_EDGES[:-1], MAGNITUDE_EDGES[1:],
                                              strict=True)] + [f">={MAGNITUDE_EDGES[-1]:g}"]
    ax.bar(np.arange(len(counts)), counts, color=ACCENT)
    ax.set_xticks(np.arange(len(counts)), labels, rotation=45, ha="right")
    ax.set_xlabel("mouse speed (degrees per frame)", fontsize=8)
    ax.set_ylabel("moving frames", fontsize=8)


def _holds(ax: object, cov: dict) -> None:
    x = np.arange(len(HOLD_EDGES))
    for k in KEYS:
        hist = cov["holds"][k]["histogram"]
        if sum(hist):
            ax.plot(x, hist, marker="o", markersize=3, linewidth=1, label=k)
    window = HOLD_EDGES.index(ACTION_WINDOW)
    ax.axvline(window - 0.5, color="#333", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, [f"{e}" for e in HOLD_EDGES], rotation=45)
    ax.set_xlabel(f"press length, frames (bins from; dashed: under {ACTION_WINDOW})", fontsize=8)
    ax.set_ylabel("presses", fontsize=8)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, ncol=2)
