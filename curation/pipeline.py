"""``curation filter`` end to end: episodes in, WebDataset shards out, one episode per task.

Each worker process takes one episode through the stages::

    validate -> read actions -> decode -> grey thumbnails -> plan_segments (repeats, frozen and
    static stretches, velocity, resampling, too-short parts) -> cut_clips -> encode_clips ->
    make_sample

and hands back its samples and rejects; the main process adds them to the :class:`ShardSet`
in episode-id order whatever the number of workers, so shards are byte-identical for the same
inputs and settings. A bad episode becomes rows of ``rejects.parquet`` with its reason and the
run goes on; inputs are only ever read.

The decoded frames stay in memory from the thumbnails to the clips, so the video is decoded
once, unless the episode's frames exceed ``decode_once_bytes`` (``--decode-memory-gb``): then
it is decoded again for the clips (same bytes, less memory).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from curation.clips import cut_clips
from curation.config import FilterConfig
from curation.encode import encode_clips
from curation.samples import make_sample
from curation.segmenting import plan_segments
from curation.segments import Reject
from curation.shardwriter import ShardSet, reason_kind
from curation.thumbnails import thumbnails, thumbnails_of
from datagen.episode import VIDEO_FILE, find_episodes, read_episode
from datagen.episode_check import validate_episode
from datagen.lifetime import die_with_parent
from datagen.video import VideoError, decode_frames

# Decoded yuv420p bytes of one episode at most that a worker keeps in memory to decode its video
# once (thumbnails, then clips); a longer or larger episode is decoded twice instead. Both ways
# give the same bytes.
DECODE_ONCE_BYTES = 1_500_000_000


@dataclass
class EpisodeResult:
    episode: str
    samples: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    frames: int = 0  # source frames read


@dataclass
class FilterSummary:
    episodes: int = 0
    skipped: int = 0  # done by an earlier run into the same folder
    clips: int = 0
    frames: int = 0
    rejects: Counter = field(default_factory=Counter)  # reason kind -> count
    skipped_inputs: list[Reject] = field(default_factory=list)  # .partial and duplicate ids:
    #   reported, not recorded in rejects.parquet (a .partial may be finished by a later run)
    seconds: float = 0.0


def discover(inputs: list[Path]) -> tuple[list[Path], list[Reject]]:
    """Finished episodes under ``inputs``, sorted by episode id, and what was skipped (unfinished
    ``.partial`` folders, a second folder with an episode id already found)."""
    found: dict[str, Path] = {}
    rejects = []
    for root in inputs:
        finished, partial = find_episodes(root)
        for path in partial:
            rejects.append(Reject(str(path), path.name.removesuffix(".partial"), -1, -1,
                                  "unfinished recording (.partial folder): skipped"))
        for path in finished:
            if path.name in found:
                rejects.append(Reject(str(path), path.name, -1, -1,
                                      f"duplicate episode id: also at {found[path.name]}"))
            else:
                found[path.name] = path
    return [found[k] for k in sorted(found)], rejects


def process_episode(path: Path, cfg: FilterConfig,
                    decode_once_bytes: int = DECODE_ONCE_BYTES,
                    scratch: Path | None = None) -> EpisodeResult:
    """Everything one worker does for one episode; never raises for bad data. The video is
    decoded once and kept in memory when its frames fit in ``decode_once_bytes`` (yuv420p at the
    size in meta.json), else decoded once for the thumbnails and once more for the clips.
    Clips are encoded under ``scratch`` (see :func:`~curation.encode.encode_clips`)."""
    result = EpisodeResult(path.name)
    problems = validate_episode(path, decode_video=False)
    if problems:
        reason = "; ".join(f"{p.where}: {p.message}" for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        result.rejects.append(Reject(str(path), path.name, -1, -1,
                                     f"invalid episode: {reason}{more}"))
        return result
    try:
        episode = read_episode(path)
        n = len(episode.data["frame"])
        result.frames = n
        result.info = {"scene": episode.meta.scene, "backend": episode.meta.backend,
                       "frames": n, "fps": episode.meta.fps}
        video = path / VIDEO_FILE
        frames = None
        try:
            if n * episode.meta.width * episode.meta.height * 3 // 2 <= decode_once_bytes:
                frames = list(decode_frames(video))
                thumbs = thumbnails_of(frames, cfg.thumb_width, cfg.thumb_height)
            else:
                thumbs = thumbnails(video, cfg.thumb_width, cfg.thumb_height)
        except VideoError as exc:  # a damaged or truncated file is the episode's fault
            result.rejects.append(Reject(str(path), path.name, -1, n,
                                         f"invalid episode: video.mp4: {exc}"))
            return result
        if len(thumbs) != n:
            result.rejects.append(Reject(
                str(path), path.name, -1, n,
                f"invalid episode: video.mp4 decodes to {len(thumbs)} frames but actions.csv "
                f"has {n} rows"))
            return result
        segments, rejects = plan_segments(episode, thumbs, cfg)
        result.rejects.extend(rejects)
        plans = [plan for segment in segments for plan in cut_clips(segment, cfg)]
        result.samples = [make_sample(plan, mp4, cfg)
                          for plan, mp4 in encode_clips(video, plans, cfg, frames=frames,
                                                          scratch=scratch)]
    except Exception as exc:  # one episode's failure is a reject, never the run's
        result.samples = []
        result.rejects = [Reject(str(path), path.name, -1, result.frames or -1,
                                 f"could not be processed: {type(exc).__name__}: {exc}")]
    return result


def _work(args: tuple[Path, FilterConfig, Path, int]) -> EpisodeResult:
    path, cfg, scratch, decode_once_bytes = args
    return process_episode(path, cfg, decode_once_bytes, scratch)


def run_filter(inputs: list[Path], out: Path, cfg: FilterConfig, workers: int = 1,
               progress: bool = True, decode_once_bytes: int = DECODE_ONCE_BYTES,
               ray_address: str | None = None) -> FilterSummary:
    """Curate ``inputs`` into the shard folder ``out``; returns what happened. Each worker keeps
    an episode's decoded frames in memory up to ``decode_once_bytes`` (see
    :func:`process_episode`); it changes speed and memory, never the shards.

    With ``ray_address`` the episodes are Ray tasks on that cluster (:mod:`datagen.cluster`),
    each asking for a CPU and its decode memory, clips encoded in the node's own temporary
    folder; their results come back in episode order and this process writes the shards, so
    the bytes are those of a local run whatever the cluster."""
    start = time.perf_counter()
    summary = FilterSummary()
    episodes, summary.skipped_inputs = discover(inputs)
    # An exception or Ctrl-C aborts: only closed shards stay, and the next run resumes there,
    # giving the same bytes as an uninterrupted run.
    with ShardSet(out, cfg, source=", ".join(str(p) for p in inputs)) as shards:
        todo = [p for p in episodes if not shards.is_done(p.name)]
        summary.skipped = len(episodes) - len(todo)
        tasks = [(p, cfg, shards.scratch, decode_once_bytes) for p in todo]
        with tqdm(total=len(todo), desc="episodes", unit="ep", disable=not progress,
                  dynamic_ncols=True) as bar:
            if ray_address is not None:
                _collect(_on_ray(ray_address, tasks, decode_once_bytes), shards, summary, bar,
                         start)
            elif workers > 1 and len(todo) > 1:
                # workers die with the run: none goes on writing into a folder whose lock the
                # kernel has already released
                with mp.get_context("spawn").Pool(workers, initializer=die_with_parent) as pool:
                    _collect(pool.imap(_work, tasks), shards, summary, bar, start)
            else:
                _collect(map(_work, tasks), shards, summary, bar, start)
    summary.seconds = time.perf_counter() - start
    return summary


def _on_ray(address: str, tasks: list[tuple], decode_once_bytes: int):
    """The tasks' results from Ray workers, in task order."""
    from datagen.cluster import connect, ordered_map

    connect(address)
    remote = [((path, cfg, None, decode),) for path, cfg, _, decode in tasks]  # node's temp
    resources = {"num_cpus": 1, "memory": max(decode_once_bytes, 1)}
    return ordered_map(_work, remote, resources, desc="ray tasks", progress=False)


def _collect(results, shards: ShardSet, summary: FilterSummary, bar, start: float) -> None:
    for result in results:
        shards.add_episode(result.episode, result.samples, result.rejects, result.info)
        summary.episodes += 1
        summary.clips += len(result.samples)
        summary.frames += result.frames
        for reject in result.rejects:
            summary.rejects[reason_kind(reject.reason)] += 1
        bar.update(1)
        elapsed = time.perf_counter() - start
        bar.set_postfix(clips=summary.clips, rejects=sum(summary.rejects.values()),
                        fps=f"{summary.frames / elapsed:.0f}" if elapsed > 0 else "-")
