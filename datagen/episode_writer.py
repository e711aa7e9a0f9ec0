"""Writing episodes: the one way every recorder creates an episode folder.

:class:`EpisodeWriter` encodes frames as they come (the built-in engine, the Unreal plugin);
:func:`write_episode` adopts a video another program recorded (OBS for GTA V) with its rows.
Both stream into ``<episode_id>.partial/`` and publish with one atomic rename
(:mod:`datagen.episode` is the contract they write).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from datagen.episode import (
    ACTIONS_FILE,
    COLUMNS,
    EXTRA_COLUMN_RE,
    KEY_COLUMNS,
    META_FILE,
    PARTIAL_SUFFIX,
    ROW_COLUMNS,
    VIDEO_FILE,
    EpisodeError,
    EpisodeMeta,
    episode_dir,
    fsync_path,
    write_meta,
)
from datagen.video import H264Writer, VideoError


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


class _EpisodeFolder:
    """``<episode_id>.partial/`` with its CSV streaming and its ``meta.json``: what both ways of
    writing an episode share, up to the one atomic rename that publishes it."""

    def __init__(self, out_root: str | Path, meta: EpisodeMeta,
                 extra_columns: Sequence[str]) -> None:
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
        self.meta = meta
        self.rows = 0
        self.closed = False
        self._row_columns = (*ROW_COLUMNS, *self.extra_columns)
        self._is_key = tuple(c in KEY_COLUMNS for c in self._row_columns)
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
        except OSError as exc:
            self.close_csv()
            raise EpisodeError(f"cannot start episode {self.partial_path}: {exc}") from exc

    def line(self, row: Mapping[str, float], frame: int) -> str:
        """Row ``frame`` as a CSV line (``frame`` and ``t`` stamped here); EpisodeError names
        every missing, unknown or bad cell."""
        if self.closed:
            raise EpisodeError(f"adding a row to {self.partial_path} after finish() or abort()")
        missing = [c for c in self._row_columns if c not in row]
        unknown = sorted(set(row) - set(self._row_columns))
        errors = []
        if missing:
            errors.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            errors.append(f"unknown columns: {', '.join(unknown)}"
                          + (" (frame and t are stamped by the writer)"
                             if {"frame", "t"} & set(unknown) else ""))
        cells = [str(frame), repr(frame / self.meta.fps)]
        if not errors:
            for column, is_key in zip(self._row_columns, self._is_key, strict=True):
                try:
                    cells.append(format_cell(column, row[column], is_key))
                except EpisodeError as exc:
                    errors.append(str(exc))
        if errors:
            raise EpisodeError(f"frame {frame}: " + "; ".join(errors))
        return ",".join(cells) + "\n"

    def write(self, line: str) -> None:
        self._csv.write(line)
        self.rows += 1

    def close_csv(self) -> None:
        if not self.closed:
            self.closed = True
            self._csv.close()

    def publish(self, video_frames: int) -> Path:
        """Check the video's frame count against the rows, write the final ``meta.json`` and
        rename the folder to its final name; on a mismatch the folder stays ``.partial``."""
        self._csv.flush()
        os.fsync(self._csv.fileno())
        self.close_csv()
        if video_frames != self.rows:
            raise EpisodeError(f"{self.partial_path}: {video_frames} video frames but "
                               f"{self.rows} CSV rows; left unfinished")
        self.meta.frames = self.rows
        self.meta.duration_s = self.rows / self.meta.fps
        problems = self.meta.problems()
        if problems:
            raise EpisodeError(f"{self.partial_path}: invalid metadata: {'; '.join(problems)}; "
                               "left unfinished")
        write_meta(self.partial_path / META_FILE, self.meta)
        fsync_path(self.partial_path / VIDEO_FILE)
        fsync_path(self.partial_path)
        if self.final_path.exists():
            raise EpisodeError(f"episode {self.final_path} appeared while recording; refusing to "
                               f"overwrite it (this one is left in {self.partial_path})")
        os.rename(self.partial_path, self.final_path)
        fsync_path(self.final_path.parent)
        return self.final_path


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
        self.meta = dataclasses.replace(
            meta, video={**meta.video, "codec": "h264", "pix_fmt": "yuv420p", "crf": crf,
                         "preset": preset},
            engine=dict(meta.engine), settings=dict(meta.settings), extra=dict(meta.extra))
        self._folder = _EpisodeFolder(out_root, self.meta, extra_columns)
        self.final_path, self.partial_path = self._folder.final_path, self._folder.partial_path
        self.extra_columns = self._folder.extra_columns
        try:
            self._video = H264Writer(self.partial_path / VIDEO_FILE, meta.width, meta.height,
                                     meta.fps, crf=crf, preset=preset, threads=threads,
                                     pix_fmt=pix_fmt)
        except (OSError, ValueError, VideoError) as exc:
            self._folder.close_csv()
            raise EpisodeError(f"cannot start episode {self.partial_path}: {exc}") from exc

    @property
    def frames(self) -> int:
        """Frames added so far."""
        return self._folder.rows

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._folder.closed:
            self.finish()

    def add_frame(self, image: np.ndarray, row: Mapping[str, float]) -> None:
        """Append frame ``self.frames``: its image (uint8 RGB ``[H, W, 3]``, or the layout of the
        writer's ``pix_fmt``, see :data:`datagen.video.INPUT_PIX_FMTS`) and its CSV row (every
        contract column but ``frame`` and ``t``, plus the declared extra columns)."""
        line = self._folder.line(row, self.frames)
        self._video.write(image)
        self._folder.write(line)

    def finish(self) -> Path:
        """Close the video and CSV, write ``meta.json``, rename to the final folder; returns it."""
        if self._folder.closed:
            raise EpisodeError(f"finish on {self.partial_path} after finish() or abort()")
        if self.frames == 0:
            self.abort()
            raise EpisodeError(f"episode {self.partial_path} has no frames; left unfinished")
        try:
            encoded = self._video.close()
        except VideoError:
            self.abort()
            raise
        return self._folder.publish(encoded)

    def abort(self) -> None:
        """Stop now; the ``.partial`` folder stays (salvageable), never a finished episode."""
        if self._folder.closed:
            return
        self._video.kill()
        self._folder.close_csv()


def write_episode(
    out_root: str | Path,
    meta: EpisodeMeta,
    rows: Iterable[Mapping[str, float]],
    place_video: Callable[[Path], int],
    extra_columns: Sequence[str] = (),
) -> Path:
    """Write an episode whose video was recorded by another program (OBS, for GTA V).

    ``rows`` are the frames' CSV rows (as for :meth:`EpisodeWriter.add_frame`); every row is
    checked before anything is written. ``place_video(dest)`` puts the H.264 video at ``dest``
    (inside the ``.partial`` folder: moved, remuxed or encoded) and returns its decoded frame
    count, which must equal the rows. The episode is published with one atomic rename; on any
    error it stays in its ``.partial`` folder and the error propagates.
    """
    folder = _EpisodeFolder(out_root, dataclasses.replace(
        meta, engine=dict(meta.engine), settings=dict(meta.settings), extra=dict(meta.extra)),
        extra_columns)
    try:
        lines = [folder.line(row, frame) for frame, row in enumerate(rows)]
        if not lines:
            raise EpisodeError(f"episode {folder.partial_path} has no frames; left unfinished")
        for line in lines:
            folder.write(line)
        frames = place_video(folder.partial_path / VIDEO_FILE)
    except BaseException:
        folder.close_csv()
        raise
    return folder.publish(frames)
