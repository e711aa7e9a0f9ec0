"""Clips: cut segments into fixed-length clips, and map frames and intrinsics to the dataset size.

A clip is ``cfg.clip_frames`` consecutive frames of a :class:`Segment`; clips start every
``cfg.clip_stride`` frames and only whole clips are kept (a tail shorter than a clip is dropped).

Resize policy (``cfg.resize``), in the contract's pixel convention (pixel ``i`` covers
``[i, i+1)``, so a source point at ``u`` lands at ``u * sx + ox`` in the clip):

- ``"crop"``: scale to cover the dataset size, keeping the aspect ratio, then centre-crop; the
  whole clip shows picture, the longer side loses its margins.
- ``"pad"``: scale to fit inside the dataset size, then centre on black bars; nothing is lost.

The scaled size is rounded to whole pixels, so ``sx`` and ``sy`` may differ very slightly;
:func:`intrinsics_after_resize` uses the exact values, so the clip's ``fx, fy, cx, cy`` match
what :func:`resize_frame` produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curation.config import FilterConfig
from curation.segments import Segment

POLICIES = ("crop", "pad")


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """Frames ``[start, start + frames)`` of ``segment`` (indices into the segment, not the
    source). Compared by identity: a plan shares its segment's arrays."""

    segment: Segment
    start: int
    frames: int

    def __post_init__(self) -> None:
        n = len(self.segment)
        if self.frames < 1 or self.start < 0 or self.start + self.frames > n:
            raise ValueError(f"{self.segment.episode}: clip [{self.start}, "
                             f"{self.start + self.frames}) does not fit in a segment of {n} frames")

    @property
    def source_frames(self) -> np.ndarray:
        """int64 ``[frames]``: the source frame shown at each clip frame."""
        return self.segment.source_frames[self.start:self.start + self.frames]

    @property
    def key(self) -> str:
        """The sample key ``<episode>_<first source frame:06d>`` (no dots, per the contract)."""
        return f"{self.segment.episode}_{int(self.source_frames[0]):06d}"


def cut_clips(segment: Segment, cfg: FilterConfig) -> list[ClipPlan]:
    """Every whole clip of ``cfg.clip_frames`` frames, one every ``cfg.clip_stride`` frames.

    A clip is named by its first source frame; an upsampled segment shows some source frames
    twice, so a clip that would start on the same source frame as the one before it (and show
    nearly the same frames) is left out, keeping keys unique."""
    problems = segment.problems()
    if problems:
        raise ValueError(f"{segment.episode}: inconsistent segment: {'; '.join(problems)}")
    last_start = len(segment) - cfg.clip_frames
    plans: list[ClipPlan] = []
    for start in range(0, last_start + 1, cfg.clip_stride):
        if plans and segment.source_frames[start] == plans[-1].source_frames[0]:
            continue
        plans.append(ClipPlan(segment, start, cfg.clip_frames))
    return plans


@dataclass(frozen=True)
class ResizeGeometry:
    """How a ``src_w x src_h`` frame becomes ``dst_w x dst_h``: scale to ``scaled_w x scaled_h``,
    then place its top-left corner at ``(ox, oy)`` of the output (negative when cropping)."""

    scaled_w: int
    scaled_h: int
    ox: int
    oy: int


def _round_div(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)  # round half up, in integers (no float ties)


def resize_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int, policy: str) -> ResizeGeometry:
    """The scaled size and placement of the ``crop`` or ``pad`` policy (see the module doc)."""
    for name, value in (("src_w", src_w), ("src_h", src_h), ("dst_w", dst_w), ("dst_h", dst_h)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if policy not in POLICIES:
        raise ValueError(f"resize policy must be one of {POLICIES}, got {policy!r}")
    wider = dst_w * src_h >= dst_h * src_w  # the output is at least as wide (aspect) as the source
    if wider == (policy == "crop"):  # width binds: scale by dst_w / src_w
        scaled_w, scaled_h = dst_w, max(1, _round_div(src_h * dst_w, src_w))
    else:  # height binds: scale by dst_h / src_h
        scaled_w, scaled_h = max(1, _round_div(src_w * dst_h, src_h)), dst_h
    return ResizeGeometry(scaled_w, scaled_h, (dst_w - scaled_w) // 2, (dst_h - scaled_h) // 2)


def resize_frame(frame: np.ndarray, width: int, height: int, policy: str) -> np.ndarray:
    """``frame`` (uint8 ``[H, W, C]``) at ``width x height`` by the ``crop`` or ``pad`` policy.

    OpenCV ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging; a frame already at
    the size is returned as is."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        got = (f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray)
               else type(frame).__name__)
        raise ValueError(f"frame must be a uint8 array [H, W, C], got {got}")
    src_h, src_w = frame.shape[:2]
    if (src_w, src_h) == (width, height):
        return frame
    g = resize_geometry(src_w, src_h, width, height, policy)
    scaled = frame
    if (g.scaled_w, g.scaled_h) != (src_w, src_h):
        shrinking = g.scaled_w <= src_w and g.scaled_h <= src_h
        scaled = cv2.resize(frame, (g.scaled_w, g.scaled_h),
                            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        scaled = scaled.reshape(g.scaled_h, g.scaled_w, -1)  # cv2 drops a single channel axis
    if policy == "crop":
        return np.ascontiguousarray(scaled[-g.oy:-g.oy + height, -g.ox:-g.ox + width])
    out = np.zeros((height, width, frame.shape[2]), dtype=np.uint8)
    out[g.oy:g.oy + g.scaled_h, g.ox:g.ox + g.scaled_w] = scaled
    return out


def intrinsics_after_resize(fov: float, src_w: int, src_h: int, dst_w: int, dst_h: int,
                            policy: str) -> dict[str, float]:
    """Pinhole ``fx, fy, cx, cy`` (pixels) of a clip resized from a ``src_w x src_h`` source
    whose horizontal field of view is ``fov`` degrees (contract: ``fx = fy = (w/2) / tan(fov/2)``,
    ``cx = w/2``, ``cy = h/2`` at the source), after :func:`resize_frame` with ``policy``."""
    if not 0 < fov < 180:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov!r}")
    g = resize_geometry(src_w, src_h, dst_w, dst_h, policy)
    f = (src_w / 2) / np.tan(np.radians(fov) / 2)
    sx, sy = g.scaled_w / src_w, g.scaled_h / src_h
    return {"fx": float(f * sx), "fy": float(f * sy),
            "cx": float(src_w / 2 * sx + g.ox), "cy": float(src_h / 2 * sy + g.oy)}
