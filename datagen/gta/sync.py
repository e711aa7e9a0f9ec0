"""Synchronisation: which game frame each video frame shows, and the episode rows that follow.

The plugin stamps every frame message with the wall-clock time at which the game had just
presented that frame (``wall_ms``); OBS's recording starts at a wall-clock time the session
measured (the ``STARTED`` event, refined by ``GetRecordStatus`` polls of ``outputDuration``), and
the video's frames carry their own timestamps. So video frame *k* was captured at
``start + pts[k] + offset`` and shows the newest game frame presented by then.

The wall clock alone leaves the capture's phase open by up to one capture interval (OBS's first
frame comes at its next video tick after it reports STARTED). So the session asks the plugin to
draw a **marker** for half a second once OBS records (:data:`MARKER_CELLS`: four magenta or
green cells over the screen's top-left quarter, a code that changes every game frame): each
video frame showing it names the game frame it shows, and together they pin the capture
latency down to the game's frame-time jitter (:func:`marker_offset`). Episodes start after it.

Capture and game rates need not match:

- a video frame that shows the same game frame as the one before (capture faster than the game,
  or a game hitch) is a **duplicate**: the camera did not move (mouse 0) and the keys are still
  held (the row repeats them);
- a video frame that skips game frames (capture slower) **accumulates** them: the mouse deltas
  follow from the camera poses, so they sum exactly, and a key counts as held if it was held on
  any of the game frames the video frame covers.

Where the game's frames are not all known (a ``seq`` or frame-counter gap: messages dropped,
the collector down, a loading screen), or the newest known game frame is too old for a video
frame (the plugin stopped, the game paused), the video frame has no row: the recording is cut
there into separate segments, and each long enough one becomes an episode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from datagen.episode import KEYS
from datagen.gta.pose import contract_angles, contract_quat, horizontal_fov
from datagen.rotation import wrap_deg
from datagen.video import decode_frames

# actions.csv columns the GTA recorder appends after the contract's
EXTRA_COLUMNS = ("game_frame", "game_ms", "ticks", "in_vehicle", "speed", "throttle", "brake",
                 "steering")


class SyncError(ValueError):
    """The session's data cannot be aligned at all (no samples, no video frames)."""


@dataclass
class Samples:
    """The plugin's frame messages as columns, sorted by ``wall_ms``, duplicates removed."""

    seq: np.ndarray  # int64 [N]
    frame: np.ndarray  # int64 [N], the game's frame counter
    game_ms: np.ndarray  # int64 [N]
    wall_ms: np.ndarray  # float64 [N]
    cam_pos: np.ndarray  # float64 [N, 3]
    cam_rot: np.ndarray  # float64 [N, 3], GTA degrees
    fov: np.ndarray  # float64 [N], GTA (vertical) degrees
    vel: np.ndarray  # float64 [N, 3]
    speed: np.ndarray  # float64 [N]
    vehicle: np.ndarray  # float64 [N, 4]: in_vehicle, throttle, brake, steering
    keys: np.ndarray  # uint8 [N, 7] in KEYS order
    mark: np.ndarray  # int64 [N]: the marker code the frame showed (0: none)

    def __len__(self) -> int:
        return len(self.seq)

    def follows(self) -> np.ndarray:
        """bool [N]: sample i is the game frame right after sample i-1 (nothing missing)."""
        ok = np.zeros(len(self), dtype=bool)
        ok[1:] = (np.diff(self.seq) == 1) & (np.diff(self.frame) == 1)
        return ok


def load_samples(path: str | Path) -> tuple[Samples, list[str]]:
    """Read ``samples.jsonl``; returns the samples and what was skipped (a line cut by a crash,
    a repeated message)."""
    skipped, records = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                skipped.append(f"line {n}: not JSON (cut by a crash?)")
    records.sort(key=lambda r: (r["wall_ms"], r["seq"]))
    unique, seen = [], set()
    for r in records:
        ident = (r["seq"], r["frame"], r["wall_ms"])
        if ident in seen:
            skipped.append(f"seq {r['seq']}: received twice")
            continue
        seen.add(ident)
        unique.append(r)
    if not unique:
        raise SyncError(f"{path} holds no frame messages")

    def col(get, dtype) -> np.ndarray:
        return np.array([get(r) for r in unique], dtype=dtype)

    def vehicle(r: dict) -> list[float]:
        v = r.get("vehicle")
        return [0.0, 0.0, 0.0, 0.0] if v is None else [1.0, v["throttle"], v["brake"],
                                                       v["steering"]]

    return Samples(
        seq=col(lambda r: r["seq"], np.int64), frame=col(lambda r: r["frame"], np.int64),
        game_ms=col(lambda r: r["game_ms"], np.int64),
        wall_ms=col(lambda r: r["wall_ms"], np.float64),
        cam_pos=col(lambda r: r["cam"]["pos"], np.float64),
        cam_rot=col(lambda r: r["cam"]["rot"], np.float64),
        fov=col(lambda r: r["cam"]["fov"], np.float64), vel=col(lambda r: r["vel"], np.float64),
        speed=col(lambda r: r["speed"], np.float64), vehicle=col(vehicle, np.float64),
        keys=col(lambda r: [r["keys"].get(k, 0) for k in KEYS], np.uint8),
        mark=col(lambda r: r.get("mark", 0), np.int64),
    ), skipped


