"""Recording from inside an open editor: the Tools menu entries and the ``py`` console command.

:func:`record_here` records episodes of the level that is open, into the project's
``Saved/worldforge/`` folder, with the editor staying open; :func:`stop` ends a recording.
:func:`register` (run by ``init_unreal.py`` when the editor starts) adds "Record episodes
(worldforge)" and "Stop recording (worldforge)" to the Tools menu; ``py worldforge_record.py
...`` in the editor's console does the same with options (``--stop`` to stop).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datagen.unreal.config import Job, UnrealConfig
from worldforge_ue import adapter
from worldforge_ue.recorder import Recorder

MENU = "LevelEditor.MainMenu.Tools"
_running: list[Recorder] = []  # the run in progress: one at a time, kept alive here


def register() -> None:
    adapter.add_menu_entry(
        MENU, "WorldforgeRecord", "Record episodes (worldforge)",
        "Play the open level and record one episode (MP4 + actions.csv) into Saved/worldforge",
        "import worldforge_ue.menu as m; m.record_here()")
    adapter.add_menu_entry(
        MENU, "WorldforgeStop", "Stop recording (worldforge)",
        "Stop the worldforge recording at the next tick (the episode under way stays unfinished)",
        "import worldforge_ue.menu as m; m.stop()")


def stop() -> bool:
    """Stop the recording under way; False when there is none."""
    if not _running or _running[-1].finished:
        return False
    _running[-1].request_stop()
    return True


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="py worldforge_record.py",
                                description="record episodes of the open level (or run a job)")
    p.add_argument("--job", help="a job file written by datagen record --backend unreal")
    p.add_argument("--stop", action="store_true", help="stop the recording under way")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--first-index", type=int, default=0)
    p.add_argument("--frames", type=int, default=UnrealConfig.frames)
    p.add_argument("--fps", type=int, default=UnrealConfig.fps)
    p.add_argument("--size", default=f"{UnrealConfig.width}x{UnrealConfig.height}",
                   help="WIDTHxHEIGHT of the video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=UnrealConfig.profile)
    p.add_argument("--out", help="output folder (default: the project's Saved/worldforge)")
    return p


def record_here(argv: list[str] | None = None) -> Recorder | None:
    """Start recording (see :func:`parser` for the options); returns the running recorder
    (``None`` for ``--stop``)."""
    args = parser().parse_args(argv or [])
    if args.stop:
        stop()
        return None
    if _running and not _running[-1].finished:
        raise RuntimeError("a worldforge recording is already running in this editor")
    if args.job:
        job = Job.read(args.job)
    else:
        base = Path(adapter.saved_dir()) / "worldforge"
        out = Path(args.out) if args.out else base / "episodes"
        out.mkdir(parents=True, exist_ok=True)
        width, height = (int(v) for v in args.size.lower().split("x"))
        cfg = UnrealConfig(project=adapter.project_file(), map=adapter.level_path(),
                           frames=args.frames, fps=args.fps, width=width, height=height,
                           seed=args.seed, profile=args.profile)
        job = Job(config=cfg, indices=tuple(range(args.first_index,
                                                  args.first_index + args.episodes)),
                  out=str(out), events=str(base / "events.jsonl"), quit=False)
    recorder = Recorder(job)
    _running[:] = [recorder]
    recorder.start()
    return recorder
