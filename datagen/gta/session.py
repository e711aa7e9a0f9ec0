"""A GTA V recording session: ``datagen record --backend gta``.

1. The collector listens (:mod:`datagen.gta.collector`) and the session waits for the plugin's
   ``hello``; it connects to OBS and reads its video settings.
2. The plugin is told to ``start`` streaming frame messages; once they flow, OBS starts
   recording (so every video frame has game frames before it), and the plugin draws the
   synchronisation marker for about three video frames (:mod:`datagen.gta.sync`).
3. Until the duration is up or Ctrl-C, it polls OBS's record status (its ``outputDuration``
   against the wall clock refines the start time) and reports progress.
4. OBS stops first, then the plugin; the session waits until OBS has really finalised the file.
5. Synchronisation (:mod:`datagen.gta.sync`) finds the marker, measures the capture latency
   with it, and cuts the recording after it into segments with rows; each segment becomes an
   episode. The one that runs to the end of the recording starts at a key frame and is
   remuxed (MKV) or moved (MP4 from its first frame) without re-encoding; one cut out of the
   middle is re-encoded.

Everything a session receives is kept in ``<out>/gta_sessions/<session>/`` (``samples.jsonl``,
``collector.jsonl``, ``session.json`` and the OBS file until its episodes are published), so
:func:`resync` can run the synchronisation again on it (``datagen gta-sync``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from datagen import __version__
from datagen.episode import EpisodeError, EpisodeMeta, episode_dir, utc_now
from datagen.episode_writer import write_episode
from datagen.gta.collector import DEFAULT_PORT, SAMPLES_FILE, Collector
from datagen.gta.obs import Obs
from datagen.gta.sync import (
    EXTRA_COLUMNS,
    MarkerFit,
    align,
    decided,
    load_samples,
    marker_frames,
    marker_offset,
    repeats,
    segment_rows,
    video_times,
)
from datagen.video import H264Writer, probe, read_frames, remux_to_mp4

SESSIONS = "gta_sessions"
SESSION_FILE = "session.json"
Report = Callable[[str], None]


@dataclass(frozen=True)
class GtaConfig:
    """Everything a session needs; ``check()`` names a bad setting."""

    out: Path
    scene: str = "gta"
    duration_s: float = 600.0
    obs_host: str = "127.0.0.1"
    obs_port: int = 4455
    obs_password: str | None = None
    collector_host: str = "127.0.0.1"
    collector_port: int = DEFAULT_PORT
    plugin_timeout_s: float = 120.0
    offset_ms: float | None = None  # capture latency; None: measured with the marker
    min_frames: int = 30  # shorter segments are not episodes
    keep_obs_file: bool = False
    crf: int = 18  # for segments that must be re-encoded

    def check(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"--duration must be positive, got {self.duration_s}")
        for name in ("obs_port", "collector_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name.replace('_', '-')} must be a TCP port, got "
                                 f"{getattr(self, name)}")
        if self.min_frames < 1:
            raise ValueError(f"--min-frames must be at least 1, got {self.min_frames}")


@dataclass
class SessionResult:
    """What a session produced: finished episodes and the segments or reasons that were not."""

    session: Path
    episodes: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def session_id(now: datetime | None = None) -> str:
    """``gta_YYYYMMDDTHHMMSSZ`` (UTC): a live capture is named by when it started."""
    return "gta_" + (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def record(cfg: GtaConfig, report: Report = print, stop: threading.Event | None = None,
           ) -> SessionResult:
    """Run one session (see the module docstring); Ctrl-C or ``stop`` ends it early, cleanly."""
    cfg.check()
    stop = stop or threading.Event()
    name = session_id()
    folder = Path(cfg.out) / SESSIONS / name
    folder.mkdir(parents=True, exist_ok=False)
    state: dict[str, Any] = {"session": name, "config": _jsonable(asdict(cfg)), "polls": []}
    previous = _on_sigint(stop)
    try:
        with Collector(folder, cfg.collector_host, cfg.collector_port) as collector:
            host, port = collector.address
            report(f"collector listening on {host}:{port}; waiting for the plugin")
            state["plugin"] = collector.wait_hello(cfg.plugin_timeout_s)
            report(f"plugin {state['plugin']['version']} connected (game build "
                   f"{state['plugin'].get('game_version')})")
            with Obs(cfg.obs_host, cfg.obs_port, cfg.obs_password) as obs:
                video = obs.video_settings()
                state["obs"] = {"version": obs.version(), "video": asdict(video)}
                state["obs"]["video"]["fps"] = float(video.fps)
                collector.start(name)
                if not collector.wait_frames(1, 10.0):
                    raise RuntimeError("the plugin took the start message but sent no frames "
                                       "within 10 s (is the game paused or loading?)")
                state["start_wall_s"] = obs.start_recording()
                state["mark_frames"] = _mark(collector, float(video.fps))
                report(f"recording {video.width}x{video.height} at {float(video.fps):g} fps "
                       f"for {cfg.duration_s:g} s (Ctrl-C stops)")
                try:
                    _follow(cfg, obs, collector, state, stop, report)
                finally:
                    obs_file = obs.stop_recording()
                    time.sleep(0.2)  # the plugin's frames covering the last video frame
                    collector.stop()
                    state["obs_file"] = str(obs_file)
                    state["events"] = [asdict(e) for e in obs.record_events()]
                    report(f"OBS wrote {obs_file}; waiting for it to be finalised")
                    obs.wait_finalised(obs_file)
            state["collector"] = dict(collector.counts)
        _write_state(folder, state)
    finally:
        signal.signal(signal.SIGINT, previous)
    return finalise(folder, cfg, report)


def _mark(collector: Collector, video_fps: float) -> int:
    """Have the plugin draw the marker for half a second, once OBS records; returns the number
    of game frames asked for."""
    time.sleep(0.3)  # OBS's first frames come a video tick or more after STARTED
    game_fps = collector.game_fps() or video_fps
    frames = min(120, max(3, math.ceil(0.5 * game_fps)))
    collector.mark(frames)
    return frames


def _on_sigint(stop: threading.Event):
    def handler(signum, frame) -> None:
        stop.set()
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: the caller stops us through ``stop``
        return signal.getsignal(signal.SIGINT)


def _follow(cfg: GtaConfig, obs: Obs, collector: Collector, state: dict, stop: threading.Event,
            report: Report) -> None:
    """Poll OBS once a second until the duration is up; report frames and plugin drops."""
    begin = time.monotonic()
    while not stop.wait(timeout=1.0):
        sent = time.time()
        status = obs.record_status()
        state["polls"].append([sent, time.time(), status.duration_ms])
        elapsed = time.monotonic() - begin
        counts = collector.counts
        report(f"{elapsed:6.1f} s  video {status.timecode}  game frames {counts['frames']}  "
               f"gaps {counts['gaps']}  bad {counts['bad']}")
        if elapsed >= cfg.duration_s:
            return


def _write_state(folder: Path, state: dict) -> None:
    tmp = folder / (SESSION_FILE + ".tmp")
    tmp.write_text(json.dumps(_jsonable(state), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / SESSION_FILE)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def finalise(folder: str | Path, cfg: GtaConfig, report: Report = print) -> SessionResult:
    """Synchronise a session folder into episodes under ``cfg.out/cfg.scene`` (re-runnable:
    episodes already written are kept, the others are written)."""
    folder = Path(folder)
    state = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
    result = SessionResult(session=folder)
    samples, skipped = load_samples(folder / SAMPLES_FILE)
    for reason in skipped:
        report(f"samples: skipped {reason}")
    obs_file = Path(state["obs_file"])
    info = probe(obs_file, count=False)
    times, keys = video_times(obs_file)
    start = float(state["start_wall_s"])
    fit = marker_offset(samples, times, start, marker_frames(obs_file))
    offset, first = _offset(cfg, fit, report)
    alignment = align(samples, times, start, offset, min_frames=cfg.min_frames)
    sure = None if fit is None else decided(samples, times, start, fit)
    fps = _obs_fps(state, info)
    plans = _plan(alignment.segments, first, keys, len(times), cfg.min_frames, float(fps))
    covered = sum(b - a for a, b, _ in plans)
    report(f"sync: {len(times)} video frames, {len(samples)} game frames; "
           f"{covered} frames in {len(plans)} episode(s), {alignment.duplicated} duplicated, "
           f"{alignment.skipped} game frames accumulated")
    if sure is not None and covered:
        inside = np.concatenate([sure[a:b] for a, b, _ in plans])
        report(f"sync: the marker decides the game frame of {inside.mean():.0%} of those video "
               f"frames; the rest were captured within its {(fit.high - fit.low) * 1000:.0f} ms "
               "of a switch of game frames and may show either neighbour")
    lead = plans[0][0] if plans else len(times)
    report(f"sync: the first {lead} video frames (up to the marker's end and the next key "
           "frame) are not used")
    if not plans:
        result.rejected.append(f"none of the {len(times)} video frames after the marker has "
                               f"{cfg.min_frames} gap-free frames of game data in a row")
    elif covered < len(times) - lead:
        result.rejected.append(f"{len(times) - lead - covered} of the {len(times) - lead} video "
                               "frames after the first episode's start are in no episode (gaps "
                               "in the game's messages, stale or short stretches)")
    sync = {"session": state["session"], "start_wall_s": start, "offset_ms": offset * 1000,
            "marker": None if fit is None else {
                "video_frames": list(fit.video_frames), "agree": fit.agree, "seen": fit.seen,
                "latency_ms": [fit.low * 1000, fit.high * 1000]}}
    for n, (a, b, copy) in enumerate(plans):
        episode_id = f"{state['session']}_{n:02d}"
        if episode_dir(cfg.out, cfg.scene, episode_id).exists():
            result.episodes.append(episode_dir(cfg.out, cfg.scene, episode_id))
            continue
        meta = _meta(state, episode_id, cfg.scene, info, (a, b), alignment,
                     sync if sure is None else {**sync, "decided": float(sure[a:b].mean())})
        rows = segment_rows(samples, alignment, (a, b), info.width, info.height)
        place = (_copied_video(obs_file, float(times[a]), fps) if copy
                 else _cut_video(obs_file, (a, b), info, cfg.crf))
        try:
            result.episodes.append(write_episode(cfg.out, meta, rows, place, EXTRA_COLUMNS))
        except (EpisodeError, OSError) as exc:
            result.rejected.append(f"{episode_id}: {exc}")
            continue
        report(f"episode {result.episodes[-1]} ({b - a} frames, "
               f"{'remuxed' if copy else 're-encoded'})")
    if (plans and len(result.episodes) == len(plans) and not cfg.keep_obs_file
            and obs_file.exists()):
        obs_file.unlink()  # every frame worth keeping now lives in an episode
    return result


def _offset(cfg: GtaConfig, fit: MarkerFit | None, report: Report) -> tuple[float, int]:
    """The capture latency to align with, and the first video frame an episode may use."""
    if fit is None:
        report("sync: no marker in the video (is the screen's top-left corner captured?); "
               "aligned by OBS's start time alone, which leaves up to one capture frame of "
               "doubt")
    else:
        report(f"sync: marker on video frames {fit.video_frames[0]}-{fit.video_frames[1]}: "
               f"capture latency {fit.low * 1000:.1f} to {fit.high * 1000:.1f} ms ({fit.agree} "
               f"of {fit.seen} marked frames agree)")
    first = 0 if fit is None else fit.video_frames[1] + 1
    if cfg.offset_ms is not None:
        return cfg.offset_ms / 1000.0, first
    return (0.0 if fit is None else fit.offset), first


def _plan(segments: list[tuple[int, int]], first: int, keys: np.ndarray, frames: int,
          min_frames: int, fps: float) -> list[tuple[int, int, bool]]:
    """Episodes as ``(start, end, copy)`` video frame ranges: segments after ``first``; the one
    reaching the end of the video starts at a key frame (at most 2 s in) and is copied, the
    others are re-encoded."""
    plans = []
    for a, b in segments:
        a = max(a, first)
        copy = False
        if b == frames:
            later = np.flatnonzero(keys[a:min(b, a + int(2 * fps) + 1)])
            if later.size and b - (a + int(later[0])) >= min_frames:
                a, copy = a + int(later[0]), True
        if b - a >= min_frames:
            plans.append((a, b, copy))
    return plans


def resync(folder: str | Path, offset_ms: float | None = None, min_frames: int | None = None,
           report: Report = print) -> SessionResult:
    """:func:`finalise` a session folder again with the settings it was recorded with, or a new
    ``offset_ms`` / ``min_frames`` (``datagen gta-sync``)."""
    folder = Path(folder)
    try:
        state = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder} is not a finished GTA V session ({SESSION_FILE}: "
                         f"{exc})") from None
    cfg = GtaConfig(**{**state["config"], "out": Path(state["config"]["out"])})
    if offset_ms is not None:
        cfg = replace(cfg, offset_ms=offset_ms)
    if min_frames is not None:
        cfg = replace(cfg, min_frames=min_frames)
    cfg.check()
    return finalise(folder, cfg, report)


def _obs_fps(state: dict, info) -> Fraction:
    """OBS's constant frame rate (its video settings), else the file's."""
    video = state.get("obs", {}).get("video", {})
    if video.get("fps_numerator") and video.get("fps_denominator"):
        return Fraction(video["fps_numerator"], video["fps_denominator"])
    return Fraction(info.fps).limit_denominator(1001)


def _copied_video(src: Path, start: float, fps: Fraction) -> Callable[[Path], int]:
    """OBS's recording from the key frame at ``start`` seconds to its end, without re-encoding:
    the file itself when that is all of an MP4 on the frame grid, else remuxed; the original
    goes once every episode is published."""
    def place(dest: Path) -> int:
        if (start == 0 and src.suffix.lower() == ".mp4"
                and probe(src, count=False).fps == float(fps)):
            shutil.copyfile(src, dest)
        else:
            remux_to_mp4(src, dest, fps=fps, keep_audio=False, start=start)
        return probe(dest).frames or 0
    return place


def _cut_video(src: Path, segment: tuple[int, int], info, crf: int) -> Callable[[Path], int]:
    a, b = segment

    def place(dest: Path) -> int:
        with H264Writer(dest, info.width, info.height, info.fps, crf=crf) as writer:
            for k, frame in enumerate(read_frames(src)):
                if k >= b:
                    break
                if k >= a:
                    writer.write(frame)
        return probe(dest).frames or 0
    return place


def _meta(state: dict, episode_id: str, scene: str, info, segment: tuple[int, int],
          alignment, sync: dict) -> EpisodeMeta:
    plugin = state.get("plugin", {})
    config = plugin.get("config", {})
    a, b = segment
    duplicated, accumulated = repeats(alignment.sample[a:b])
    return EpisodeMeta(
        episode_id=episode_id, backend="gta", scene=scene,
        seed=int(config.get("seed", 0)), fps=float(_obs_fps(state, info)), width=info.width,
        height=info.height,
        created_utc=utc_now(), tool_version=__version__,
        engine={"name": "GTA V", "version": str(plugin.get("game_version", "")),
                "plugin": plugin.get("version", ""), "renderer": "OBS Studio "
                + str(state.get("obs", {}).get("version", {}).get("obsVersion", ""))},
        settings={k: config[k] for k in sorted(config)},
        extra={"sync": {**sync, "video_frames": [a, b], "duplicated": duplicated,
                        "accumulated": accumulated}})
