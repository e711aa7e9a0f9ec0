"""H.264 video I/O: encode RGB frames through ffmpeg while rendering, probe and decode with PyAV.

Encoding pipes raw frames (``rgb24``; ``bgr0``, a 32-bit framebuffer's own layout; or
``yuv420p`` planes, which skip the colour conversion) to the ffmpeg binary shipped in the
``imageio-ffmpeg`` wheel (no download at run time). The output is libx264, yuv420p, constant
frame rate, with one x264 thread and bitexact flags (the same frames give the same bytes on
any machine), as a fragmented MP4 with a keyframe about every second, so a file cut short by a
crash still decodes up to its last complete fragment. ffmpeg runs as its own process, so
encoding overlaps rendering.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

STDERR_TAIL = 2000  # characters of ffmpeg's stderr quoted in a VideoError


# raw frame layouts H264Writer accepts on its pipe: per pixel format, the frame shape for a
# width x height video and what it holds
INPUT_PIX_FMTS = {
    "rgb24": (lambda w, h: (h, w, 3), "R, G, B; row 0 = top"),
    "bgr0": (lambda w, h: (h, w, 4), "B, G, R, unused; row 0 = top"),
    "yuv420p": (lambda w, h: (h * 3 // 2, w), "yuv420p planes Y, U, V"),
}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


class VideoError(RuntimeError):
    """ffmpeg failed (bad settings, disk full, process died) or a video cannot be decoded."""


def ffmpeg_command(
    path: Path, width: int, height: int, fps: float, crf: int, preset: str, threads: int,
    pix_fmt: str = "rgb24",
) -> list[str]:
    """The ffmpeg command line :class:`H264Writer` runs (raw ``pix_fmt`` frames on stdin, MP4 at
    ``path``)."""
    # imported here: a machine that only trains (a lent GPU) need not carry the bundled ffmpeg
    import imageio_ffmpeg

    rate = str(Fraction(fps).limit_denominator(1001))
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}", "-r", rate,
        "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-threads", str(threads), "-g", str(max(1, round(fps))), "-fps_mode", "cfr",
        "-flags", "+bitexact", "-fflags", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-flush_packets", "1",
        "-f", "mp4", str(path),
    ]


class H264Writer:
    """Encode uint8 RGB frames ``[H, W, 3]`` (row 0 = top) to an H.264 MP4 at ``path``.

    Other ``pix_fmt`` layouts (:data:`INPUT_PIX_FMTS`) save the caller a conversion: ``bgr0``
    (``[H, W, 4]``, a 32-bit framebuffer's layout) gives the same bytes as the same picture in
    RGB, at the same cost; with ``yuv420p`` each frame is its three planes stacked as uint8
    ``[H * 3 // 2, W]`` (Y, then U, then V; the layout of PyAV's
    ``to_ndarray(format="yuv420p")``), encoded without any colour conversion.

    Use as a context manager: a clean exit calls :meth:`close`, an exception :meth:`kill`.
    ``write`` blocks only while the pipe to ffmpeg is full (ffmpeg is behind); ffmpeg's stderr
    goes to an anonymous temporary file, so it can never fill a pipe and stall the encoder.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 1,
        pix_fmt: str = "rgb24",
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 2 or value % 2:
                raise ValueError(f"{name} must be an even integer >= 2 (yuv420p), got {value!r}")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps < 1000:
            raise ValueError(f"fps must be a positive number below 1000, got {fps!r}")
        if not isinstance(crf, int) or isinstance(crf, bool) or not 0 <= crf <= 51:
            raise ValueError(f"crf must be an integer in 0..51, got {crf!r}")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        if pix_fmt not in INPUT_PIX_FMTS:
            raise ValueError(f"pix_fmt must be one of {', '.join(INPUT_PIX_FMTS)}, "
                             f"got {pix_fmt!r}")
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.pix_fmt = pix_fmt
        self.frames = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close/kill)
        cmd = ffmpeg_command(self.path, width, height, fps, crf, preset, threads, pix_fmt)
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise VideoError(f"cannot start ffmpeg ({cmd[0]}): {exc}") from exc
        self._closed = False

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()

    def write(self, frame: np.ndarray) -> None:
        """Queue one frame for encoding; raises ValueError for a frame of the wrong shape/dtype."""
        if self._closed:
            raise VideoError(f"write to {self.path} after close() or kill()")
        shape, layout = INPUT_PIX_FMTS[self.pix_fmt]
        expected = shape(self.width, self.height)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = (f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray)
                   else type(frame).__name__)
            raise ValueError(f"frame must be a uint8 array of shape {expected} ({layout}), "
                             f"got {got}")
        if self._proc.poll() is not None:
            raise self._failure(f"ffmpeg exited early (code {self._proc.returncode})")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError) as exc:
            self._proc.wait()
            raise self._failure(f"ffmpeg stopped reading frames ({exc})") from exc
        self.frames += 1

    def close(self) -> int:
        """Finish the file; returns the number of frames written. Raises VideoError on failure."""
        if self._closed:
            return self.frames
        self._closed = True
        with contextlib.suppress(OSError):  # ffmpeg already gone: its exit code says why
            self._proc.stdin.close()
        code = self._proc.wait()
        if code != 0:
            raise self._failure(f"ffmpeg failed with exit code {code}")
        self._stderr.close()
        return self.frames

    def kill(self) -> None:
        """Abort: stop ffmpeg at once without finalising the file."""
        if self._closed:
            return
        self._closed = True
        self._proc.kill()
        self._proc.wait()
        with contextlib.suppress(OSError):  # the reader is dead; nothing left to flush
            self._proc.stdin.close()
        self._stderr.close()

    def _failure(self, what: str) -> VideoError:
        self._closed = True
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip()[-STDERR_TAIL:]
        self._stderr.close()
        return VideoError(f"{what} while writing {self.path}"
                          + (f"; ffmpeg said:\n{tail}" if tail else ""))