def video_times(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """float64 [F]: each frame's presentation time in seconds from the first frame, in display
    order, and bool [F]: which frames are key frames (where the video can be cut without
    re-encoding). Read from the packets, without decoding."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                frames.append((float(packet.pts * packet.time_base), packet.is_keyframe))
    if not frames:
        raise SyncError(f"{path} has no video frames")
    frames.sort()
    times = np.array([t for t, _ in frames], dtype=np.float64)
    return times - times[0], np.array([k for _, k in frames], dtype=bool)


# The marker: four cells over the screen's top-left quarter, (x0, y0, x1, y1) as fractions of
# the frame, one bit each (bit 0 first); a cell is magenta for 1, green for 0. The i-th marked
# frame shows the code 1 + i mod 14 (never all green or all magenta, which a game could show).
MAGENTA, GREEN = (255, 0, 255), (0, 255, 0)
MARKER_CELLS = ((0.0, 0.0, 0.125, 0.125), (0.125, 0.0, 0.25, 0.125),
                (0.0, 0.125, 0.125, 0.25), (0.125, 0.125, 0.25, 0.25))


def marker_code(frame: np.ndarray) -> int:
    """The marker code (1..14) an RGB frame shows, or 0: every cell's centre must be nearly
    uniform magenta or green (within what H.264 leaves of saturated colours)."""
    h, w = frame.shape[:2]
    code = 0
    for bit, (x0, y0, x1, y1) in enumerate(MARKER_CELLS):
        mx, my = (x1 - x0) * w / 4, (y1 - y0) * h / 4  # the cell's inner half
        cell = frame[int(y0 * h + my):int(y1 * h - my), int(x0 * w + mx):int(x1 * w - mx)]
        if cell.size == 0:
            return 0
        pixels = cell.reshape(-1, 3).astype(np.float64)
        if pixels.std(axis=0).max() > 40:
            return 0
        mean = pixels.mean(axis=0)
        if np.abs(mean - MAGENTA).max() <= 60:
            code |= 1 << bit
        elif np.abs(mean - GREEN).max() > 60:
            return 0
    return code if 1 <= code <= 14 else 0


def marker_frames(path: str | Path, within_s: float = 20.0) -> dict[int, int]:
    """``{video frame: code}`` of the frames (in the first ``within_s`` seconds) showing the
    marker."""
    found, first = {}, None
    for k, frame in enumerate(decode_frames(path)):
        first = frame.time if first is None else first
        if frame.time - first > within_s:
            break
        if code := marker_code(frame.to_ndarray(format="rgb24")):
            found[k] = code
    return found


@dataclass
class MarkerFit:
    """The capture latency the marker allows: every value in [low, high) puts each marked video
    frame on the game frame that drew its code."""

    low: float  # seconds
    high: float
    video_frames: tuple[int, int]  # first and last video frame showing the marker
    agree: int  # marked video frames consistent with [low, high)
    seen: int  # marked video frames

    @property
    def offset(self) -> float:
        return (self.low + self.high) / 2


def marker_offset(samples: Samples, times_s: np.ndarray, start_wall_s: float,
                  shown: dict[int, int]) -> MarkerFit | None:
    """Bound the capture latency with the marker: a video frame showing code c was captured
    while the game frame that drew c (the one nearest in time) was the newest presented one,
    i.e. at or after it and before the next. The latency satisfying the most video frames wins
    (a torn or blended capture may disagree). None when no video frame matches a marked game
    frame."""
    wall = samples.wall_ms / 1000.0
    t = np.asarray(times_s, dtype=np.float64) + start_wall_s
    marked = np.flatnonzero(samples.mark > 0)
    bounds = []
    for k, code in sorted(shown.items()):
        same = marked[samples.mark[marked] == code]
        same = same[same + 1 < len(samples)]
        if same.size == 0:
            continue
        g = int(same[np.argmin(np.abs(wall[same] - t[k]))])
        bounds.append((wall[g] - t[k], wall[g + 1] - t[k]))
    if not bounds:
        return None
    edges = sorted({e for pair in bounds for e in pair})
    best = None
    for lo, hi in zip(edges, edges[1:], strict=False):
        mid = (lo + hi) / 2
        agree = sum(a <= mid < b for a, b in bounds)
        if best is None or agree > best[0]:
            best = (agree, lo, hi)
    if best is None:  # a single frame: its own interval
        best = (1, *bounds[0])
    agree, lo, hi = best
    return MarkerFit(float(lo), float(hi), (min(shown), max(shown)), agree, len(bounds))


def decided(samples: Samples, times_s: np.ndarray, start_wall_s: float,
            fit: MarkerFit) -> np.ndarray:
    """bool [F]: the video frames whose game frame the marker decides, i.e. every capture
    latency in its ``[low, high)`` puts the frame between the same two presented game frames.
    The others were captured nearer a switch of game frames than the marker's precision and
    may show either of the two."""
    wall = samples.wall_ms / 1000.0
    t = start_wall_s + np.asarray(times_s, dtype=np.float64)
    return (np.searchsorted(wall, t + fit.low, side="right")
            == np.searchsorted(wall, t + fit.high, side="right"))


@dataclass
class Alignment:
    """Which sample each video frame shows (-1: none) and the segments that have rows."""

    sample: np.ndarray  # int64 [F]
    segments: list[tuple[int, int]]  # [start, end) video frame ranges, each linked throughout
    duplicated: int  # video frames in segments showing the same game frame as the one before
    skipped: int  # game frames the capture missed inside segments (accumulated into rows)


def align(samples: Samples, times_s: np.ndarray, start_wall_s: float, offset_s: float = 0.0,
          stale_s: float | None = None, min_frames: int = 1) -> Alignment:
    """Match video frames (``times_s`` from :func:`video_times`) to samples.

    ``start_wall_s`` is the wall-clock time of the first video frame; ``offset_s`` shifts every
    capture time (a display or encoder latency, measured once per setup). A sample older than
    ``stale_s`` at capture time (default: 3 of the game's median frame intervals, at least
    50 ms) is not shown any more. Segments shorter than ``min_frames`` are dropped.
    """
    wall = samples.wall_ms / 1000.0
    if stale_s is None:
        step = float(np.median(np.diff(wall))) if len(wall) > 1 else 1 / 30
        stale_s = max(3 * step, 0.05)
    capture = start_wall_s + offset_s + np.asarray(times_s, dtype=np.float64)
    sample = np.searchsorted(wall, capture, side="right") - 1
    valid = sample >= 0
    valid[valid] &= capture[valid] - wall[sample[valid]] <= stale_s
    sample = np.where(valid, sample, -1)
    # all game frames between the previous video frame's sample and this one's are known
    missing = np.cumsum(~samples.follows())  # count of breaks up to each sample
    linked = np.zeros(len(sample), dtype=bool)
    prev, cur = sample[:-1], sample[1:]
    both = (prev >= 0) & (cur >= prev)
    linked[1:] = both & (missing[np.maximum(cur, 0)] == missing[np.maximum(prev, 0)])
    segments, k, n = [], 0, len(sample)
    while k < n:
        if sample[k] < 0:
            k += 1
            continue
        end = k + 1
        while end < n and linked[end]:
            end += 1
        if end - k >= min_frames:
            segments.append((k, end))
        k = end
    counts = [repeats(sample[a:b]) for a, b in segments]
    return Alignment(sample=sample, segments=segments,
                     duplicated=sum(d for d, _ in counts), skipped=sum(s for _, s in counts))


def repeats(sample: np.ndarray) -> tuple[int, int]:
    """``(duplicated, accumulated)`` of consecutive video frames showing game frames
    ``sample``: video frames repeating the game frame before, and game frames skipped between
    video frames."""
    steps = np.diff(sample)
    return int(np.count_nonzero(steps == 0)), int(np.sum(np.maximum(steps - 1, 0)))


def segment_rows(samples: Samples, alignment: Alignment, segment: tuple[int, int],
                 width: int, height: int) -> list[dict[str, float | int]]:
    """The ``actions.csv`` rows (contract columns but frame and t, plus EXTRA_COLUMNS) of the
    video frames ``segment`` covers; the first row has no mouse motion."""
    a, b = segment
    idx = alignment.sample[a:b]
    yaw, pitch, roll = contract_angles(samples.cam_rot[idx])
    quat = contract_quat(samples.cam_rot[idx])
    fov = horizontal_fov(samples.fov[idx], width, height)
    dx = np.concatenate([[0.0], -wrap_deg(np.diff(yaw))])
    dy = np.concatenate([[0.0], wrap_deg(np.diff(pitch))])
    rows = []
    for r, j in enumerate(idx):
        first = idx[r - 1] + 1 if r > 0 and idx[r] > idx[r - 1] else j  # game frames covered
        keys = samples.keys[first:j + 1].max(axis=0)
        in_vehicle, throttle, brake, steering = samples.vehicle[j]
        row: dict[str, float | int] = {f"key_{k}": int(v) for k, v in zip(KEYS, keys, strict=True)}
        row |= {"mouse_dx": dx[r], "mouse_dy": dy[r]}
        row |= {f"pos_{c}": samples.cam_pos[j, i] for i, c in enumerate("xyz")}
        row |= {f"q{c}": quat[r, i] for i, c in enumerate("wxyz")}
        row |= {"yaw": yaw[r], "pitch": pitch[r], "roll": roll[r]}
        row |= {f"vel_{c}": samples.vel[j, i] for i, c in enumerate("xyz")}
        row |= {"fov": fov[r], "game_frame": int(samples.frame[j]),
                "game_ms": int(samples.game_ms[j]), "ticks": int(j - idx[r - 1]) if r else 0,
                "in_vehicle": int(in_vehicle), "speed": samples.speed[j], "throttle": throttle,
                "brake": brake, "steering": steering}
        rows.append(row)
    return rows
