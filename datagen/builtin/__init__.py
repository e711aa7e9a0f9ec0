"""The built-in engine: the recorder backend that needs no game installed.

Procedural scenes (``scenes``, described engine-neutrally by ``world``), a navigation mesh
(``navmesh``), movers that yield (``traffic``), an agent that plays with keys and mouse
(the shared :mod:`datagen.controller` on ``body``, its kinematics, ``spawn``
for its start), a Panda3D renderer (``render``) and the per-episode pipeline that ties them to
the shared episode writer (``record``). ``plan_plot`` draws a world and trajectories from above.
"""

from __future__ import annotations

from datagen.backend import Backend
from datagen.builtin.record import RecordConfig, config_differences, episode_id, record_episode

BACKEND = Backend(
    name="builtin", summary="the built-in engine (Panda3D; procedural scenes, no game needed)",
    config=RecordConfig, episode_id=episode_id, record_episode=record_episode,
    config_differences=config_differences,
    task_cpus=2.0)  # a stream keeps about two cores busy: render, ffmpeg (benchmarks/RESULTS.md)
