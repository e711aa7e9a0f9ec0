"""Rotation precision: an hour of per-frame mouse rotations composed in float32 and in float64.

Yaw steps commute with yaw steps and pitch steps with pitch steps, so composing
``Rz(dy) . R . Ry(-dp)`` tick after tick is exactly ``Rz(sum dy) . Ry(-sum dp)``. The reference
takes the exactly rounded sums (``math.fsum``) and builds that quaternion in extended precision;
the drift of a composition is its angle to the reference. Run:

    python benchmarks/bench_rotation.py [--minutes 60] [--fps 30]
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from datagen.rotation import compose_turn

EXT = np.longdouble  # 80-bit extended on x86-64: the reference is built above float64 precision
PI = EXT("3.14159265358979323846264338327950288")


def human_mouse(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tick (dyaw, dpitch) in degrees: smooth turns, bursts and pauses, pitch kept in range."""
    rng = np.random.default_rng(seed)
    rate = np.cumsum(rng.normal(0, 0.35, n))  # a wandering turn rate
    rate -= np.convolve(rate, np.ones(90) / 90, mode="same")
    dyaw = np.where(rng.random(n) < 0.8, rate, 0.0) + rng.normal(0, 0.05, n)
    dpitch = rng.normal(0, 0.3, n)
    pitch = 0.0
    for i in range(n):  # reflect so the camera never passes +-80 degrees
        if abs(pitch + dpitch[i]) > 80:
            dpitch[i] = -dpitch[i]
        pitch += dpitch[i]
    return dyaw, dpitch


def reference(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y = EXT(yaw_deg) % EXT(360) * PI / EXT(360)
    p = -EXT(pitch_deg) * PI / EXT(360)
    cy, sy, cp, sp = np.cos(y), np.sin(y), np.cos(p), np.sin(p)
    return np.array([cy * cp, -sy * sp, cy * sp, sy * cp], dtype=EXT)


def angle_between(q: np.ndarray, ref: np.ndarray) -> float:
    """Rotation angle (degrees) of ``ref^-1 q``, stable for tiny angles."""
    q = q.astype(EXT)
    w = abs(np.dot(q, ref))
    diff = q - ref if np.dot(q, ref) >= 0 else q + ref
    chord = np.sqrt(np.dot(diff, diff))
    return float(np.degrees(4 * np.arcsin(np.minimum(chord / 2, 1)))) if w > 0 else 180.0


def compose(dyaw: np.ndarray, dpitch: np.ndarray, dtype, checkpoints: list[int]):
    q = np.array([1, 0, 0, 0], dtype=dtype)
    dy, dp = dyaw.astype(dtype), dpitch.astype(dtype)
    out = {}
    for i in range(len(dy)):
        q = compose_turn(q, dy[i], dp[i])
        if i + 1 in checkpoints:
            out[i + 1] = q.copy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = int(args.minutes * 60 * args.fps)
    dyaw, dpitch = human_mouse(n, args.seed)
    checkpoints = sorted({n // 60, n // 10, n // 2, n})
    drift = {}
    for dtype in (np.float32, np.float64):
        # the deltas the composition actually sees (float32 inputs are rounded first)
        dy, dp = dyaw.astype(dtype).astype(np.float64), dpitch.astype(dtype).astype(np.float64)
        start = time.perf_counter()
        composed = compose(dyaw, dpitch, dtype, checkpoints)
        seconds = time.perf_counter() - start
        drift[np.dtype(dtype).name] = {
            k: angle_between(composed[k], reference(math.fsum(dy[:k]), math.fsum(dp[:k])))
            for k in checkpoints
        }
        drift[np.dtype(dtype).name]["seconds"] = seconds

    print(f"# Rotation precision ({n} ticks = {args.minutes:g} min at {args.fps} fps, "
          f"{platform.machine()}, numpy {np.__version__})\n")
    print("| after | float32 drift (deg) | float64 drift (deg) | ratio float32/float64 |")
    print("|---|---|---|---|")
    for k in checkpoints:
        d32, d64 = drift["float32"][k], drift["float64"][k]
        ratio = d32 / d64 if d64 > 0 else float("inf")
        print(f"| {k / args.fps / 60:.1f} min | {d32:.3e} | {d64:.3e} | {ratio:.3g}x |")
    print(f"\ncomposition time: float32 {drift['float32']['seconds']:.1f} s, "
          f"float64 {drift['float64']['seconds']:.1f} s")


if __name__ == "__main__":
    main()
