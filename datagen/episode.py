"""The episode contract (``worldforge.episode/1``), implemented once: writer, reader, validator.

On disk (docs/data-format.md is the user-facing description)::

    <out>/<scene>/<episode_id>/          finished: renamed from .partial in one atomic rename
        video.mp4      H.264, yuv420p, constant frame rate = meta.fps, meta.width x meta.height
        actions.csv    header row, then one row per video frame: COLUMNS, then extra columns
        meta.json      EpisodeMeta.to_dict()
    <out>/<scene>/<episode_id>.partial/  being written, or left by a crash: skipped by readers
    <out>/.lock                          the writing run's lock (datagen.output_lock)

Every recorder writes through :class:`EpisodeWriter`; curation and ``datagen validate`` read
through :func:`read_episode`, :func:`validate_episode` and :func:`find_episodes`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from datagen import __version__
from datagen.rotation import quat_from_ypr, quat_normalize, wrap_deg, ypr_from_quat
from datagen.video import H264Writer, VideoError, probe

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


def _fsync_path(path: Path) -> None:
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


def format_cell(column: str, value: object, is_key: bool) -> str:
    """One CSV cell: 0/1 for key columns, ``repr(float)`` (round-trips float64) otherwise."""
    if is_key:
        if value in (0, 1) and not isinstance(value, str):
            return "1" if value else "0"
        raise EpisodeError(f"{column} must be 0 or 1, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EpisodeError(f"{column} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise EpisodeError(f"{column} must be finite, got {number!r}")
    return repr(number)


class EpisodeWriter:
    """Write one episode: ``add_frame`` per frame, then ``finish`` (the facade every recorder uses).

    Frames and rows stream to ``<out_root>/<scene>/<episode_id>.partial/`` as they come, so a
    crash keeps everything up to the crash there; ``finish`` renames the folder to its final
    name in one atomic rename. As a context manager, an exception aborts (the ``.partial``
    folder stays) and a clean exit finishes if ``finish`` was not called.
    ``meta`` is the writer's own copy: recorders may fill ``meta.engine``/``meta.settings``
    before ``finish``, which sets ``frames`` and ``duration_s``.
    """

    def __init__(
        self,
        out_root: str | Path,
        meta: EpisodeMeta,
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 1,
        extra_columns: Sequence[str] = (),
        pix_fmt: str = "rgb24",
    ) -> None:
        self.final_path = episode_dir(out_root, meta.scene, meta.episode_id)
        self.partial_path = self.final_path.with_name(meta.episode_id + PARTIAL_SUFFIX)
        if self.final_path.exists():
            raise EpisodeError(f"episode {self.final_path} already exists; refusing to overwrite "
                               "it (delete it or choose another episode id)")
        self.extra_columns = tuple(extra_columns)
        for name in self.extra_columns:
            if not isinstance(name, str) or not EXTRA_COLUMN_RE.fullmatch(name):
                raise EpisodeError(f"extra column names must be identifiers, got {name!r}")
        clash = sorted(set(self.extra_columns) & set(COLUMNS))
        if clash or len(set(self.extra_columns)) != len(self.extra_columns):
            raise EpisodeError(f"extra columns must be new and distinct, got "
                               f"{list(self.extra_columns)} (clash: {clash})")
        self.meta = dataclasses.replace(
            meta, video={**meta.video, "codec": "h264", "pix_fmt": "yuv420p", "crf": crf,
                         "preset": preset},
            engine=dict(meta.engine), settings=dict(meta.settings), extra=dict(meta.extra))
        self.frames = 0
        self._row_columns = (*ROW_COLUMNS, *self.extra_columns)
        self._is_key = tuple(c in KEY_COLUMNS for c in self._row_columns)
        self._closed = False
        try:
            if self.partial_path.exists():
                shutil.rmtree(self.partial_path)  # a stale crash leftover, never finished
            self.partial_path.mkdir(parents=True)
            # Line-buffered: each row reaches the OS at once, so a crash keeps it.
            self._csv = open(self.partial_path / ACTIONS_FILE, "w", encoding="utf-8",  # noqa: SIM115
                             newline="", buffering=1)
        except OSError as exc:
            raise EpisodeError(f"cannot write episode folder {self.partial_path}: "
                               f"{exc.strerror or exc}") from exc
        self._csv.write(",".join((*COLUMNS, *self.extra_columns)) + "\n")
        try:
            write_meta(self.partial_path / META_FILE, self.meta)  # says what a leftover is
            self._video = H264Writer(self.partial_path / VIDEO_FILE, meta.width, meta.height,
                                     meta.fps, crf=crf, preset=preset, threads=threads,
                                     pix_fmt=pix_fmt)
        except (OSError, ValueError, VideoError) as exc:
            self._csv.close()
            self._closed = True
            raise EpisodeError(f"cannot start episode {self.partial_path}: {exc}") from exc

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.finish()

    def add_frame(self, image: np.ndarray, row: Mapping[str, float]) -> None:
        """Append frame ``self.frames``: its image (uint8 RGB ``[H, W, 3]``, or the layout of the
        writer's ``pix_fmt``, see :data:`datagen.video.INPUT_PIX_FMTS`) and its CSV row (every
        contract column but ``frame`` and ``t``, plus the declared extra columns)."""
        if self._closed:
            raise EpisodeError(f"add_frame on {self.partial_path} after finish() or abort()")
        missing = [c for c in self._row_columns if c not in row]
        unknown = sorted(set(row) - set(self._row_columns))
        errors = []
        if missing:
            errors.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            errors.append(f"unknown columns: {', '.join(unknown)}"
                          + (" (frame and t are stamped by the writer)"
                             if {"frame", "t"} & set(unknown) else ""))
        cells = [str(self.frames), repr(self.frames / self.meta.fps)]
        if not errors:
            for column, is_key in zip(self._row_columns, self._is_key, strict=True):
                try:
                    cells.append(format_cell(column, row[column], is_key))
                except EpisodeError as exc:
                    errors.append(str(exc))
        if errors:
            raise EpisodeError(f"frame {self.frames}: " + "; ".join(errors))
        self._video.write(image)
        self._csv.write(",".join(cells) + "\n")
        self.frames += 1

    def finish(self) -> Path:
        """Close the video and CSV, write ``meta.json``, rename to the final folder; returns it."""
        if self._closed:
            raise EpisodeError(f"finish on {self.partial_path} after finish() or abort()")
        if self.frames == 0:
            self.abort()
            raise EpisodeError(f"episode {self.partial_path} has no frames; left unfinished")
        try:
            encoded = self._video.close()
        except VideoError:
            self.abort()
            raise
        self._csv.flush()
        os.fsync(self._csv.fileno())
        self._csv.close()
        self._closed = True
        if encoded != self.frames:
            raise EpisodeError(f"{self.partial_path}: {encoded} video frames but {self.frames} "
                               "CSV rows; left unfinished")
        self.meta.frames = self.frames
        self.meta.duration_s = self.frames / self.meta.fps
        problems = self.meta.problems()
        if problems:
            raise EpisodeError(f"{self.partial_path}: invalid metadata: {'; '.join(problems)}; "
                               "left unfinished")
        write_meta(self.partial_path / META_FILE, self.meta)
        _fsync_path(self.partial_path / VIDEO_FILE)
        _fsync_path(self.partial_path)
        if self.final_path.exists():
            raise EpisodeError(f"episode {self.final_path} appeared while recording; refusing to "
                               f"overwrite it (this one is left in {self.partial_path})")
        os.rename(self.partial_path, self.final_path)
        _fsync_path(self.final_path.parent)
        return self.final_path

    def abort(self) -> None:
        """Stop now; the ``.partial`` folder stays (salvageable), never a finished episode."""
        if self._closed:
            return
        self._closed = True
        self._video.kill()
        self._csv.close()


@dataclass
class Episode:
    """A finished episode in memory: ``data[column]`` is int64 for frame/keys, else float64."""

    path: Path
    meta: EpisodeMeta
    columns: list[str]
    data: dict[str, np.ndarray]


@dataclass
class Problem:
    """One contract violation: which episode, where in it, and what is wrong."""

    episode: str
    where: str  # "actions.csv row 17 column qw", "meta.json", "video.mp4", "folder"
    message: str

    def __str__(self) -> str:
        return f"{self.episode}: {self.where}: {self.message}"


def _parse_actions(path: Path) -> tuple[list[str], dict[str, np.ndarray], list[tuple[str, str]]]:
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
                         + (f" ({_n(len(bad), 'such row')})" if len(bad) > 1 else "")))
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
    columns, data, problems = _parse_actions(Path(path))
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


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _over(count: int, tol: float) -> str:
    return f"{_n(count, 'row')} off by more than {tol}"


def _worst(err: np.ndarray, tol: float) -> tuple[int, int] | None:
    """(row of the largest error, count over tol) where finite errors exceed tol, else None."""
    err = np.where(np.isfinite(err), np.abs(err), 0.0)
    over = int(np.count_nonzero(err > tol))
    return (int(np.argmax(err)), over) if over else None


class _Checker:
    """Collects the problems of one episode folder (see :func:`validate_episode`)."""

    def __init__(self, path: Path, decode_video: bool, atol: float) -> None:
        self.path, self.decode_video, self.atol = path, decode_video, atol
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(str(self.path), where, message))

    def run(self) -> list[Problem]:
        path = self.path
        if not path.is_dir():
            self.add("folder", "no such episode folder")
            return self.problems
        if path.name.endswith(PARTIAL_SUFFIX):
            self.add("folder", f"unfinished episode (a {PARTIAL_SUFFIX} folder: the recorder "
                               "stopped before finishing); readers skip it")
            return self.problems
        if not EPISODE_ID_RE.fullmatch(path.name):
            self.add("folder", f"name {path.name!r} is not a valid episode id "
                               "(letters, digits, '_' or '-' only)")
        for name in EPISODE_FILES:
            if not (path / name).is_file():
                self.add(name, "missing")
        meta = self.check_meta() if (path / META_FILE).is_file() else None
        data = self.check_actions(meta) if (path / ACTIONS_FILE).is_file() else None
        if (path / VIDEO_FILE).is_file():
            self.check_video(meta, data)
        return self.problems

    def check_meta(self) -> EpisodeMeta | None:
        try:
            meta = load_meta(self.path / META_FILE)
        except EpisodeError as exc:
            self.add(META_FILE, str(exc).removeprefix(f"{self.path / META_FILE}: "))
            return None
        if meta.episode_id != self.path.name:
            self.add(META_FILE, f"episode_id {meta.episode_id!r} does not match the folder "
                                f"name {self.path.name!r}")
        if meta.scene != self.path.parent.name:
            self.add(META_FILE, f"scene {meta.scene!r} but the episode lies in folder "
                                f"{self.path.parent.name!r} (layout: <out>/<scene>/<episode_id>/)")
        if abs(meta.duration_s - meta.frames / meta.fps) > self.atol:
            self.add(META_FILE, f"duration_s is {meta.duration_s} but frames / fps is "
                                f"{meta.frames / meta.fps}")
        return meta

    def check_actions(self, meta: EpisodeMeta | None) -> dict[str, np.ndarray] | None:
        _, data, problems = _parse_actions(self.path / ACTIONS_FILE)
        for where, message in problems:
            self.add(where, message)
        if not data:
            return None
        n = len(next(iter(data.values())))
        if meta is not None and n != meta.frames:
            self.add(ACTIONS_FILE, f"{n} rows but meta.json says frames = {meta.frames}")
        if n == 0:
            self.add(ACTIONS_FILE, "no rows")
        elif all(c in data for c in COLUMNS):  # else unparsable cells were reported above
            self.check_rows(data, meta)
        return data

    def cell(self, row: int, column: str) -> str:
        return f"{ACTIONS_FILE} row {row} column {column}"

    def check_rows(self, d: dict[str, np.ndarray], meta: EpisodeMeta | None) -> None:
        n, atol = len(d["frame"]), self.atol
        rows = np.arange(n)
        if (wrong := np.flatnonzero(d["frame"] != rows)).size:
            i = int(wrong[0])
            self.add(self.cell(i, "frame"), f"is {d['frame'][i]}, expected {i} (frame must "
                                            f"count 0..{n - 1}; {_n(wrong.size, 'row')} differ)")
        for c in KEY_COLUMNS:
            if (wrong := np.flatnonzero((d[c] != 0) & (d[c] != 1))).size:
                i = int(wrong[0])
                self.add(self.cell(i, c), f"is {d[c][i]}, keys must be 0 or 1 "
                                          f"({_n(wrong.size, 'such row')})")
        for c, values in d.items():
            if values.dtype.kind == "f" and (wrong := np.flatnonzero(~np.isfinite(values))).size:
                i = int(wrong[0])
                count = _n(wrong.size, "non-finite value")
                self.add(self.cell(i, c), f"is {values[i]} ({count} in this column)")
        t = d["t"]
        steps_bad = ~(np.diff(t) > 0) & np.isfinite(t[1:]) & np.isfinite(t[:-1])
        if (wrong := np.flatnonzero(steps_bad)).size:
            i = int(wrong[0]) + 1
            self.add(self.cell(i, "t"), f"time does not increase: {t[i]} after {t[i - 1]} "
                                        f"({_n(wrong.size, 'such row')})")
        if meta is not None and (w := _worst(t - rows / meta.fps, atol)):
            i, count = w
            self.add(self.cell(i, "t"), f"is {t[i]}, expected frame / fps = {i / meta.fps} "
                                        f"(largest error; {_over(count, atol)})")
        self.check_rotation(d, atol)
        fov = d["fov"]
        if (wrong := np.flatnonzero((fov <= 0) | (fov >= 180))).size:
            i = int(wrong[0])
            self.add(self.cell(i, "fov"), f"is {fov[i]}, must be in (0, 180) degrees "
                                          f"({_n(wrong.size, 'such row')})")

    def check_rotation(self, d: dict[str, np.ndarray], atol: float) -> None:
        q = np.stack([d[c] for c in ("qw", "qx", "qy", "qz")], axis=-1)
        if w := _worst(np.linalg.norm(q, axis=-1) - 1.0, QUAT_NORM_TOL):
            i, count = w
            self.add(self.cell(i, "qw"), f"quaternion norm is {np.linalg.norm(q[i])!r}, must be "
                                         f"1 within {QUAT_NORM_TOL} (largest error; "
                                         f"{_over(count, QUAT_NORM_TOL)})")
        yaw, pitch, roll = d["yaw"], d["pitch"], d["roll"]
        with np.errstate(invalid="ignore"):
            # The rotation angle between the angles' quaternion and the logged one: exact at the
            # poles too, where yaw and roll alone are not defined.
            qa = quat_from_ypr(yaw, pitch, roll)
            qn = quat_normalize(q)
            sign = np.where(np.sum(qa * qn, axis=-1, keepdims=True) < 0, -1.0, 1.0)
            chord = np.linalg.norm(qa - sign * qn, axis=-1)
            angle = np.degrees(4 * np.arcsin(np.minimum(chord / 2, 1.0)))
        if w := _worst(angle, atol):
            i, count = w
            qy, qp, qr = (float(a) for a in ypr_from_quat(qn[i]))
            self.add(self.cell(i, "yaw"),
                     f"yaw/pitch/roll ({yaw[i]}, {pitch[i]}, {roll[i]}) disagree with the "
                     f"quaternion (its yaw/pitch/roll: {qy}, {qp}, {qr}) by {angle[i]} degrees "
                     f"(largest error; {_over(count, atol)})")
        for c in ("mouse_dx", "mouse_dy"):
            if w := _worst(d[c][:1], atol):
                self.add(self.cell(0, c), f"is {d[c][0]}, row 0 must have no mouse motion")
        if len(yaw) < 2:
            return
        dyaw = wrap_deg(np.diff(yaw))
        dpitch = wrap_deg(np.diff(pitch))
        for c, step, name, err in (
            # the angle differences are wrapped, the errors are not: a delta off by 360 is wrong
            ("mouse_dx", -dyaw, "-(yaw[i] - yaw[i-1])", d["mouse_dx"][1:] + dyaw),
            ("mouse_dy", dpitch, "pitch[i] - pitch[i-1]", d["mouse_dy"][1:] - dpitch),
        ):
            if w := _worst(err, atol):
                i, count = w
                self.add(self.cell(i + 1, c),
                         f"is {d[c][i + 1]} but {name} is {step[i]}: alignment identity broken "
                         f"(largest error {abs(err[i]):.9g}; {_over(count, atol)})")

    def check_video(self, meta: EpisodeMeta | None, data: dict[str, np.ndarray] | None) -> None:
        try:
            info = probe(self.path / VIDEO_FILE, count=self.decode_video)
        except VideoError as exc:
            self.add(VIDEO_FILE, f"cannot be read: {exc}")
            return
        if info.codec != "h264":
            self.add(VIDEO_FILE, f"codec is {info.codec!r}, must be 'h264'")
        if info.pix_fmt != "yuv420p":
            self.add(VIDEO_FILE, f"pixel format is {info.pix_fmt!r}, must be 'yuv420p'")
        if info.damage:
            self.add(VIDEO_FILE, f"truncated or corrupt: {info.damage}")
        if meta is not None:
            if (info.width, info.height) != (meta.width, meta.height):
                self.add(VIDEO_FILE, f"size is {info.width}x{info.height} but meta.json says "
                                     f"{meta.width}x{meta.height}")
            if abs(info.fps - meta.fps) > 1e-3:
                self.add(VIDEO_FILE, f"frame rate is {info.fps} but meta.json says {meta.fps}")
        if info.frames is not None and data:
            n = len(next(iter(data.values())))
            if n != info.frames:
                self.add(VIDEO_FILE, f"decodes to {info.frames} frames but actions.csv has "
                                     f"{n} rows")
        elif info.frames is not None and meta is not None and info.frames != meta.frames:
            self.add(VIDEO_FILE, f"decodes to {info.frames} frames but meta.json says frames = "
                                 f"{meta.frames}")


def validate_episode(path: str | Path, decode_video: bool = True,
                     atol: float = 1e-6) -> list[Problem]:
    """Every contract violation of the episode at ``path`` (empty when valid); never raises for
    bad data. ``decode_video=False`` skips counting the decoded frames (faster). ``atol`` bounds
    the time, angle and alignment-identity errors, in seconds and degrees."""
    return _Checker(Path(path), decode_video, atol).run()
