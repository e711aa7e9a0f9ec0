"""`curation annotate`: keys and mouse inferred from camera poses.

Two kinds of input: real built-in recordings (exact labels from the recorder) and synthetic
trajectories made here by a small body simulator from a key script, so the right answer is known
by construction (including walls that block or deflect the body).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from curation.annotate import (
    METHOD,
    AnnotateConfig,
    AnnotateError,
    accuracy,
    annotate_episode,
    decode_trajectory,
    infer_actions,
    unobservable_frames,
)
from datagen.cli import main
from datagen.episode import KEY_COLUMNS, find_episodes, read_episode
from datagen.episode_check import validate_episode
from datagen.rotation import quat_from_ypr

POSE = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "yaw", "pitch", "roll", "fov", "t")
KEYS = tuple(c.removeprefix("key_") for c in KEY_COLUMNS)
FPS = 30


# --- a body simulator: keys -> poses, with the decoder's default body model -------------------

def simulate(script: list[tuple[int, str, float]], cfg: AnnotateConfig | None = None,
             wall: tuple[np.ndarray, float] | None = None, ground_slope: float = 0.0,
             eye: float = 1.7, jump_speed: float = 4.0) -> tuple[np.ndarray, ...]:
    """``script``: ``(frames, keys, turn)`` legs; keys like ``"w+a+shift"`` (``""`` for none),
    ``turn`` degrees per frame (positive = left). ``wall = (normal, offset)`` keeps the body in
    ``normal . xy <= offset`` (a step across it is clamped to the wall and slides along it).
    ``ground_slope``: the ground rises this many metres per metre along +x.

    Returns ``t, pos, quat, keys`` with ``keys[name]`` the exact labels (row 0 has no input).
    """
    cfg = cfg or AnnotateConfig()
    dt = 1.0 / FPS
    yaw, vh, xy = 0.0, np.zeros(2), np.zeros(2)
    z, vz, air, lowered = 0.0, 0.0, False, 0.0
    drop = cfg.crouch_drop
    rows = [(0.0, 0.0, 0.0, eye, 0.0, *(0,) * 7)]
    for frames, names, turn in script:
        held = set(names.split("+")) - {""}
        keys = tuple(int(k in held) for k in KEYS)
        w, s, a, d, space, shift, ctrl = keys
        for _ in range(frames):
            yaw += turn
            h = math.radians(yaw)
            heading, left = np.array([math.cos(h), math.sin(h)]), np.array([-math.sin(h),
                                                                            math.cos(h)])
            direction = (w - s) * heading + (a - d) * left
            target = np.zeros(2)
            if direction.any():
                direction /= np.linalg.norm(direction)
                speed = cfg.crouch_speed if ctrl else (cfg.sprint_speed if shift and w > s
                                                       else cfg.walk_speed)
                speed *= cfg.backward_factor if s > w else (cfg.strafe_factor if w == s else 1.0)
                if not air:
                    grade = ground_slope * direction[0]
                    speed *= float(np.clip(1 - cfg.slope_slowdown * grade, cfg.slope_factor_min,
                                           cfg.slope_factor_max))
                target = direction * speed
            limit = (cfg.accel if np.linalg.norm(target) > np.linalg.norm(vh) else cfg.decel) * dt
            limit *= cfg.air_control if air else 1.0
            change = target - vh
            size = np.linalg.norm(change)
            vh = vh + (change if size <= limit else change * limit / size)
            new = xy + vh * dt
            if wall is not None and wall[0] @ new > wall[1]:
                new = new - (wall[0] @ new - wall[1]) * wall[0]  # clamp, keep the slide
            vh, xy = (new - xy) / dt, new
            ground = ground_slope * xy[0]
            if space and not air and not ctrl and lowered == 0.0:
                air, vz = True, jump_speed
            if air:
                vz -= cfg.gravity * dt
                z += vz * dt
                if z <= ground:
                    z, vz, air = ground, 0.0, False
            else:
                z = ground
            step = cfg.eye_rate * dt
            lowered += float(np.clip((drop if ctrl else 0.0) - lowered, -step, step))
            rows.append((yaw, *xy, z + eye - lowered, 0.0, *keys))
    data = np.array(rows)
    t = np.arange(len(data)) / FPS
    pos = data[:, 1:4]
    quat = quat_from_ypr(data[:, 0], np.zeros(len(data)))
    keys = {f"key_{k}": data[:, 5 + j].astype(np.int64) for j, k in enumerate(KEYS)}
    return t, pos, quat, keys


def _assert_keys(out: dict, keys: dict, frames: slice = slice(None)) -> None:
    for name in KEY_COLUMNS:
        wrong = np.flatnonzero(out[name][frames] != keys[name][frames])
        assert wrong.size == 0, f"{name} wrong at {wrong[:10]}"


def test_a_scripted_key_sequence_is_decoded_exactly():
    script = [(20, "", 0.0), (30, "w", 2.0), (25, "w+a", -3.0), (40, "w+shift", 0.0),
              (20, "w+d+shift", 4.0), (15, "", 0.0), (25, "s", 0.0), (20, "s+a", -2.0),
              (25, "d", 1.0), (20, "", 0.0), (35, "w+ctrl", 0.0), (30, "a+ctrl", 0.0),
              (25, "w", 0.0), (3, "w+space", 0.0), (30, "w", 3.0), (3, "space", 0.0),
              (30, "", 0.0)]
    t, pos, quat, keys = simulate(script)
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)
    assert out["key_space"].sum() == 6 and out["key_ctrl"].sum() == 65


def test_the_dynamics_are_measured_from_the_trajectory():
    body = AnnotateConfig(walk_speed=3.0, sprint_speed=6.0, accel=7.0, decel=11.0)
    script = [(50, "w", 0.0), (30, "", 0.0), (50, "w+shift", 0.0), (30, "", 0.0),
              (50, "w", 1.0), (30, "", 0.0), (60, "w+shift", 0.0), (30, "", 0.0)]
    t, pos, quat, keys = simulate(script, cfg=body)
    out, dynamics = decode_trajectory(t, pos, quat)  # default config: 2 and 4.5 m/s, 10 and 14
    assert dynamics.walk_speed == pytest.approx(3.0, rel=1e-6)
    assert dynamics.sprint_speed == pytest.approx(6.0, rel=1e-6)
    assert dynamics.accel == pytest.approx(7.0, rel=1e-6)
    assert dynamics.decel == pytest.approx(11.0, rel=1e-6)
    _assert_keys(out, keys)
    fixed, _ = decode_trajectory(t, pos, quat, AnnotateConfig(estimate_dynamics=False))
    assert np.mean(fixed["key_shift"] == keys["key_shift"]) < 0.95  # the wrong body misleads


def test_walking_forward_up_a_slope_is_w_not_another_key():
    t, pos, quat, keys = simulate([(10, "", 0.0), (100, "w", 0.0), (20, "", 0.0)],
                                  ground_slope=0.35)
    assert pos[-1, 2] - pos[0, 2] > 1.0  # it did climb
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)


def test_keys_that_change_in_the_air_are_decoded():
    script = [(30, "s", 0.0), (3, "s+space", 0.0), (8, "s+d", 0.0), (8, "d", 0.0),
              (30, "w+d", 0.0), (30, "", 0.0)]
    t, pos, quat, keys = simulate(script)
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)


def test_sliding_along_a_wall_keeps_the_forward_key():
    wall = (np.array([1.0, -1.0]) / math.sqrt(2), 1.0)  # ahead, at 45 degrees to the heading
    t, pos, quat, keys = simulate([(80, "w", 0.0), (20, "", 0.0)], wall=wall)
    v = np.diff(pos[:, :2], axis=0) * FPS
    assert abs(v[60, 0] - v[60, 1]) < 1e-9  # sliding along the wall by then
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)


def test_a_key_change_while_scraping_a_wall_is_seen_in_the_slide_speed():
    wall = (np.array([1.0, -1.0]) / math.sqrt(2), 1.0)
    t, pos, quat, keys = simulate([(50, "w", 0.0), (40, "w+a", 0.0), (30, "w", 0.0)],
                                  wall=wall)
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)


def test_a_wall_that_stops_the_body_holds_its_keys_but_a_stop_releases_them():
    head_on = (np.array([1.0, 0.0]), 3.0)
    # W into a wall, pushing for a second, then walking away with S
    t, pos, quat, keys = simulate([(60, "w", 0.0), (30, "s", 0.0), (20, "", 0.0)],
                                  wall=head_on)
    stopped = int(np.argmax(pos[:, 0] >= 3.0 - 1e-9))
    assert stopped < 50  # blocked for a second
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)
    # the same walk released before the wall: the keys go as the body slows down
    t, pos, quat, keys = simulate([(20, "w", 0.0), (40, "", 0.0)], wall=head_on)
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)
    # blocked for longer than contact_hold_s: afterwards the keys count as released
    t, pos, quat, keys = simulate([(200, "w", 0.0)], wall=head_on)
    out = infer_actions(t, pos, quat, AnnotateConfig(contact_hold_s=1.0))
    stop = int(np.argmax(pos[:, 0] >= 3.0 - 1e-9))
    assert out["key_w"][1:stop + 25].all() and not out["key_w"][stop + 40:].any()


def test_stopping_while_turning_fast_presses_no_side_key():
    t, pos, quat, keys = simulate([(40, "w+shift", 0.0), (25, "", 7.0)])
    out = infer_actions(t, pos, quat)
    _assert_keys(out, keys)


def test_noisy_poses_are_decoded_with_a_measured_noise_level():
    script = [(20, "", 0.0), (60, "w", 2.0), (40, "d", 0.0), (30, "", 0.0), (50, "s+a", 0.0),
              (30, "", 0.0)]
    t, pos, quat, keys = simulate(script)
    noisy = pos + np.random.default_rng(0).normal(0.0, 0.002, pos.shape)
    out, used = decode_trajectory(t, noisy, quat)
    assert used.velocity_noise > 3 * AnnotateConfig().velocity_noise
    for name in ("key_w", "key_s", "key_a", "key_d", "key_ctrl", "key_space"):
        assert np.mean(out[name] == keys[name]) >= 0.95, name


def test_inferred_keys_do_not_flicker_on_noise():
    t, pos, quat, _ = simulate([(30, "w", 1.0), (30, "w+a", 0.0), (30, "", 0.0)])
    noisy = pos + np.random.default_rng(1).normal(0.0, 0.003, pos.shape)
    out = infer_actions(t, noisy, quat)
    for name in KEY_COLUMNS:
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-1], out[name], [-1]]))))
        assert runs[1:-1].size == 0 or runs[1:-1].min() >= 3, name


# --- real built-in recordings -----------------------------------------------------------------

def _record(root: Path, scene: str, profile: str, seed: int) -> Path:
    assert main(["record", "--out", str(root), "--scene", scene, "--frames", "300", "--size",
                 "64x36", "--streams", "1", "--profile", profile, "--seed", str(seed),
                 "--no-progress"]) == 0
    finished, _ = find_episodes(root / scene)
    return finished[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """``city``: every key in 10 s of ``balanced`` play; ``hills``: 10 s of climbing with W."""
    root = tmp_path_factory.mktemp("episodes")
    return {"city": _record(root, "city", "balanced", 3),
            "hills": _record(root, "hills", "explore", 1)}


def _infer(path: Path, cfg: AnnotateConfig | None = None) -> tuple[dict, dict]:
    d = read_episode(path).data
    pos = np.stack([d["pos_x"], d["pos_y"], d["pos_z"]], axis=1)
    quat = np.stack([d["qw"], d["qx"], d["qy"], d["qz"]], axis=1)
    return infer_actions(d["t"], pos, quat, cfg), d


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_mouse_is_recovered_exactly_from_poses(recorded):
    for path in recorded.values():
        inferred, truth = _infer(path)
        stats = accuracy(inferred, truth)
        assert stats["mouse_dx"]["max_abs_error"] < 1e-9
        assert stats["mouse_dy"]["max_abs_error"] < 1e-9
        assert np.any(np.abs(truth["mouse_dx"]) > 1.0)  # the agent did turn


def test_every_key_reaches_98_percent_on_recordings(recorded):
    """On every frame, but for space held in the air after a take-off: a tap's length is not in
    the poses (the decoder reports ``jump_hold_frames``), and balanced taps last 3 to 9 frames."""
    for scene, path in recorded.items():
        inferred, truth = _infer(path)
        stats = accuracy(inferred, truth)
        if scene == "city":
            for key in ("w", "s", "d", "space", "shift"):
                assert stats[key]["pressed"] > 0.02, key
        for key in KEYS:
            if key != "space":
                assert stats[key]["accuracy"] >= 0.98, (scene, key, stats[key]["accuracy"])
        in_air = unobservable_frames(read_episode(path).data)["space"]
        right = inferred["key_space"] == truth["key_space"]
        assert right[~in_air].mean() >= 0.98, (scene, right[~in_air].mean())
        takeoffs = np.flatnonzero(np.diff(np.r_[0, truth["key_space"]]) == 1)
        if scene == "city":  # the jumps themselves are found
            assert inferred["key_space"][takeoffs].mean() >= 0.9


def test_inferred_keys_never_flicker_on_recordings(recorded):
    for path in recorded.values():
        inferred, _ = _infer(path)
        for name in KEY_COLUMNS:
            x = inferred[name]
            runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-1], x, [-1]]))))[1:-1]
            assert runs.size == 0 or runs.min() >= 3, name  # 3: min_press_frames, space taps


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
    cfg = AnnotateConfig(switch_cost=20.0)
    out = annotate_episode(src, tmp_path / "annotated", cfg)
    assert out == tmp_path / "annotated" / "city" / src.name
    assert _digest(src) == before
    assert validate_episode(out) == []
    assert (out / "video.mp4").read_bytes() == (src / "video.mp4").read_bytes()
    source, result = read_episode(src), read_episode(out)
    assert result.columns == source.columns
    for column in POSE + ("vel_x", "vel_y", "vel_z"):
        np.testing.assert_array_equal(result.data[column], source.data[column], column)
    inferred, _ = _infer(src, cfg)
    for column in (*KEY_COLUMNS, "mouse_dx", "mouse_dy"):
        np.testing.assert_array_equal(result.data[column], inferred[column], column)
    note = json.loads((out / "meta.json").read_text())["annotation"]
    assert note["method"] == METHOD and note["config"]["switch_cost"] == 20.0
    assert note["dynamics"]["walk_speed"] == pytest.approx(2.0, rel=0.01)
    assert not list(out.parent.glob("*.partial"))


def test_annotate_refuses_to_overwrite_or_write_onto_the_source(recorded, tmp_path):
    src = recorded["city"]
    annotate_episode(src, tmp_path)
    with pytest.raises(AnnotateError, match="already exists"):
        annotate_episode(src, tmp_path)
    with pytest.raises(AnnotateError, match="is the source episode"):
        annotate_episode(src, src.parent.parent)


# --- small pieces and errors ------------------------------------------------------------------

def test_velocity_is_inferred_only_when_missing():
    t = np.arange(5) / 10
    pos = np.column_stack([np.arange(5.0), np.zeros(5), np.zeros(5)])
    quat = quat_from_ypr(np.zeros(5), np.zeros(5))
    out = infer_actions(t, pos, quat)
    np.testing.assert_allclose(out["vel_x"], [0, 10, 10, 10, 10])
    assert "vel_x" not in infer_actions(t, pos, quat, vel=np.zeros((5, 3)))


def test_a_two_frame_trajectory_is_decoded():
    out = infer_actions(np.array([0.0, 1 / 30]), np.zeros((2, 3)), quat_from_ypr(np.zeros(2),
                                                                                 np.zeros(2)))
    assert all(out[name].tolist() == [0, 0] for name in KEY_COLUMNS)


def test_bad_input_gets_a_clear_error():
    quat = quat_from_ypr(np.zeros(4), np.zeros(4))
    with pytest.raises(AnnotateError, match=r"pos \[N, 3\]"):
        infer_actions(np.arange(4.0), np.zeros((3, 3)), quat)
    with pytest.raises(AnnotateError, match="t must increase"):
        infer_actions(np.array([0.0, 1.0, 1.0, 2.0]), np.zeros((4, 3)), quat)
    with pytest.raises(AnnotateError, match="non-finite"):
        infer_actions(np.arange(4.0), np.full((4, 3), np.nan), quat)
    with pytest.raises(AnnotateError, match="walk_speed < sprint_speed"):
        AnnotateConfig(walk_speed=5.0)
    with pytest.raises(AnnotateError, match="accel must be positive"):
        AnnotateConfig(accel=0.0)
    with pytest.raises(AnnotateError, match="switch_cost must not be negative"):
        AnnotateConfig(switch_cost=-1.0)
    with pytest.raises(AnnotateError, match="smooth_frames must be an integer"):
        AnnotateConfig(smooth_frames=0)


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
    with pytest.raises(AnnotateError, match="both inferred and truth need key_ctrl"):
        accuracy({k: v for k, v in inferred.items() if k != "key_ctrl"}, truth)
