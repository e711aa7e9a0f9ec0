"""H264Writer, probe and read_frames: round trip, determinism, errors, crash-truncated files."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import synthetic_frames

from datagen.video import H264Writer, VideoError, probe, read_frames

W, H, FPS = 96, 64, 12


def write(path, frames, **kwargs) -> int:
    with H264Writer(path, W, H, FPS, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.close()


def test_round_trip_within_codec_tolerance(tmp_path):
    frames = synthetic_frames(30, W, H)
    assert write(tmp_path / "v.mp4", frames) == 30
    decoded = np.stack(list(read_frames(tmp_path / "v.mp4")))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(np.int16) - frames).mean(axis=(1, 2, 3))
    assert error.max() < 3.0  # CRF 18 on smooth gradients
    # frame order is kept: each decoded frame is closest to its own source frame
    assert np.abs(decoded[5].astype(np.int16) - frames[5]).mean() < np.abs(
        decoded[5].astype(np.int16) - frames[15]).mean()


def test_probe_reports_stream(tmp_path):
    write(tmp_path / "v.mp4", synthetic_frames(25, W, H))
    info = probe(tmp_path / "v.mp4")
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", W, H)
    assert info.fps == pytest.approx(FPS)
    assert info.frames == 25 and info.damage == ""
    assert probe(tmp_path / "v.mp4", count=False).frames is None


def test_same_frames_give_identical_bytes(tmp_path):
    frames = synthetic_frames(20, W, H)
    write(tmp_path / "a.mp4", frames)
    write(tmp_path / "b.mp4", frames)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_crf_changes_the_output(tmp_path):
    frames = synthetic_frames(10, W, H)
    write(tmp_path / "hi.mp4", frames, crf=10)
    write(tmp_path / "lo.mp4", frames, crf=40)
    assert (tmp_path / "lo.mp4").stat().st_size < (tmp_path / "hi.mp4").stat().st_size


@pytest.mark.parametrize("bad", [
    np.zeros((H, W + 2, 3), np.uint8), np.zeros((H, W, 4), np.uint8),
    np.zeros((H, W, 3), np.float32), [[0]],
])
def test_bad_frame_is_a_clear_error(tmp_path, bad):
    with H264Writer(tmp_path / "v.mp4", W, H, FPS) as writer:
        with pytest.raises(ValueError, match=r"uint8 array of shape \(64, 96, 3\)"):
            writer.write(bad)
        writer.write(np.zeros((H, W, 3), np.uint8))  # still usable afterwards
    assert probe(tmp_path / "v.mp4").frames == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 95}, "width must be an even integer"),
    ({"fps": 0}, "fps must be a positive number"),
    ({"crf": 60}, "crf must be an integer in 0..51"),
    ({"threads": 0}, "threads must be a positive integer"),
])
def test_bad_settings_are_rejected(tmp_path, kwargs, message):
    args = {"width": W, "height": H, "fps": FPS, **kwargs}
    with pytest.raises(ValueError, match=message):
        H264Writer(tmp_path / "v.mp4", **args)


def test_ffmpeg_failure_carries_its_stderr():
    """A full disk (``/dev/full`` fails every write with ENOSPC) surfaces as a VideoError that
    quotes ffmpeg."""
    writer = H264Writer("/dev/full", W, H, FPS)
    with pytest.raises(VideoError, match="ffmpeg said:") as err:
        for _ in range(50):  # ffmpeg fails writing the header; a write or close notices
            writer.write(np.zeros((H, W, 3), np.uint8))
        writer.close()
    assert "No space left on device" in str(err.value)


def test_unknown_preset_is_refused_before_ffmpeg_starts(tmp_path):
    with pytest.raises(ValueError, match="preset must be one of .*got 'no-such-preset'"):
        H264Writer(tmp_path / "v.mp4", W, H, FPS, preset="no-such-preset")
    assert not (tmp_path / "v.mp4").exists()


def test_unwritable_output_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="ffmpeg"):
        write(tmp_path / "missing-dir" / "v.mp4", synthetic_frames(3, W, H))


def test_write_after_kill_is_an_error(tmp_path):
    writer = H264Writer(tmp_path / "v.mp4", W, H, FPS)
    writer.write(np.zeros((H, W, 3), np.uint8))
    writer.kill()
    with pytest.raises(VideoError, match="after close"):
        writer.write(np.zeros((H, W, 3), np.uint8))


def test_truncated_fragmented_mp4_still_decodes(tmp_path):
    write(tmp_path / "v.mp4", synthetic_frames(48, W, H))  # 4 one-second fragments
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    salvaged = list(read_frames(tmp_path / "cut.mp4", strict=False))
    assert 0 < len(salvaged) < 48
    assert probe(tmp_path / "cut.mp4").frames == len(salvaged)


def test_corrupt_fragment_is_reported(tmp_path):
    write(tmp_path / "v.mp4", synthetic_frames(48, W, H))
    data = bytearray((tmp_path / "v.mp4").read_bytes())
    moofs = [i - 4 for i in range(len(data)) if data[i:i + 4] == b"moof"]
    middle = (moofs[1] + moofs[2]) // 2  # inside the second fragment's coded pictures
    data[middle:middle + 200] = b"\xff" * 200
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    info = probe(tmp_path / "bad.mp4")
    assert info.frames < 48 and "decoding stopped" in info.damage
    with pytest.raises(VideoError, match="decoding stopped after"):
        list(read_frames(tmp_path / "bad.mp4"))
    assert len(list(read_frames(tmp_path / "bad.mp4", strict=False))) == info.frames


def test_missing_or_garbage_file_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="no such video file"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="cannot open video"):
        probe(tmp_path / "junk.mp4")


def yuv_planes(frames: np.ndarray) -> np.ndarray:
    """RGB frames as stacked yuv420p planes ``[N, H * 3 // 2, W]`` (libswscale's conversion)."""
    return np.stack([av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
        format="yuv420p").to_ndarray() for f in frames])


