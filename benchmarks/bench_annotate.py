"""Accuracy of ``curation annotate`` against the exact labels of built-in recordings.

Records ``--episodes`` episodes per scene and profile with the real recorder (video size does not
matter here), infers keys and mouse from the poses alone and prints markdown tables: per key
accuracy, balanced accuracy and F1 (pooled over the episodes of a scene), and the mouse error.

    python benchmarks/bench_annotate.py [--episodes 2] [--frames 900] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from curation.annotate import AnnotateConfig, accuracy, infer_actions
from datagen.cli import main as datagen_main
from datagen.episode import KEY_COLUMNS, find_episodes, read_episode

SCENES = ("city", "hills", "park", "rooms")
PROFILES = ("balanced", "explore")
KEYS = tuple(c.removeprefix("key_") for c in KEY_COLUMNS)


def _pooled(folder: Path, cfg: AnnotateConfig) -> dict:
    inferred: dict[str, list[np.ndarray]] = {}
    truth: dict[str, list[np.ndarray]] = {}
    for path in find_episodes(folder)[0]:
        d = read_episode(path).data
        pos = np.stack([d["pos_x"], d["pos_y"], d["pos_z"]], axis=1)
        quat = np.stack([d["qw"], d["qx"], d["qy"], d["qz"]], axis=1)
        out = infer_actions(d["t"], pos, quat, cfg)
        for c in (*KEY_COLUMNS, "mouse_dx", "mouse_dy"):
            inferred.setdefault(c, []).append(out[c])
            truth.setdefault(c, []).append(d[c])
    return accuracy({c: np.concatenate(v) for c, v in inferred.items()},
                    {c: np.concatenate(v) for c, v in truth.items()})


def _pct(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.2f}"


def _table(profile: str, stats: dict[str, dict]) -> str:
    head = ["scene", *(f"{k} acc" for k in KEYS), *(f"{k} F1" for k in KEYS),
            "ctrl bal.acc", "mouse max err (deg)"]
    lines = [f"### profile `{profile}`: accuracy and F1 in %, pressed share in brackets", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scene, s in stats.items():
        cells = [scene]
        cells += [f"{_pct(s[k]['accuracy'])} ({100 * s[k]['pressed']:.0f})" for k in KEYS]
        cells += [_pct(s[k]["f1"]) for k in KEYS]
        cells.append(_pct(s["ctrl"]["balanced_accuracy"]))
        cells.append(f"{max(s['mouse_dx']['max_abs_error'], s['mouse_dy']['max_abs_error']):.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--out", type=Path, default=None, help="keep the recordings here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        cfg = AnnotateConfig()
        for profile in PROFILES:
            stats = {}
            for scene in SCENES:
                folder = root / profile
                if not (folder / scene).is_dir():
                    datagen_main(["record", "--out", str(folder), "--scene", scene,
                                  "--episodes", str(args.episodes), "--frames", str(args.frames),
                                  "--size", "160x90", "--profile", profile, "--seed", "0",
                                  "--streams", "2", "--no-progress"])
                stats[scene] = _pooled(folder / scene, cfg)
            print(_table(profile, stats), "\n", flush=True)


if __name__ == "__main__":
    main()
