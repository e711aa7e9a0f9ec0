"""A GTA V recording session: ``datagen record --backend gta``.

1. The collector listens (:mod:`datagen.gta.collector`) and the session waits for the plugin's
   ``hello``; it connects to OBS and reads its video settings.
2. The plugin is told to ``start`` streaming frame messages; once they flow, OBS starts
   recording (so every video frame has game frames before it).
3. Until the duration is up or Ctrl-C, it polls OBS's record status (its ``outputDuration``
   against the wall clock refines the start time) and reports progress.
4. OBS stops first, then the plugin; the session waits until OBS has really finalised the file.
5. Synchronisation (:mod:`datagen.gta.sync`) cuts the recording into segments with rows, and
   each segment becomes an episode: the whole video is moved (MP4) or remuxed (MKV) into the
   episode without re-encoding; a segment that is part of the video is re-encoded.

Everything a session receives is kept in ``<out>/gta_sessions/<session>/`` (``samples.jsonl``,
``collector.jsonl``, ``session.json`` and the OBS file until its episodes are published), so
:func:`resync` can run the synchronisation again on it (``datagen gta-sync``).
"""

from __future__ import annotations

import json
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
from datagen.gta.sync import EXTRA_COLUMNS, align, load_samples, segment_rows, video_times
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
    offset_ms: float = 0.0  # capture latency added to every video frame's time
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
    info = probe(obs_file)
    times = video_times(obs_file)
    alignment = align(samples, times, float(state["start_wall_s"]), cfg.offset_ms / 1000.0,
                      min_frames=cfg.min_frames)
    covered = sum(b - a for a, b in alignment.segments)
    report(f"sync: {len(times)} video frames, {len(samples)} game frames; "
           f"{covered} frames in {len(alignment.segments)} segment(s), "
           f"{alignment.duplicated} duplicated, {alignment.skipped} game frames accumulated")
    if covered < len(times):
        result.rejected.append(f"{len(times) - covered} of {len(times)} video frames have no "
                               "complete game data (gaps, stale or shorter than --min-frames)")
    whole = alignment.segments == [(0, len(times))]
    for n, segment in enumerate(alignment.segments):
        episode_id = f"{state['session']}_{n:02d}"
        if episode_dir(cfg.out, cfg.scene, episode_id).exists():
            result.episodes.append(episode_dir(cfg.out, cfg.scene, episode_id))
            continue
        meta = _meta(state, episode_id, cfg.scene, info, segment, alignment)
        rows = segment_rows(samples, alignment, segment, info.width, info.height)
        place = (_whole_video(obs_file, _obs_fps(state, info)) if whole
                 else _cut_video(obs_file, segment, info, cfg.crf))
        try:
            result.episodes.append(write_episode(cfg.out, meta, rows, place, EXTRA_COLUMNS))
        except (EpisodeError, OSError) as exc:
            result.rejected.append(f"{episode_id}: {exc}")
            continue
        report(f"episode {result.episodes[-1]} ({segment[1] - segment[0]} frames)")
    if whole and result.episodes and not cfg.keep_obs_file and obs_file.exists():
        obs_file.unlink()  # its frames now live in the episode
    return result


def _obs_fps(state: dict, info) -> Fraction:
    """OBS's constant frame rate (its video settings), else the file's."""
    video = state.get("obs", {}).get("video", {})
    if video.get("fps_numerator") and video.get("fps_denominator"):
        return Fraction(video["fps_numerator"], video["fps_denominator"])
    return Fraction(info.fps).limit_denominator(1001)


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


def _whole_video(src: Path, fps: Fraction) -> Callable[[Path], int]:
    """Move OBS's MP4 into the episode, or remux (MKV, or timestamps off the frame grid)
    without re-encoding; the original goes once the episode is published."""
    def place(dest: Path) -> int:
        if src.suffix.lower() == ".mp4" and probe(src, count=False).fps == float(fps):
            shutil.copyfile(src, dest)
        else:
            remux_to_mp4(src, dest, fps=fps, keep_audio=False)
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
          alignment) -> EpisodeMeta:
    plugin = state.get("plugin", {})
    config = plugin.get("config", {})
    a, b = segment
    ticks = np.diff(alignment.sample[a:b])
    return EpisodeMeta(
        episode_id=episode_id, backend="gta", scene=scene,
        seed=int(config.get("seed", 0)), fps=float(_obs_fps(state, info)), width=info.width,
        height=info.height,
        created_utc=utc_now(), tool_version=__version__,
        engine={"name": "GTA V", "version": str(plugin.get("game_version", "")),
                "plugin": plugin.get("version", ""), "renderer": "OBS Studio "
                + str(state.get("obs", {}).get("version", {}).get("obsVersion", ""))},
        settings={k: config[k] for k in sorted(config)},
        extra={"sync": {"session": state["session"], "video_frames": [a, b],
                        "start_wall_s": state["start_wall_s"],
                        "duplicated": int(np.count_nonzero(ticks == 0)),
                        "accumulated": int(np.sum(np.maximum(ticks - 1, 0)))}})
