"""Synchronisation: which game frame each video frame shows, and the episode rows that follow.

The plugin stamps every frame message with the wall-clock time at which the game had just
presented that frame (``wall_ms``); OBS's recording starts at a wall-clock time the session
measured (the ``STARTED`` event, refined by ``GetRecordStatus`` polls of ``outputDuration``), and
the video's frames carry their own timestamps. So video frame *k* was captured at
``start + pts[k] + offset`` and shows the newest game frame presented by then.

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
    ), skipped


def video_times(path: str | Path) -> np.ndarray:
    """float64 [F]: each decoded frame's presentation time in seconds, from the first frame."""
    times = np.array([f.time for f in decode_frames(path)], dtype=np.float64)
    if times.size == 0:
        raise SyncError(f"{path} has no video frames")
    return times - times[0]


@dataclass
class Alignment:
    """Which sample each video frame shows (-1: none) and the segments that have rows."""

    sample: np.ndarray  # int64 [F]
    linked: np.ndarray  # bool [F]: frame k's game frames since frame k-1 are all known
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
    dup = skipped = 0
    for a, b in segments:
        steps = np.diff(sample[a:b])
        dup += int(np.count_nonzero(steps == 0))
        skipped += int(np.sum(np.maximum(steps - 1, 0)))
    return Alignment(sample=sample, linked=linked, segments=segments, duplicated=dup,
                     skipped=skipped)


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
