"""The ``datagen`` command line: ``record``, ``validate``, ``scenes``, ``plan``, ``unreal`` and
``gta-sync``.

It only parses, checks and calls the library; every error a user can cause ends in one
``datagen: error: ...`` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datagen.backend import BACKENDS
from datagen.command import UsageError, parse_size, run
from datagen.planner import DEFAULT_PROFILE, PROFILES
from datagen.storage import is_url
from datagen.unreal import commands as unreal_commands

if TYPE_CHECKING:
    from datagen.backend import Backend
    from datagen.builtin.record import RecordConfig
    from datagen.unreal.config import UnrealConfig

EXIT_PROBLEMS = 1  # validation found problems, or episodes failed
MAX_SIZE = (7680, 4320)  # 8K: far beyond training sizes, well inside what the renderer can allocate


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not (16 <= w <= MAX_SIZE[0] and 16 <= h <= MAX_SIZE[1]):
        raise argparse.ArgumentTypeError(
            f"size must be between 16x16 and {MAX_SIZE[0]}x{MAX_SIZE[1]}, got {w}x{h}")
    return w, h


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (0-65535), got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from datagen import __version__
    from datagen.video import X264_PRESETS

    parser = argparse.ArgumentParser(
        prog="datagen", description="Record action-annotated episodes on the built-in engine.")
    parser.add_argument("--version", action="version", version=f"datagen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rec = sub.add_parser("record", help="record episodes (MP4 + CSV + meta.json)")
    rec.add_argument("--backend", default="builtin", choices=list(BACKENDS),
                     help="recorder backend (datagen/backend.py); builtin: the built-in engine")
    rec.add_argument("--scene", default="city", help="scene name (see `datagen scenes`)")
    rec.add_argument("--episodes", type=_positive, default=1, help="episodes to record")
    rec.add_argument("--first-index", type=_non_negative, default=0,
                     help="index of the first episode (episode i depends only on seed and i)")
    rec.add_argument("--frames", type=_positive, default=1200, help="frames per episode")
    rec.add_argument("--fps", type=_positive, default=30, help="frames per second")
    rec.add_argument("--size", type=_size, default=(640, 360), help="WIDTHxHEIGHT")
    rec.add_argument("--seed", type=_non_negative, default=0, help="run seed")
    rec.add_argument("--streams", type=_positive, default=None,
                     help="recorders side by side (default: one per two usable cores)")
    rec.add_argument("--out", default="data/raw",
                     help="output folder, or with --ray a URL (file://, s3://, gs://)")
    rec.add_argument("--crf", type=int, default=18, help="H.264 CRF (0-51, lower = better)")
    rec.add_argument("--preset", default="veryfast", choices=X264_PRESETS, help="x264 preset")
    rec.add_argument("--fov", type=float, default=90.0, help="horizontal field of view, degrees")
    rec.add_argument("--profile", default=DEFAULT_PROFILE,
                     help=f"behaviour profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    rec.add_argument("--renderer", default="tiny", choices=("tiny", "gl"),
                     help="tiny: software (default); gl: OpenGL over EGL (Mesa or a GPU)")
    rec.add_argument("--no-progress", action="store_true", help="no progress bars")
    rec.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                     help="episodes as tasks on a Ray cluster: auto (default: the one this "
                          "machine is in), HOST:PORT, or local (a private one); --out must be "
                          "a folder every node shares, or a URL")
    rec.add_argument("--task-cpus", type=_positive_float, default=None,
                     help="--ray: CPUs a recording task asks for (default: the backend's, 2 "
                          "for the built-in engine)")
    ue = rec.add_argument_group("Unreal Engine (--backend unreal; docs/unreal.md)")
    ue.add_argument("--project", help="the .uproject (with the worldforge plugin installed)")
    ue.add_argument("--map", help="the level's package path, e.g. /Game/Maps/City")
    ue.add_argument("--editor", help="UnrealEditor-Cmd to launch (default: under --engine-dir, "
                                     "else on PATH)")
    ue.add_argument("--engine-dir", help="the engine's root folder (holding Engine/)")
    ue.add_argument("--attach", action="store_true",
                    help="record in the running editor with this project (remote execution)")
    ue.add_argument("--agent-radius", type=_positive_float, default=0.35,
                    help="the NavMesh agent's radius in metres (default 0.35)")
    ue.add_argument("--editor-timeout", type=_positive_float, default=600.0,
                    help="seconds without word from an editor before its episodes fail")
    ue.add_argument("--bind", default="127.0.0.1",
                    help="--attach: this machine's address for discovery (default 127.0.0.1)")

    gta = rec.add_argument_group("GTA V (--backend gta; docs/gta.md)")
    gta.add_argument("--duration", type=_positive_float, default=600.0,
                     help="seconds to record (Ctrl-C stops earlier; default 600)")
    gta.add_argument("--obs-host", default="127.0.0.1", help="OBS Studio's websocket host")
    gta.add_argument("--obs-port", type=_port, default=4455, help="its port (default 4455)")
    gta.add_argument("--obs-password", default=os.environ.get("WORLDFORGE_OBS_PASSWORD"),
                     help="its password (default: $WORLDFORGE_OBS_PASSWORD)")
    gta.add_argument("--collector-host", default="127.0.0.1",
                     help="address the collector listens on (0.0.0.0 when the game runs on "
                          "another machine; default 127.0.0.1)")
    gta.add_argument("--collector-port", type=_port, default=52420,
                     help="its port, as in the plugin's worldforge_gta.ini (default 52420)")
    gta.add_argument("--plugin-timeout", type=_positive_float, default=120.0,
                     help="seconds to wait for the plugin to connect")
    gta.add_argument("--sync-offset-ms", type=float, default=None,
                     help="capture latency added to every video frame's time (default: "
                          "measured with the plugin's marker; docs/gta.md)")
    gta.add_argument("--min-frames", type=_positive, default=30,
                     help="shortest gap-free stretch that becomes an episode (default 30)")
    gta.add_argument("--keep-obs-file", action="store_true",
                     help="keep OBS's own file after its episodes are written")

    sync = sub.add_parser("gta-sync", help="synchronise a recorded GTA V session again")
    sync.add_argument("session", type=Path, help="<out>/gta_sessions/<session> folder")
    sync.add_argument("--sync-offset-ms", type=float, default=None,
                      help="capture latency (default: the session's: its marker's)")
    sync.add_argument("--min-frames", type=_positive, default=None,
                      help="shortest episode (default: the session's)")

    val = sub.add_parser("validate", help="check episodes against the contract")
    val.add_argument("paths", nargs="+", type=Path, help="episode, scene or output folders")
    val.add_argument("--no-decode", action="store_true",
                     help="skip decoding the video (faster; frame count not checked)")

    sub.add_parser("scenes", help="list the built-in scenes")

    plan = sub.add_parser("plan", help="plot the navmesh and sampled trajectories from above")
    plan.add_argument("--scene", default="city")
    plan.add_argument("--seed", type=_non_negative, default=0, help="run seed, as in record")
    plan.add_argument("--episode", type=_non_negative, default=0,
                      help="episode index whose world is drawn, as in record")
    plan.add_argument("--trajectories", type=_positive, default=6)
    plan.add_argument("--seconds", type=_positive_float, default=40.0,
                      help="length of each trajectory")
    plan.add_argument("--profile", default=DEFAULT_PROFILE)
    plan.add_argument("--plot", type=Path, required=True, help="PNG to write")
    unreal_commands.add_parser(sub)
    return parser


def cmd_record(args: argparse.Namespace) -> int:
    from datagen.backend import get_backend
    from datagen.output_lock import OutputLock, OutputLocked

    backend = get_backend(args.backend)
    if backend.record_session is not None:
        return _record_session(args, backend)
    cfg = _unreal_config(args) if args.backend == "unreal" else _builtin_config(args)
    try:
        cfg.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.backend == "unreal":
        from datagen.unreal.launch import LaunchError, check_setup

        try:
            check_setup(cfg)
        except LaunchError as exc:
            raise UsageError(str(exc)) from None
    if is_url(args.out):
        if not args.ray:
            raise UsageError(f"--out {args.out} is a URL: recording there needs --ray")
        return _record(args, backend, cfg)  # no lock on object storage: one run per URL
    args.out = Path(args.out)
    _check_writable(args.out)
    try:  # held from the scan of what exists to the last episode
        lock = OutputLock(args.out, "datagen record")
    except (OutputLocked, OSError) as exc:
        raise UsageError(str(exc)) from None
    with lock:
        return _record(args, backend, cfg)


def _record_session(args: argparse.Namespace, backend: Backend) -> int:
    """A live backend's session (GTA V): record, synchronise, write episodes."""
    from datagen.output_lock import OutputLock, OutputLocked

    if is_url(args.out) or args.ray:
        raise UsageError(f"--backend {backend.name} records on this machine into a folder: "
                         "no --ray, no URL for --out")
    scene = "gta" if args.scene == "city" else args.scene  # "city" is the built-in default
    cfg = backend.config(
        out=Path(args.out), scene=scene, duration_s=args.duration, obs_host=args.obs_host,
        obs_port=args.obs_port, obs_password=args.obs_password,
        collector_host=args.collector_host, collector_port=args.collector_port,
        plugin_timeout_s=args.plugin_timeout, offset_ms=args.sync_offset_ms,
        min_frames=args.min_frames, keep_obs_file=args.keep_obs_file, crf=args.crf)
    try:
        cfg.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_writable(cfg.out)
    try:
        lock = OutputLock(cfg.out, "datagen record")
    except (OutputLocked, OSError) as exc:
        raise UsageError(str(exc)) from None
    with lock:
        try:
            result = backend.record_session(cfg)
        except (OSError, RuntimeError, ValueError) as exc:
            raise UsageError(f"GTA V session failed: {exc}") from None
    for reason in result.rejected:
        print(f"not an episode: {reason}", file=sys.stderr)
    print(f"{len(result.episodes)} episode(s) from session {result.session}")
    return 0 if result.episodes else EXIT_PROBLEMS


