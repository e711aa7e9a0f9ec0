"""Clips: cutting, resizing, intrinsics, and encoding with exact frame counts (real episodes)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import record_builtin

from curation import encode as encode_module
from curation.clips import ClipPlan, cut_clips, intrinsics_after_resize, resize_frame
from curation.config import FilterConfig
from curation.encode import encode_clips
from curation.pipeline import process_episode
from curation.segments import LABEL_COLUMNS, Segment
from datagen.episode import VIDEO_FILE, read_episode
from datagen.video import VideoError, decode_frames, read_frames

FRAMES = 90
REPO = Path(__file__).resolve().parents[1]
ENCODE_IN_A_CHILD = """
import hashlib, json, sys
from pathlib import Path
import numpy as np
from curation.clips import cut_clips
from curation.config import FilterConfig
from curation.encode import encode_clips
from curation.segments import LABEL_COLUMNS, Segment
from datagen.episode import VIDEO_FILE, read_episode
path = Path(sys.argv[1])
ep = read_episode(path)
labels = {c: ep.data[c].astype(np.uint8 if c.startswith("key_") else np.float64)
          for c in LABEL_COLUMNS}
seg = Segment(ep.meta.episode_id, path, np.arange(ep.meta.frames), labels, ep.meta.fps)
cfg = FilterConfig(clip_frames=20, stride=9, width=int(sys.argv[2]), height=int(sys.argv[3]))
print(json.dumps([hashlib.sha256(mp4).hexdigest()
                  for _, mp4 in encode_clips(path / VIDEO_FILE, cut_clips(seg, cfg), cfg)]))
