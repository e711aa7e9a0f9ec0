"""Recorder backends: the engines ``datagen record --backend NAME`` records with.

The recorder core is shared by every backend: the episode contract and writer
(:mod:`datagen.episode`), H.264 I/O (:mod:`datagen.video`), rotations (:mod:`datagen.rotation`),
the behaviour layer (:mod:`datagen.planner`, :mod:`datagen.navigation`,
:mod:`datagen.mouse_hand`), action coverage (:mod:`datagen.action_coverage`) and the streams
that run recorders side by side (:mod:`datagen.streams`). A backend adds an engine, behind this
small interface:

- ``config``: a frozen dataclass of everything that decides an episode's content (the same
  config and index give the same episode), with ``check()`` raising ``ValueError`` that names
  the bad setting, ``frames`` (per episode) and ``scene`` (the output sub-folder);
- ``episode_id(cfg, index)``: the name of episode ``index``'s folder; everything random in
  episode ``index`` comes from :func:`episode_seed`;
- ``record_episode(cfg, index, out, on_frame)``: records episode ``index`` under
  ``out/<scene>/``, calling ``on_frame(n)`` with the frames handed to the writer so far, and
  returns the finished folder; on an error the episode stays in its ``.partial`` folder and the
  error propagates;
- ``config_differences(cfg, recorded)``: the settings in which an existing episode's recorded
  config (``meta.json`` ``engine.record_config``) differs from ``cfg``, so a re-run never mixes
  settings in one folder;
- optionally ``record_episodes(cfg, indices, out, report)``: a stream's episodes in one go (an
  engine that is slow to start records them all in one session), calling ``report("frames",
  n)`` with frames added, ``report("finished", path)`` and ``report("failed", episode_id,
  reason)`` as they happen; without it a stream calls ``record_episode`` per episode;
- ``task_cpus``/``task_gpus``: what recording one episode keeps busy, which a Ray task
  (``datagen record --ray``) asks the cluster for.

A **live** backend records a game that runs on its own and is captured as it plays (GTA V: the
Script Hook V plugin, the collector and OBS). It cannot replay episode ``index`` from a seed, so
instead of the index-based functions above it has ``record_session(cfg, report)``: one session
of ``cfg.duration_s`` seconds, cut into episodes afterwards, returning what it wrote.

Backends are looked up by name (:func:`get_backend`) and imported only when used, so the core
never imports an engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# name -> module whose BACKEND is that backend
BACKENDS = {"builtin": "datagen.builtin", "unreal": "datagen.unreal", "gta": "datagen.gta"}


@dataclass(frozen=True)
class Backend:
    """One recorder backend (see the module docstring)."""

    name: str
    summary: str  # one line for --help
    config: type
    episode_id: Callable[[Any, int], str] | None = None  # None: a live backend
    record_episode: Callable[..., Path] | None = None
    config_differences: Callable[[Any, dict], list[str]] | None = None
    record_episodes: Callable[..., None] | None = None
    record_session: Callable[..., Any] | None = None  # a live backend's only entry
    task_cpus: float = 2.0  # what one episode being recorded keeps busy (a Ray task asks it)
    task_gpus: float = 0.0


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name]).BACKEND


def settings_differences(current: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """``"key: <recorded> there, <current> now"`` for every setting of ``current`` that an
    existing episode's recorded settings (``meta.json`` ``engine.record_config``) differ in:
    what every backend's ``config_differences`` reports."""
    return [f"{k}: {recorded.get(k)!r} there, {v!r} now" for k, v in current.items()
            if recorded.get(k) != v]


def episode_seed(cfg: Any, index: int) -> int:
    """The seed of episode ``index`` of a run with ``cfg.seed``: independent of how many
    episodes or streams the run has."""
    return int(np.random.SeedSequence([cfg.seed, index]).generate_state(1)[0])