def _recorded(out: str | Path, scene: str, episode_id: str) -> dict | None:
    """The meta.json of a finished episode under ``out`` (a folder or a URL), or None."""
    from datagen.episode import META_FILE, episode_dir, load_meta
    from datagen.storage import finished_meta

    if is_url(out):
        return finished_meta(str(out), scene, episode_id)
    path = episode_dir(out, scene, episode_id)
    return load_meta(path / META_FILE).to_dict() if path.exists() else None


def _builtin_config(args: argparse.Namespace) -> RecordConfig:
    from datagen.builtin.record import RecordConfig
    from datagen.builtin.scenes import SCENES

    if args.scene not in SCENES:
        raise UsageError(f"unknown scene {args.scene!r}; choose from {', '.join(SCENES)}")
    return RecordConfig(
        scene=args.scene, frames=args.frames, fps=args.fps, width=args.size[0],
        height=args.size[1], seed=args.seed, fov=args.fov, profile=args.profile, crf=args.crf,
        preset=args.preset, renderer=args.renderer)


def _unreal_config(args: argparse.Namespace) -> UnrealConfig:
    from datagen.unreal.config import UnrealConfig

    missing = [f"--{n}" for n in ("project", "map") if not getattr(args, n)]
    if missing:
        raise UsageError(f"--backend unreal needs {' and '.join(missing)}")
    project = str(Path(args.project).resolve())
    return UnrealConfig(
        project=project, map=args.map, frames=args.frames, fps=args.fps, width=args.size[0],
        height=args.size[1], seed=args.seed, profile=args.profile, crf=args.crf,
        preset=args.preset, agent_radius=args.agent_radius, editor=args.editor,
        engine_dir=args.engine_dir, attach=args.attach, timeout_s=args.editor_timeout,
        bind=args.bind)