"""


def segment_of(path: Path, source_frames: np.ndarray | None = None) -> Segment:
    """A Segment of a recorded episode: the given source frames (all by default), their rows."""
    ep = read_episode(path)
    frames = np.arange(ep.meta.frames) if source_frames is None else np.asarray(source_frames)
    labels = {c: ep.data[c][frames].astype(np.uint8 if c.startswith("key_") else np.float64)
              for c in LABEL_COLUMNS}
    return Segment(ep.meta.episode_id, path, frames.astype(np.int64), labels, ep.meta.fps,
                   scene=ep.meta.scene, backend=ep.meta.backend)


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_builtin(tmp_path_factory.mktemp("rec"), FRAMES)[0]


def decode(mp4: bytes) -> np.ndarray:
    with av.open(io.BytesIO(mp4)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize(("n", "clip", "stride", "expected"), [
    (90, 57, None, 1), (90, 30, None, 3), (90, 30, 20, 4), (90, 91, None, 0), (57, 57, 1, 1),
    (60, 10, 25, 3), (10, 3, 1, 8),
])
def test_cut_clips_keeps_only_whole_clips(episode: Path, n: int, clip: int, stride: int | None,
                                          expected: int) -> None:
    seg = segment_of(episode, np.arange(n))
    cfg = FilterConfig(clip_frames=clip, stride=stride)
    plans = cut_clips(seg, cfg)
    assert len(plans) == expected
    assert [p.start for p in plans] == [i * cfg.clip_stride for i in range(expected)]
    assert all(p.frames == clip and p.start + clip <= n for p in plans)


def test_clip_plan_key_and_source_frames(episode: Path) -> None:
    seg = segment_of(episode, np.arange(3, 90, 2))
    plan = cut_clips(seg, FilterConfig(clip_frames=10, stride=4))[2]
    assert plan.source_frames.tolist() == list(range(19, 39, 2))
    assert plan.key == f"{seg.episode}_000019" and "." not in plan.key
    with pytest.raises(ValueError, match="does not fit"):
        ClipPlan(seg, 40, 10)


@pytest.mark.parametrize(("clip", "stride"), [(20, None), (16, 7), (25, 40), (1, 30)])
def test_every_clip_decodes_to_exactly_its_frames(episode: Path, clip: int,
                                                  stride: int | None) -> None:
    cfg = FilterConfig(clip_frames=clip, stride=stride, width=64, height=48)
    plans = cut_clips(segment_of(episode), cfg)
    out = list(encode_clips(episode / VIDEO_FILE, plans, cfg))
    assert [p for p, _ in out] == plans  # every plan, in plan order
    for plan, mp4 in out:
        with av.open(io.BytesIO(mp4)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.codec_context.format.name) == (
                "h264", "yuv420p")
            assert (stream.width, stream.height, stream.average_rate) == (64, 48, 30)
            assert sum(1 for _ in container.decode(stream)) == plan.frames


def test_same_input_gives_identical_bytes(episode: Path) -> None:
    cfg = FilterConfig(clip_frames=20, stride=9, width=64, height=36)
    plans = cut_clips(segment_of(episode), cfg)
    first = [mp4 for _, mp4 in encode_clips(episode / VIDEO_FILE, plans, cfg)]
    second = [mp4 for _, mp4 in encode_clips(episode / VIDEO_FILE, plans, cfg)]
    assert first == second


@pytest.mark.parametrize("size", [(64, 36), (160, 90)])  # resized RGB; yuv420p as decoded
def test_separate_processes_give_identical_bytes(episode: Path, size: tuple[int, int]) -> None:
    # each process starts from fresh memory: a reading of uninitialised memory or a
    # thread race in the encoder shows up here even when one process repeats itself
    children = [subprocess.Popen([sys.executable, "-c", ENCODE_IN_A_CHILD, str(episode),
                                  *map(str, size)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    hashes = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        hashes.append(json.loads(out))
    assert len(hashes[0]) == 8  # clips start at 0, 9, ..., 63 of 90 frames
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(("width", "height", "policy"), [
    (160, 90, "crop"), (64, 48, "crop"), (64, 48, "pad"), (320, 180, "crop")])
def test_clip_frames_are_the_resized_source_frames(episode: Path, width: int, height: int,
                                                   policy: str) -> None:
    source = list(read_frames(episode / VIDEO_FILE))
    seg = segment_of(episode, np.arange(5, 90, 3))  # skipped frames: clips show chosen ones
    cfg = FilterConfig(clip_frames=12, stride=8, width=width, height=height, resize=policy)
    for plan, mp4 in encode_clips(episode / VIDEO_FILE, cut_clips(seg, cfg), cfg):
        want = np.stack([resize_frame(source[i], width, height, policy)
                         for i in plan.source_frames]).astype(np.int16)
        got = decode(mp4).astype(np.int16)
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 8.0  # H.264 at CRF 20 on small detailed frames
        # each clip frame is closest to its own source frame, not to its neighbours
        assert np.abs(got[1:] - want[1:]).mean() < np.abs(got[1:] - want[:-1]).mean()


@pytest.mark.parametrize("size", [(64, 36), (160, 90)])  # resized RGB; yuv420p as decoded
def test_frames_in_memory_give_the_bytes_of_decoding_the_file(episode: Path,
                                                              size: tuple[int, int]) -> None:
    cfg = FilterConfig(clip_frames=16, stride=11, width=size[0], height=size[1])
    plans = cut_clips(segment_of(episode, np.arange(2, 90, 2)), cfg)
    from_file = list(encode_clips(episode / VIDEO_FILE, plans, cfg))
    frames = list(decode_frames(episode / VIDEO_FILE))
    in_memory = list(encode_clips(episode / "not-read.mp4", plans, cfg, frames=frames))
    assert [p for p, _ in in_memory] == plans
    assert [mp4 for _, mp4 in in_memory] == [mp4 for _, mp4 in from_file]


def test_frame_size_change_at_dataset_size_is_a_clear_error(episode: Path) -> None:
    frames = list(decode_frames(episode / VIDEO_FILE))
    frames[7] = av.VideoFrame(64, 48, "yuv420p")
    cfg = FilterConfig(clip_frames=20, width=160, height=90)  # the source's size: no resize
    with pytest.raises(VideoError, match=rf"{episode.name}: .* frame 7: frame size changed "
                                         r"from 160x90 to 64x48"):
        list(encode_clips(episode / VIDEO_FILE, cut_clips(segment_of(episode), cfg), cfg,
                          frames=frames))


def test_decoding_once_or_twice_gives_the_same_episode_result(episode: Path,
                                                              tmp_path: Path) -> None:
    truncated = tmp_path / episode.parent.name / episode.name  # <scene>/<id>, as validated
    shutil.copytree(episode, truncated)
    video = (truncated / VIDEO_FILE).read_bytes()
    (truncated / VIDEO_FILE).write_bytes(video[:len(video) * 2 // 3])
    for path, size in ((episode, (160, 90)), (episode, (64, 36)), (truncated, (160, 90))):
        cfg = FilterConfig(clip_frames=20, stride=15, width=size[0], height=size[1])
        once = process_episode(path, cfg)  # the default budget holds a 90-frame 160x90 episode
        twice = process_episode(path, cfg, decode_once_bytes=0)  # forced to decode twice
        if path == episode:
            assert len(once.samples) == 5 and not once.rejects
        else:
            [reject] = once.rejects
            assert "video.mp4 decodes to" in reject.reason and not once.samples
        assert (once.samples, once.rejects, once.info, once.frames) == (
            twice.samples, twice.rejects, twice.info, twice.frames)


def test_an_unreadable_video_is_an_invalid_episode(episode: Path, tmp_path: Path) -> None:
    broken = tmp_path / episode.parent.name / episode.name
    shutil.copytree(episode, broken)
    video = bytearray((broken / VIDEO_FILE).read_bytes())
    video[100:4100] = bytes(4000)  # the header is gone: not even a video stream is found
    (broken / VIDEO_FILE).write_bytes(video)
    [reject] = process_episode(broken, FilterConfig(clip_frames=20)).rejects
    assert reject.reason.startswith("invalid episode: video.mp4: ")


def test_source_ending_early_is_a_clear_error(episode: Path, monkeypatch) -> None:
    finish = encode_module._ClipEncoder.finish

    def slow_finish(self):  # a busy machine: the source ends before the clips' files are done
        time.sleep(0.3)
        return finish(self)

    monkeypatch.setattr(encode_module._ClipEncoder, "finish", slow_finish)
    seg = segment_of(episode)
    longer = Segment(seg.episode, seg.source, np.arange(FRAMES + 30),
                     {c: np.resize(v, FRAMES + 30) for c, v in seg.labels.items()}, seg.fps)
    cfg = FilterConfig(clip_frames=40, width=64, height=48)
    clips = encode_clips(episode / VIDEO_FILE, cut_clips(longer, cfg), cfg)
    assert len(next(clips)[1]) > 0 and len(next(clips)[1]) > 0  # frames 0..79 exist
    with pytest.raises(VideoError, match=rf"{seg.episode}: .* ended after {FRAMES} frames, but "
                                         rf"clip {seg.episode}_000080 needs source frame 90"):
        next(clips)


def test_encode_clips_refuses_clips_of_two_episodes(episode: Path) -> None:
    seg = segment_of(episode)
    other = Segment("other", seg.source, seg.source_frames, seg.labels, seg.fps)
    cfg = FilterConfig(clip_frames=30)
    with pytest.raises(ValueError, match="one episode"):
        list(encode_clips(episode / VIDEO_FILE, cut_clips(seg, cfg) + cut_clips(other, cfg), cfg))


def four_by_three_frame() -> np.ndarray:
    """160x120: rows 0-14 red, rows 105-119 blue, the rest green (bands known by construction)."""
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, :, 1] = 200
    frame[:15] = (200, 0, 0)
    frame[105:] = (0, 0, 200)
    return frame


def test_crop_scales_to_cover_and_cuts_the_long_side() -> None:
    # 160x120 -> 64x36: scale 0.4 to 64x48, then 6 rows cut at the top and the bottom
    out = resize_frame(four_by_three_frame(), 64, 36, "crop")
    assert out.shape == (36, 64, 3)
    # the red and blue bands (15 rows -> 6 rows) were cut away exactly
    assert np.abs(out.astype(int) - (0, 200, 0)).max() <= 1


def test_pad_scales_to_fit_and_adds_black_bars() -> None:
    # 160x120 -> 64x36: scale 0.3 to 48x36, 8 black columns on each side
    frame = np.full((120, 160, 3), 255, np.uint8)
    out = resize_frame(frame, 64, 36, "pad")
    assert out.shape == (36, 64, 3)
    assert (out[:, :8] == 0).all() and (out[:, 56:] == 0).all()
    assert (out[:, 8:56] == 255).all()
    bands = resize_frame(four_by_three_frame(), 64, 36, "pad")
    assert (bands[:4, 8:56, 0] > 150).all() and (bands[-4:, 8:56, 2] > 150).all()


def test_resize_identity_and_errors() -> None:
    frame = four_by_three_frame()
    assert resize_frame(frame, 160, 120, "crop") is frame
    with pytest.raises(ValueError, match="uint8"):
        resize_frame(frame.astype(np.float32), 64, 36, "crop")
    with pytest.raises(ValueError, match="policy"):
        resize_frame(frame, 64, 36, "stretch")
    with pytest.raises(ValueError, match="fov"):
        intrinsics_after_resize(180.0, 160, 120, 64, 36, "crop")


def project(k: dict[str, float], point: np.ndarray) -> np.ndarray:
    """Pixel (corner convention) of an OpenCV-camera point (x right, y down, z forward)."""
    return np.array([k["fx"] * point[0] / point[2] + k["cx"], k["fy"] * point[1] / point[2]
                     + k["cy"]])


@pytest.mark.parametrize(("src", "dst", "policy"), [
    ((160, 120), (64, 36), "crop"), ((160, 120), (64, 36), "pad"),
    ((160, 90), (64, 48), "crop"), ((160, 90), (64, 48), "pad"), ((100, 60), (320, 180), "crop"),
])
def test_intrinsics_follow_the_resized_pixels(src: tuple[int, int], dst: tuple[int, int],
                                              policy: str) -> None:
    fov = 75.0
    (sw, sh), (dw, dh) = src, dst
    k_src = intrinsics_after_resize(fov, sw, sh, sw, sh, policy)
    assert k_src == pytest.approx({"fx": sw / 2 / np.tan(np.radians(fov / 2)),
                                   "fy": sw / 2 / np.tan(np.radians(fov / 2)),
                                   "cx": sw / 2, "cy": sh / 2})
    k_dst = intrinsics_after_resize(fov, sw, sh, dw, dh, policy)
    for point in (np.array([0.3, -0.2, 2.0]), np.array([-0.5, 0.25, 3.0])):
        u, v = project(k_src, point)
        # draw a bright 8x8 source square centred on the point, find it in the resized frame
        frame = np.zeros((sh, sw, 3), np.uint8)
        frame[round(v) - 4:round(v) + 4, round(u) - 4:round(u) + 4] = 255
        center = np.array([round(u), round(v)], float)  # the square's true centre (corners)
        out = resize_frame(frame, dw, dh, policy)[..., 0].astype(float)
        ys, xs = np.mgrid[0:dh, 0:dw] + 0.5  # pixel centres
        found = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
        moved = project(k_dst, point) + (center - (u, v)) * (k_dst["fx"] / k_src["fx"],
                                                              k_dst["fy"] / k_src["fy"])
        assert found == pytest.approx(moved, abs=0.1)


def test_clips_of_an_upsampled_segment_have_unique_keys(episode: Path) -> None:
    """Found by review: upsampling shows source frames twice, and clips starting on the same
    source frame shared a key, which aborted the whole run."""
    from curation.resample import resample

    seg = resample(segment_of(episode), 60.0)
    plans = cut_clips(seg, FilterConfig(clip_frames=8, stride=1))
    keys = [p.key for p in plans]
    assert len(keys) == len(set(keys)) and len(keys) >= FRAMES - 8
    firsts = [int(p.source_frames[0]) for p in plans]
    assert firsts == sorted(set(firsts))  # one clip per source frame it can start on
