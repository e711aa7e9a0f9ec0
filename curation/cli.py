"""The ``curation`` command line: ``filter``, ``annotate``, ``report`` and ``preview``.

``filter``'s flags are generated from :class:`~curation.config.FilterConfig`, one per field
(``--clip-frames``, ``--dup-threshold``, ...), and ``annotate``'s from
:class:`~curation.annotate.AnnotateConfig` (``--walk-speed``, ...), so the configs and the
command line never drift apart. Errors a user can cause end in one ``curation: error: ...``
line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

from curation.annotate import AnnotateConfig
from curation.config import FilterConfig
from curation.pipeline import DECODE_ONCE_BYTES
from curation.shardwriter import DATASET_FILE
from datagen.command import UsageError, config_flags, given_fields, parse_size, run
from datagen.storage import download_tree, is_url, upload_tree

EXIT_REJECTS = 1  # --strict and something was rejected


def _config(args: argparse.Namespace) -> FilterConfig:
    values = given_fields(args, FilterConfig)
    if args.size:
        try:
            values["width"], values["height"] = parse_size(args.size)
        except ValueError as exc:
            raise UsageError(f"--size {exc}") from None
    try:
        return FilterConfig(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curation", description="Turn recorded episodes into WebDataset training shards.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    flt = sub.add_parser("filter", help="episodes -> WebDataset shards")
    flt.add_argument("episodes", nargs="+", type=Path, help="episode, scene or output folders")
    flt.add_argument("--out", required=True,
                     help="shard folder, or a URL (file://, s3://, gs://) the shards are "
                          "uploaded to from --stage")
    flt.add_argument("--stage", type=Path, default=None,
                     help="with a URL --out: the local folder the shard set is written in "
                          "first (default: one in the temp folder named after the URL); a "
                          "re-run resumes from it, or from the URL when it is gone")
    flt.add_argument("--workers", type=int, default=1, help="episodes processed in parallel")
    flt.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                     help="episodes as tasks on a Ray cluster: auto (default: the one this "
                          "machine is in), HOST:PORT, or local (a private one); the episodes "
                          "must be in a folder every node shares; shards are written here")
    flt.add_argument("--decode-memory-gb", type=float, default=DECODE_ONCE_BYTES / 1e9,
                     help="per worker: an episode whose decoded frames fit is decoded once, "
                          "a longer one twice (default: %(default)g; speed only, same shards)")
    flt.add_argument("--strict", action="store_true", help="exit 1 when anything was rejected")
    flt.add_argument("--no-progress", action="store_true")
    config_flags(flt, FilterConfig, "filter settings (FilterConfig; see docs/curation.md)")
    flt.add_argument("--size", default=None, help="WIDTHxHEIGHT (sets --width and --height)")

    ann = sub.add_parser("annotate", help="infer keys and mouse from camera trajectories, "
                         "or (--from-video) from the pixels of a video without any")
    ann.add_argument("episodes", nargs="*", type=Path)
    ann.add_argument("--out", type=Path, required=True,
                     help="where annotated copies go (with --from-video: the actions.csv)")
    ann.add_argument("--from-video", type=Path, default=None, metavar="EPISODE_OR_MP4",
                     help="label a video from its pixels (camera-motion probe): write a "
                          "contract actions.csv, poses unknown (see docs/curation.md)")
    ann.add_argument("--fov", type=float, default=None,
                     help="with --from-video: horizontal field of view, degrees (default: "
                          "the episode's CSV, else 90)")
    ann.add_argument("--fps", type=float, default=None,
                     help="with --from-video: frame rate (default: meta.json or the file's)")
    config_flags(ann, AnnotateConfig, "decoder settings (AnnotateConfig; see "
                  "curation/annotate.py, field by field)")

    rep = sub.add_parser("report", help="HTML report of a shard folder")
    rep.add_argument("shards", type=Path)
    rep.add_argument("--out", type=Path, default=None, help="default: SHARDS/report")

    pre = sub.add_parser("preview", help="draw the inputs over a clip or an episode (MP4)")
    pre.add_argument("source", type=Path, help="episode folder or shard tar")
    pre.add_argument("--key", default=None, help="clip key inside a tar (default: the first)")
    pre.add_argument("--out", type=Path, required=True, help="MP4 to write")
    return parser


def cmd_filter(args: argparse.Namespace) -> int:
    from curation.pipeline import run_filter

    cfg = _config(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if not args.decode_memory_gb >= 0:
        raise UsageError(f"--decode-memory-gb must not be negative, got {args.decode_memory_gb}")
    for path in args.episodes:
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
    folder = _stage(args) if is_url(args.out) else Path(args.out)
    try:
        summary = run_filter(args.episodes, folder, cfg, workers=args.workers,
                             progress=not args.no_progress,
                             decode_once_bytes=int(args.decode_memory_gb * 1e9),
                             ray_address=args.ray)
        if is_url(args.out):
            sent = upload_tree(folder, args.out, last=DATASET_FILE)
            print(f"uploaded {sent} file(s) from {folder} to {args.out}")
    except (OSError, RuntimeError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    for reject in summary.skipped_inputs:
        print(f"skipped {reject.source}: {reject.reason}")
    print(f"{summary.episodes} episode(s) processed ({summary.skipped} done before), "
          f"{summary.clips} clip(s) from {summary.frames} frames in {summary.seconds:.1f} s "
          f"-> {args.out}")
    for kind, count in summary.rejects.most_common():
        print(f"  rejected {count} x {kind}")
    return EXIT_REJECTS if args.strict and summary.rejects else 0


def _stage(args: argparse.Namespace) -> Path:
    """The local folder a URL's shard set is written in: ``--stage``, or one in the temp
    folder named after the URL; filled from the URL when it has no shard set yet (the machine
    that ran the last attempt is gone), so the run resumes where the URL is."""
    stage = args.stage or Path(tempfile.gettempdir()) / "worldforge-stage" / hashlib.sha256(
        args.out.encode()).hexdigest()[:16]
    if not (stage / DATASET_FILE).exists():
        stage.mkdir(parents=True, exist_ok=True)
        if got := download_tree(args.out, stage):
            print(f"resuming from {args.out}: {got} file(s) fetched into {stage}")
    print(f"staging the shard set in {stage}")
    return stage


def cmd_annotate_video(args: argparse.Namespace) -> int:
    from curation.probe import ProbeError
    from curation.probe_actions import ProbeActionsError, annotate_video
    from datagen.episode import EpisodeError
    from datagen.video import VideoError

    if args.episodes:
        raise UsageError("--from-video labels one video: give no episode folders with it")
    if given_fields(args, AnnotateConfig):
        raise UsageError("decoder settings (--walk-speed, ...) are for pose-based annotation, "
                         "not --from-video")
    try:
        done = annotate_video(args.from_video, args.out, fov=args.fov, fps=args.fps)
    except (ProbeError, ProbeActionsError, EpisodeError, VideoError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {done.path}: {done.frames} frames at {done.fps:g} fps, fov {done.fov:g} "
          f"({done.fov_source}), {done.unknown} unknown (too little texture), probe "
          f"{done.frames / max(done.seconds, 1e-9):.0f} frames/s; poses unknown (0)")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from curation.annotate import annotate_episode
    from datagen.episode import find_episodes
    from datagen.output_lock import OutputLock, OutputLocked

    if args.from_video is not None:
        return cmd_annotate_video(args)
    if not args.episodes:
        raise UsageError("give episode folders (or --from-video EPISODE_OR_MP4)")
    if args.fov is not None or args.fps is not None:
        raise UsageError("--fov and --fps go with --from-video")
    try:
        cfg = AnnotateConfig(**given_fields(args, AnnotateConfig))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for root in args.episodes:
        if not root.is_dir():
            raise UsageError(f"no such folder: {root} (give episode folders or folders of them)")
    failed = 0
    try:  # annotate_episode clears stale .partial leftovers: one run per --out
        lock = OutputLock(args.out, "curation annotate")
    except (OutputLocked, OSError) as exc:
        raise UsageError(str(exc)) from None
    with lock:
        for root in args.episodes:
            for path in find_episodes(root)[0]:
                try:
                    print(f"annotated {annotate_episode(path, args.out, cfg)}")
                except (OSError, ValueError) as exc:
                    failed += 1
                    print(f"FAILED {path}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from curation.report import write_report

    if not (args.shards / "dataset.json").exists():
        raise UsageError(f"{args.shards} is not a shard folder (no dataset.json)")
    try:
        print(f"wrote {write_report(args.shards, args.out)}")
    except (OSError, ValueError) as exc:  # ReportError names the broken tar and clip
        raise UsageError(str(exc)) from None
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from curation.preview import preview

    if not args.source.exists():
        raise UsageError(f"no such file or folder: {args.source}")
    try:
        print(f"wrote {preview(args.source, args.out, key=args.key)}")
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(str(exc)) from None
    return 0


COMMANDS = {"filter": cmd_filter, "annotate": cmd_annotate, "report": cmd_report,
            "preview": cmd_preview}


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), COMMANDS, argv,
               interrupted="closed shards are kept and the next run resumes")


if __name__ == "__main__":
    sys.exit(main())
