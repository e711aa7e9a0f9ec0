"""Run several recorders side by side (``--streams N``), each in its own process, with progress.

Episodes are dealt to streams round-robin, so every stream knows its total and its bar shows a
real ETA. Each stream records its episodes one after another with the chosen backend's
``record_episode``, or all in one session with its ``record_episodes`` (:mod:`datagen.backend`;
the built-in engine renders in the stream's main thread, writes in a second and encodes in an
ffmpeg process; an Unreal stream is one editor); the streams themselves are
separate processes so that they share nothing but the CPU. A failing episode is reported with
its reason, stays in its ``.partial`` folder, and the other episodes go on. Past one machine,
:func:`run_ray` records the episodes as Ray tasks spread over a cluster instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datagen.backend import Backend, get_backend
from datagen.lifetime import die_with_parent
from datagen.storage import is_url, publish

PROGRESS_EVERY = 10  # frames between progress messages from a stream process


@dataclass
class RunSummary:
    finished: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (episode id, reason)
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_streams(episodes: int) -> int:
    """One stream per two usable cores (rounded up), never more streams than episodes.

    A stream keeps about two cores busy: one rendering, and about 1.2 for ffmpeg (conversion
    and libx264) with the writer thread. On two cores one stream records 3-6 % more frames/s
    than two and two more than three, in every run (benchmarks/RESULTS.md): more streams than
    that only add contention.
    """
    return max(1, min(episodes, (usable_cores() + 1) // 2))


def deal(indices: list[int], streams: int) -> list[list[int]]:
    """Round-robin assignment of episode indices to streams (empty streams dropped)."""
    return [part for s in range(streams) if (part := indices[s::streams])]


def run_streams(
    backend: Backend, cfg: Any, indices: list[int], out: Path, streams: int,
    progress: bool = True,
) -> RunSummary:
    """Record ``indices`` of ``cfg`` (a ``backend.config``) under ``out`` on ``streams``
    streams. The caller holds ``out``'s :class:`~datagen.output_lock.OutputLock` (``datagen
    record`` does)."""
    parts = deal(indices, streams)
    summary = RunSummary()
    start = time.perf_counter()
    bars = [
        tqdm(total=len(part) * cfg.frames, desc=f"stream {s}", unit="frame", position=s,
             disable=not progress, dynamic_ncols=True, leave=True)
        for s, part in enumerate(parts)
    ]
    try:
        if len(parts) == 1:
            _run_inline(backend, cfg, parts[0], out, bars[0], summary)
        else:
            _run_processes(backend, cfg, parts, out, bars, summary)
    finally:
        for bar in bars:
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def record_part(backend: Backend, cfg: Any, part: list[int], out: Path,
                report: Callable[..., None]) -> None:
    """Record one stream's episodes, calling ``report("frames", n)`` with frames added,
    ``report("finished", path)`` and ``report("failed", episode_id, reason)``: with the
    backend's ``record_episodes`` when it has one, else episode by episode."""
    if backend.record_episodes is not None:
        backend.record_episodes(cfg, part, out, report)
        return
    for index in part:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            report("frames", n - done)
            done = n

        try:
            path = backend.record_episode(cfg, index, out, on_frame=advance)
        except Exception as exc:  # reported, and the next episode goes on
            report("frames", cfg.frames - done)
            report("failed", backend.episode_id(cfg, index), _reason(exc))
        else:
            report("finished", path)


def _run_inline(backend, cfg, part, out, bar, summary) -> None:
    pending = [backend.episode_id(cfg, i) for i in part]  # not reported yet

    def report(kind: str, *payload) -> None:
        if kind == "frames":
            bar.update(payload[0])
            return
        if kind == "finished":
            summary.finished.append(Path(payload[0]))
            summary.frames += cfg.frames
            pending.remove(Path(payload[0]).name)
        else:
            summary.failed.append((payload[0], payload[1]))
            pending.remove(payload[0])

    try:
        record_part(backend, cfg, part, out, report)
    except Exception as exc:  # the backend could not start at all
        summary.failed.extend((name, _reason(exc)) for name in pending)


