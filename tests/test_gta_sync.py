"""Synchronisation of the plugin's frame messages with a video's frames (datagen/gta/sync.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gta_game_view import draw_marker

from datagen.episode import KEYS
from datagen.gta.pose import contract_angles, contract_quat, horizontal_fov
from datagen.gta.sync import (
    SyncError,
    align,
    decided,
    load_samples,
    marker_code,
    marker_frames,
    marker_offset,
    segment_rows,
)
from datagen.rotation import quat_to_matrix, wrap_deg
from datagen.video import H264Writer

GAME_FPS = 30.0
T0 = 1.765e9  # wall clock of the first game frame, seconds


def game(n: int, fps: float = GAME_FPS, seed: int = 0) -> list[dict]:
    """``n`` consecutive game frames: a camera turning and pitching irregularly, keys changing."""
    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0, 3, n))
    pitch = np.clip(np.cumsum(rng.normal(0, 1, n)), -60, 60)
    keys = rng.random((n, len(KEYS))) < 0.3
    return [{"type": "frame", "seq": i, "frame": 5000 + i, "game_ms": 80000 + int(i * 1000 / fps),
             "wall_ms": (T0 + i / fps) * 1000 + rng.uniform(0, 2), "mode": "drive",
             "cam": {"pos": [i * 0.3, 100.0 - i * 0.1, 30.5], "rot": [pitch[i], 0.0,
                                                                   heading[i]], "fov": 50.0},
             "vel": [9.0, -3.0, 0.0], "speed": 9.5,
             "vehicle": {"speed": 9.5, "throttle": 0.7, "brake": 0.0, "steering": 0.1},
             "keys": {k: int(keys[i, j]) for j, k in enumerate(KEYS)}, "dropped": 0,
             "recv_ms": 0.0} for i in range(n)]


def load(tmp_path, messages):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return load_samples(path)


@pytest.mark.parametrize("video_fps", [30.0, 60.0, 24.0])
def test_each_video_frame_shows_the_newest_presented_game_frame(tmp_path, video_fps):
    samples, skipped = load(tmp_path, game(200))
    assert not skipped
    start = T0 + 0.5  # OBS started half a second into the game
    times = np.arange(int(4 * video_fps)) / video_fps
    al = align(samples, times, start)
    assert al.segments == [(0, len(times))]
    wall = samples.wall_ms / 1000
    for k, j in enumerate(al.sample):
        assert wall[j] <= start + times[k] < wall[j + 1]
    steps = np.diff(al.sample)
    if video_fps > GAME_FPS:
        assert al.duplicated > 0 and al.skipped == 0 and steps.max() == 1
    elif video_fps < GAME_FPS:
        assert al.duplicated == 0 and al.skipped > 0 and steps.max() == 2
    else:
        assert al.duplicated == 0 and al.skipped == 0


@pytest.mark.parametrize("video_fps", [60.0, 24.0])
def test_rows_accumulate_mouse_and_hold_keys_across_duplicated_and_skipped_frames(
        tmp_path, video_fps):
    messages = game(200)
    samples, _ = load(tmp_path, messages)
    times = np.arange(int(4 * video_fps)) / video_fps
    al = align(samples, times, T0 + 0.4)
    rows = segment_rows(samples, al, al.segments[0], 640, 360)
    assert len(rows) == len(times)
    yaw = np.array([r["yaw"] for r in rows])
    pitch = np.array([r["pitch"] for r in rows])
    # the contract's identities, exactly, whatever the rates
    assert rows[0]["mouse_dx"] == 0 and rows[0]["mouse_dy"] == 0
    np.testing.assert_allclose([r["mouse_dx"] for r in rows[1:]], -wrap_deg(np.diff(yaw)),
                               atol=1e-9)
    np.testing.assert_allclose([r["mouse_dy"] for r in rows[1:]], wrap_deg(np.diff(pitch)),
                               atol=1e-9)
    for r in range(1, len(rows)):
        prev, cur = al.sample[r - 1], al.sample[r]
        covered = range(prev + 1, cur + 1) if cur > prev else [cur]
        for k in KEYS:  # held if held on any game frame this video frame covers
            assert rows[r][f"key_{k}"] == max(messages[j]["keys"][k] for j in covered)
        assert rows[r]["ticks"] == cur - prev
        assert rows[r]["game_frame"] == messages[cur]["frame"]
        if cur == prev:
            assert rows[r]["mouse_dx"] == 0 and rows[r]["mouse_dy"] == 0
        # the accumulated turn equals the sum of the per-game-frame turns
        turn = sum(-wrap_deg(contract_angles(np.array(messages[j]["cam"]["rot"]))[0]
                             - contract_angles(np.array(messages[j - 1]["cam"]["rot"]))[0])
                   for j in covered if cur > prev)
        assert rows[r]["mouse_dx"] == pytest.approx(turn, abs=1e-9)


def test_poses_are_the_game_camera_in_the_contract_frame(tmp_path):
    messages = game(60)
    samples, _ = load(tmp_path, messages)
    al = align(samples, np.arange(30) / 30, T0 + 0.2)
    rows = segment_rows(samples, al, al.segments[0], 640, 360)
    for r, j in zip(rows, al.sample, strict=True):
        cam = messages[j]["cam"]
        assert [r["pos_x"], r["pos_y"], r["pos_z"]] == cam["pos"]  # float64, untouched
        q = np.array([r["qw"], r["qx"], r["qy"], r["qz"]])
        forward = quat_to_matrix(q)[:, 0]
        rx, _, rz = np.radians(cam["rot"])
        # GTA: heading 0 looks north (+Y), counter-clockwise; pitch up positive
        expect = [-np.sin(rz) * np.cos(rx), np.cos(rz) * np.cos(rx), np.sin(rx)]
        np.testing.assert_allclose(forward, expect, atol=1e-12)
        np.testing.assert_allclose(q, contract_quat(np.array(cam["rot"])), atol=0)
        assert r["fov"] == pytest.approx(float(horizontal_fov(50.0, 640, 360)))
    assert rows[0]["fov"] == pytest.approx(2 * np.degrees(np.arctan(np.tan(np.radians(25))
                                                                     * 16 / 9)))


def test_missing_game_frames_cut_the_recording_into_segments(tmp_path):
    messages = game(300)
    del messages[100:103]  # three messages dropped by the plugin's queue (a seq gap)
    messages[200]["frame"] += 5  # a loading screen: the frame counter jumps
    for m in messages[200:]:
        m["frame"] += 5
    samples, _ = load(tmp_path, messages)
    times = np.arange(270) / 30
    al = align(samples, times, T0 + 0.1, min_frames=10)
    assert len(al.segments) == 3
    (a0, b0), (a1, b1), (a2, b2) = al.segments
    assert a0 == 0 and b2 == len(times)
    assert b0 <= a1 and b1 <= a2
    for a, b in al.segments:
        j = al.sample[a:b]
        assert np.all(np.diff(samples.seq[j]) >= 0)
        assert np.all(np.diff(samples.frame[j[0]:j[-1] + 1]) == 1)
        assert np.all(np.diff(samples.seq[j[0]:j[-1] + 1]) == 1)


def test_video_frames_before_the_game_or_after_it_stopped_have_no_rows(tmp_path):
    samples, _ = load(tmp_path, game(60))  # two seconds of game
    times = np.arange(150) / 30  # five seconds of video, starting before the game
    al = align(samples, times, T0 - 1.0)
    assert (al.sample[:30] == -1).all()  # before the first game frame
    assert (al.sample[-30:] == -1).all()  # the game stopped sending: stale
    assert len(al.segments) == 1
    a, b = al.segments[0]
    assert 29 <= a <= 31 and 89 <= b <= 93


def test_short_segments_are_dropped_and_repeats_are_skipped(tmp_path):
    messages = game(100)
    messages.insert(50, dict(messages[49]))  # received twice (a resend after a reconnect)
    samples, skipped = load(tmp_path, messages)
    assert skipped == ["seq 49: received twice"]
    al = align(samples, np.arange(60) / 30, T0 + 2.5, min_frames=30)
    assert al.segments == []  # 0.8 s of game left: shorter than min_frames


def test_cut_line_and_empty_file(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(game(1)[0]) + "\n" + '{"type": "fra')
    samples, skipped = load_samples(path)
    assert len(samples) == 1 and "line 2: not JSON" in skipped[0]
    path.write_text("")
    with pytest.raises(SyncError, match="no frame messages"):
        load_samples(path)


def test_marker_codes_are_read_after_h264_and_not_in_ordinary_frames(tmp_path):
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    plain = [scene, np.full((360, 640, 3), (255, 0, 255), np.uint8),  # all magenta: code 15
             np.full((360, 640, 3), (0, 255, 0), np.uint8), np.zeros((360, 640, 3), np.uint8)]
    assert [marker_code(f) for f in plain] == [0, 0, 0, 0]
    assert [marker_code(draw_marker(scene.copy(), c)) for c in range(1, 15)] == list(range(1, 15))
    path = tmp_path / "v.mp4"
    with H264Writer(path, 640, 360, 30) as writer:
        for k in range(40):
            frame = np.roll(scene, 7 * k, axis=1)
            writer.write(draw_marker(frame, k - 11) if 12 <= k < 26 else frame)
    assert marker_frames(path) == {k: k - 11 for k in range(12, 26)}


@pytest.mark.parametrize("game_fps", [30.0, 60.0, 144.0, 20.0])
def test_marker_pins_the_capture_latency_to_the_frame_jitter(tmp_path, game_fps):
    n = int(3 * game_fps)
    messages = game(n, fps=game_fps)
    first = int(0.5 * game_fps)
    for i, m in enumerate(messages[first:first + int(0.5 * game_fps)]):
        m["mark"] = 1 + i % 14
    samples, _ = load(tmp_path, messages)
    wall = samples.wall_ms / 1000
    start, true_latency = T0 + 0.2, 0.0123
    times = np.arange(60) / 30
    capture = start + times + true_latency
    shows = np.searchsorted(wall, capture, side="right") - 1  # the newest presented
    shown = {k: int(samples.mark[g]) for k, g in enumerate(shows) if g >= 0 and samples.mark[g]}
    fit = marker_offset(samples, times, start, shown)
    assert fit.low <= true_latency < fit.high and fit.agree == fit.seen == len(shown)
    # as tight as the game's frames allow: far below one capture interval
    assert fit.high - fit.low < min(1 / game_fps, 1 / 30) + 0.003
    al = align(samples, times, start, fit.offset)
    ok = shows >= 0  # off by a game frame at most where a capture falls within the doubt
    assert np.abs(al.sample[ok] - shows[ok]).max() <= 1
    assert np.mean(al.sample[ok] == shows[ok]) >= 0.9
    sure = decided(samples, times, start, fit) & ok  # exact wherever the marker decides
    assert sure.mean() > 0.5 and (al.sample[sure] == shows[sure]).all()
    assert marker_offset(samples, times, start, {}) is None


def test_a_torn_capture_does_not_move_the_latency(tmp_path):
    messages = game(90)
    for i, m in enumerate(messages[20:40]):
        m["mark"] = 1 + i % 14
    samples, _ = load(tmp_path, messages)
    wall = samples.wall_ms / 1000
    start, times = T0 + 0.1, np.arange(60) / 30
    shows = np.searchsorted(wall, start + times + 0.005, side="right") - 1
    shown = {k: int(samples.mark[g]) for k, g in enumerate(shows) if samples.mark[g]}
    k = sorted(shown)[5]
    shown[k] = int(samples.mark[shows[k] - 1])  # one capture still showed the frame before
    fit = marker_offset(samples, times, start, shown)
    assert fit.low <= 0.005 < fit.high and fit.agree == fit.seen - 1
