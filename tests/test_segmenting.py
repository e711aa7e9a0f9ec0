"""Segment planning on built-in recordings with stutter, frozen and static stretches and invalid
velocity injected at known places; time resampling of the segments."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import record_builtin

from curation.config import FilterConfig
from curation.redundancy import camera_still, detect
from curation.resample import METHOD, resample
from curation.segmenting import plan_segments
from curation.segments import LABEL_COLUMNS, Segment
from curation.thumbnails import thumbnails
from datagen.episode import KEY_COLUMNS, ROW_COLUMNS, Episode, read_episode
from datagen.episode_writer import EpisodeWriter
from datagen.rotation import wrap_deg
from datagen.video import read_frames

FRAMES = 150
POSE = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "yaw", "pitch", "roll", "fov")


@dataclasses.dataclass
class Injected:
    episode: Episode
    thumbs: np.ndarray
    original_at: np.ndarray  # new frame index of each source frame
    repeats: np.ndarray  # new frame indices of the inserted duplicates


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_builtin(tmp_path_factory.mktemp("rec"), FRAMES)[0]


def inject(
    source: Path, root: Path, dups: dict[int, int],
    edit: Callable[[list[dict[str, float]]], None] | None = None,
) -> Injected:
    """Rewrite ``source`` with ``dups[i]`` copies of frame ``i`` inserted after it, as a capture
    stutter looks: the copies' rows keep frame i's pose and velocity, press space (a tap during
    the stutter) and carry part of the next row's mouse motion (the next row keeps the rest)."""
    ep = read_episode(source)
    rows = [{c: ep.data[c][i].item() for c in ROW_COLUMNS} for i in range(len(ep.data["t"]))]
    if edit:
        edit(rows)
    meta = dataclasses.replace(ep.meta, episode_id=f"{ep.meta.episode_id}_x{len(dups)}")
    out_rows, images, original_at, repeats = [], [], [], []
    for i, image in enumerate(read_frames(source / "video.mp4")):
        k = dups.get(i - 1, 0)
        if k and i < len(rows):  # the motion of this row started during the stutter before it
            for c in ("mouse_dx", "mouse_dy"):
                share = rows[i][c] / (k + 1)
                for j in range(k):
                    out_rows[-1 - j][c] = share
                rows[i][c] -= k * share
        original_at.append(len(out_rows))
        out_rows.append(rows[i])
        images.append(image)
        for _ in range(dups.get(i, 0)):
            repeats.append(len(out_rows))
            out_rows.append({**rows[i], "mouse_dx": 0.0, "mouse_dy": 0.0, "key_space": 1})
            images.append(image)
    with EpisodeWriter(root, meta) as writer:
        for image, row in zip(images, out_rows, strict=True):
            writer.add_frame(image, row)
        path = writer.finish()
    return Injected(read_episode(path), thumbnails(path / "video.mp4"), np.array(original_at),
                    np.array(repeats, dtype=np.int64))


def assert_identities(seg: Segment) -> None:
    yaw, pitch = seg.labels["yaw"], seg.labels["pitch"]
    np.testing.assert_allclose(wrap_deg(seg.labels["mouse_dx"][1:] + np.diff(yaw)), 0, atol=1e-9)
    np.testing.assert_allclose(seg.labels["mouse_dy"][1:] - np.diff(pitch), 0, atol=1e-9)


def assert_pose_is_source_row(seg: Segment, ep: Episode) -> None:
    for c in POSE:
        assert np.array_equal(seg.labels[c], ep.data[c][seg.source_frames]), c


def accounted(segments: list[Segment], rejects, n: int) -> bool:
    """Every source frame is in a segment, a merged repeat or a reject, exactly once."""
    covered = np.zeros(n, int)
    for s in segments:
        covered[s.source_frames[0]: s.source_frames[-1] + 1] += 1
    for r in rejects:
        covered[r.first_frame: r.first_frame + r.frames] += 1
    trailing = sum(s.extra["segment_merged_repeats"] for s in segments) - sum(
        s.source_frames[-1] - s.source_frames[0] + 1 - len(s) for s in segments)
    return int((covered == 0).sum()) == trailing and covered.max() == 1


