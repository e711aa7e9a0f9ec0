"""Redundant-frame detection, camera stillness, velocity runs and thumbnails, on data whose
right answers are known by construction (synthetic thumbnails; small real videos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curation.config import FilterConfig
from curation.redundancy import camera_still, detect, true_runs
from curation.thumbnails import thumbnails, thumbnails_of
from curation.velocity import agent_speed, camera_turn, invalid_runs
from datagen.video import VideoError, decode_frames

FPS = 30.0


def moving_thumbs(n: int, seed: int = 0) -> np.ndarray:
    """``[n, 45, 80]`` uint8 frames that all differ a lot from each other (random images)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 45, 80), dtype=np.uint8)


def test_true_runs() -> None:
    assert true_runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)) == [(0, 2), (4, 5), (6, 9)]
    assert true_runs(np.zeros(4, bool)) == []
    assert true_runs(np.zeros(0, bool)) == []


def test_exact_and_near_duplicates_are_repeats() -> None:
    thumbs = moving_thumbs(12)
    thumbs[3] = thumbs[2]  # exact duplicate
    noise = np.random.default_rng(1).integers(-1, 2, thumbs[6].shape)
    thumbs[7] = np.clip(thumbs[6].astype(int) + noise, 0, 255).astype(np.uint8)  # codec-like
    red = detect(thumbs, FilterConfig(), FPS)
    assert np.flatnonzero(red.repeats).tolist() == [3, 7]
    assert red.diff_kept[3] == 0.0
    assert 0.0 < red.diff_kept[7] <= 1.0
    assert red.frozen == [] and red.static == []


def test_repeat_compares_with_last_kept_frame_so_slow_drift_survives() -> None:
    # Each frame is 0.4 grey levels brighter than the one before: every consecutive difference
    # is below the threshold, but the drift from the last kept frame adds up.
    thumbs = np.stack([np.full((45, 80), 100 + 0.4 * i) for i in range(20)]).round()
    red = detect(thumbs.astype(np.uint8), FilterConfig(dup_threshold=1.0), FPS)
    kept = np.flatnonzero(~red.repeats)
    assert len(kept) >= 5
    assert (red.diff_kept[kept[1:]] > 1.0).all()
    assert (red.diff_kept[red.repeats] <= 1.0).all()


def test_run_longer_than_max_merge_is_frozen() -> None:
    thumbs = moving_thumbs(30)
    thumbs[5:8] = thumbs[4]  # 3 repeats: merged, not frozen
    thumbs[15:19] = thumbs[14]  # 4 repeats: frozen with max_merge=3
    red = detect(thumbs, FilterConfig(max_merge=3), FPS)
    assert np.flatnonzero(red.repeats).tolist() == [5, 6, 7, 15, 16, 17, 18]
    assert red.frozen == [(15, 19)]
    assert detect(thumbs, FilterConfig(max_merge=4), FPS).frozen == []


def test_static_needs_still_image_still_camera_and_enough_time() -> None:
    n = 200
    thumbs = moving_thumbs(n)
    base = thumbs[50].astype(int)
    flicker = np.zeros_like(base)
    flicker[:, :40] = 3  # half the image flickers by 3 grey levels: 1.5 on average
    for i in range(51, 151):  # 100 frames (3.3 s)
        thumbs[i] = np.clip(base + flicker * (i % 2), 0, 255).astype(np.uint8)
    still = np.zeros(n, bool)
    still[51:151] = True
    cfg = FilterConfig(static_threshold=2.0, static_min_s=3.0, dup_threshold=1.0)
    red = detect(thumbs, cfg, FPS, still=still)
    assert red.static == [(51, 151)]
    assert red.frozen == []  # frames differ by more than dup_threshold: not repeats
    assert detect(thumbs, cfg, FPS).static == []  # without camera poses: never static
    moving_camera = still.copy()
    moving_camera[100] = False
    assert detect(thumbs, cfg, FPS, still=moving_camera).static == []  # 49 + 51 frames < 3 s
    assert detect(thumbs, FilterConfig(static_min_s=3.4), FPS, still=still).static == []


def test_camera_still_from_pose_columns() -> None:
    n = 6
    data = {c: np.zeros(n) for c in ("pos_x", "pos_y", "pos_z", "yaw", "pitch", "roll")}
    data["yaw"][:] = [179.999, -179.9995, -179.9995, -179.9995, -179.9995, -179.9995]
    data["pos_x"][3] = 0.5  # moves at frame 3, back at frame 4
    data["pitch"][5] = 0.2
    assert camera_still(data).tolist() == [False, True, True, False, False, False]


