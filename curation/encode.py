"""Encode an episode's clips: one sequential decode of the source, one H.264 MP4 per clip.

The source video is decoded once, front to back (PyAV, threaded). Each frame some clip needs is
resized once to the dataset size (:func:`~curation.clips.resize_frame`) and handed to every open
clip encoder that contains it, so overlapping clips (stride < clip length) cost no extra decoding
or resizing. Each clip is encoded by its own ffmpeg process through the recorder's
:class:`~datagen.video.H264Writer` (libx264, yuv420p, CRF ``cfg.crf``, preset veryfast, two x264
threads, bitexact, constant frame rate = the segment's fps) into a temporary file whose bytes are
the clip. Encoders run beside the decoder, and a finished clip's encoder drains its last frames
on a helper thread while decoding goes on, so encoding overlaps decoding.

Why the ffmpeg binary and not PyAV's libx264 in this process: with several PyAV libx264
encoders in one process the bitstream changed from run to run, even with one x264 thread and
fully initialised input frames (line padding zeroed), at 64x36 to 320x180; byte-identical shards
are part of the contract. The ffmpeg binary is byte-identical across runs with two threads (one
process per clip keeps each encoder's state its own). Its price is a process start per clip
(a few tens of milliseconds, small next to encoding a clip) and RGB frames on a pipe.

Every clip has exactly ``plan.frames`` frames: frame ``k`` is source frame
``plan.source_frames[k]`` with presentation time ``k / fps``. A source that ends before a clip's
last frame raises :class:`~datagen.video.VideoError` naming the episode and the frame.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from curation.clips import ClipPlan, resize_frame
from curation.config import FilterConfig
from datagen.video import H264Writer, VideoError

PRESET = "veryfast"
THREADS = 2  # x264 threads per clip encoder: fixed, since the bytes depend on it


class _ClipEncoder:
    """One clip being encoded: takes frames in clip order; :meth:`finish` returns the MP4 bytes."""

    def __init__(self, plan: ClipPlan, cfg: FilterConfig, path: Path, threads: int) -> None:
        self.plan = plan
        self.sources = [int(f) for f in plan.source_frames]
        self.written = 0
        self.path = path
        self.writer = H264Writer(path, cfg.width, cfg.height, plan.segment.fps, crf=cfg.crf,
                                 preset=PRESET, threads=threads)

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


def encode_clips(video: Path, plans: Sequence[ClipPlan], cfg: FilterConfig,
                 threads: int = THREADS) -> Iterator[tuple[ClipPlan, bytes]]:
    """``(plan, mp4 bytes)`` for every plan, in plan order, each as soon as it is complete.

    All plans must come from segments of the one episode whose video is ``video``. Decoding
    stops after the last frame any plan needs. Raises VideoError when the source cannot be
    decoded, ends before a clip's last frame or a clip cannot be encoded, ValueError for plans
    of several episodes."""
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
    try:
        container = av.open(str(video))
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"{episode}: cannot open {video}: {exc}") from exc
    tmp = tempfile.TemporaryDirectory(prefix="curation-clips-")
    closer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clip-finish")
    try:
        if not container.streams.video:
            raise VideoError(f"{episode}: {video} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        while index < last_needed:
            try:
                frame = next(decoded, None)
            except av.FFmpegError as exc:
                raise VideoError(f"{episode}: decoding {video} failed at frame {index + 1}: "
                                 f"{exc}") from exc
            if frame is None:
                break
            index += 1
            while waiting and int(plans[waiting[-1]].source_frames[0]) == index:
                i = waiting.pop()
                active[i] = _ClipEncoder(plans[i], cfg, Path(tmp.name) / f"{i}.mp4", threads)
            users = [enc for enc in active.values() if enc.next_source == index]
            if not users:
                continue
            rgb = resize_frame(frame.to_ndarray(format="rgb24"), cfg.width, cfg.height,
                               cfg.resize)
            for enc in users:
                enc.write(rgb, index)
            for i in [i for i, enc in active.items() if enc.complete]:
                finishing[i] = closer.submit(active.pop(i).finish)
            while next_out in finishing and finishing[next_out].done():
                yield plans[next_out], finishing.pop(next_out).result()
                next_out += 1
        if active or waiting:
            i = min(set(active) | set(waiting))  # the first unfinished clip in plan order
            needed = active[i].next_source if i in active else int(plans[i].source_frames[0])
            raise VideoError(f"{episode}: {video} ended after {index + 1} frames, but clip "
                             f"{plans[i].key} needs source frame {needed}")
        while next_out in finishing:
            yield plans[next_out], finishing.pop(next_out).result()
            next_out += 1
    finally:
        container.close()
        for enc in active.values():
            enc.abort()
        closer.shutdown(wait=True)  # let started clips finish, so their files can be removed
        tmp.cleanup()
