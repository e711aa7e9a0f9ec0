"""``curation report``: an HTML page with PNG charts showing a curator what a shard folder holds.

Reads ``dataset.json``, ``manifest.parquet``, ``rejects.parquet`` and the ``keys.npy``,
``mouse.npy``, ``pose.npy`` and ``json`` members of every ``<split>-NNNNNN.tar`` (videos are not
decoded, except the first frame of a few clips for a thumbnail strip), and writes::

    <out>/index.html         counts, rejects, action statistics and coverage per split, speed,
                             trajectories, a strip of first frames
    <out>/*.png              the charts it shows (matplotlib Agg), linked by relative paths

Every number behind a chart is also embedded in the page as JSON (``<script id="report-data">``),
so tools and tests can read them. The folder is built under a temporary name and renamed into
place, so a reader never sees a half-written report.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from curation.coverage_report import coverage_html, split_coverage
from curation.html_page import (
    ACCENT,
    esc,
    figure,
    img,
    page,
    save_png,
    table,
    write_page_folder,
)
from curation.shardwriter import DATASET_FILE, MANIFEST_FILE, REJECTS_FILE, SHARD_RE, reason_kind
from datagen.episode import KEYS

REPORT_DIR = "report"
LABEL_MEMBERS = ("keys.npy", "mouse.npy", "pose.npy", "json")  # what the statistics need
KEY_LABELS = ("W", "S", "A", "D", "Space", "Shift", "Ctrl")  # display names of KEYS, in order
TOP_COMBOS = 12  # key combinations drawn in the chart (the page's data holds all of them)
STRIP_CLIPS = 6  # clips in the first-frame strip (first clip of the first episodes met)
MAX_TRACKS = 400  # trajectories drawn per scene plot
MAX_REJECT_ROWS = 500  # reject rows listed in the page (all are in rejects.parquet)
HIST_BINS = 61  # odd, so 0 is the centre of a mouse bin
OUTLIER_QUANTILE = 0.999  # histogram ranges cover this share; the rest lands in the end bins


class ReportError(ValueError):
    """The folder is not a readable shard folder (what is missing or broken is in the message)."""


@dataclass
class Clip:
    key: str
    split: str
    shard: str
    episode: str
    scene: str
    backend: str
    fps: float
    frames: int


@dataclass
class ShardStats:
    """Everything the report shows, gathered in one pass over the shard folder."""

    dataset: dict
    clips: list[Clip] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)  # uint8 [T, 7] per clip
    mouse: list[np.ndarray] = field(default_factory=list)  # float32 [T, 2] per clip
    speed: list[np.ndarray] = field(default_factory=list)  # float64 [T] per clip, m/s
    tracks: dict[str, list[tuple[str, np.ndarray]]] = field(  # scene -> (episode, [T, 2] x, y)
        default_factory=lambda: defaultdict(list))
    strip: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (key, first frame RGB)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    manifest_keys: set[str] = field(default_factory=set)


def write_report(shards: Path, out: Path | None = None) -> Path:
    """Write ``index.html`` and its PNGs for the shard folder ``shards`` into ``out`` (default
    ``<shards>/report``), replacing an earlier report there. Returns the path of ``index.html``."""
    shards = Path(shards)
    stats = collect(shards)
    return write_page_folder(Path(out) if out is not None else shards / REPORT_DIR,
                             lambda folder: _render(stats, shards, folder))


# --------------------------------------------------------------------------- reading


def collect(shards: Path) -> ShardStats:
    """Read the shard folder ``shards``; ReportError says what is missing or broken."""
    shards = Path(shards)
    if not shards.is_dir():
        raise ReportError(f"no such shard folder: {shards}")
    if not (shards / DATASET_FILE).is_file():
        raise ReportError(f"{shards} is not a shard folder (no {DATASET_FILE})")
    try:
        dataset = json.loads((shards / DATASET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {shards / DATASET_FILE}: {exc}") from exc
    stats = ShardStats(dataset=dataset if isinstance(dataset, dict) else {})
    if (shards / MANIFEST_FILE).is_file():
        stats.manifest_keys = set(_read_parquet(shards / MANIFEST_FILE, ["key"])["key"])
    if (shards / REJECTS_FILE).is_file():
        stats.rejects = _read_parquet(
            shards / REJECTS_FILE, ["source", "episode", "first_frame", "frames", "reason"])
    strip_episodes: set[str] = set()
    for tar in sorted(p for p in shards.glob("*.tar") if SHARD_RE.fullmatch(p.name)):
        for key, members in tar_samples(tar):
            clip, keys, mouse, pose = _parse_sample(tar, key, members)
            stats.clips.append(clip)
            stats.keys.append(keys)
            stats.mouse.append(mouse.astype(np.float32))
            stats.speed.append(speeds(pose[:, :3], clip.fps))
            if len(stats.tracks[clip.scene]) < MAX_TRACKS:
                stats.tracks[clip.scene].append((clip.episode, pose[:, :2].astype(np.float32)))
            if (len(stats.strip) < STRIP_CLIPS and clip.episode not in strip_episodes
                    and "mp4" in members):
                strip_episodes.add(clip.episode)
                stats.strip.append((key, _first_frame(tar, key, members["mp4"])))
    return stats


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ReportError(f"{path} has no column(s) {', '.join(missing)}")
    return table


def tar_samples(tar: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample of a WebDataset tar, in tar order (a key is the
    member name up to the first dot of its base name, as webdataset splits it)."""
    key, members = None, {}
    try:
        with tarfile.open(tar) as f:
            for info in f:
                if not info.isfile():
                    continue
                folder, _, base = info.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                if not dot:
                    continue
                name = f"{folder}/{stem}" if folder else stem
                if name != key and key is not None:
                    yield key, members
                    members = {}
                key = name
                members[ext] = f.extractfile(info).read()
    except (OSError, tarfile.TarError) as exc:
        raise ReportError(f"cannot read shard {tar}: {exc}") from exc
    if key is not None:
        yield key, members


