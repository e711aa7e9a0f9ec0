"""Action mix per behaviour profile: the share of frames per key and per mouse direction.

Simulates the built-in agent (``Agent`` stepping only, no rendering) on every scene for several
seeds and prints one markdown table of key shares (plus a few key combinations) and one of mouse
directions, a row per profile, pooled over all runs, plus how much of the time the agent is
blocked (a movement key held while it does not move: pressing against a person or a wall) per
scene and profile, as a share of frames and the longest blocked stretch in seconds. Run:

    python benchmarks/bench_action_mix.py [--seconds 60] [--seeds 1 2 3] [--fps 30]
"""

from __future__ import annotations

import argparse

import numpy as np

from datagen.action_mix import MOUSE_BINS, action_mix
from datagen.controller import PROFILES, Agent, blocked_frames, longest_stretch
from datagen.episode import KEYS
from datagen.navmesh import NavMesh
from datagen.scenes import SCENES, build_world

# key combinations (exact, without space/shift/ctrl) and modifiers on W worth seeing in the table
COMBOS = {"w+a": (1, 0, 1, 0), "w+d": (1, 0, 0, 1), "s+a": (0, 1, 1, 0), "s+d": (0, 1, 0, 1)}


def simulate(profile: str, scenes: list[str], seeds: list[int], frames: int,
             fps: int) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[float, float]]]:
    """Keys ``[N, 7]`` and mouse ``[N, 2]`` of every run stacked together, and per scene the
    blocked share of frames and the longest blocked stretch (seconds) over its seeds."""
    keys, mouse, blocked = [], [], {}
    for scene in scenes:
        masks = []
        for seed in seeds:
            world = build_world(scene, seed)
            agent = Agent(world, NavMesh.from_world(world), seed=seed, fps=fps,
                          profile=PROFILES[profile])
            ticks = [agent.first()] + [agent.step() for _ in range(frames - 1)]
            keys.append([t.keys for t in ticks])
            mouse.append([(t.mouse_dx, t.mouse_dy) for t in ticks])
            masks.append(blocked_frames(keys[-1], [t.position for t in ticks]))
        blocked[scene] = (float(np.concatenate(masks).mean()),
                          max(longest_stretch(m) for m in masks) / fps)
    return np.concatenate(keys), np.concatenate(mouse), blocked


def pct(share: float) -> str:
    return f"{100 * share:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    args = parser.parse_args()
    frames = round(args.seconds * args.fps)

    mixes, blocked = {}, {}
    for name in args.profiles:
        keys, mouse, blocked[name] = simulate(name, args.scenes, args.seeds, frames, args.fps)
        mix = action_mix(keys, mouse)
        wsad = keys[:, :4]
        mix["extra"] = {c: float((wsad == v).all(axis=1).mean()) for c, v in COMBOS.items()}
        mix["extra"]["w+shift"] = float((keys[:, 0] & keys[:, 5]).mean())
        mix["extra"]["moving+ctrl"] = float((wsad.any(axis=1) & keys[:, 6]).mean())
        mix["extra"]["no w/s/a/d"] = float((~wsad.any(axis=1)).mean())
        mixes[name] = mix

    runs = len(args.scenes) * len(args.seeds)
    print(f"{runs} runs per profile ({', '.join(args.scenes)} x seeds "
          f"{', '.join(map(str, args.seeds))}), {args.seconds:g} s each at {args.fps} fps; "
          "% of frames\n")
    extra = list(next(iter(mixes.values()))["extra"])
    print("| profile | " + " | ".join(KEYS) + " | " + " | ".join(extra) + " |")
    print("|---" * (1 + len(KEYS) + len(extra)) + "|")
    for name, mix in mixes.items():
        cells = [pct(mix["keys"][k]) for k in KEYS] + [pct(mix["extra"][c]) for c in extra]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| profile | " + " | ".join(MOUSE_BINS) + " |")
    print("|---" * (1 + len(MOUSE_BINS)) + "|")
    for name, mix in mixes.items():
        print(f"| {name} | " + " | ".join(pct(mix["mouse"][b]) for b in MOUSE_BINS) + " |")
    print("\nblocked: % of frames / longest stretch in seconds")
    print("\n| profile | " + " | ".join(args.scenes) + " | all |")
    print("|---" * (2 + len(args.scenes)) + "|")
    for name, per_scene in blocked.items():
        share = float(np.mean([v[0] for v in per_scene.values()]))  # equal frames per scene
        worst = max(v[1] for v in per_scene.values())
        cells = [f"{pct(v[0])} / {v[1]:.1f}" for v in per_scene.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {pct(share)} / {worst:.1f} |")


if __name__ == "__main__":
    main()
