"""The episode contract (``worldforge.episode/1``), implemented once: names, metadata, reading.

On disk (docs/data-format.md is the user-facing description)::

    <out>/<scene>/<episode_id>/          finished: renamed from .partial in one atomic rename
        video.mp4      H.264, yuv420p, constant frame rate = meta.fps, meta.width x meta.height
        actions.csv    header row, then one row per video frame: COLUMNS, then extra columns
        meta.json      EpisodeMeta.to_dict()
    <out>/<scene>/<episode_id>.partial/  being written, or left by a crash: skipped by readers
    <out>/.lock                          the writing run's lock (datagen.output_lock)

Every recorder writes through :mod:`datagen.episode_writer`; curation and ``datagen validate``
read through :func:`read_episode` and :func:`find_episodes` here and check with
:mod:`datagen.episode_check`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from datagen import __version__

FORMAT = "worldforge.episode/1"
KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl")
KEY_COLUMNS = tuple(f"key_{k}" for k in KEYS)
COLUMNS = ("frame", "t", *KEY_COLUMNS, "mouse_dx", "mouse_dy", "pos_x", "pos_y", "pos_z",
           "qw", "qx", "qy", "qz", "yaw", "pitch", "roll", "vel_x", "vel_y", "vel_z", "fov")
INT_COLUMNS = ("frame", *KEY_COLUMNS)
ROW_COLUMNS = COLUMNS[2:]  # what add_frame takes: the writer stamps frame and t itself
VIDEO_FILE, ACTIONS_FILE, META_FILE, PARTIAL_SUFFIX = (
    "video.mp4", "actions.csv", "meta.json", ".partial")
EPISODE_FILES = (VIDEO_FILE, ACTIONS_FILE, META_FILE)
EPISODE_ID_RE = re.compile(r"[A-Za-z0-9_-]+")
EXTRA_COLUMN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BACKENDS = ("builtin", "unreal", "gta")
QUAT_NORM_TOL = 1e-6


class EpisodeError(ValueError):
    """An episode (or its metadata) that breaks the contract, or a misuse of the writer."""


def _check_name(kind: str, value: object) -> None:
    if not isinstance(value, str) or not EPISODE_ID_RE.fullmatch(value):
        raise EpisodeError(f"{kind} must be letters, digits, '_' or '-' only, got {value!r}")


def episode_dir(out_root: str | Path, scene: str, episode_id: str) -> Path:
    """``<out_root>/<scene>/<episode_id>``: where a finished episode lives."""
    _check_name("scene", scene)
    _check_name("episode_id", episode_id)
    return Path(out_root) / scene / episode_id


def utc_now() -> str:
    """The current UTC time as ``2026-11-21T06:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class EpisodeMeta:
    """``meta.json``: typed and versioned; unknown top-level keys are kept in ``extra``."""

    episode_id: str
    backend: str  # one of BACKENDS
    scene: str
    seed: int
    fps: float
    width: int
    height: int
    frames: int = 0
    duration_s: float = 0.0
    keys: list[str] = field(default_factory=lambda: list(KEYS))
    created_utc: str = field(default_factory=utc_now)
    tool_version: str = __version__
    video: dict[str, Any] = field(
        default_factory=lambda: {"codec": "h264", "pix_fmt": "yuv420p", "crf": 18})
    engine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        errors = self.problems()
        if errors:
            raise EpisodeError("invalid episode metadata: " + "; ".join(errors))

    def problems(self) -> list[str]:
        """Every way these values break the contract (empty when valid)."""
        errors = []
        if self.format != FORMAT:
            errors.append(f"format must be {FORMAT!r}, got {self.format!r}")
        for name in ("episode_id", "scene"):
            value = getattr(self, name)
            if not isinstance(value, str) or not EPISODE_ID_RE.fullmatch(value):
                errors.append(f"{name} must be letters, digits, '_' or '-' only, got {value!r}")
        if self.backend not in BACKENDS:
            errors.append(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not _is_int(self.seed):
            errors.append(f"seed must be an integer, got {self.seed!r}")
        if not _is_number(self.fps) or self.fps <= 0:
            errors.append(f"fps must be positive, got {self.fps!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                errors.append(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.frames) or self.frames < 0:
            errors.append(f"frames must be a non-negative integer, got {self.frames!r}")
        if not _is_number(self.duration_s) or self.duration_s < 0:
            errors.append(f"duration_s must be a non-negative number, got {self.duration_s!r}")
        if self.keys != list(KEYS):
            errors.append(f"keys must be {list(KEYS)} in {FORMAT}, got {self.keys!r}")
        for name in ("created_utc", "tool_version"):
            if not isinstance(getattr(self, name), str):
                errors.append(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("video", "engine", "settings", "extra"):
            if not isinstance(getattr(self, name), dict):
                errors.append(f"{name} must be an object, got {getattr(self, name)!r}")
        return errors

    def to_dict(self) -> dict[str, Any]:
        """The ``meta.json`` object: contract keys in contract order, then the unknown ones."""
        d = {"format": self.format}
        for f in dataclasses.fields(self):
            if f.name not in ("format", "extra"):
                d[f.name] = getattr(self, f.name)
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeMeta:
        """Parse a ``meta.json`` object; EpisodeError names a wrong format or missing keys."""
        if not isinstance(d, Mapping):
            raise EpisodeError(f"episode metadata must be a JSON object, got {type(d).__name__}")
        if "format" not in d:
            raise EpisodeError(f"metadata has no 'format' key; this reader reads {FORMAT!r}")
        if d["format"] != FORMAT:
            raise EpisodeError(f"metadata format is {d['format']!r}; this reader reads "
                               f"{FORMAT!r} (re-record, or convert it to {FORMAT!r})")
        known = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        missing = [k for k in known if k not in d]
        if missing:
            raise EpisodeError(f"metadata is missing {', '.join(missing)}")
        return cls(**{k: d[k] for k in known}, extra={k: v for k, v in d.items()
                                                      if k not in known})


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} cannot be stored in meta.json")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_meta(path: str | Path, meta: EpisodeMeta) -> None:
    """Write ``meta.json`` durably: a temporary file, fsync, then ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta.to_dict(), f, indent=2, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_meta(path: str | Path) -> EpisodeMeta:
    """Read and check a ``meta.json`` file; EpisodeError says what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EpisodeError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise EpisodeError(f"{path} is not UTF-8 text: {exc}") from exc
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EpisodeError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return EpisodeMeta.from_dict(d)
    except EpisodeError as exc:
        raise EpisodeError(f"{path}: {exc}") from None


@dataclass
class Episode:
    """A finished episode in memory: ``data[column]`` is int64 for frame/keys, else float64."""

    path: Path
    meta: EpisodeMeta
    columns: list[str]
    data: dict[str, np.ndarray]


def parse_actions(path: Path) -> tuple[list[str], dict[str, np.ndarray], list[tuple[str, str]]]:
    """Parse ``actions.csv``; returns columns, data and (where, message) problems (never raises
    for bad content). Rows are numbered from 0 like frames (file line = row + 2)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], {}, [(ACTIONS_FILE, f"cannot read it: {exc}")]
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return [], {}, [(f"{ACTIONS_FILE} header", "empty file: no header row")]
    columns = lines[0].split(",")
    problems: list[tuple[str, str]] = []
    for i, (got, want) in enumerate(zip(columns, COLUMNS, strict=False)):
        if got != want:
            problems.append((f"{ACTIONS_FILE} header",
                             f"column {i} is {got!r}, expected {want!r} (the first difference; "
                             f"required columns: {', '.join(COLUMNS)})"))
            return columns, {}, problems
    if len(columns) < len(COLUMNS):
        missing = COLUMNS[len(columns):]
        return columns, {}, [(f"{ACTIONS_FILE} header",
                              f"only {len(columns)} columns; missing {', '.join(missing)}")]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        return columns, {}, [(f"{ACTIONS_FILE} header",
                              f"duplicate columns: {', '.join(duplicates)}")]
    rows = [line.split(",") for line in lines[1:]]
    bad = [i for i, r in enumerate(rows) if len(r) != len(columns)]
    if bad:
        problems.append((f"{ACTIONS_FILE} row {bad[0]}",
                         f"{len(rows[bad[0]])} fields, the header has {len(columns)}"
                         + (f" ({plural(len(bad), 'such row')})" if len(bad) > 1 else "")))
        return columns, {}, problems
    cells = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    data = {}
    for name, col in zip(columns, cells, strict=True):
        kind = int if name in INT_COLUMNS else float
        try:
            data[name] = np.fromiter(map(kind, col), np.int64 if kind is int else np.float64,
                                     len(col))
        except ValueError:
            if name not in COLUMNS:  # a recorder's own extra column: kept as text, not judged
                data[name] = np.array(col, dtype=str)
                continue
            wrong = [i for i, v in enumerate(col) if not _parses(kind, v)]
            what = "an integer" if kind is int else "a number"
            problems.append((f"{ACTIONS_FILE} row {wrong[0]} column {name}",
                             f"{col[wrong[0]]!r} is not {what}"
                             + (f" ({len(wrong)} bad cells in this column)" if len(wrong) > 1
                                else "")))
    return columns, data, problems


def _parses(kind: type, value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def read_actions(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read an ``actions.csv``: column names and one array per column (floats parse exactly)."""
    columns, data, problems = parse_actions(Path(path))
    if problems:
        raise EpisodeError(f"{path}: " + "; ".join(f"{w}: {m}" for w, m in problems))
    return columns, data


def read_episode(path: str | Path, allow_partial: bool = False) -> Episode:
    """Load an episode's meta and actions (not the video); EpisodeError says what is wrong.
    ``allow_partial`` reads a crashed ``.partial`` folder on purpose (salvage)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX) and not allow_partial:
        raise EpisodeError(f"{path} is an unfinished episode (a {PARTIAL_SUFFIX} folder); pass "
                           "allow_partial=True to salvage it")
    if not path.is_dir():
        raise EpisodeError(f"no episode folder at {path}")
    missing = [f for f in EPISODE_FILES if not (path / f).is_file()]
    if missing:
        raise EpisodeError(f"{path} is missing {', '.join(missing)}")
    meta = load_meta(path / META_FILE)
    columns, data = read_actions(path / ACTIONS_FILE)
    return Episode(path=path, meta=meta, columns=columns, data=data)


def find_episodes(root: str | Path) -> tuple[list[Path], list[Path]]:
    """``(finished, partial)`` episode folders under ``root``, sorted; ``root`` may be an episode,
    a scene folder or an output folder. A folder is an episode if it ends in ``.partial`` or
    holds any of the episode files."""
    root = Path(root)
    if not root.is_dir():
        raise EpisodeError(f"no such folder: {root}")
    finished, partial = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here.name.endswith(PARTIAL_SUFFIX):
            partial.append(here)
        elif set(EPISODE_FILES) & set(filenames):
            finished.append(here)
        else:
            dirnames.sort()
            continue
        dirnames.clear()  # an episode's subfolders are not episodes
    return sorted(finished), sorted(partial)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
