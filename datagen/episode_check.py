"""Checking episodes against the contract: ``datagen validate`` and curation's gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.episode import (
    ACTIONS_FILE,
    COLUMNS,
    EPISODE_FILES,
    EPISODE_ID_RE,
    KEY_COLUMNS,
    META_FILE,
    PARTIAL_SUFFIX,
    QUAT_NORM_TOL,
    VIDEO_FILE,
    EpisodeError,
    EpisodeMeta,
    load_meta,
    parse_actions,
    plural,
)
from datagen.rotation import quat_from_ypr, quat_normalize, wrap_deg, ypr_from_quat
from datagen.video import VideoError, probe


@dataclass
class Problem:
    """One contract violation: which episode, where in it, and what is wrong."""

    episode: str
    where: str  # "actions.csv row 17 column qw", "meta.json", "video.mp4", "folder"
    message: str

    def __str__(self) -> str:
        return f"{self.episode}: {self.where}: {self.message}"



def _over(count: int, tol: float) -> str:
    return f"{plural(count, 'row')} off by more than {tol}"


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
        _, data, problems = parse_actions(self.path / ACTIONS_FILE)
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
                                            f"count 0..{n - 1}; "
                                            f"{plural(wrong.size, 'row')} differ)")
        for c in KEY_COLUMNS:
            if (wrong := np.flatnonzero((d[c] != 0) & (d[c] != 1))).size:
                i = int(wrong[0])
                self.add(self.cell(i, c), f"is {d[c][i]}, keys must be 0 or 1 "
                                          f"({plural(wrong.size, 'such row')})")
        for c, values in d.items():
            if values.dtype.kind == "f" and (wrong := np.flatnonzero(~np.isfinite(values))).size:
                i = int(wrong[0])
                count = plural(wrong.size, "non-finite value")
                self.add(self.cell(i, c), f"is {values[i]} ({count} in this column)")
        t = d["t"]
        steps_bad = ~(np.diff(t) > 0) & np.isfinite(t[1:]) & np.isfinite(t[:-1])
        if (wrong := np.flatnonzero(steps_bad)).size:
            i = int(wrong[0]) + 1
            self.add(self.cell(i, "t"), f"time does not increase: {t[i]} after {t[i - 1]} "
                                        f"({plural(wrong.size, 'such row')})")
        if meta is not None and (w := _worst(t - rows / meta.fps, atol)):
            i, count = w
            self.add(self.cell(i, "t"), f"is {t[i]}, expected frame / fps = {i / meta.fps} "
                                        f"(largest error; {_over(count, atol)})")
        self.check_rotation(d, atol)
        fov = d["fov"]
        if (wrong := np.flatnonzero((fov <= 0) | (fov >= 180))).size:
            i = int(wrong[0])
            self.add(self.cell(i, "fov"), f"is {fov[i]}, must be in (0, 180) degrees "
                                          f"({plural(wrong.size, 'such row')})")

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