def _parse_sample(
    tar: Path, key: str, members: dict[str, bytes]
) -> tuple[Clip, np.ndarray, np.ndarray, np.ndarray]:
    where = f"{tar.name} sample {key}"
    missing = [m for m in LABEL_MEMBERS if m not in members]
    if missing:
        raise ReportError(f"{where} has no {', '.join(missing)} member")
    try:
        keys, mouse, pose = (np.load(io.BytesIO(members[m]), allow_pickle=False)
                             for m in LABEL_MEMBERS[:3])
        meta = json.loads(members["json"])
    except ValueError as exc:
        raise ReportError(f"{where}: unreadable member: {exc}") from exc
    n = len(keys)
    shapes = {"keys.npy": (keys.shape, (n, len(KEYS))), "mouse.npy": (mouse.shape, (n, 2)),
              "pose.npy": (pose.shape, (n, 8))}
    bad = [f"{m} has shape {got}, expected {want}" for m, (got, want) in shapes.items()
           if got != want]
    if bad:
        raise ReportError(f"{where}: {'; '.join(bad)}")
    fps = meta.get("fps")
    if not isinstance(fps, (int, float)) or not fps > 0:
        raise ReportError(f"{where}: json has no positive fps (got {fps!r})")
    clip = Clip(key=key, split=tar.name.split("-")[0], shard=tar.name,
                episode=str(meta.get("episode", "")), scene=str(meta.get("scene", "")),
                backend=str(meta.get("backend", "")), fps=float(fps), frames=n)
    return clip, keys.astype(np.uint8), mouse, pose.astype(np.float64)


def speeds(positions: np.ndarray, fps: float) -> np.ndarray:
    """Speed in m/s of each of the ``[T, 3]`` positions sampled at ``fps`` (central differences,
    one-sided at the ends; zeros for a single frame)."""
    if len(positions) < 2:
        return np.zeros(len(positions))
    return np.linalg.norm(np.gradient(positions, axis=0), axis=1) * fps


