"""The one commented configuration of ``curation filter``: every threshold and output setting.

Each field is a command-line flag of the same name (``--clip-frames 65``). The config is
recorded in ``dataset.json``; a re-run with another config into the same output folder is
refused, so shards are never silently mixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FilterConfig:
    # --- redundant frames (OpenCV, on grey thumbnails of thumb_width x thumb_height)
    thumb_width: int = 160
    thumb_height: int = 90
    dup_threshold: float = 1.0  # mean |difference| (grey levels, 0-255) from the last kept
    #                             frame at or below which a frame is a repeat (capture stutter)
    max_merge: int = 3  # a run of up to this many repeated frames is dropped, its inputs merged
    #                     into the next kept frame; a longer run is a frozen stretch: split
    static_threshold: float = 2.0  # mean |difference| below which nothing moves between frames
    static_min_s: float = 3.0  # a still stretch at least this long (and no camera motion) splits
    # --- velocity validity
    speed_eps: float = 0.05  # m/s: a frame is stationary if its agent's speed is at most this
    #                          and its camera turns by at most turn_eps
    turn_eps: float = 0.05  # degrees a frame: a stationary frame's camera turns at most this
    invalid_tolerance_s: float = 3.0  # runs of stationary frames longer than this are dropped
    # --- time resampling
    fps: float | None = None  # output frame rate; None keeps each episode's own
    # --- clips
    clip_frames: int = 57  # frames per clip (Matrix-Game 2.0 foundation clips: 57)
    stride: int | None = None  # frames between clip starts; None = clip_frames (no overlap)
    width: int = 640  # dataset frame size
    height: int = 360
    resize: str = "crop"  # "crop": scale to cover, centre-crop; "pad": scale to fit, black bars
    crf: int = 20  # H.264 CRF of the re-encoded clips
    # --- shards
    val_fraction: float = 0.05  # share of episodes (by hash of the episode id) in the val split
    maxcount: int = 1000  # samples per shard at most
    maxsize: int = 1_000_000_000  # bytes per shard at most

    def __post_init__(self) -> None:
        problems = []
        if self.clip_frames < 1:
            problems.append(f"clip_frames must be at least 1, got {self.clip_frames}")
        if self.stride is not None and self.stride < 1:
            problems.append(f"stride must be at least 1, got {self.stride}")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            problems.append(f"size must be even and at least 16x16, got "
                            f"{self.width}x{self.height}")
        if self.resize not in ("crop", "pad"):
            problems.append(f"resize must be 'crop' or 'pad', got {self.resize!r}")
        if self.fps is not None and not 0 < self.fps <= 240:
            problems.append(f"fps must be in (0, 240], got {self.fps}")
        if not 0.0 <= self.val_fraction <= 1.0:
            problems.append(f"val_fraction must be in [0, 1], got {self.val_fraction}")
        if self.maxcount < 1 or self.maxsize < 1:
            problems.append("maxcount and maxsize must be positive")
        if not 0 <= self.crf <= 51:
            problems.append(f"crf must be in 0..51, got {self.crf}")
        if self.max_merge < 0 or self.invalid_tolerance_s < 0 or self.turn_eps < 0:
            problems.append("max_merge, turn_eps and invalid_tolerance_s must not be negative")
        if self.static_min_s <= 0:
            problems.append(f"static_min_s must be positive, got {self.static_min_s}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def clip_stride(self) -> int:
        return self.stride or self.clip_frames

    def to_dict(self) -> dict:
        return asdict(self)
