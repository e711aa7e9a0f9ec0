"""Encode an episode's clips: one sequential pass over the source, one H.264 MP4 per clip.

The frames come from one sequential decode of the source (PyAV, threaded), or from the episode's
frames already decoded in memory (the pipeline keeps them when it decodes once for the
thumbnails and the clips); both give the same bytes. Each frame some clip needs is converted once
and handed to every open clip encoder that contains it, so overlapping clips (stride < clip
length) cost no extra decoding or converting. When the source is already at the dataset size
its yuv420p planes go to the encoder as they are (no colour conversion); otherwise the frame is
converted to RGB and resized (:func:`~curation.clips.resize_frame`). Each clip is encoded by its
own ffmpeg process through the recorder's :class:`~datagen.video.H264Writer` (libx264, yuv420p,
CRF ``cfg.crf``, preset veryfast, two x264 threads, bitexact, constant frame rate = the
segment's fps) into a temporary file whose bytes are the clip. Encoders run beside the decoder,
and a finished clip's encoder drains its last frames on a helper thread while decoding goes on,
so encoding overlaps decoding.

Why the ffmpeg binary and not PyAV's libx264 in this process: with several PyAV libx264
encoders in one process the bitstream changed from run to run, even with one x264 thread and
fully initialised input frames (line padding zeroed), at 64x36 to 320x180; byte-identical shards
are part of the contract. The ffmpeg binary with ONE x264 thread is byte-identical across runs
(one process per clip keeps each encoder's state its own); with two threads, 40 encodes of the
same 57 frames, four at a time, gave four different outputs, so clips use one thread and get
their parallelism from overlapping with the decode and from ``--workers``. Its price is a
process start per clip (a few tens of milliseconds, small next to encoding a clip) and raw
frames on a pipe.

Every clip has exactly ``plan.frames`` frames: frame ``k`` is source frame
``plan.source_frames[k]`` with presentation time ``k / fps``. A source that ends before a clip's
last frame raises :class:`~datagen.video.VideoError` naming the episode and the frame.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from curation.clips import ClipPlan, resize_frame
from curation.config import FilterConfig
from datagen.video import H264Writer, VideoError, decode_frames

PRESET = "veryfast"
THREADS = 1  # x264 threads per clip encoder: one, the only count seen to give the same bytes


class _ClipEncoder:
    """One clip being encoded: takes frames in clip order; :meth:`finish` returns the MP4 bytes."""

    def __init__(self, plan: ClipPlan, cfg: FilterConfig, path: Path, threads: int,
                 pix_fmt: str) -> None:
        self.plan = plan
        self.sources = [int(f) for f in plan.source_frames]
        self.written = 0
        self.path = path
        self.writer = H264Writer(path, cfg.width, cfg.height, plan.segment.fps, crf=cfg.crf,
                                 preset=PRESET, threads=threads, pix_fmt=pix_fmt)

    @property
    def next_source(self) -> int:
        return self.sources[self.written]

    @property
    def complete(self) -> bool:
        return self.written == len(self.sources)

    def write(self, frame: np.ndarray, source: int) -> None:
        """Encode ``frame`` at every clip position showing source frame ``source``."""
        while not self.complete and self.sources[self.written] == source:
            self.writer.write(frame)
            self.written += 1

    def finish(self) -> bytes:
        """Wait for ffmpeg to finish the file; its bytes (the file is then removed)."""
        try:
            self.writer.close()
            return self.path.read_bytes()
        finally:
            self.path.unlink(missing_ok=True)

    def abort(self) -> None:
        self.writer.kill()
        self.path.unlink(missing_ok=True)


def _decode(video: Path, episode: str) -> Iterator[av.VideoFrame]:
    """The frames of ``video`` in order; errors name the episode."""
    try:
        yield from decode_frames(video)
    except VideoError as exc:
        raise VideoError(f"{episode}: {exc}") from exc


def _converter(frame: av.VideoFrame,
               cfg: FilterConfig) -> tuple[str, Callable[[av.VideoFrame], np.ndarray]]:
    """The encoder input format for a source of ``frame``'s size, and the frame -> array map:
    yuv420p planes as they are at the dataset size, RGB resized to it otherwise. One reformatter
    serves every frame (a frame's own would stay cached on frames kept in memory)."""
    size = (frame.width, frame.height)
    reformatter = VideoReformatter()
    if size == (cfg.width, cfg.height):
        def planes(f: av.VideoFrame) -> np.ndarray:
            if (f.width, f.height) != size:
                raise VideoError(f"frame size changed from {size[0]}x{size[1]} to "
                                 f"{f.width}x{f.height} within the video")
            return reformatter.reformat(f, format="yuv420p").to_ndarray()
        return "yuv420p", planes
    return "rgb24", lambda f: resize_frame(reformatter.reformat(f, format="rgb24").to_ndarray(),
                                           cfg.width, cfg.height, cfg.resize)


def encode_clips(video: Path, plans: Sequence[ClipPlan], cfg: FilterConfig,
                 threads: int = THREADS, frames: Sequence[av.VideoFrame] | None = None,
                 scratch: Path | None = None) -> Iterator[tuple[ClipPlan, bytes]]:
    """``(plan, mp4 bytes)`` for every plan, in plan order, each as soon as it is complete.

    All plans must come from segments of the one episode whose video is ``video``. ``frames``:
    that video's frames already decoded, in order (then ``video`` is not read, only named in
    errors); by default it is decoded, and decoding stops after the last frame any plan needs.
    Raises VideoError when the source cannot be decoded, ends before a clip's last frame or a
    clip cannot be encoded, ValueError for plans of several episodes. Clips are encoded to files
    in a temporary folder under ``scratch`` (default: the system's), removed when done."""
    if not plans:
        return
    episodes = sorted({p.segment.episode for p in plans})
    if len(episodes) > 1:
        raise ValueError(f"encode_clips takes the clips of one episode, got {episodes}")
    episode = episodes[0]
    order = sorted(range(len(plans)), key=lambda i: int(plans[i].source_frames[0]))
    waiting = order[::-1]  # plan indices not yet opened, the next to open last
    last_needed = max(int(p.source_frames[-1]) for p in plans)
    active: dict[int, _ClipEncoder] = {}
    finishing: dict[int, Future[bytes]] = {}
    next_out = 0
    index = -1
    source = iter(frames) if frames is not None else _decode(video, episode)
    pix_fmt, convert = "", None
    tmp = tempfile.TemporaryDirectory(prefix="curation-clips-", dir=scratch)
    closer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clip-finish")
    try:
        while index < last_needed:
            frame = next(source, None)
            if frame is None:
                break
            index += 1
            if convert is None:
                pix_fmt, convert = _converter(frame, cfg)
            while waiting and int(plans[waiting[-1]].source_frames[0]) == index:
                i = waiting.pop()
                active[i] = _ClipEncoder(plans[i], cfg, Path(tmp.name) / f"{i}.mp4", threads,
                                         pix_fmt)
            users = [enc for enc in active.values() if enc.next_source == index]
            if not users:
                continue
            try:
                image = convert(frame)
            except VideoError as exc:
                raise VideoError(f"{episode}: {video} frame {index}: {exc}") from exc
            for enc in users:
                enc.write(image, index)
            for i in [i for i, enc in active.items() if enc.complete]:
                finishing[i] = closer.submit(active.pop(i).finish)
            while next_out in finishing and finishing[next_out].done():
                yield plans[next_out], finishing.pop(next_out).result()
                next_out += 1
        if active or waiting:
            i = min(set(active) | set(waiting))  # the first unfinished clip in plan order
            # the complete clips before it come out first, however slowly their files finish
            while next_out < i:
                yield plans[next_out], finishing.pop(next_out).result()
                next_out += 1
            needed = active[i].next_source if i in active else int(plans[i].source_frames[0])
            raise VideoError(f"{episode}: {video} ended after {index + 1} frames, but clip "
                             f"{plans[i].key} needs source frame {needed}")
        while next_out in finishing:
            yield plans[next_out], finishing.pop(next_out).result()
            next_out += 1
    finally:
        if frames is None:
            source.close()  # closes the decoder's file
        for enc in active.values():
            enc.abort()
        closer.shutdown(wait=True)  # let started clips finish, so their files can be removed
        tmp.cleanup()
