"""The Unreal Engine recorder's host side: ``datagen record --backend unreal``, ``datagen unreal``.

``config`` holds what a recording is (:class:`~datagen.unreal.config.UnrealConfig`) and the job
an editor runs; ``launch`` starts ``UnrealEditor-Cmd`` headless (or uses a running editor) and
follows the job; ``convert`` maps Unreal poses (left-handed, centimetres, double precision) to
the episode contract's frame; ``remote`` is our client of the editor's Python remote execution
protocol, and ``commands`` the ``datagen unreal find`` / ``exec`` commands on top of it. The
editor side is the plugin in ``ue_plugin/``. See docs/unreal.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from datagen.backend import Backend
from datagen.unreal.config import UnrealConfig, config_differences, episode_id
from datagen.unreal.launch import record_episodes


def record_episode(cfg: UnrealConfig, index: int, out: Path,
                   on_frame: Callable[[int], None] | None = None) -> Path:
    """Record episode ``index`` in an editor of its own; raises with the reason it failed."""
    done, result = 0, []

    def report(kind: str, *payload) -> None:
        nonlocal done
        if kind == "frames":
            done += payload[0]
            if on_frame is not None:
                on_frame(done)
        else:
            result.append((kind, *payload))

    record_episodes(cfg, [index], out, report)
    kind, *payload = result[0]
    if kind == "failed":
        raise RuntimeError(payload[1])
    return payload[0]


BACKEND = Backend(
    name="unreal", summary="an Unreal Engine 5 editor with the worldforge plugin (ue_plugin/)",
    config=UnrealConfig, episode_id=episode_id, record_episode=record_episode,
    config_differences=config_differences, record_episodes=record_episodes,
    task_cpus=2.0, task_gpus=1.0)  # an editor: its game thread, render thread and a GPU