def _run_processes(backend, cfg, parts, out, bars, summary) -> None:
    ctx = mp.get_context("spawn")  # no fork: Panda3D and ffmpeg pipes do not survive it
    events = ctx.Queue()
    procs = [ctx.Process(target=_stream_main, args=(backend.name, cfg, s, part, out, events),
                         daemon=True) for s, part in enumerate(parts)]
    for p in procs:
        p.start()
    exited: set[int] = set()
    pending = [[backend.episode_id(cfg, i) for i in part] for part in parts]  # not reported yet
    try:
        while len(exited) < len(procs):
            try:
                kind, stream, *payload = events.get(timeout=1.0)
            except queue.Empty:  # a stream killed from outside sends no "exit"
                for s, p in enumerate(procs):
                    if s not in exited and not p.is_alive():
                        exited.add(s)
                        summary.failed.extend(
                            (name, f"stream {s} died with exit code {p.exitcode}")
                            for name in pending[s])
                continue
            if kind == "frames":
                bars[stream].update(payload[0])
            elif kind == "finished":
                summary.finished.append(Path(payload[0]))
                summary.frames += cfg.frames
                pending[stream].remove(Path(payload[0]).name)
            elif kind == "failed":
                summary.failed.append((payload[0], payload[1]))
                pending[stream].remove(payload[0])
            elif kind == "crashed":
                summary.failed.extend((n, payload[0]) for n in pending[stream])
                pending[stream] = []
            elif kind == "exit":
                exited.add(stream)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


def _stream_main(name: str, cfg: Any, stream: int, part: list[int], out: Path, events) -> None:
    die_with_parent()  # else an orphan would record every remaining episode on its own
    backend = get_backend(name)
    unsent = 0

    def report(kind: str, *payload) -> None:
        nonlocal unsent
        if kind == "frames":
            unsent += payload[0]
            if unsent >= PROGRESS_EVERY:
                events.put(("frames", stream, unsent))
                unsent = 0
            return
        if unsent:
            events.put(("frames", stream, unsent))
            unsent = 0
        events.put((kind, stream, *(str(p) for p in payload)))

    try:
        record_part(backend, cfg, part, out, report)
    except Exception as exc:  # the backend could not start: the parent fails what is left
        events.put(("crashed", stream, _reason(exc)))
    finally:
        events.put(("exit", stream))


def run_ray(backend: Backend, cfg: Any, indices: list[int], out: str | Path, address: str,
            task_cpus: float | None = None, progress: bool = True) -> RunSummary:
    """Record ``indices`` as Ray tasks on the cluster at ``address`` (:mod:`datagen.cluster`),
    each with the per-episode code path of a local run, into the folder every node shares or
    the URL ``out`` (:mod:`datagen.storage`). A task asks for ``task_cpus`` (default: the
    backend's ``task_cpus``, what one stream measurably keeps busy) and the backend's
    ``task_gpus``."""
    from datagen.cluster import connect, ordered_map

    connect(address)
    summary = RunSummary()
    start = time.perf_counter()
    resources = {"num_cpus": backend.task_cpus if task_cpus is None else task_cpus,
                 "num_gpus": backend.task_gpus}
    args = [(backend.name, cfg, index, str(out)) for index in indices]
    for kind, *payload in ordered_map(_record_task, args, resources, desc="episodes",
                                      progress=progress):
        if kind == "finished":
            summary.finished.append(payload[0] if is_url(out) else Path(payload[0]))
            summary.frames += cfg.frames
        else:
            summary.failed.append((payload[0], payload[1]))
    summary.seconds = time.perf_counter() - start
    return summary


def _record_task(name: str, cfg: Any, index: int, out: str) -> tuple:
    """One episode on a Ray worker: ``("finished", where)`` or ``("failed", id, reason)``.
    Safe to run again after the worker died: a stale ``.partial`` folder is replaced, and an
    episode published already is kept."""
    backend = get_backend(name)
    try:
        if is_url(out):
            with tempfile.TemporaryDirectory(prefix="worldforge-episode-") as tmp:
                path = backend.record_episode(cfg, index, Path(tmp))
                return ("finished", publish(path, out, cfg.scene))
        return ("finished", str(backend.record_episode(cfg, index, Path(out))))
    except Exception as exc:  # reported on the driver; the other episodes go on
        return ("failed", backend.episode_id(cfg, index), _reason(exc))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
