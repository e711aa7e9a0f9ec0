"""``curation preview``: a clip or an episode re-encoded with its inputs drawn over the video.

Each frame gets three translucent panels (OpenCV): top left, the frame number, time and agent
speed; bottom left, a key pad (W A S D, Shift, Ctrl, Space; held keys filled); bottom right, an
arrow along ``(mouse_dx, -mouse_dy)`` (right = turn right, up = look up), full length at
MOUSE_FULL_SCALE_DEG degrees per frame. Nothing outside the panels changes, so a person can
check by eye that the inputs of frame ``i`` are the ones that moved the picture into frame ``i``.
Small videos are scaled up by a whole factor to at least MIN_HEIGHT rows so the text is legible.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curation.report import speeds, tar_samples
from datagen.episode import ACTIONS_FILE, KEY_COLUMNS, KEYS, VIDEO_FILE, read_episode
from datagen.video import H264Writer, read_frames

MIN_HEIGHT = 360  # smaller videos are scaled up by a whole factor to at least this height
MOUSE_FULL_SCALE_DEG = 8.0  # mouse delta (degrees per frame) drawn at the full arrow length
PAD = (  # key, label, column, row, width: in half-key columns and key rows of the key pad
    ("w", "W", 2, 0, 2), ("a", "A", 0, 1, 2), ("s", "S", 2, 1, 2), ("d", "D", 4, 1, 2),
    ("shift", "Shift", 0, 2, 3), ("ctrl", "Ctrl", 3, 2, 3), ("space", "Space", 0, 3, 6))
PANEL_BG, PANEL_ALPHA = np.array([20, 24, 30], np.float32), 0.62
HELD, IDLE, TEXT, DARK = (255, 170, 40), (80, 90, 105), (235, 240, 245), (20, 24, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels


class PreviewError(ValueError):
    """The source cannot be previewed (missing file, unknown clip key, labels not matching)."""


@dataclass
class Track:
    """What is drawn on each frame of the source, one entry per frame."""

    keys: np.ndarray  # uint8 [T, 7], in the order of KEYS
    mouse: np.ndarray  # float [T, 2]: mouse_dx, mouse_dy in degrees
    speed: np.ndarray  # float [T], m/s
    frame_text: list[str]  # "frame 12/90" or "clip frame 3/57 (source 125)"
    fps: float


@dataclass(frozen=True)
class Layout:
    """Where the overlay goes on a ``width`` x ``height`` frame: the only pixels it changes."""

    width: int
    height: int
    info: Rect
    pad: Rect
    mouse: Rect
    cells: dict[str, Rect]  # key name (KEYS) -> its cell in the key pad

    @property
    def panels(self) -> tuple[Rect, Rect, Rect]:
        return self.info, self.pad, self.mouse

    @property
    def scale(self) -> float:
        return self.height / 360


def layout(width: int, height: int) -> Layout:
    """The overlay layout of a frame of this size (scaled with the height)."""
    s = height / 360
    margin, inset, half, key_h, gap = (round(v * s) for v in (10, 8, 20, 30, 4))
    pad_w = 6 * half - gap + 2 * inset
    pad_h = 4 * key_h + 3 * gap + 2 * inset
    pad = (margin, height - margin - pad_h, margin + pad_w, height - margin)
    cells = {}
    for key, _, col, row, span in PAD:
        x0 = pad[0] + inset + col * half
        y0 = pad[1] + inset + row * (key_h + gap)
        cells[key] = (x0, y0, x0 + span * half - gap, y0 + key_h)
    side = pad_h
    mouse = (width - margin - side, height - margin - side, width - margin, height - margin)
    info = (margin, margin, margin + round(250 * s), margin + round(74 * s))
    return Layout(width, height, info, pad, mouse, cells)


def draw_overlay(frame: np.ndarray, lay: Layout, keys: np.ndarray, mouse_dx: float,
                 mouse_dy: float, lines: list[str]) -> np.ndarray:
    """A copy of the RGB ``frame`` with the panels drawn: ``keys`` (7 flags in the order of
    KEYS) on the key pad, the mouse arrow, and up to three text ``lines`` in the info panel."""
    if frame.shape != (lay.height, lay.width, 3):
        raise ValueError(f"frame has shape {frame.shape}, layout is for "
                         f"{lay.height}x{lay.width}x3")
    out = frame.copy()
    for x0, y0, x1, y1 in lay.panels:
        roi = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = (roi * (1 - PANEL_ALPHA) + PANEL_BG * PANEL_ALPHA).astype(np.uint8)
    s = lay.scale
    thick = max(1, round(1.5 * s))
    font = 0.5 * s
    x0, y0, _, _ = lay.info
    for i, line in enumerate(lines[:3]):
        cv2.putText(out, line, (x0 + round(8 * s), y0 + round((20 + 22 * i) * s)), FONT, font,
                    TEXT, thick, cv2.LINE_AA)
    for (key, label, *_), held in zip(PAD, (keys[KEYS.index(k)] for k, *_ in PAD), strict=True):
        cx0, cy0, cx1, cy1 = lay.cells[key]
        if held:
            cv2.rectangle(out, (cx0, cy0), (cx1 - 1, cy1 - 1), HELD, cv2.FILLED)
        cv2.rectangle(out, (cx0, cy0), (cx1 - 1, cy1 - 1), HELD if held else IDLE, thick)
        (tw, th), _ = cv2.getTextSize(label, FONT, font, thick)
        cv2.putText(out, label, ((cx0 + cx1 - tw) // 2, (cy0 + cy1 + th) // 2), FONT, font,
                    DARK if held else TEXT, thick, cv2.LINE_AA)
    mx0, my0, mx1, my1 = lay.mouse
    centre = ((mx0 + mx1) // 2, (my0 + my1) // 2 - round(8 * s))
    radius = (mx1 - mx0) // 2 - round(20 * s)
    cv2.circle(out, centre, radius, IDLE, thick, cv2.LINE_AA)
    cv2.drawMarker(out, centre, IDLE, cv2.MARKER_CROSS, round(8 * s), thick)
    vx, vy = mouse_dx, -mouse_dy
    length = math.hypot(vx, vy)
    if length > 0:
        scale = min(length / MOUSE_FULL_SCALE_DEG, 1.0) * radius / length
        tip = (round(centre[0] + vx * scale), round(centre[1] + vy * scale))
        if tip != centre:
            cv2.arrowedLine(out, centre, tip, HELD, thick + 1, cv2.LINE_AA, tipLength=0.3)
    text = f"dx {mouse_dx:+.1f} dy {mouse_dy:+.1f}"
    (tw, _), _ = cv2.getTextSize(text, FONT, 0.4 * s, max(1, thick - 1))
    cv2.putText(out, text, ((mx0 + mx1 - tw) // 2, my1 - round(8 * s)), FONT, 0.4 * s, TEXT,
                max(1, thick - 1), cv2.LINE_AA)
    return out


def preview(source: Path, out: Path, key: str | None = None,
            min_height: int = MIN_HEIGHT) -> Path:
    """Render ``source`` (an episode folder, or a shard tar with the clip ``key``, the first clip
    if None) with its inputs drawn over it to the H.264 MP4 ``out``, at the source frame rate and
    with one output frame per source frame. Returns ``out``."""
    source, out = Path(source), Path(out)
    with tempfile.TemporaryDirectory(prefix="preview-") as scratch:
        if source.is_dir():
            video, track = _episode(source)
        elif source.is_file() and tarfile.is_tarfile(source):
            video, track = _clip(source, key, Path(scratch) / "clip.mp4")
        else:
            raise PreviewError(f"{source} is neither an episode folder nor a shard tar")
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.mp4")
        try:
            _render(video, track, tmp, min_height)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def _render(video: Path, track: Track, out: Path, min_height: int) -> None:
    frames = read_frames(video)
    first = next(frames, None)
    if first is None:
        raise PreviewError(f"{video} has no frames")
    h, w = first.shape[:2]
    factor = max(1, math.ceil(min_height / h))
    lay = layout(w * factor, h * factor)
    n = len(track.keys)
    count = 0
    with H264Writer(out, lay.width, lay.height, track.fps, crf=20) as writer:
        for i, image in enumerate(_chain(first, frames)):
            if i >= n:
                raise PreviewError(f"{video} has more frames than its {n} label rows")
            if factor > 1:
                image = cv2.resize(image, (lay.width, lay.height), interpolation=cv2.INTER_CUBIC)
            lines = [track.frame_text[i], f"t {i / track.fps:.2f} s",
                     f"speed {track.speed[i]:.2f} m/s"]
            writer.write(draw_overlay(image, lay, track.keys[i], *track.mouse[i], lines))
            count += 1
    if count != n:
        raise PreviewError(f"{video} decodes {count} frames but has {n} label rows")


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _episode(folder: Path) -> tuple[Path, Track]:
    if not (folder / VIDEO_FILE).is_file() or not (folder / ACTIONS_FILE).is_file():
        raise PreviewError(f"{folder} is not an episode folder (needs {VIDEO_FILE} and "
                           f"{ACTIONS_FILE})")
    ep = read_episode(folder)
    d = ep.data
    n = len(d["frame"])
    track = Track(
        keys=np.stack([d[c] for c in KEY_COLUMNS], axis=1).astype(np.uint8),
        mouse=np.stack([d["mouse_dx"], d["mouse_dy"]], axis=1),
        speed=np.sqrt(d["vel_x"] ** 2 + d["vel_y"] ** 2 + d["vel_z"] ** 2),
        frame_text=[f"frame {int(f)}/{n}" for f in d["frame"]], fps=float(ep.meta.fps))
    return folder / VIDEO_FILE, track


def _clip(tar: Path, key: str | None, scratch: Path) -> tuple[Path, Track]:
    sample = next(((n, m) for n, m in tar_samples(tar) if key is None or n == key), None)
    if sample is None:
        names = [n for n, _ in tar_samples(tar)]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise PreviewError(f"{tar} has no clip {key!r}" + (f" (it holds {shown})" if names
                                                            else " (it holds no clips)"))
    name, members = sample
    missing = [m for m in ("mp4", "keys.npy", "mouse.npy", "pose.npy", "json")
               if m not in members]
    if missing:
        raise PreviewError(f"{tar} clip {name} has no {', '.join(missing)} member")
    keys, mouse, pose = (np.load(io.BytesIO(members[m]), allow_pickle=False)
                         for m in ("keys.npy", "mouse.npy", "pose.npy"))
    meta = json.loads(members["json"])
    fps = float(meta["fps"])
    sources = meta.get("source_frames") or list(range(len(keys)))
    scratch.write_bytes(members["mp4"])
    track = Track(keys=keys.astype(np.uint8), mouse=mouse.astype(np.float64),
                  speed=speeds(pose[:, :3], fps),
                  frame_text=[f"frame {k}/{len(keys)} (source {f})" for k, f in
                              enumerate(sources)], fps=fps)
    return scratch, track
