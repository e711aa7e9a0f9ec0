"""What curation passes between its stages: segments of an episode, and rejections.

A :class:`Segment` is a run of frames of one source episode that survives filtering, with the
labels of each output frame: the frame shown is ``source_frames[k]``; its pose, angles, velocity
and time are that source row's, exactly; its keys and mouse deltas are those of every source row
merged into it (keys OR-ed, mouse deltas summed), so the contract's alignment identities still
hold between consecutive output frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.episode import COLUMNS, KEY_COLUMNS

LABEL_COLUMNS = COLUMNS[1:]  # every contract column but ``frame``
MOUSE_COLUMNS = ("mouse_dx", "mouse_dy")


@dataclass
class Segment:
    episode: str  # source episode id
    source: Path  # source episode folder
    source_frames: np.ndarray  # int64 [T] source frame indices: strictly increasing, or
    #                            non-decreasing when upsampled (a source frame shown twice)
    labels: dict[str, np.ndarray]  # LABEL_COLUMNS -> [T]: uint8 keys, float64 otherwise
    fps: float  # frame rate of this segment (the source's, unless resampled)
    resampling: dict | None = None  # {"from_fps", "to_fps", "method"} when resampled
    scene: str = ""
    backend: str = ""
    extra: dict = field(default_factory=dict)  # anything a stage wants to record in clip json

    def __len__(self) -> int:
        return len(self.source_frames)

    def problems(self) -> list[str]:
        """Broken invariants (empty when the segment is consistent)."""
        out = []
        n = len(self.source_frames)
        steps = np.diff(self.source_frames)
        if self.resampling is None and np.any(steps <= 0):
            out.append("source_frames must be strictly increasing")
        elif np.any(steps < 0):
            out.append("source_frames must not decrease")
        missing = [c for c in LABEL_COLUMNS if c not in self.labels]
        if missing:
            out.append(f"missing label columns: {missing}")
        bad = [c for c in LABEL_COLUMNS if c in self.labels and len(self.labels[c]) != n]
        if bad:
            out.append(f"label columns not of length {n}: {bad}")
        for c in KEY_COLUMNS:
            if c in self.labels and not np.isin(self.labels[c], (0, 1)).all():
                out.append(f"{c} must be 0/1")
        return out


@dataclass(frozen=True)
class Reject:
    """One rejected episode or segment, as a row of ``rejects.parquet``."""

    source: str  # episode folder (or file) as given
    episode: str  # episode id ("" when unknown)
    first_frame: int  # first source frame of the rejected part (-1 for a whole episode)
    frames: int  # how many source frames were rejected (-1 when unknown)
    reason: str  # a sentence a person understands
