"""Grey thumbnails of every frame of a video, for the redundant-frame detector.

One sequential PyAV decode (:func:`datagen.video.decode_frames`, which the pipeline also uses
to keep an episode's frames in memory); libswscale converts each frame to 8-bit grey (the luma
plane) and scales it to ``width x height`` in C with area averaging, which also smooths H.264
noise. The thumbnails of a file and of its frames already decoded are the same bytes. A file
that cannot be opened or stops decoding early raises :class:`datagen.video.VideoError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from datagen.video import decode_frames


def thumbnails_of(frames: Iterable[av.VideoFrame], width: int = 160,
                  height: int = 90) -> np.ndarray:
    """uint8 ``[N, height, width]`` grey thumbnails of decoded ``frames``, in order."""
    if width < 1 or height < 1:
        raise ValueError(f"thumbnail size must be positive, got {width}x{height}")
    # One reformatter for all frames: ``frame.to_ndarray(width=...)`` would cache a libswscale
    # context on every frame, six times slower and ~450 KB per frame kept in memory.
    scaler = VideoReformatter()
    thumbs = [scaler.reformat(frame, width, height, "gray", interpolation="AREA").to_ndarray()
              for frame in frames]
    if not thumbs:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack(thumbs)


def thumbnails(video: Path, width: int = 160, height: int = 90) -> np.ndarray:
    """uint8 ``[N, height, width]`` grey thumbnails, one per decoded frame of ``video``."""
    if width < 1 or height < 1:  # before opening the file
        raise ValueError(f"thumbnail size must be positive, got {width}x{height}")
    return thumbnails_of(decode_frames(video), width, height)
