"""Plan the segments of one episode: drop redundant and invalid frames, split, resample.

Steps, on the episode's CSV and its grey thumbnails (one per frame):

1. Find repeats, frozen and static stretches (:mod:`curation.redundancy`) and runs of invalid
   velocity (:mod:`curation.velocity`).
2. Drop static stretches, frozen stretches and long invalid-velocity runs (where they overlap,
   the frame is reported as static, else frozen, else invalid) and split the episode there:
   nothing is merged across a dropped stretch. Each dropped stretch is a :class:`Reject`
   ("static: frames 100-199 (100 frames) for 3.3 s ...").
3. In each remaining piece, the first frame is kept; a later repeat is dropped and its row's
   inputs are merged into the next kept frame (the motion they caused shows there): mouse deltas
   summed, keys OR-ed, so ``mouse_dx[k] == -(yaw[k] - yaw[k-1])`` still holds between kept
   frames. Repeats after the piece's last kept frame have no next frame: dropped with their
   inputs. ``Segment.extra["segment_merged_repeats"]`` counts every repeat dropped from the piece.
4. With ``cfg.fps`` set and different from the episode's rate, resample
   (:mod:`curation.resample`).
5. A segment shorter than ``cfg.clip_frames`` (after resampling) becomes a :class:`Reject` naming
   its frames and what bounds it.

So every source frame is in a segment, counted in a segment's ``segment_merged_repeats``, or in a
reject. Deterministic: no randomness.
"""

from __future__ import annotations

import numpy as np

from curation.config import FilterConfig
from curation.redundancy import camera_still, detect, idle_frames
from curation.resample import resample
from curation.segments import LABEL_COLUMNS, MOUSE_COLUMNS, Reject, Segment
from curation.velocity import agent_speed, camera_turn, invalid_runs
from datagen.episode import KEY_COLUMNS, Episode

KEEP, INVALID, FROZEN, STATIC = 0, 1, 2, 3  # per-frame drop codes; a higher code wins
BOUND = {INVALID: "an invalid-velocity stretch", FROZEN: "a frozen stretch",
         STATIC: "a static stretch"}


def _span(a: int, b: int) -> str:
    """``frames a-(b-1) (n frames)`` of the half-open range [a, b)."""
    return f"frames {a}-{b - 1} ({b - a} frame{'' if b - a == 1 else 's'})"


def _drop_reason(code: int, a: int, b: int, cfg: FilterConfig, fps: float) -> str:
    seconds = f"{(b - a) / fps:.1f} s"
    if code == STATIC:
        return (f"static: {_span(a, b)} for {seconds} (frames differ by less than "
                f"{cfg.static_threshold} grey levels and the camera does not move; "
                f"static_min_s is {cfg.static_min_s})")
    if code == FROZEN:
        return (f"frozen: {_span(a, b)} for {seconds} (each frame repeats the last "
                f"different one; more than max_merge={cfg.max_merge} repeats in a row)")
    return (f"stationary: {_span(a, b)} with agent speed at most {cfg.speed_eps} m/s and the "
            f"camera turning at most {cfg.turn_eps} degrees a frame for {seconds} (longer than "
            f"the {cfg.invalid_tolerance_s} s tolerance)")


def _merge(episode: Episode, a: int, b: int, repeats: np.ndarray) -> Segment:
    """The segment of the piece [a, b): its kept frames with the repeats' inputs merged in."""
    data = episode.data
    # The first frame is always kept (nothing before the piece to merge a leading repeat into),
    # in addition to every frame that is not a repeat.
    kept = np.union1d([a], a + np.flatnonzero(~repeats[a:b]))
    # Kept frame k takes rows (previous kept, k]; the first takes row a alone.
    starts = np.concatenate(([a], kept[:-1] + 1))
    labels = {c: data[c][kept].astype(np.float64) for c in LABEL_COLUMNS}
    for c in MOUSE_COLUMNS:
        labels[c] = np.add.reduceat(data[c][: kept[-1] + 1], starts)
    for c in KEY_COLUMNS:
        labels[c] = np.maximum.reduceat(data[c][: kept[-1] + 1], starts).astype(np.uint8)
    meta = episode.meta
    return Segment(episode=meta.episode_id, source=episode.path, source_frames=kept,
                   labels=labels, fps=float(meta.fps), scene=meta.scene, backend=meta.backend,
                   extra={"segment_merged_repeats": int(b - a - len(kept))})


def plan_segments(
    episode: Episode, thumbs: np.ndarray, cfg: FilterConfig
) -> tuple[list[Segment], list[Reject]]:
    """Segments of ``episode`` worth cutting into clips, and the rejected parts with reasons."""
    meta = episode.meta
    fps = float(meta.fps)
    n = len(episode.data["frame"])
    if len(thumbs) != n:
        raise ValueError(f"episode {meta.episode_id}: {len(thumbs)} thumbnails for {n} CSV rows")
    source = str(episode.path)
    if n == 0:
        return [], [Reject(source, meta.episode_id, -1, 0, "empty: the episode has no frames")]
    red = detect(thumbs, cfg, fps, still=camera_still(episode.data),
                 idle=idle_frames(episode.data))
    code = np.full(n, KEEP, dtype=np.int8)
    stationary = invalid_runs(agent_speed(episode.data), cfg, fps, camera_turn(episode.data))
    for runs, value in ((stationary, INVALID),
                        (red.frozen, FROZEN), (red.static, STATIC)):
        for a, b in runs:
            code[a:b] = np.maximum(code[a:b], value)
    # Maximal runs of one code, in frame order.
    edges = np.flatnonzero(np.diff(code)) + 1
    bounds = list(zip(np.concatenate(([0], edges)), np.concatenate((edges, [n])), strict=True))
    segments: list[Segment] = []
    rejects: list[Reject] = []
    for i, (a, b) in enumerate(bounds):
        a, b, value = int(a), int(b), int(code[a])
        if value != KEEP:
            rejects.append(Reject(source, meta.episode_id, a, b - a,
                                  _drop_reason(value, a, b, cfg, fps)))
            continue
        segment = _merge(episode, a, b, red.repeats)
        resampled = ""
        if cfg.fps is not None and cfg.fps != fps:
            segment = resample(segment, cfg.fps)
            resampled = f", {len(segment)} at {cfg.fps:g} fps"
        if len(segment) >= cfg.clip_frames:
            segments.append(segment)
            continue
        before = BOUND[int(code[bounds[i - 1][0]])] if i else "the start"
        after = BOUND[int(code[bounds[i + 1][0]])] if i + 1 < len(bounds) else "the end"
        merged = segment.extra["segment_merged_repeats"]
        rejects.append(Reject(
            source, meta.episode_id, a, b - a,
            f"too short: {_span(a, b)}{resampled}"
            + (f" ({merged} repeated frame{'' if merged == 1 else 's'} merged)" if merged
               else "")
            + f" between {before} and {after} are shorter than one clip "
              f"({cfg.clip_frames} frames)"))
    return segments, rejects