def _first_frame(tar: Path, key: str, mp4: bytes) -> np.ndarray:
    try:
        with av.open(io.BytesIO(mp4)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise ReportError(f"{tar.name} sample {key}: cannot decode its mp4: {exc}") from exc
    raise ReportError(f"{tar.name} sample {key}: its mp4 has no frames")


# --------------------------------------------------------------------------- numbers


def summarize(stats: ShardStats) -> dict:
    """The numbers the page shows (JSON-ready): counts, rejects, key and mouse statistics and
    histograms whose counts add up to the number of frames."""
    rows = defaultdict(lambda: {"clips": 0, "frames": 0, "hours": 0.0})
    for clip in stats.clips:
        for group in ((clip.split, clip.scene), (clip.split, "all"), ("all", "all")):
            rows[group]["clips"] += 1
            rows[group]["frames"] += clip.frames
            rows[group]["hours"] += clip.frames / clip.fps / 3600
    counts = [{"split": s, "scene": c, **v} for (s, c), v in sorted(
        rows.items(), key=lambda kv: (kv[0][0] == "all", kv[0][0], kv[0][1] == "all", kv[0][1]))]

    keys = np.concatenate(stats.keys) if stats.keys else np.zeros((0, len(KEYS)), np.uint8)
    mouse = np.concatenate(stats.mouse) if stats.mouse else np.zeros((0, 2), np.float32)
    speed = np.concatenate(stats.speed) if stats.speed else np.zeros(0)
    frames = len(keys)
    pressed = keys.sum(axis=0).astype(int)
    combos = Counter(combo_label(row) for row in keys)
    rejects = stats.rejects
    by_kind: dict[str, dict] = {}
    for reason, frames_rejected in zip(rejects.get("reason", []), rejects.get("frames", []),
                                       strict=True):
        entry = by_kind.setdefault(reason_kind(str(reason)), {"rows": 0, "frames": 0})
        entry["rows"] += 1
        entry["frames"] += max(int(frames_rejected), 0)
    return {
        "frames": frames,
        "clips": len(stats.clips),
        "counts": counts,
        "key_frames": {k: int(p) for k, p in zip(KEY_LABELS, pressed, strict=True)},
        "key_fraction": {k: (float(p) / frames if frames else 0.0)
                         for k, p in zip(KEY_LABELS, pressed, strict=True)},
        "combos": combos.most_common(),
        "mouse_dx": histogram(mouse[:, 0], symmetric=True),
        "mouse_dy": histogram(mouse[:, 1], symmetric=True),
        "speed": histogram(speed, symmetric=False),
        "coverage": split_coverage([(c.split, k, m) for c, k, m in zip(
            stats.clips, stats.keys, stats.mouse, strict=True)]),
        "rejects_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]["rows"])),
        "manifest_only": sorted(stats.manifest_keys - {c.key for c in stats.clips}),
        "tars_only": sorted({c.key for c in stats.clips} - stats.manifest_keys),
    }


def combo_label(pressed: np.ndarray) -> str:
    """``"W+Shift"`` for a multi-hot row in the order of KEYS; ``"none"`` when nothing is held."""
    return "+".join(k for k, p in zip(KEY_LABELS, pressed, strict=True) if p) or "none"


def histogram(values: np.ndarray, symmetric: bool) -> dict:
    """Counts of ``values`` in HIST_BINS bins covering OUTLIER_QUANTILE of them (from 0, or
    symmetric around 0); values beyond the range count in the end bins, so the counts always
    sum to ``len(values)``."""
    values = np.asarray(values, dtype=np.float64)
    top = float(np.quantile(np.abs(values), OUTLIER_QUANTILE)) if len(values) else 0.0
    top = max(top * 1.05, 1.0)
    lo, bins = (-top, HIST_BINS) if symmetric else (0.0, HIST_BINS - 1)
    counts, edges = np.histogram(np.clip(values, lo, top), bins=bins, range=(lo, top))
    outside = int(np.sum((values < lo) | (values > top)))
    return {"edges": edges.tolist(), "counts": counts.tolist(), "clipped": outside}


# --------------------------------------------------------------------------- charts


def _barh(folder: Path, name: str, labels: list[str], values: list[float], xlabel: str,
          fmt: str) -> str:
    fig, ax = figure(7.5, 0.9 + 0.32 * len(labels))
    y = np.arange(len(labels))[::-1]
    bars = ax.barh(y, values, color=ACCENT, height=0.7)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.bar_label(bars, [fmt.format(v) for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(values) * 1.18 if values and max(values) > 0 else 1)
    if fmt == "{:d}":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_png(fig, folder, name)


def _hist_plot(ax: object, hist: dict, xlabel: str, log: bool) -> None:
    edges = np.asarray(hist["edges"])
    ax.stairs(hist["counts"], edges, fill=True, color=ACCENT, alpha=0.85)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("frames")
    if hist["clipped"]:
        ax.set_title(f"{hist['clipped']} beyond the range are counted in the end bins",
                     fontsize=8, color="#666")


def _mouse_png(folder: Path, summary: dict) -> str:
    fig = Figure(figsize=(10, 3.4), dpi=110)
    FigureCanvasAgg(fig)
    for i, (col, label) in enumerate((("mouse_dx", "mouse_dx (deg/frame, + = turn right)"),
                                      ("mouse_dy", "mouse_dy (deg/frame, + = look up)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        _hist_plot(ax, summary[col], label, log=True)
        ax.spines[["top", "right"]].set_visible(False)
    return save_png(fig, folder, "mouse.png")


def _speed_png(folder: Path, summary: dict) -> str:
    fig, ax = figure(7.5, 3.4)
    _hist_plot(ax, summary["speed"], "speed (m/s, from pose differences)", log=False)
    return save_png(fig, folder, "speed.png")


def _tracks_png(folder: Path, scene: str, tracks: list[tuple[str, np.ndarray]],
                index: int) -> str:
    fig, ax = figure(6.5, 6.5)
    episodes = sorted({episode for episode, _ in tracks})
    cmap = colormaps["tab10" if len(episodes) <= 10 else "viridis"]
    for episode, t in tracks:
        k = episodes.index(episode)
        colour = cmap(k if len(episodes) <= 10 else k / (len(episodes) - 1))
        ax.plot(t[:, 0], t[:, 1], color=colour, lw=1.3, alpha=0.85)
        ax.plot(t[0, 0], t[0, 1], "o", color=colour, ms=3)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("pos_x (m)")
    ax.set_ylabel("pos_y (m)")
    ax.set_title(f"{scene}: {len(tracks)} clip(s) of {len(episodes)} episode(s) (a colour "
                 "each), dots mark clip starts", fontsize=9)
    ax.grid(alpha=0.25)
    return save_png(fig, folder, f"trajectories_{index:02d}.png")


def _strip_png(folder: Path, strip: list[tuple[str, np.ndarray]]) -> str:
    fig = Figure(figsize=(2.6 * len(strip), 2.0), dpi=110)
    FigureCanvasAgg(fig)
    for i, (key, image) in enumerate(strip):
        ax = fig.add_subplot(1, len(strip), i + 1)
        ax.imshow(image)
        ax.set_title(key, fontsize=7)
        ax.axis("off")
    return save_png(fig, folder, "strip.png")


# --------------------------------------------------------------------------- page

def _render(stats: ShardStats, shards: Path, folder: Path) -> str:
    """Draw the charts into ``folder`` and return the page."""
    s = summarize(stats)
    total = next((r for r in s["counts"] if r["split"] == "all"), {"hours": 0.0})
    parts = [f"<h1>Shard report</h1><div class=sub>{esc(shards.resolve())} &middot; "
             f"{esc(stats.dataset.get('format', 'unknown format'))}</div>",
             "<div class=cards>" + "".join(
                 f"<div class=card><b>{esc(v)}</b>{esc(k)}</div>" for k, v in (
                     ("clips", s["clips"]), ("frames", s["frames"]),
                     ("hours", f"{total['hours']:.3f}"), ("rejects", len(stats.rejects)),
                     ("scenes", len({c.scene for c in stats.clips})))) + "</div>"]
    if s["manifest_only"] or s["tars_only"]:
        parts.append(f"<p class=warn>manifest.parquet and the tars disagree: "
                     f"{len(s['manifest_only'])} clip(s) only in the manifest, "
                     f"{len(s['tars_only'])} only in the tars (first: "
                     f"{esc((s['manifest_only'] + s['tars_only'])[0])}).</p>")

    parts.append("<h2>Clips, frames and hours</h2>")
    rows = [[r["split"], r["scene"], r["clips"], r["frames"], f"{r['hours']:.3f}"]
            for r in s["counts"]]
    totals = {i for i, r in enumerate(s["counts"]) if r["scene"] == "all"}
    parts.append(table(["split", "scene", "clips", "frames", "hours"], rows, {2, 3, 4}, totals))
    settings = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                for k, v in stats.dataset.items()]
    parts.append("<details><summary>dataset.json</summary>"
                 + table(["setting", "value"], settings) + "</details>")

    parts.append("<h2>Rejects</h2>")
    kinds = s["rejects_by_kind"]
    if kinds:
        parts.append(table(["reason", "rows", "frames"], [[k, v["rows"], v["frames"]]
                                                          for k, v in kinds.items()], {1, 2}))
        parts.append(img(_barh(folder, "rejects.png", [_short(k) for k in kinds],
                                [v["rows"] for v in kinds.values()], "rejected rows", "{:d}"),
                          "rejects by reason"))
        shown = stats.rejects.head(MAX_REJECT_ROWS)
        more = len(stats.rejects) - len(shown)
        parts.append(f"<details><summary>every reject ({len(stats.rejects)} rows"
                     + (f", first {len(shown)} shown" if more else "") + ")</summary>"
                     + table(["episode", "first frame", "frames", "reason", "source"], [
                         [r.episode, r.first_frame, r.frames, r.reason, r.source]
                         for r in shown.itertuples()], {1, 2}) + "</details>")
    else:
        parts.append("<p>No rejects.</p>")

    if s["frames"]:
        parts.append("<h2>Actions</h2><div class=grid>")
        parts.append(img(_barh(folder, "keys.png", list(KEY_LABELS),
                                list(s["key_fraction"].values()), "share of frames held",
                                "{:.1%}"), "share of frames each key is held"))
        top = s["combos"][:TOP_COMBOS]
        parts.append(img(_barh(folder, "combos.png", [c for c, _ in top],
                                [n / s["frames"] for _, n in top], "share of frames",
                                "{:.1%}"), "top key combinations"))
        parts.append("</div>")
        parts.append("<details><summary>every key combination</summary>" + table(
            ["keys held", "frames", "share"],
            [[c, n, f"{n / s['frames']:.2%}"] for c, n in s["combos"]], {1, 2}) + "</details>")
        parts += coverage_html(s["coverage"], folder)
        parts.append("<h2>Mouse</h2>" + img(_mouse_png(folder, s), "mouse delta histograms"))
        parts.append("<h2>Speed</h2>" + img(_speed_png(folder, s), "speed histogram"))
        parts.append("<h2>Trajectories (top down)</h2><div class=grid>")
        for i, scene in enumerate(sorted(stats.tracks)):
            parts.append(img(_tracks_png(folder, scene, stats.tracks[scene], i),
                              f"trajectories in {scene}"))
        parts.append("</div>")
    if stats.strip:
        parts.append("<h2>First frames</h2>" + img(_strip_png(folder, stats.strip),
                                                   "first frames of a few clips"))
    return page(f"Shard report: {shards.name}", parts, s)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