@dataclass
class VideoInfo:
    """What :func:`probe` learns about a video's first video stream."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int | None  # decoded frame count; None when probe(count=False)
    damage: str = ""  # why decoding stopped early (truncated or corrupt file); "" when intact


def _open(path: str | Path) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise VideoError(f"no such video file: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    return container


def decode_frames(path: str | Path, strict: bool = True) -> Iterator[av.VideoFrame]:
    """Every frame of ``path``'s first video stream, in order, as decoded (no conversion;
    threaded decoding).

    A truncated or corrupt file yields the frames before the damage, then raises VideoError;
    with ``strict=False`` it just stops there (salvaging a crashed recording on purpose).
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = 0
        try:
            for frame in container.decode(stream):
                yield frame
                frames += 1
        except av.FFmpegError as exc:
            if strict:
                raise VideoError(f"{path}: decoding stopped after {frames} frames: {exc}") from exc


def probe(path: str | Path, count: bool = True) -> VideoInfo:
    """Codec, pixel format, size and frame rate of ``path``; with ``count``, decodes every frame
    (without converting it) to count them. Frames after a corrupt or truncated tail are not
    counted: decoding stops at the first error."""
    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        info = VideoInfo(
            codec=ctx.name, pix_fmt=ctx.format.name if ctx.format else "", width=ctx.width,
            height=ctx.height, fps=float(rate) if rate else 0.0, frames=None)
    if count:
        info.frames = 0
        try:
            for _ in decode_frames(path):
                info.frames += 1
        except VideoError as exc:
            info.damage = str(exc).removeprefix(f"{path}: ")
    return info


def read_frames(path: str | Path, strict: bool = True) -> Iterator[np.ndarray]:
    """Decode ``path`` to uint8 RGB frames ``[H, W, 3]`` (row 0 = top), in order; damage is
    handled as in :func:`decode_frames`."""
    for frame in decode_frames(path, strict):
        yield frame.to_ndarray(format="rgb24")


