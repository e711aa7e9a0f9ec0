"""Action coverage per behaviour profile, against the goals of footage made for training.

Simulates the built-in agent (``Agent`` stepping only, no rendering) on every scene for several
seeds and prints markdown tables, a row per profile (pooled over every run) and per profile and
scene: key and pair shares, mouse directions as a multiple of uniform among moving frames, hold
lengths, idle, how much of the time the agent is blocked (a movement key held while it does not
move: pressing against a person or a wall: share of frames and longest stretch in seconds) and
the coverage goals met (``datagen.action_coverage.check_goals``), with the missed ones named. Run:

    python benchmarks/bench_action_mix.py [--seconds 60] [--seeds 1 2 3] [--fps 30]
"""

from __future__ import annotations

import argparse

import numpy as np

from datagen.action_coverage import (
    ACTION_WINDOW,
    DIRECTIONS,
    HOLD_EDGES,
    PAIRS,
    check_goals,
    count_actions,
    coverage,
    merge_counts,
)
from datagen.builtin.agent import Agent, blocked_frames, longest_stretch
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.scenes import SCENES, build_world
from datagen.episode import KEYS
from datagen.planner import PROFILES


def simulate(profile: str, scene: str, seed: int, frames: int, fps: int) -> tuple[dict, np.ndarray]:
    """The action counts of one run and its blocked frames ``bool [frames]``."""
    world = build_world(scene, seed)
    agent = Agent(world, NavMesh.from_world(world), seed=seed, fps=fps, profile=PROFILES[profile])
    ticks = [agent.first()] + [agent.step() for _ in range(frames - 1)]
    keys = np.array([t.keys for t in ticks])
    mouse = np.array([(t.mouse_dx, t.mouse_dy) for t in ticks])
    return count_actions(keys, mouse), blocked_frames(keys, [t.position for t in ticks])


def pct(share: float) -> str:
    return f"{100 * share:.1f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    args = parser.parse_args()
    frames = round(args.seconds * args.fps)

    cells: dict[tuple[str, str], dict] = {}  # (profile, scene) -> coverage, plus "all" rows
    blocked: dict[tuple[str, str], tuple[float, float]] = {}
    for name in args.profiles:
        pooled = []
        for scene in args.scenes:
            runs = [simulate(name, scene, seed, frames, args.fps) for seed in args.seeds]
            counts = merge_counts([c for c, _ in runs])
            pooled.append(counts)
            cells[name, scene] = coverage(counts)
            masks = [m for _, m in runs]
            blocked[name, scene] = (float(np.concatenate(masks).mean()),
                                    max(longest_stretch(m) for m in masks) / args.fps)
        cells[name, "all"] = coverage(merge_counts(pooled))
        shares = [blocked[name, s] for s in args.scenes]
        blocked[name, "all"] = (float(np.mean([b[0] for b in shares])),
                                max(b[1] for b in shares))

    order = [(p, s) for p in args.profiles for s in ("all", *args.scenes)]
    print(f"{len(args.scenes) * len(args.seeds)} runs per profile ({', '.join(args.scenes)} x "
          f"seeds {', '.join(map(str, args.seeds))}), {args.seconds:g} s each at {args.fps} fps; "
          "% of frames\n")
    print(table(["profile", "scene", *KEYS, *PAIRS],
                [[p, s, *(pct(cells[p, s]["keys"][k]) for k in KEYS),
                  *(pct(cells[p, s]["pairs"][q]) for q in PAIRS)] for p, s in order]))
    print("\nmouse: % of frames moving, then each direction's share of moving frames as a "
          "multiple of uniform (1/8)\n")
    print(table(["profile", "scene", "moving", *DIRECTIONS],
                [[p, s, pct(cells[p, s]["mouse_moving"]),
                  *(f"{8 * cells[p, s]['directions'][d]:.2f}" for d in DIRECTIONS)]
                 for p, s in order]))
    print(f"\nkey presses: median length in frames / % of presses of {ACTION_WINDOW} frames or "
          "fewer (presses cut by the end of a run are left out)\n")
    print(table(["profile", "scene", *KEYS],
                [[p, s, *(f"{cells[p, s]['holds'][k]['median_frames']:.0f} / "
                          f"{pct(cells[p, s]['holds'][k]['within_window'])}" for k in KEYS)]
                 for p, s in order]))
    bins = [f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in zip(HOLD_EDGES[:-1], HOLD_EDGES[1:],
                                                                    strict=True)]
    bins.append(f"{HOLD_EDGES[-1]}+")
    print("\npress lengths (frames) pooled over the scenes: presses per bin, and median\n")
    print(table(["profile", "key", *bins, "median"],
                [[p, k, *map(str, cells[p, "all"]["holds"][k]["histogram"]),
                  f"{cells[p, 'all']['holds'][k]['median_frames']:.0f}"]
                 for p in args.profiles for k in KEYS]))
    print(f"\nidle (no key, still mouse) % of frames / in stretches of {ACTION_WINDOW}+ frames; "
          "blocked % of frames / longest stretch (s); coverage goals met, and the ones missed\n")
    rows = []
    for p, s in order:
        goals = check_goals(cells[p, s])
        missed = ", ".join(f"{g.name} {g.value:.3g}" for g in goals if not g.met)
        rows.append([p, s, f"{pct(cells[p, s]['idle'])} / {pct(cells[p, s]['idle_windows'])}",
                     f"{pct(blocked[p, s][0])} / {blocked[p, s][1]:.1f}",
                     f"{sum(g.met for g in goals)} of {len(goals)}", missed or "-"])
    print(table(["profile", "scene", "idle", "blocked", "goals met", "missed"], rows))


if __name__ == "__main__":
    main()
