"""``curation preview`` on a real built-in recording whose keys are known from its CSV."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import record_builtin

from curation.preview import HELD, PreviewError, draw_overlay, layout, preview
from datagen.episode import KEY_COLUMNS, read_episode
from datagen.video import probe, read_frames

FRAMES = 90


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_builtin(tmp_path_factory.mktemp("rec"), FRAMES)[0]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def write_clip_tar(path: Path, episode: Path, rows: int = FRAMES) -> str:
    """A one-sample shard holding the whole recording as a clip (its first ``rows`` labels)."""
    d = read_episode(episode).data
    keys = np.stack([d[c] for c in KEY_COLUMNS], axis=1).astype(np.uint8)[:rows]
    mouse = np.stack([d["mouse_dx"], d["mouse_dy"]], axis=1).astype(np.float32)[:rows]
    pose = np.stack([d[c] for c in ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")],
                    axis=1)[:rows]
    meta = {"episode": episode.name, "source_frames": list(range(rows)), "fps": 30,
            "width": 160, "height": 90, "scene": "city", "backend": "builtin"}
    key = f"{episode.name}_000000"
    members = {"json": json.dumps(meta).encode(), "keys.npy": _npy(keys),
               "mouse.npy": _npy(mouse), "mp4": (episode / "video.mp4").read_bytes(),
               "pose.npy": _npy(pose)}
    with tarfile.open(path, "w") as tar:
        for ext in sorted(members):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(members[ext])
            tar.addfile(info, io.BytesIO(members[ext]))
    return key


def test_episode_preview_has_one_frame_per_source_frame(episode, tmp_path) -> None:
    out = preview(episode, tmp_path / "p.mp4")
    info = probe(out)
    assert (info.frames, info.fps, info.codec) == (FRAMES, 30.0, "h264")
    assert (info.width, info.height) == (640, 360)  # 160x90 scaled 4x to be legible
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_overlay_changes_only_the_panels() -> None:
    lay = layout(640, 360)
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    drawn = draw_overlay(frame, lay, np.array([1, 0, 0, 1, 0, 1, 0]), 3.0, -1.5,
                         ["frame 1/2", "t 0.03 s", "speed 1.00 m/s"])
    inside = np.zeros((360, 640), bool)
    for x0, y0, x1, y1 in lay.panels:
        assert (drawn[y0:y1, x0:x1] != frame[y0:y1, x0:x1]).any()
        inside[y0:y1, x0:x1] = True
    assert not (drawn != frame).any(axis=2)[~inside].any()
    for x0, y0, x1, y1 in lay.cells.values():  # every key cell lies inside the key pad
        px0, py0, px1, py1 = lay.pad
        assert px0 <= x0 < x1 <= px1 and py0 <= y0 < y1 <= py1


def test_w_cell_is_filled_exactly_when_w_is_held(episode, tmp_path) -> None:
    w = read_episode(episode).data["key_w"]
    held, free = int(np.flatnonzero(w == 1)[0]), int(np.flatnonzero(w == 0)[0])
    frames = list(read_frames(preview(episode, tmp_path / "p.mp4")))
    x0, y0, x1, y1 = layout(640, 360).cells["w"]
    inner = (slice(y0 + 3, y1 - 3), slice(x0 + 3, x1 - 3))

    def distance_to_held(i: int) -> float:
        colour = np.median(frames[i][inner].reshape(-1, 3), axis=0)
        return float(np.abs(colour - np.array(HELD)).max())

    assert distance_to_held(held) < 25
    assert distance_to_held(free) > 80


def test_clip_preview_from_a_shard_tar(episode, tmp_path) -> None:
    key = write_clip_tar(tmp_path / "train-000000.tar", episode)
    for chosen in (None, key):
        out = preview(tmp_path / "train-000000.tar", tmp_path / "clip.mp4", key=chosen)
        assert probe(out).frames == FRAMES
    with pytest.raises(PreviewError, match=f"no clip 'nope' .*it holds {key}"):
        preview(tmp_path / "train-000000.tar", tmp_path / "clip.mp4", key="nope")


def test_labels_that_do_not_match_the_video_are_refused(episode, tmp_path) -> None:
    write_clip_tar(tmp_path / "train-000000.tar", episode, rows=FRAMES - 1)
    with pytest.raises(PreviewError, match=f"more frames than its {FRAMES - 1} label rows"):
        preview(tmp_path / "train-000000.tar", tmp_path / "clip.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar"]


def test_bad_sources_give_clear_errors(tmp_path) -> None:
    with pytest.raises(PreviewError, match="neither an episode folder nor a shard tar"):
        preview(tmp_path / "missing", tmp_path / "p.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PreviewError, match="neither an episode folder nor a shard tar"):
        preview(tmp_path / "notes.txt", tmp_path / "p.mp4")
    with pytest.raises(PreviewError, match="not an episode folder"):
        preview(tmp_path, tmp_path / "p.mp4")