def _record(args: argparse.Namespace, backend: Backend, cfg: RecordConfig | UnrealConfig) -> int:
    from datagen.action_coverage import coverage, merge_counts, summary
    from datagen.streams import default_streams, run_ray, run_streams

    indices = range(args.first_index, args.first_index + args.episodes)
    todo = []
    for i in indices:
        name = backend.episode_id(cfg, i)
        meta = _recorded(args.out, cfg.scene, name)
        if meta is None:
            todo.append(i)
            continue
        recorded = meta["engine"].get("record_config", {})
        if differences := backend.config_differences(cfg, recorded):
            raise UsageError(
                f"{args.out}/{cfg.scene}/{name} was recorded with other settings "
                f"({'; '.join(differences)}); record into another --out or delete it")
    if skipped := len(indices) - len(todo):
        print(f"{skipped} episode(s) already recorded with these settings under {args.out}: "
              "skipped")
    if not todo:
        return 0
    where = f"Ray ({args.ray})" if args.ray else \
        f"{min(args.streams or default_streams(len(todo)), len(todo))} stream(s)"
    print(f"recording {len(todo)} episode(s) of {cfg.scene!r}, {cfg.frames} frames at "
          f"{cfg.width}x{cfg.height} {cfg.fps} fps on {where} -> {args.out}")
    if args.ray:
        try:
            result = run_ray(backend, cfg, todo, args.out, args.ray, args.task_cpus,
                             progress=not args.no_progress)
        except (ImportError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
    else:
        streams = min(args.streams or default_streams(len(todo)), len(todo))
        result = run_streams(backend, cfg, todo, args.out, streams,
                             progress=not args.no_progress)
    for path in sorted(result.finished, key=str):
        print(f"finished {path}")
    if result.finished:
        counts = [_recorded(args.out, cfg.scene, Path(str(p)).name)["settings"]
                  ["action_coverage"]["counts"] for p in result.finished]
        print(summary(coverage(merge_counts(counts)), fps=cfg.fps))
    for name, reason in result.failed:
        print(f"FAILED {name}: {reason}", file=sys.stderr)
    print(f"{len(result.finished)} finished, {len(result.failed)} failed; "
          f"{result.frames} frames in {result.seconds:.1f} s ({result.fps:.0f} frames/s)")
    return EXIT_PROBLEMS if result.failed else 0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out}: {exc.strerror}") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {out} is not a writable directory")