def test_yuv420p_input_round_trip_matches_the_rgb_path(tmp_path):
    frames = synthetic_frames(20, W, H)
    planes = yuv_planes(frames)
    assert write(tmp_path / "yuv.mp4", planes, pix_fmt="yuv420p") == 20
    write(tmp_path / "rgb.mp4", frames)
    with av.open(str(tmp_path / "yuv.mp4")) as container:
        decoded = np.stack([f.to_ndarray() for f in container.decode(video=0)])
    assert decoded.shape == planes.shape  # same frame count, yuv420p at W x H
    assert np.abs(decoded.astype(np.int16) - planes).mean() < 3.0
    # the planes encode the picture the RGB path encodes, within codec tolerance
    via_yuv = np.stack(list(read_frames(tmp_path / "yuv.mp4"))).astype(np.int16)
    via_rgb = np.stack(list(read_frames(tmp_path / "rgb.mp4"))).astype(np.int16)
    assert np.abs(via_yuv - via_rgb).mean() < 2.0
    write(tmp_path / "again.mp4", planes, pix_fmt="yuv420p")
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "yuv.mp4").read_bytes()


def test_yuv420p_input_refuses_rgb_frames_and_unknown_formats(tmp_path):
    with H264Writer(tmp_path / "v.mp4", W, H, FPS, pix_fmt="yuv420p") as writer:
        with pytest.raises(ValueError, match=r"shape \(96, 96\) \(yuv420p planes"):
            writer.write(np.zeros((H, W, 3), np.uint8))
        writer.write(np.zeros((H * 3 // 2, W), np.uint8))
    assert probe(tmp_path / "v.mp4").frames == 1
    with pytest.raises(ValueError, match="pix_fmt must be one of rgb24, bgr0, yuv420p"):
        H264Writer(tmp_path / "w.mp4", W, H, FPS, pix_fmt="nv12")


def test_bgr0_frames_encode_to_the_same_bytes_as_rgb(tmp_path):
    frames = synthetic_frames(12, W, H)
    write(tmp_path / "rgb.mp4", frames)
    bgr = np.ascontiguousarray(frames[..., ::-1])
    bgr0 = np.concatenate([bgr, np.full((*frames.shape[:3], 1), 77, np.uint8)], axis=-1)
    write(tmp_path / "bgr0.mp4", bgr0, pix_fmt="bgr0")  # the fourth byte is ignored
    reference = (tmp_path / "rgb.mp4").read_bytes()
    assert (tmp_path / "bgr0.mp4").read_bytes() == reference
    with (H264Writer(tmp_path / "v.mp4", W, H, FPS, pix_fmt="bgr0") as writer,
          pytest.raises(ValueError, match=r"shape \(64, 96, 4\) \(B, G, R, unused")):
        writer.write(frames[0])
