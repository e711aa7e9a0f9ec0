"""Shared fixtures: synthetic episodes whose right answers are known by construction.

``record_builtin(...)`` records real episodes on the built-in engine (160x90, one stream).
``make_episode(...)`` writes a small but fully consistent episode (real H.264 through the real
writer) and returns what went in, so tests can compare what comes out. Rows satisfy every
contract identity: yaw/pitch are running sums of random mouse deltas, the quaternion comes from
the angles, ``t = frame / fps``; frames are smooth moving colour gradients.
"""

from __future__ import annotations

import os

# One math thread per process: on the two-core CI machine a second OpenMP thread waiting for a
# core made training steps many times slower. Set before any test module imports torch, and
# inherited by the trainer subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from datagen.cli import main as datagen_main
from datagen.episode import KEY_COLUMNS, EpisodeMeta, find_episodes
from datagen.episode_writer import EpisodeWriter
from datagen.rotation import quat_from_ypr, wrap_deg


def synthetic_rows(
    n: int, seed: int = 0, extra_columns: Sequence[str] = ()
) -> list[dict[str, float]]:
    """``n`` rows for ``add_frame`` (every contract column but frame and t) that satisfy the
    mouse/angle alignment identities and carry awkward float64 values in ``pos_*``."""
    rng = np.random.default_rng(seed)
    dx = rng.uniform(-7.0, 7.0, n)
    dy = rng.uniform(-3.0, 3.0, n)
    dx[0] = dy[0] = 0.0
    yaw = np.empty(n)
    pitch = np.empty(n)
    yaw[0], pitch[0] = 170.0, 0.0  # yaw starts near the wrap so the identities cross +-180
    for i in range(1, n):
        yaw[i] = wrap_deg(yaw[i - 1] - dx[i])
        pitch[i] = np.clip(pitch[i - 1] + dy[i], -80.0, 80.0)
        dy[i] = pitch[i] - pitch[i - 1]
    roll = np.zeros(n)
    quat = quat_from_ypr(yaw, pitch, roll)
    awkward = [0.1 + 0.2, 1e-300, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3]
    rows = []
    for i in range(n):
        keys = rng.integers(0, 2, len(KEY_COLUMNS))
        row: dict[str, float] = {c: int(k) for c, k in zip(KEY_COLUMNS, keys, strict=True)}
        row.update(
            mouse_dx=float(dx[i]), mouse_dy=float(dy[i]),
            pos_x=awkward[i % len(awkward)], pos_y=float(rng.normal()) * 1e3, pos_z=1.7,
            qw=float(quat[i, 0]), qx=float(quat[i, 1]), qy=float(quat[i, 2]),
            qz=float(quat[i, 3]), yaw=float(yaw[i]), pitch=float(pitch[i]), roll=0.0,
            vel_x=float(rng.normal()), vel_y=float(rng.normal()), vel_z=0.0, fov=90.0)
        row.update({c: float(rng.normal()) for c in extra_columns})
        rows.append(row)
    return rows


def synthetic_frames(n: int, width: int, height: int) -> np.ndarray:
    """``[n, H, W, 3]`` uint8: smooth gradients drifting over time (easy for H.264)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 128 + 100 * np.sin((x + 2 * i) / width * 2 * np.pi)
        frames[i, ..., 1] = 128 + 100 * np.cos((y - i) / height * 2 * np.pi)
        frames[i, ..., 2] = (x + y + 3 * i) / (width + height + 3 * n) * 255
    return frames


def record_builtin(out: Path, frames: int, scene: str = "city",
                   profile: str = "explore") -> list[Path]:
    """Record one real ``scene`` episode of ``frames`` frames at 160x90 under ``out``; returns
    every finished episode there. ``explore`` by default: the walking footage the curation,
    probe and training tests were written against (``datagen record`` defaults to balanced)."""
    assert datagen_main(["record", "--out", str(out), "--scene", scene, "--frames", str(frames),
                         "--size", "160x90", "--streams", "1", "--profile", profile,
                         "--no-progress"]) == 0
    return find_episodes(out)[0]


@dataclass
class SyntheticEpisode:
    path: Path  # the finished episode folder
    meta: EpisodeMeta  # the metadata handed to the writer
    rows: list[dict[str, float]]  # what add_frame received
    frames: np.ndarray  # [N, H, W, 3] uint8 images that were encoded


def write_synthetic_episode(
    root: Path, frames: int = 12, width: int = 64, height: int = 48, fps: float = 10,
    seed: int = 0, index: int = 0, scene: str = "synth", extra_columns: Sequence[str] = (),
    meta_extra: dict | None = None,
) -> SyntheticEpisode:
    meta = EpisodeMeta(
        episode_id=f"{scene}_{seed}_{index:05d}", backend="builtin", scene=scene, seed=seed,
        fps=fps, width=width, height=height, engine={"name": "synthetic"},
        settings={"pattern": "gradients"}, extra=dict(meta_extra or {}))
    rows = synthetic_rows(frames, seed, extra_columns)
    images = synthetic_frames(frames, width, height)
    with EpisodeWriter(root, meta, extra_columns=extra_columns) as writer:
        for image, row in zip(images, rows, strict=True):
            writer.add_frame(image, row)
        path = writer.finish()
    return SyntheticEpisode(path, meta, rows, images)


@pytest.fixture
def make_episode(tmp_path: Path) -> Callable[..., SyntheticEpisode]:
    """Factory: ``make_episode(frames=12, width=64, height=48, fps=10, seed=0, index=0,
    scene="synth", extra_columns=(), meta_extra=None, root=tmp_path / "out")``."""

    def make(root: Path | None = None, **kwargs) -> SyntheticEpisode:
        return write_synthetic_episode(root or tmp_path / "out", **kwargs)

    return make


@pytest.fixture(scope="session")
def _good_episode_source(tmp_path_factory: pytest.TempPathFactory) -> SyntheticEpisode:
    return write_synthetic_episode(tmp_path_factory.mktemp("good") / "out", frames=24)


@pytest.fixture
def good_episode(_good_episode_source: SyntheticEpisode, tmp_path: Path) -> SyntheticEpisode:
    """A valid 24-frame episode, copied fresh into this test's tmp_path (safe to edit)."""
    src = _good_episode_source
    dst = tmp_path / "out" / src.path.parent.name / src.path.name
    shutil.copytree(src.path, dst)
    return SyntheticEpisode(dst, src.meta, src.rows, src.frames)