@pytest.fixture(scope="module")
def stutter(recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Injected:
    return inject(recording, tmp_path_factory.mktemp("stutter"),
                  {20: 1, 45: 2, 90: 3, 119: 1, FRAMES - 1: 1})


def test_clean_recording_is_one_segment_of_every_frame(recording: Path) -> None:
    ep = read_episode(recording)
    segments, rejects = plan_segments(ep, thumbnails(recording / "video.mp4"), FilterConfig())
    assert rejects == []
    [seg] = segments
    assert seg.problems() == []
    assert np.array_equal(seg.source_frames, np.arange(FRAMES))
    for c in LABEL_COLUMNS:
        assert np.array_equal(seg.labels[c], ep.data[c]), c
    assert seg.extra["segment_merged_repeats"] == 0 and seg.resampling is None
    assert (seg.fps, seg.scene, seg.backend, seg.episode) == (30.0, "city", "builtin",
                                                             ep.meta.episode_id)


def test_injected_duplicates_are_detected_dropped_and_merged(stutter: Injected) -> None:
    ep, n = stutter.episode, len(stutter.thumbs)
    red = detect(stutter.thumbs, FilterConfig(), ep.meta.fps, camera_still(ep.data))
    assert np.array_equal(np.flatnonzero(red.repeats), stutter.repeats)  # near duplicates (H.264)
    segments, rejects = plan_segments(ep, stutter.thumbs, FilterConfig())
    assert rejects == []
    [seg] = segments
    assert seg.problems() == []
    assert np.array_equal(seg.source_frames, stutter.original_at)
    assert seg.extra["segment_merged_repeats"] == len(stutter.repeats) == n - FRAMES
    assert_identities(seg)  # the raw CSV breaks them at the stutter; merging restores them
    assert_pose_is_source_row(seg, ep)
    after_stutter = np.isin(seg.source_frames - 1, stutter.repeats)
    assert after_stutter.sum() == 4  # the repeat at the very end is dropped with its inputs
    assert (seg.labels["key_space"][after_stutter] == 1).all()  # the tap is not lost
    assert (seg.labels["key_space"][~after_stutter] == ep.data["key_space"][
        seg.source_frames[~after_stutter]]).all()
    assert accounted(segments, rejects, n)


def test_frozen_run_is_dropped_and_splits(recording: Path, tmp_path: Path) -> None:
    inj = inject(recording, tmp_path, {70: 8})
    ep = inj.episode
    segments, rejects = plan_segments(ep, inj.thumbs, FilterConfig(clip_frames=20))
    assert [(r.first_frame, r.frames) for r in rejects] == [(71, 8)]
    assert rejects[0].reason.startswith("frozen: frames 71-78 (8 frames) for 0.3 s")
    assert [s.source_frames.tolist() for s in segments] == [list(range(71)),
                                                            list(range(79, FRAMES + 8))]
    # Nothing is merged across the split: the first frame after it keeps its own row.
    assert segments[1].labels["mouse_dx"][0] == ep.data["mouse_dx"][79]
    assert segments[1].labels["key_space"][0] == ep.data["key_space"][79]
    for seg in segments:
        assert_identities(seg)
    assert accounted(segments, rejects, len(inj.thumbs))


def test_static_stretch_is_dropped_and_splits(recording: Path, tmp_path: Path) -> None:
    inj = inject(recording, tmp_path, {60: 100})  # 3.3 s of a still camera on a still image
    segments, rejects = plan_segments(inj.episode, inj.thumbs, FilterConfig(clip_frames=20))
    assert [(r.first_frame, r.frames) for r in rejects] == [(61, 100)]
    assert rejects[0].reason.startswith("static: frames 61-160 (100 frames) for 3.3 s")
    assert [(s.source_frames[0], s.source_frames[-1]) for s in segments] == [(0, 60),
                                                                            (161, 249)]
    assert accounted(segments, rejects, len(inj.thumbs))


def test_velocity_invalid_run_splits_and_short_one_stays(recording: Path, tmp_path: Path) -> None:
    def stop(rows: list[dict[str, float]]) -> None:
        for i in [*range(40, 80), *range(100, 120)]:  # 40 frames (1.3 s), then 20 (0.7 s)
            rows[i].update(vel_x=0.0, vel_y=0.0, vel_z=0.01, mouse_dx=0.0, mouse_dy=0.01)

    inj = inject(recording, tmp_path, {}, edit=stop)
    cfg = FilterConfig(clip_frames=20, speed_eps=0.05, invalid_tolerance_s=1.0)
    segments, rejects = plan_segments(inj.episode, inj.thumbs, cfg)
    assert [(r.first_frame, r.frames) for r in rejects] == [(40, 40)]
    assert rejects[0].reason.startswith("stationary: ")
    assert ("agent speed at most 0.05 m/s and the camera turning at most 0.05 degrees a frame "
            "for 1.3 s") in rejects[0].reason
    assert [s.source_frames.tolist() for s in segments] == [list(range(40)),
                                                            list(range(80, FRAMES))]
    longer = FilterConfig(clip_frames=20, invalid_tolerance_s=1.5)
    assert plan_segments(inj.episode, inj.thumbs, longer)[1] == []


def test_segments_shorter_than_a_clip_are_rejected_with_reasons(
    recording: Path, tmp_path: Path
) -> None:
    inj = inject(recording, tmp_path, {130: 8})
    segments, rejects = plan_segments(inj.episode, inj.thumbs, FilterConfig(clip_frames=57))
    assert [s.source_frames[[0, -1]].tolist() for s in segments] == [[0, 130]]
    assert [r.reason for r in rejects[1:]] == [
        "too short: frames 139-157 (19 frames) between a frozen stretch and the end are shorter "
        "than one clip (57 frames)"]
    _, [whole] = plan_segments(read_episode(recording), thumbnails(recording / "video.mp4"),
                               FilterConfig(clip_frames=200, fps=15))
    assert (whole.first_frame, whole.frames) == (0, FRAMES)
    assert whole.reason == ("too short: frames 0-149 (150 frames), 75 at 15 fps between the "
                            "start and the end are shorter than one clip (200 frames)")


@pytest.mark.parametrize("to_fps", [15.0, 20.0, 60.0])
def test_resampling_keeps_identities_keys_and_exact_counts(stutter: Injected,
                                                           to_fps: float) -> None:
    ep = stutter.episode
    [seg] = plan_segments(ep, stutter.thumbs, FilterConfig())[0]
    [res] = plan_segments(ep, stutter.thumbs, FilterConfig(fps=to_fps))[0]
    span = int(seg.source_frames[-1] - seg.source_frames[0])
    assert len(res) == span * int(to_fps) // 30 + 1
    assert res.fps == to_fps and res.extra == seg.extra
    assert res.resampling == {"from_fps": 30.0, "to_fps": to_fps, "method": METHOD}
    assert all(len(res.labels[c]) == len(res) for c in LABEL_COLUMNS)
    # Each output frame shows the source frame at or just before its time.
    times = seg.labels["t"][0] + np.arange(len(res)) / to_fps
    shown = np.searchsorted(seg.labels["t"], times + 1e-6, side="right") - 1
    assert np.array_equal(res.source_frames, seg.source_frames[shown])
    assert_identities(res)
    assert_pose_is_source_row(res, ep)
    # Keys: a press in any merged row shows in the output frame that covers it, and an output
    # frame holds a key only if a row it covers (or, upsampled, the shown row) held it.
    for c in KEY_COLUMNS:
        covering = np.searchsorted(shown, np.arange(len(seg)), side="left")
        assert (res.labels[c][covering[seg.labels[c] == 1]] == 1).all(), c
        for j in range(1, len(res)):
            rows = seg.labels[c][shown[j - 1] + 1: shown[j] + 1]
            assert res.labels[c][j] == (rows.max() if len(rows) else seg.labels[c][shown[j]])
    if to_fps > 30:
        again = np.flatnonzero(np.diff(res.source_frames) == 0) + 1
        assert len(again) > 0 and (res.labels["mouse_dx"][again] == 0).all()


def test_resample_at_the_same_rate_and_bad_input(recording: Path) -> None:
    ep = read_episode(recording)
    [seg] = plan_segments(ep, thumbnails(recording / "video.mp4"), FilterConfig())[0]
    same = resample(seg, 30.0)
    assert np.array_equal(same.source_frames, seg.source_frames)
    for c in LABEL_COLUMNS:
        assert np.array_equal(same.labels[c], seg.labels[c]), c
    with pytest.raises(ValueError, match="fps must be a positive number"):
        resample(seg, 0.0)
    with pytest.raises(ValueError, match="149 thumbnails for 150 CSV rows"):
        plan_segments(ep, thumbnails(recording / "video.mp4")[1:], FilterConfig())


def test_planning_is_deterministic(stutter: Injected) -> None:
    cfg = FilterConfig(fps=20.0, clip_frames=30)
    a_segs, a_rej = plan_segments(stutter.episode, stutter.thumbs, cfg)
    b_segs, b_rej = plan_segments(stutter.episode, stutter.thumbs, cfg)
    assert a_rej == b_rej and len(a_segs) == len(b_segs)
    for a, b in zip(a_segs, b_segs, strict=True):
        assert np.array_equal(a.source_frames, b.source_frames)
        assert all(np.array_equal(a.labels[c], b.labels[c]) for c in LABEL_COLUMNS)


def test_a_piece_that_starts_with_repeats_keeps_its_first_real_frame(recording: Path) -> None:
    """Found by review: the piece's first frame replaced the first non-repeat instead of being
    added before it, losing a real frame, and a piece of repeats only crashed the episode."""
    from curation.segmenting import _merge

    ep = read_episode(recording)
    repeats = np.zeros(FRAMES, dtype=bool)
    repeats[[100, 101, 103]] = True
    seg = _merge(ep, 100, 110, repeats)
    assert seg.source_frames.tolist() == [100, 102, 104, 105, 106, 107, 108, 109]
    assert seg.extra["segment_merged_repeats"] == 2
    repeats[120:130] = True
    only_repeats = _merge(ep, 120, 130, repeats)
    assert only_repeats.source_frames.tolist() == [120]
    assert_identities(seg)