def test_invalid_velocity_runs_and_tolerance() -> None:
    speed = np.full(200, 2.0)
    speed[0] = 0.0  # the first frame of a recording: short, stays
    speed[20:50] = 0.01  # 30 frames = exactly 1.0 s: not longer than the tolerance, stays
    speed[100:131] = 0.05  # 31 frames, at eps: longer than 1.0 s, dropped
    cfg = FilterConfig(speed_eps=0.05, invalid_tolerance_s=1.0)
    assert invalid_runs(speed, cfg, FPS) == [(100, 131)]
    assert invalid_runs(speed, FilterConfig(invalid_tolerance_s=0.5), FPS) == [(20, 50),
                                                                              (100, 131)]
    data = {"vel_x": np.array([3.0, 0.0]), "vel_y": np.array([4.0, 0.0]),
            "vel_z": np.array([0.0, -0.5])}
    assert agent_speed(data).tolist() == [5.0, 0.5]


def test_a_camera_that_turns_is_not_stationary() -> None:
    """Standing and looking round moves the view: only frames that neither move nor turn (by
    more than turn_eps degrees) count towards a stationary run."""
    speed, turn = np.zeros(200), np.zeros(200)
    turn[10:80] = 1.5  # a look-around: stays
    turn[120:200:2] = 0.04  # a hand at rest within turn_eps: still stationary
    cfg = FilterConfig(invalid_tolerance_s=1.0)
    assert invalid_runs(speed, cfg, FPS, turn) == [(80, 200)]
    assert invalid_runs(speed, cfg, FPS) == [(0, 200)]  # without the turn: all of it
    assert invalid_runs(speed, FilterConfig(turn_eps=0.03, invalid_tolerance_s=1.0), FPS,
                        turn) == [(80, 120)]  # the twitches now count as turning
    data = {"mouse_dx": np.array([3.0, 0.0]), "mouse_dy": np.array([-4.0, 0.0])}
    assert camera_turn(data).tolist() == [5.0, 0.0]
    with pytest.raises(ValueError, match="turn must be"):
        invalid_runs(speed, cfg, FPS, turn[:10])


def test_bad_input_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="uint8 array"):
        detect(np.zeros((3, 4, 4), np.float32), FilterConfig(), FPS)
    with pytest.raises(ValueError, match="fps must be positive"):
        detect(np.zeros((3, 4, 4), np.uint8), FilterConfig(), 0)
    with pytest.raises(ValueError, match="2 frames, thumbnails 3"):
        detect(np.zeros((3, 4, 4), np.uint8), FilterConfig(), FPS, still=np.ones(2, bool))
    with pytest.raises(ValueError, match="finite"):
        invalid_runs(np.array([1.0, np.nan]), FilterConfig(), FPS)


def test_thumbnails_of_a_real_video(make_episode, tmp_path: Path) -> None:
    ep = make_episode(frames=10, width=64, height=48)
    thumbs = thumbnails(ep.path / "video.mp4", width=32, height=24)
    assert thumbs.shape == (10, 24, 32) and thumbs.dtype == np.uint8
    # Grey levels follow the encoded frames' luma (BT.601 weights) within codec tolerance.
    luma = ep.frames.astype(float) @ [0.299, 0.587, 0.114]
    small = luma.reshape(10, 24, 2, 32, 2).mean(axis=(2, 4))
    assert np.abs(thumbs - small).mean() < 6.0
    assert np.array_equal(thumbnails(ep.path / "video.mp4", 32, 24), thumbs)  # deterministic


def test_thumbnails_of_frames_kept_in_memory_equal_the_file_s(make_episode) -> None:
    ep = make_episode(frames=10, width=64, height=48)
    frames = list(decode_frames(ep.path / "video.mp4"))
    assert len(frames) == 10 and (frames[0].width, frames[0].height) == (64, 48)
    assert np.array_equal(thumbnails_of(frames, 32, 24), thumbnails(ep.path / "video.mp4", 32, 24))
    assert thumbnails_of([], 32, 24).shape == (0, 24, 32)
    with pytest.raises(ValueError, match="thumbnail size must be positive, got 0x24"):
        thumbnails_of(frames, 0, 24)


def test_thumbnails_report_missing_and_damaged_video(make_episode, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such video"):
        thumbnails(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        thumbnails(junk)
    with pytest.raises(VideoError, match="no such video"):
        next(decode_frames(tmp_path / "nope.mp4"))
    with pytest.raises(VideoError, match="junk.mp4"):
        list(decode_frames(junk))