def cmd_gta_sync(args: argparse.Namespace) -> int:
    from datagen.gta.session import resync
    from datagen.gta.sync import SyncError

    try:
        result = resync(args.session, args.sync_offset_ms, args.min_frames)
    except (OSError, SyncError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for reason in result.rejected:
        print(f"not an episode: {reason}", file=sys.stderr)
    print(f"{len(result.episodes)} episode(s) from session {result.session}")
    return 0 if result.episodes else EXIT_PROBLEMS


def cmd_validate(args: argparse.Namespace) -> int:
    from datagen.episode import find_episodes
    from datagen.episode_check import validate_episode

    episodes = []
    for root in args.paths:
        if not root.exists():
            raise UsageError(f"no such file or folder: {root}")
        if not root.is_dir():
            raise UsageError(f"{root} is a file; give an episode folder (or a folder of them)")
        finished, partial = find_episodes(root)
        if not finished and not partial:
            raise UsageError(f"no episodes found under {root}")
        episodes += [*finished, *partial]
    invalid = 0
    for path in episodes:
        problems = validate_episode(path, decode_video=not args.no_decode)
        if problems:
            invalid += 1
            print(f"INVALID {path}")
            for p in problems:
                print(f"  {p.where}: {p.message}")
        else:
            print(f"ok      {path}")
    print(f"{len(episodes) - invalid} of {len(episodes)} episode(s) valid")
    return EXIT_PROBLEMS if invalid else 0


def cmd_scenes(args: argparse.Namespace) -> int:
    from datagen.builtin.scenes import SCENES

    width = max(len(name) for name in SCENES)
    for name, info in SCENES.items():
        print(f"{name:<{width}}  {info.description}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from datagen.builtin.agent import Agent
    from datagen.builtin.navmesh import NavMesh
    from datagen.builtin.plan_plot import plot_plan
    from datagen.builtin.record import RecordConfig, episode_seed
    from datagen.builtin.scenes import SCENES, build_world

    if args.scene not in SCENES:
        raise UsageError(f"unknown scene {args.scene!r}; choose from {', '.join(SCENES)}")
    if args.profile not in PROFILES:
        raise UsageError(f"unknown --profile {args.profile!r}; choose from {', '.join(PROFILES)}")
    if args.plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG; give a .png path, got {args.plot}")
    _check_writable(args.plot.parent if args.plot.parent != Path("") else Path("."))
    # The world and first trajectory of episode --episode of `datagen record --seed`, then
    # more agents sampled on that same world.
    seed = episode_seed(RecordConfig(scene=args.scene, seed=args.seed), args.episode)
    world = build_world(args.scene, seed)
    navmesh = NavMesh.from_world(world)
    fps = 30
    trajectories = []
    for k in range(args.trajectories):
        agent_seed = seed if k == 0 else int(
            np.random.SeedSequence([seed, k]).generate_state(1)[0])
        agent = Agent(world, navmesh, seed=agent_seed, fps=fps, profile=PROFILES[args.profile])
        ticks = [agent.first()] + [agent.step() for _ in range(int(args.seconds * fps) - 1)]
        trajectories.append(np.array([t.position for t in ticks]))
    title = (f"{args.scene} seed {args.seed} episode {args.episode}: {args.trajectories} "
             f"trajectories of {args.seconds:g} s")
    try:
        out = plot_plan(world, navmesh, trajectories, args.plot, title=title)
    except OSError as exc:
        raise UsageError(f"cannot write {args.plot}: {exc.strerror or exc}") from None
    print(f"wrote {out}")
    return 0


COMMANDS = {"record": cmd_record, "validate": cmd_validate, "scenes": cmd_scenes,
            "plan": cmd_plan, "unreal": unreal_commands.cmd_unreal, "gta-sync": cmd_gta_sync}


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), COMMANDS, argv,
               interrupted="unfinished episodes stay in their .partial folders")


if __name__ == "__main__":
    sys.exit(main())
