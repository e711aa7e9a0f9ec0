"""`curation annotate`: keys and mouse inferred from camera poses of real built-in recordings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from curation.annotate import (
    AnnotateConfig,
    AnnotateError,
    accuracy,
    annotate_episode,
    infer_actions,
)
from datagen.cli import main
from datagen.episode import KEY_COLUMNS, find_episodes, read_episode, validate_episode
from datagen.rotation import quat_from_ypr

POSE = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "yaw", "pitch", "roll", "fov", "t")


def _record(root: Path, scene: str) -> Path:
    assert main(["record", "--out", str(root), "--scene", scene, "--frames", "300", "--size",
                 "64x36", "--streams", "1", "--profile", "explore", "--seed", "1",
                 "--no-progress"]) == 0
    finished, _ = find_episodes(root / scene)
    return finished[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("episodes")
    return {scene: _record(root, scene) for scene in ("city", "hills")}


def _infer(path: Path) -> tuple[dict, dict]:
    d = read_episode(path).data
    pos = np.stack([d["pos_x"], d["pos_y"], d["pos_z"]], axis=1)
    quat = np.stack([d["qw"], d["qx"], d["qy"], d["qz"]], axis=1)
    return infer_actions(d["t"], pos, quat, AnnotateConfig()), d


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_mouse_is_recovered_exactly_from_poses(recorded):
    for path in recorded.values():
        inferred, truth = _infer(path)
        stats = accuracy(inferred, truth)
        assert stats["mouse_dx"]["max_abs_error"] < 1e-9
        assert stats["mouse_dy"]["max_abs_error"] < 1e-9
        assert np.any(np.abs(truth["mouse_dx"]) > 1.0)  # the agent did turn


def _movement_accuracy(recorded: dict[str, Path]) -> dict[tuple[str, str], float]:
    result = {}
    for scene, path in recorded.items():
        inferred, truth = _infer(path)
        stats = accuracy(inferred, truth)
        assert stats["w"]["pressed"] > 0.2  # the episode walks
        result |= {(scene, key): stats[key]["accuracy"] for key in ("w", "s", "a", "d")}
    return result


def test_movement_keys_mostly_match_the_recorded_labels(recorded):
    for where, value in _movement_accuracy(recorded).items():
        assert value >= 0.93, (where, value)


def test_movement_keys_reach_the_98_percent_target(recorded):
    for where, value in _movement_accuracy(recorded).items():
        assert value >= 0.98, (where, value)


def test_inferred_keys_never_flicker_for_one_frame(recorded):
    for path in recorded.values():
        inferred, _ = _infer(path)
        for name in KEY_COLUMNS:
            x = inferred[name]
            edges = np.flatnonzero(np.diff(x)) + 1
            runs = np.diff(np.concatenate([[0], edges, [len(x)]]))
            inner = runs[1:-1]
            assert inner.size == 0 or inner.min() >= 2, name


def test_walking_forward_up_a_slope_is_w_not_another_key():
    fps, n = 30, 120
    t = np.arange(n) / fps
    heading = 30.0
    ground_speed = np.minimum(np.arange(n) / 6, 1.0) * 2.0  # accelerates, then walks at 2 m/s
    s = np.concatenate([[0.0], np.cumsum(ground_speed[1:]) / fps])
    direction = np.array([np.cos(np.radians(heading)), np.sin(np.radians(heading))])
    pos = np.column_stack([s * direction[0], s * direction[1], 1.7 + 0.35 * s])  # 35% grade
    quat = quat_from_ypr(np.full(n, heading), np.full(n, -5.0))
    out = infer_actions(t, pos, quat)
    assert out["key_w"][1:].all()
    for name in ("key_s", "key_a", "key_d", "key_space", "key_ctrl"):
        assert not out[name].any(), name
    np.testing.assert_allclose(out["vel_z"][10:], 0.7)


def test_climbing_in_the_hills_recording_is_w(recorded):
    inferred, truth = _infer(recorded["hills"])
    climbing = (truth["key_w"] == 1) & (truth["vel_z"] > 0.2) & (truth["key_space"] == 0)
    climbing &= (truth["key_a"] == 0) & (truth["key_d"] == 0)
    assert climbing.sum() > 10
    assert np.mean(inferred["key_w"][climbing]) >= 0.98
    assert np.mean(inferred["key_s"][climbing]) == 0


def test_annotate_writes_a_valid_episode_and_leaves_the_source_untouched(recorded, tmp_path):
    src = recorded["city"]
    before = _digest(src)
    cfg = AnnotateConfig(min_hold_frames=4)
    out = annotate_episode(src, tmp_path / "annotated", cfg)
    assert out == tmp_path / "annotated" / "city" / src.name
    assert _digest(src) == before
    assert validate_episode(out) == []
    assert (out / "video.mp4").read_bytes() == (src / "video.mp4").read_bytes()
    source, result = read_episode(src), read_episode(out)
    assert result.columns == source.columns
    for column in POSE + ("vel_x", "vel_y", "vel_z"):
        np.testing.assert_array_equal(result.data[column], source.data[column], column)
    inferred = infer_actions(source.data["t"], np.stack(
        [source.data[c] for c in ("pos_x", "pos_y", "pos_z")], 1), np.stack(
        [source.data[c] for c in ("qw", "qx", "qy", "qz")], 1), cfg)
    for column in (*KEY_COLUMNS, "mouse_dx", "mouse_dy"):
        np.testing.assert_array_equal(result.data[column], inferred[column], column)
    note = json.loads((out / "meta.json").read_text())["annotation"]
    assert note["config"]["min_hold_frames"] == 4 and note["method"]
    assert not list(out.parent.glob("*.partial"))


def test_annotate_refuses_to_overwrite_or_write_onto_the_source(recorded, tmp_path):
    src = recorded["city"]
    annotate_episode(src, tmp_path)
    with pytest.raises(AnnotateError, match="already exists"):
        annotate_episode(src, tmp_path)
    with pytest.raises(AnnotateError, match="is the source episode"):
        annotate_episode(src, src.parent.parent)


def test_velocity_is_inferred_only_when_missing():
    t = np.arange(5) / 10
    pos = np.column_stack([np.arange(5.0), np.zeros(5), np.zeros(5)])
    quat = quat_from_ypr(np.zeros(5), np.zeros(5))
    out = infer_actions(t, pos, quat)
    np.testing.assert_allclose(out["vel_x"], [0, 10, 10, 10, 10])
    assert "vel_x" not in infer_actions(t, pos, quat, vel=np.zeros((5, 3)))


def test_bad_input_gets_a_clear_error():
    quat = quat_from_ypr(np.zeros(4), np.zeros(4))
    with pytest.raises(AnnotateError, match=r"pos \[N, 3\]"):
        infer_actions(np.arange(4.0), np.zeros((3, 3)), quat)
    with pytest.raises(AnnotateError, match="t must increase"):
        infer_actions(np.array([0.0, 1.0, 1.0, 2.0]), np.zeros((4, 3)), quat)
    with pytest.raises(AnnotateError, match="octant_hysteresis"):
        AnnotateConfig(octant_hysteresis=30.0)
    with pytest.raises(AnnotateError, match="slide_cos"):
        AnnotateConfig(slide_cos=1.0)
    with pytest.raises(AnnotateError, match="contact_accel"):
        AnnotateConfig(contact_accel=0.0)
    with pytest.raises(AnnotateError, match="move_off <= move_on"):
        AnnotateConfig(move_on=0.1, move_off=0.2)


def test_accuracy_counts_presses_and_misses():
    truth = {c: np.zeros(10, dtype=np.int64) for c in KEY_COLUMNS}
    truth |= {"mouse_dx": np.zeros(10), "mouse_dy": np.zeros(10)}
    inferred = {c: v.copy() for c, v in truth.items()}
    truth["key_w"][:4] = 1
    inferred["key_w"][1:4] = 1  # one miss
    inferred["key_a"][9] = 1  # one false press
    inferred["mouse_dx"][3] = 359.0  # -1 degree once wrapped
    stats = accuracy(inferred, truth)
    assert stats["w"]["accuracy"] == pytest.approx(0.9)
    assert stats["w"]["recall"] == pytest.approx(0.75) and stats["w"]["precision"] == 1.0
    assert stats["a"]["f1"] == 0.0 and stats["a"]["balanced_accuracy"] == pytest.approx(0.9)
    assert np.isnan(stats["a"]["recall"]) and np.isnan(stats["s"]["f1"])
    assert stats["mouse_dx"]["max_abs_error"] == pytest.approx(1.0)


def _walk(velocity_xy: np.ndarray, yaw_deg: np.ndarray, fps: int = 30) -> tuple:
    """A trajectory whose per-frame horizontal velocity (world frame) is ``velocity_xy``."""
    n = len(velocity_xy)
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(velocity_xy[1:], axis=0) / fps])
    pos = np.column_stack([xy, np.full(n, 1.7)])
    return np.arange(n) / fps, pos, quat_from_ypr(yaw_deg, np.zeros(n))


def _ramp(start: np.ndarray, end: np.ndarray, accel: float, fps: int = 30) -> np.ndarray:
    """Velocities from ``start`` to ``end`` (excluded) at a bounded acceleration."""
    steps = int(np.ceil(np.linalg.norm(end - start) / (accel / fps)))
    return start + (end - start) * (np.arange(steps)[:, None] / steps)


def test_sliding_along_a_wall_keeps_the_forward_key():
    # W at 2 m/s heading east, then a wall at 45 degrees takes the velocity's normal part at once
    forward, slide = np.array([2.0, 0.0]), np.array([1.0, 1.0])
    v = np.concatenate([_ramp(np.zeros(2), forward, 10.0), np.tile(forward, (30, 1)),
                        np.tile(slide, (40, 1))])
    out = infer_actions(*_walk(v, np.zeros(len(v))))
    assert out["key_w"][1:].all()
    assert not out["key_a"].any() and not out["key_d"].any()


def test_a_body_blocked_by_a_wall_keeps_its_keys_but_a_stop_releases_them():
    forward = np.array([2.0, 0.0])
    walk = np.concatenate([_ramp(np.zeros(2), forward, 10.0), np.tile(forward, (30, 1))])
    blocked = np.concatenate([walk, np.zeros((20, 2))])  # stops at once: a wall, W still held
    out = infer_actions(*_walk(blocked, np.zeros(len(blocked))))
    assert out["key_w"][1:].all()
    stopped = np.concatenate([walk, _ramp(forward, np.zeros(2), 14.0), np.zeros((20, 2))])
    out = infer_actions(*_walk(stopped, np.zeros(len(stopped))))
    assert out["key_w"][1:len(walk)].all() and not out["key_w"][len(walk) + 2:].any()
    longer = np.concatenate([walk, np.zeros((200, 2))])  # blocked longer than contact_hold_s
    out = infer_actions(*_walk(longer, np.zeros(len(longer))), AnnotateConfig(contact_hold_s=1.0))
    assert out["key_w"][len(walk):len(walk) + 30].all() and not out["key_w"][-100:].any()


def test_stopping_while_turning_fast_presses_no_side_key():
    forward = np.array([4.0, 0.0])
    v = np.concatenate([_ramp(np.zeros(2), forward, 10.0), np.tile(forward, (20, 1)),
                        _ramp(forward, np.zeros(2), 14.0), np.zeros((15, 2))])
    n, moving = len(v), len(v) - 15
    yaw = np.zeros(n)
    yaw[moving - 9:] = np.cumsum(np.full(n - moving + 9, 7.0))  # turns 7 degrees a frame
    out = infer_actions(*_walk(v, yaw))
    assert not out["key_a"].any() and not out["key_d"].any()
    assert not out["key_w"][moving:].any()
