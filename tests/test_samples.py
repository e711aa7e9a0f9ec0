"""Shard samples: members, dtypes and values as the data contract says (real episodes)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import record_builtin

from curation.clips import cut_clips, intrinsics_after_resize
from curation.config import FilterConfig
from curation.encode import encode_clips
from curation.samples import make_sample
from curation.segments import LABEL_COLUMNS, Segment
from datagen.episode import (
    ACTIONS_FILE,
    KEY_COLUMNS,
    KEYS,
    VIDEO_FILE,
    read_actions,
    read_episode,
)

POSE = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")


def segment_of(path: Path, source_frames: np.ndarray) -> Segment:
    """A Segment of a recorded episode: the given source frames and their CSV rows."""
    ep = read_episode(path)
    labels = {c: ep.data[c][source_frames].astype(np.uint8 if c.startswith("key_") else float)
              for c in LABEL_COLUMNS}
    return Segment(ep.meta.episode_id, path, np.asarray(source_frames, np.int64), labels,
                   ep.meta.fps, scene=ep.meta.scene, backend=ep.meta.backend)


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_builtin(tmp_path_factory.mktemp("rec"), 60)[0]


def load(sample: dict, member: str) -> np.ndarray:
    return np.load(io.BytesIO(sample[member]), allow_pickle=False)


def samples_of(seg: Segment, cfg: FilterConfig) -> list[dict]:
    return [make_sample(plan, mp4, cfg)
            for plan, mp4 in encode_clips(seg.source / VIDEO_FILE, cut_clips(seg, cfg), cfg)]


def test_arrays_are_the_segment_labels_and_the_source_rows(episode: Path) -> None:
    source_frames = np.arange(1, 60, 2)
    seg = segment_of(episode, source_frames)
    cfg = FilterConfig(clip_frames=10, stride=6, width=64, height=36)
    _, csv = read_actions(episode / ACTIONS_FILE)
    samples = samples_of(seg, cfg)
    assert len(samples) == 4
    for i, sample in enumerate(samples):
        rows = slice(6 * i, 6 * i + 10)
        src = source_frames[rows]
        assert sample["__key__"] == f"{seg.episode}_{src[0]:06d}"
        keys, mouse, pose = (load(sample, m) for m in ("keys.npy", "mouse.npy", "pose.npy"))
        assert (keys.dtype, keys.shape) == (np.uint8, (10, 7))
        assert (mouse.dtype, mouse.shape) == (np.float32, (10, 2))
        assert (pose.dtype, pose.shape) == (np.float64, (10, 8))
        for j, column in enumerate(KEY_COLUMNS):  # contract order: w s a d space shift ctrl
            assert column == f"key_{KEYS[j]}"
            assert (keys[:, j] == seg.labels[column][rows]).all()
        assert (mouse == np.stack([seg.labels["mouse_dx"][rows], seg.labels["mouse_dy"][rows]],
                                  axis=1).astype(np.float32)).all()
        # without resampling, pose row k is bit-equal to source CSV row source_frames[k]
        want = np.stack([csv[c][src] for c in POSE], axis=1)
        assert pose.tobytes() == want.tobytes()


def test_json_carries_the_contract_fields(episode: Path) -> None:
    seg = segment_of(episode, np.arange(60))
    cfg = FilterConfig(clip_frames=20, width=64, height=48, resize="pad")
    sample = samples_of(seg, cfg)[1]
    text = sample["json"].decode("utf-8")
    meta = json.loads(text)
    assert text == json.dumps(meta, sort_keys=True)
    assert meta == {
        "episode": seg.episode, "source_frames": list(range(20, 40)), "fps": 30.0,
        "width": 64, "height": 48, "scene": "city", "backend": "builtin", "keys": list(KEYS),
        "intrinsics": intrinsics_after_resize(seg.labels["fov"][20], 160, 90, 64, 48, "pad"),
    }


def test_resampling_and_extra_go_to_json_and_clashes_are_refused(episode: Path) -> None:
    seg = segment_of(episode, np.arange(0, 60, 2))
    seg.resampling = {"from_fps": 30, "to_fps": 15, "method": "drop"}
    seg.extra = {"max_alignment_error": np.float64(1e-9)}
    cfg = FilterConfig(clip_frames=30, width=64, height=48)
    plan = cut_clips(seg, cfg)[0]
    meta = json.loads(make_sample(plan, b"mp4", cfg)["json"])
    assert meta["resampling"] == seg.resampling and meta["max_alignment_error"] == 1e-9
    seg.extra = {"fps": 60}
    with pytest.raises(ValueError, match="fps"):
        make_sample(plan, b"mp4", cfg)


def test_same_clip_gives_identical_members(episode: Path) -> None:
    seg = segment_of(episode, np.arange(60))
    cfg = FilterConfig(clip_frames=25, stride=10, width=64, height=36)
    assert samples_of(seg, cfg) == samples_of(seg, cfg)
