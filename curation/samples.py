"""Shard samples: one clip's members as the contract's WebDataset sample dict.

``make_sample`` turns a clip plan and its MP4 bytes into ``{"__key__", "mp4", "keys.npy",
"mouse.npy", "pose.npy", "json"}`` (data contract, part 4). Arrays are serialised with
``np.save`` and the metadata as sorted-keys JSON, so the same clip always gives the same bytes.
Without resampling, ``pose.npy`` row ``k`` is exactly row ``source_frames[k]`` of the source CSV.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np

from curation.clips import ClipPlan, intrinsics_after_resize
from curation.config import FilterConfig
from curation.segments import MOUSE_COLUMNS
from datagen.episode import KEY_COLUMNS, KEYS, META_FILE, load_meta

POSE_COLUMNS = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")
CONTRACT_JSON_FIELDS = ("episode", "source_frames", "fps", "width", "height", "scene", "backend",
                        "keys", "intrinsics", "resampling")


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format (what ``np.load`` reads back)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=64)
def _source_size(episode_dir: Path) -> tuple[int, int]:
    meta = load_meta(episode_dir / META_FILE)
    return meta.width, meta.height


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be stored in a clip's json")


def make_sample(plan: ClipPlan, mp4: bytes, cfg: FilterConfig) -> dict[str, bytes | str]:
    """The WebDataset sample of one clip. ``intrinsics`` are those of the clip's first frame
    (``pose.npy``'s last column has each frame's fov); the source frame size comes from the
    episode's ``meta.json``. Keys of ``segment.extra`` are added to ``json``; one that would
    replace a contract field is a ValueError."""
    seg = plan.segment
    rows = slice(plan.start, plan.start + plan.frames)
    labels = {c: np.asarray(seg.labels[c])[rows] for c in (*KEY_COLUMNS, *MOUSE_COLUMNS,
                                                             *POSE_COLUMNS)}
    keys = np.stack([labels[c] for c in KEY_COLUMNS], axis=1).astype(np.uint8)
    mouse = np.stack([labels[c] for c in MOUSE_COLUMNS], axis=1).astype(np.float32)
    pose = np.stack([labels[c] for c in POSE_COLUMNS], axis=1).astype(np.float64)
    src_w, src_h = _source_size(Path(seg.source))
    clashes = sorted(set(seg.extra) & set(CONTRACT_JSON_FIELDS))
    if clashes:
        raise ValueError(f"{seg.episode}: segment.extra may not replace clip json fields "
                         f"{clashes}")
    meta = {
        **seg.extra,
        "episode": seg.episode,
        "source_frames": [int(f) for f in plan.source_frames],
        "fps": float(seg.fps),
        "width": cfg.width,
        "height": cfg.height,
        "scene": seg.scene,
        "backend": seg.backend,
        "keys": list(KEYS),
        "intrinsics": intrinsics_after_resize(float(pose[0, 7]), src_w, src_h, cfg.width,
                                              cfg.height, cfg.resize),
    }
    if seg.resampling is not None:
        meta["resampling"] = seg.resampling
    text = json.dumps(meta, sort_keys=True, default=_json_default, allow_nan=False)
    return {"__key__": plan.key, "mp4": mp4, "keys.npy": npy_bytes(keys),
            "mouse.npy": npy_bytes(mouse), "pose.npy": npy_bytes(pose),
            "json": text.encode("utf-8")}
