"""Do a VAE's latents carry the motion a world model must learn from actions?

For every clip of an encoded shard folder (``training encode``), each step between two
consecutive 4-frame latents (``k`` to ``k + 1``, ``k >= 1``: latent 0 holds the first frame
alone) is compared with the same stretch of video: the mean absolute change of the latents, of
the pixels (frame ``4k`` to ``4k + 4``), and the yaw the camera turned (``|mouse dx|`` summed
over frames ``4k + 1 .. 4k + 4``). Printed: the correlation of the latent change with the
pixel change and with the turn, and the mean latent change at each ``k``. Pixels follow the
turn (a camera that turns changes the picture), so latents that do not follow the pixels give
an action-conditioned model nothing to learn from its actions.

    python benchmarks/bench_latent_motion.py SHARDS [SHARDS ...] [--clips 120]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from shards.location import open_shards
from shards.reader import clip_dataset
from training.metrics import motion_steps


def motion_rows(shards: Path, clips: int) -> np.ndarray:
    """``[k, latent change, pixel change, |yaw|]`` per latent step of the first ``clips``
    (the changes from :func:`training.metrics.motion_steps`)."""
    rows = []
    samples = clip_dataset(open_shards(shards, "train"), space="worldforge",
                           split_by_node=False, split_by_worker=False)
    for i, sample in enumerate(samples):
        if i == clips:
            break
        if "latents" not in sample:
            raise SystemExit(f"{shards} has no latents.npy: run training encode first")
        video = sample["video"].permute(3, 0, 1, 2)  # [3, T, H, W]
        changes = motion_steps(sample["latents"][0], video).numpy()
        yaw = np.abs(sample["mouse"].numpy()[:, 0])
        for k, (latent, pixel) in enumerate(changes, start=1):
            rows.append((k, latent, pixel, yaw[4 * k + 1:4 * k + 5].sum()))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", type=Path, nargs="+", help="encoded shard folders")
    parser.add_argument("--clips", type=int, default=120, help="train clips read per folder")
    args = parser.parse_args()
    print("| shards | latent steps | corr(latent, pixel change) | corr(latent change, turn) | "
          "corr(pixel change, turn) | mean latent change at k = 1, 2, 3 |")
    print("|---|---|---|---|---|---|")
    for shards in args.shards:
        a = motion_rows(shards, args.clips)
        by_k = ", ".join(f"{a[a[:, 0] == k, 1].mean():.2f}" for k in (1, 2, 3)
                         if (a[:, 0] == k).any())
        print(f"| {shards} | {len(a)} | {np.corrcoef(a[:, 1], a[:, 2])[0, 1]:.2f} | "
              f"{np.corrcoef(a[:, 1], a[:, 3])[0, 1]:.2f} | "
              f"{np.corrcoef(a[:, 2], a[:, 3])[0, 1]:.2f} | {by_k} |", flush=True)


if __name__ == "__main__":
    main()
