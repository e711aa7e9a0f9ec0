"""Grey thumbnails of every frame of a video, for the redundant-frame detector.

One sequential PyAV decode; libswscale converts each frame to 8-bit grey (the luma plane) and
scales it to ``width x height`` in C with area averaging, which also smooths H.264 noise. A file
that cannot be opened or stops decoding early raises :class:`datagen.video.VideoError`.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from datagen.video import VideoError


def thumbnails(video: Path, width: int = 160, height: int = 90) -> np.ndarray:
    """uint8 ``[N, height, width]`` grey thumbnails, one per decoded frame, in order."""
    if width < 1 or height < 1:
        raise ValueError(f"thumbnail size must be positive, got {width}x{height}")
    if not Path(video).is_file():
        raise VideoError(f"no such video file: {video}")
    try:
        container = av.open(str(video))
    except av.FFmpegError as exc:
        raise VideoError(f"cannot open video {video}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoError(f"{video} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        thumbs: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                thumbs.append(frame.to_ndarray(width=width, height=height, format="gray",
                                               interpolation="AREA"))
        except av.FFmpegError as exc:
            raise VideoError(f"{video}: decoding stopped after {len(thumbs)} frames: "
                             f"{exc}") from exc
    if not thumbs:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack(thumbs)