# audio codecs an MP4 holds, copied along with the video by remux_to_mp4
MP4_AUDIO_CODECS = ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac")


def remux_to_mp4(src: str | Path, dst: str | Path, faststart: bool = True,
                 fps: Fraction | None = None, keep_audio: bool = True,
                 start: float = 0.0) -> int:
    """Copy ``src``'s first H.264 video stream (and its MP4-compatible audio streams) into an
    MP4 at ``dst`` without re-encoding: every packet, with its bytes and timestamps, in order
    (OBS records MKV by default). ``dst`` appears only when complete (written under a temporary
    name in the same folder, then renamed); ``faststart`` puts the index at the front. Returns
    the number of video packets copied; raises VideoError when ``src`` has no H.264 video.

    ``fps`` (a constant-frame-rate source's rate) puts the video's timestamps on that rate's
    grid, one tick per frame: MKV keeps milliseconds, so 30 fps becomes 33/34 ms steps that
    read back as 30.003 fps; rounded to frames they are exactly 1/fps apart again.
    ``keep_audio=False`` leaves the audio streams out (an episode's video has none).
    ``start`` (seconds) begins the copy at the first key frame shown at or after it, with
    timestamps shifted to start at 0 (H.264 can be cut without re-encoding only there); a
    source with no such key frame gives an empty copy (0 video packets)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    with _open(src) as container:
        video = [s for s in container.streams.video if s.codec_context.name == "h264"]
        if not video:
            found = ", ".join(s.codec_context.name for s in container.streams.video)
            raise VideoError(f"{src} has no H.264 video stream to remux (video: {found})")
        audio = [s for s in container.streams.audio
                 if keep_audio and s.codec_context.name in MP4_AUDIO_CODECS]
        packets = 0
        try:
            options = {"movflags": "+faststart"} if faststart else {}
            with av.open(str(tmp), "w", format="mp4", options=options) as out:
                copies = {s.index: out.add_stream_from_template(s) for s in (video[0], *audio)}

                if fps is not None:
                    copies[video[0].index].time_base = 1 / Fraction(fps)

                shift: Fraction | None = Fraction(0) if start <= 0 else None  # seconds

                def mux(packet: av.Packet) -> None:
                    nonlocal packets, shift
                    is_video = packet.stream.index == video[0].index
                    tb = packet.time_base
                    if shift is None:  # still before the key frame the copy starts at
                        if not (is_video and packet.is_keyframe
                                and packet.pts * tb >= Fraction(start) - Fraction(1, 10000)):
                            return
                        shift = packet.dts * tb
                    elif not is_video and packet.pts * tb < shift:
                        return
                    if shift:
                        packet.pts -= round(shift / tb)
                        packet.dts -= round(shift / tb)
                    packets += is_video
                    if is_video and fps is not None:  # seconds * fps = frame ticks
                        scale = packet.time_base * Fraction(fps)
                        packet.pts = round(packet.pts * scale)
                        packet.dts = round(packet.dts * scale)
                        packet.duration = 1
                        packet.time_base = 1 / Fraction(fps)
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)

                # MKV stores presentation times only: with B-frames the demuxer infers decode
                # times a few frames late and leaves the first ones unset, which MP4 needs;
                # they are filled in one frame duration apart, ending before the first known
                pending: list[av.Packet] = []
                last_dts = None
                for packet in container.demux([video[0], *audio]):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    if packet.stream.index != video[0].index:
                        mux(packet)
                        continue
                    if packet.dts is None:
                        if last_dts is None:
                            pending.append(packet)
                            continue
                        packet.dts = last_dts + (packet.duration or 1)
                    for k, early in enumerate(pending):
                        early.dts = packet.dts - (len(pending) - k) * (early.duration or 1)
                        mux(early)
                    pending.clear()
                    last_dts = packet.dts
                    mux(packet)
                for k, early in enumerate(pending):  # no decode time known at all
                    early.dts = min(p.pts for p in pending) - (len(pending) - 1 - k)
                    mux(early)
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return packets
