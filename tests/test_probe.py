"""The camera-motion probe: rotation and direction of travel from pixels, mapped to keys and mouse.

Three kinds of input: views of a textured sphere rendered here for a scripted pure rotation (the
right mouse deltas are known by construction, so the contract's signs are checked exactly), flat
frames (nothing to track), and a real built-in recording (exact labels from the recorder: turns
and walking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import record_builtin

from curation.cli import main as curation
from curation.probe import (
    BODY_FROM_CV,
    ProbeConfig,
    ProbeError,
    camera_matrix,
    probe_frames,
    ypr_of,
)
from curation.probe_actions import (
    EXTRA_COLUMNS,
    ActionConfig,
    ProbeActionsError,
    orientation,
    probe_actions,
)
from datagen.episode import (
    ACTIONS_FILE,
    COLUMNS,
    KEY_COLUMNS,
    META_FILE,
    VIDEO_FILE,
    EpisodeMeta,
    read_actions,
    read_episode,
    write_meta,
)
from datagen.episode_check import validate_episode
from datagen.rotation import quat_from_ypr, quat_to_matrix, wrap_deg
from datagen.video import H264Writer, read_frames

W, H, FOV = 320, 180, 90.0


def _canvas(seed: int = 0, size: tuple[int, int] = (1400, 1000)) -> np.ndarray:
    """A grey texture full of corners: random rectangles of random shades, lightly blurred."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((size[1], size[0]), 128, np.uint8)
    for _ in range(2500):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        w, h = rng.integers(4, 40, 2)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), int(rng.integers(0, 256)),
                      -1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def rotation_views(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` views of a distant textured scene from a camera that only turns: frame i
    after mouse deltas ``dx[:i+1], dy[:i+1]`` (contract signs; ``dx[0] = dy[0] = 0``). A pure
    rotation maps views by the homography ``K_canvas R_0^T R_i K^-1``, exact for any scene."""
    import cv2

    canvas = _canvas()
    k = camera_matrix(FOV, W, H)
    kc = camera_matrix(130.0, canvas.shape[1], canvas.shape[0])
    q = quat_from_ypr(-np.cumsum(dx), np.cumsum(dy))
    r_cv = quat_to_matrix(q) @ BODY_FROM_CV  # OpenCV camera -> world
    frames = []
    for r in r_cv:
        m = kc @ r_cv[0].T @ r @ np.linalg.inv(k)
        view = cv2.warpPerspective(canvas, m, (W, H), flags=cv2.INTER_LINEAR
                                   | cv2.WARP_INVERSE_MAP)
        frames.append(np.repeat(view[..., None], 3, axis=2))
    return np.stack(frames)


def _script(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Turns right, then left and up, then down-right: every sign, several speeds."""
    i = np.arange(n)
    dx = np.where(i < 14, 1.5, np.where(i < 28, -2.5, 0.8))
    dy = np.where(i < 14, 0.0, np.where(i < 28, 0.6, -1.0))
    dx[0] = dy[0] = 0.0
    return dx, dy


def test_pure_rotation_is_recovered_with_the_contracts_signs() -> None:
    dx, dy = _script()
    result = probe_frames(rotation_views(dx, dy), FOV)
    keys, mouse, known = probe_actions(result, 30.0)
    assert known.all()
    assert mouse[0].tolist() == [0.0, 0.0]
    # mouse_dx positive = turn right (yaw decreases), mouse_dy positive = look up
    assert np.abs(mouse[1:, 0] - dx[1:]).max() < 0.05
    assert np.abs(mouse[1:, 1] - dy[1:]).max() < 0.05
    # the relative rotation itself, in the body frame of the frame before (turning while
    # pitched has a roll component there)
    body = quat_to_matrix(quat_from_ypr(-np.cumsum(dx), np.cumsum(dy)))
    exact = ypr_of(np.einsum("nji,njk->nik", body[:-1], body[1:]))
    assert np.abs(result.ypr[1:] - exact).max() < 0.05
    assert not result.moving.any()  # turning in place is not travel ...
    assert not keys.any()  # ... so no key is pressed


def test_frames_without_texture_are_unknown_not_guessed() -> None:
    flat = np.full((12, 90, 160, 3), 127, np.uint8)
    result = probe_frames(flat, FOV)
    keys, mouse, known = probe_actions(result, 30.0)
    assert known.tolist() == [True] + [False] * 11  # row 0 is "no motion" by the contract
    assert (result.confidence[1:] == 0).all() and not keys.any() and not mouse.any()
    assert np.array_equal(result.rotation[1:], np.tile(np.eye(3), (11, 1, 1)))


def test_probe_takes_iterables_and_rejects_bad_frames() -> None:
    dx, dy = _script(8)
    views = rotation_views(dx, dy)
    assert np.allclose(probe_frames(iter(list(views)), FOV).ypr,
                       probe_frames(views, FOV).ypr)
    with pytest.raises(ProbeError, match="uint8"):
        probe_frames(views.astype(np.float32), FOV)
    with pytest.raises(ProbeError, match="fov"):
        probe_frames(views, 0.0)
    with pytest.raises(ProbeError, match="no frames"):
        probe_frames([], FOV)
    with pytest.raises(ProbeError, match="max_features"):
        ProbeConfig(max_features=0)
    with pytest.raises(ProbeActionsError, match="switch_cost"):
        ActionConfig(switch_cost=-1.0)


def test_orientation_satisfies_the_contracts_identities() -> None:
    dx, dy = _script()
    quat, ypr = orientation(np.stack([dx, dy], axis=1))
    assert np.allclose(np.linalg.norm(quat, axis=1), 1.0)
    assert np.abs(wrap_deg(-(np.diff(ypr[:, 0]))) - dx[1:]).max() < 1e-9
    assert np.abs(np.diff(ypr[:, 1]) - dy[1:]).max() < 1e-9


# --- a real recording: turns and walking ------------------------------------------------------

@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory):
    """A 240-frame city episode (160x90, explore profile) and the probe's reading of it."""
    episode = read_episode(record_builtin(tmp_path_factory.mktemp("probe"), 240)[0])
    frames = read_frames(episode.path / VIDEO_FILE)
    result = probe_frames(frames, float(episode.data["fov"][0]))
    return episode, result


def test_recorded_turns_are_recovered(recorded) -> None:
    episode, result = recorded
    d = episode.data
    _, mouse, known = probe_actions(result, episode.meta.fps)
    assert known.mean() >= 0.95
    err = np.hypot(mouse[:, 0] - d["mouse_dx"], mouse[:, 1] - d["mouse_dy"])[known]
    # measured at 160x90: median 0.09, p95 0.42 degrees
    assert np.median(err) < 0.2 and np.percentile(err, 95) < 1.0
    turning = known & (np.abs(d["mouse_dx"]) > 0.5)
    assert turning.sum() > 20
    assert np.mean(np.sign(mouse[turning, 0]) == np.sign(d["mouse_dx"][turning])) >= 0.97


def test_recorded_walking_is_recovered(recorded) -> None:
    episode, result = recorded
    d = episode.data
    keys, _, _ = probe_actions(result, episode.meta.fps)
    # the direction of travel, where the camera surely moved, against the recorded one
    pos = np.stack([d["pos_x"], d["pos_y"], d["pos_z"]], axis=1)
    body = quat_to_matrix(np.stack([d["qw"], d["qx"], d["qy"], d["qz"]], axis=1))
    step = np.einsum("nji,nj->ni", body[:-1], np.diff(pos, axis=0))  # body frame of i-1
    sure = result.moving[1:] & (np.linalg.norm(step, axis=1) > 0.02)
    assert sure.sum() > 50
    cos = np.einsum("ni,ni->n", result.translation[1:][sure],
                    step[sure] / np.linalg.norm(step[sure], axis=1, keepdims=True))
    assert np.median(np.degrees(np.arccos(np.clip(cos, -1, 1)))) < 10.0
    # walking keys (measured: W 0.93, S 0.93, A 0.88, D 0.91 on this recording)
    for j, name in enumerate(KEY_COLUMNS[:4]):
        assert np.mean(keys[:, j] == d[name]) >= 0.8, name
    assert keys[:, KEY_COLUMNS.index("key_shift")].sum() == 0  # not inferred


# --- curation annotate --from-video -----------------------------------------------------------

def _mp4(path: Path, frames: np.ndarray, fps: float = 30) -> Path:
    with H264Writer(path, frames.shape[2], frames.shape[1], fps, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_from_video_writes_a_contract_csv_for_an_mp4_without_one(tmp_path: Path) -> None:
    dx, dy = _script(30)
    video = _mp4(tmp_path / "capture.mp4", rotation_views(dx, dy))
    out = tmp_path / "labels" / ACTIONS_FILE
    assert curation(["annotate", "--from-video", str(video), "--out", str(out)]) == 0
    columns, data = read_actions(out)
    assert columns == [*COLUMNS, *EXTRA_COLUMNS]
    assert len(data["frame"]) == 30 and data["t"][1] == 1 / 30
    assert np.abs(data["mouse_dx"][1:] - dx[1:]).max() < 0.1  # after H.264
    assert (data["fov"] == FOV).all() and (data["pos_x"] == 0).all()  # poses unknown: 0
    # with the video and a meta.json it is an episode that passes the contract's checks
    folder = tmp_path / "ext" / "capture" / "capture_0_00000"
    folder.mkdir(parents=True)
    (folder / VIDEO_FILE).write_bytes(video.read_bytes())
    (folder / ACTIONS_FILE).write_bytes(out.read_bytes())
    write_meta(folder / META_FILE, EpisodeMeta(
        episode_id=folder.name, backend="builtin", scene="capture", seed=0, fps=30, width=W,
        height=H, frames=30, duration_s=1.0))
    assert validate_episode(folder) == []


def test_from_video_refuses_what_it_cannot_do(tmp_path: Path, capsys) -> None:
    video = _mp4(tmp_path / "v.mp4", rotation_views(*_script(6)))
    out = tmp_path / "a.csv"
    out.write_text("keep me")
    assert curation(["annotate", "--from-video", str(video), "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and out.read_text() == "keep me"
    assert curation(["annotate", "--from-video", str(tmp_path / "nope.mp4"), "--out",
                     str(tmp_path / "b.csv")]) == 2
    assert curation(["annotate", "--from-video", str(video), "--fov", "0", "--out",
                     str(tmp_path / "c.csv")]) == 2
    assert curation(["annotate", "--from-video", str(video), str(tmp_path), "--out",
                     str(tmp_path / "d.csv")]) == 2
