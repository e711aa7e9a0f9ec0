"""Validation of the camera-motion probe against the exact labels of built-in recordings.

Records ``--episodes`` episodes per scene and profile and seed with the real recorder (an existing
recording in ``--out`` is reused), probes each video from its pixels alone (the CSV gives only
the field of view), maps the result to keys and mouse and scores it against the recorder's
labels, pooled over the episodes of a cell. Prints markdown tables for benchmarks/RESULTS.md.

    python benchmarks/bench_probe.py [--seeds 7 8] [--episodes 2] [--frames 900]
        [--size 320x180] [--out DIR]

Numbers per scene x profile:

- *unknown*: share of frames the probe marks unknown (too little texture).
- *mouse error*: ``|(dx, dy) - (dx, dy)_true|`` in degrees on known frames, median and p95.
- *direction*: on frames whose true mouse moves more than 0.5 degrees (``|(dx, dy)| > 0.5``),
  the share where the probe's ``(dx, dy)`` lies within 45 degrees of the true one: over all
  such frames (an unknown frame counts as a miss), and over the known ones. Goal: 98 %.
- *W/S/A/D, space, ctrl*: per-key accuracy over all frames (pressed share in brackets). Goal:
  every movement key 95 %. Shift is not inferred.
- *probe fps*: frames per second of the probe, decoding included (one process; the machine is
  shared, so this varies).
- *ceiling*: the W/S/A/D accuracy of a decoder that knew the exact velocity (its octant in the
  camera's yaw frame when faster than 0.3 m/s, else no key): what a direction-of-travel reading
  can reach at best. Keys held against a wall, keys released in the air (the body keeps flying)
  and the lag of the velocity behind fast turns cap it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from curation.annotate_decode import MOVE_KEYS
from curation.probe import ProbeConfig, probe_video
from curation.probe_actions import ActionConfig, probe_actions
from curation.probe_score import SCORABLE_KEYS, score_actions
from datagen.cli import main as datagen_main
from datagen.episode import KEY_COLUMNS, VIDEO_FILE, find_episodes, read_episode

SCENES = ("city", "hills", "park", "rooms")
PROFILES = ("explore", "balanced")
SCORED = SCORABLE_KEYS
GOAL_KEYS, GOAL_DIRECTION = 0.95, 0.98


def ceiling_keys(d: dict[str, np.ndarray]) -> np.ndarray:
    """``[N, 4]`` W/S/A/D from the exact velocity's octant in the yaw frame (see docstring)."""
    yaw = np.radians(d["yaw"])
    vx, vy = d["vel_x"], d["vel_y"]
    fwd, left = vx * np.cos(yaw) + vy * np.sin(yaw), -vx * np.sin(yaw) + vy * np.cos(yaw)
    octant = np.round(np.degrees(np.arctan2(left, fwd)) / 45.0).astype(int) % 8 + 1
    return MOVE_KEYS[np.where(np.hypot(fwd, left) > 0.3, octant, 0)]


def _cell(folder: Path, probe_cfg: ProbeConfig, cfg: ActionConfig) -> dict:
    keys, truth, ceiling, mouse, true_mouse, known = [], [], [], [], [], []
    frames, seconds = 0, 0.0
    for path in find_episodes(folder)[0]:
        episode = read_episode(path)
        d = episode.data
        result = probe_video(episode.path / VIDEO_FILE, float(d["fov"][0]), probe_cfg)
        k, m, ok = probe_actions(result, episode.meta.fps, cfg, probe_cfg)
        keys.append(k)
        mouse.append(m)
        known.append(ok)
        truth.append(np.stack([d[c] for c in KEY_COLUMNS], axis=1))
        ceiling.append(ceiling_keys(d))
        true_mouse.append(np.stack([d["mouse_dx"], d["mouse_dy"]], axis=1))
        frames += result.frames
        seconds += result.seconds
    k, y, c = np.concatenate(keys), np.concatenate(truth), np.concatenate(ceiling)
    stats = score_actions(k, np.concatenate(mouse), np.concatenate(known), y,
                          np.concatenate(true_mouse))
    stats["fps"] = frames / max(seconds, 1e-9)
    for j, name in enumerate("wsad"):
        stats[f"{name}_ceiling"] = float(np.mean(c[:, j] == y[:, j]))
    return stats


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _table(seed: int, stats: dict[tuple[str, str], dict], size: str) -> str:
    head = ["profile", "scene", "unknown %", "mouse err med / p95 (deg)",
            "direction % all / known",
            *(f"{k} %" for k in SCORED), "ceiling W/S/A/D %", "probe fps"]
    lines = [f"### seed {seed} ({size}; * below the goal: direction 98 %, W/S/A/D 95 %)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (profile, scene), s in stats.items():
        cells = [profile, scene, _pct(s["unknown"]),
                 f"{s['mouse_median']:.3f} / {s['mouse_p95']:.2f}",
                 _pct(s["direction"]) + ("*" if s["direction"] < GOAL_DIRECTION else "")
                 + " / " + _pct(s["direction_known"])
                 + ("*" if s["direction_known"] < GOAL_DIRECTION else "")]
        for k in SCORED:
            mark = "*" if k in "wsad" and s[f"key_{k}"] < GOAL_KEYS else ""
            cells.append(f"{_pct(s[f'key_{k}'])}{mark} ({100 * s[f'pressed_{k}']:.0f})")
        cells.append(" / ".join(_pct(s[f"{k}_ceiling"]) for k in "wsad"))
        cells.append(f"{s['fps']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    moves = np.array([[s[f"key_{k}"] for k in "wsad"] for s in stats.values()])
    direction = np.array([s["direction"] for s in stats.values()])
    known = np.array([s["direction_known"] for s in stats.values()])
    lines += ["", f"cells below 98 % direction: {int(np.sum(direction < GOAL_DIRECTION))} of "
              f"{len(direction)} over all frames (lowest {100 * direction.min():.1f} %), "
              f"{int(np.sum(known < GOAL_DIRECTION))} over known frames (lowest "
              f"{100 * known.min():.1f} %); cells x movement keys below 95 %: "
              f"{int(np.sum(moves < GOAL_KEYS))} of {moves.size} (lowest "
              f"{100 * moves.min():.1f} %, mean {100 * moves.mean():.1f} %)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8],
                        help="recording seeds (settings were tuned on 0; 1 and 4 were looked "
                             "at during development; 7 and 8 are held out)")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument("--scenes", nargs="+", default=list(SCENES))
    parser.add_argument("--work-width", type=int, default=ProbeConfig().work_width)
    parser.add_argument("--streams", type=int, default=1, help="recorders side by side")
    parser.add_argument("--out", type=Path, default=None, help="keep (and reuse) recordings here")
    args = parser.parse_args()
    probe_cfg, cfg = ProbeConfig(work_width=args.work_width), ActionConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for seed in args.seeds:
            stats = {}
            for profile in args.profiles:
                for scene in args.scenes:
                    folder = root / args.size / f"seed{seed}" / profile
                    if not (folder / scene).is_dir():
                        with contextlib.redirect_stdout(sys.stderr):  # tables on stdout only
                            datagen_main(["record", "--out", str(folder), "--scene", scene,
                                          "--episodes", str(args.episodes), "--frames",
                                          str(args.frames), "--size", args.size, "--profile",
                                          profile, "--seed", str(seed), "--streams",
                                          str(args.streams), "--no-progress"])
                    stats[(profile, scene)] = _cell(folder / scene, probe_cfg, cfg)
            print(_table(seed, stats, f"{args.size}, probe at width {args.work_width}"),
                  "\n", flush=True)


if __name__ == "__main__":
    main()
