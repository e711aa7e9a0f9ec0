"""Stream curated clips (contract part 4) from WebDataset shards into PyTorch training.

``clip_dataset(urls)`` is a webdataset pipeline of small stages::

    shard list, shuffled by (seed, epoch)          the same on every rank
    -> split by node: rank r keeps shards r, r+W, ...  (torch.distributed, or RANK/WORLD_SIZE)
    -> tar samples (raw bytes)
    -> shuffle buffer seeded by (seed, epoch, rank)    => this rank's stream, fixed for a seed
    -> skip the first ``start`` samples                 (resume from a position)
    -> (``endless``: the next epoch's stream, and so on)
    -> split by worker: sample i goes to worker i % num_workers
    -> decode in the worker (MP4 via PyAV, npy, json) and map actions to ``space``

Every worker reads the rank's tars and keeps its share of the samples before decoding (the
expensive part), so even a single shard feeds every worker. A ``DataLoader`` with
``batch_size=None`` or 1 takes one sample from each worker in turn, so it yields this rank's
stream in exactly the same order for any number of workers, and ``start=k`` gives the stream from
its k-th sample: to resume, pass the number of samples this rank has already consumed. Ranks
get whole shards, so a job needs at least as many shards as ranks (more for balance).

With ``endless=True`` the stream goes on from epoch to epoch (each epoch shuffled by its own
seed), numbered across epochs before the split by worker, so the order still does not depend on
the number of workers, and a DataLoader's workers live for the whole run instead of starting
afresh at each epoch. Every sample carries ``__position__`` = ``(epoch, i)``: it is the ``i``-th
sample of this rank's epoch, so ``epoch=epoch, start=i + 1`` resumes right after it.

Each sample is a dict: ``__key__``; ``__position__`` (``(epoch, i)``, above); ``video`` (torch
uint8 ``[T, H, W, 3]``, RGB, row 0 = top; float32 in [-1, 1] with ``float_video``; the MP4 bytes
with ``decode_video=False``); ``keys`` (float32 ``[T, K]`` keyboard of the action space); ``mouse``
(float32 ``[T, 2]`` in the space's units; absent when the space has no mouse); ``pose`` (float64
``[T, 8]``); ``meta`` (the clip's json, plus ``shard``: the tar it came from); ``latents`` (torch
float16 ``[2, 16, F, h, w]``, only in samples that have ``latents.npy``, written by ``training
encode``: the clip's and the condition video's VAE latents, with the VAE's identity in
``meta["latents"]``); ``first`` (torch uint8 ``[H, W, 3]``, RGB: the clip's first frame as decoded,
only in samples that have ``first.png``, written beside ``latents.npy`` so a trainer need not open
the MP4); ``ode`` (torch float16 ``[K, 16, F, h, w]``, only in ODE-pair samples written by
``training odepairs``: the teacher's latents at the ``K`` sigmas in ``meta["ode"]``, ``latents[0]``
being the clean end).
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import webdataset as wds
from webdataset.tariterators import group_by_keys, tar_file_expander
from webdataset.utils import pytorch_worker_info

from datagen.action_coverage import check_goals
from shards.action_space import ActionSpace, get_space, to_space
from shards.location import open_stream, read_dataset

MEMBERS = ("mp4", "keys.npy", "mouse.npy", "pose.npy", "json")  # contract part 4
LATENTS = "latents.npy"  # optional: float16 [2, 16, F, h, w] from training encode
ODE = "ode.npy"  # optional: float16 [K, 16, F, h, w] from training odepairs
FIRST = "first.png"  # optional: the first frame, lossless (training encode, training odepairs)


class ShardError(ValueError):
    """A sample breaks the shard contract (missing member, wrong shape, undecodable video)."""


def coverage_note(path: str | Path, split: str = "train") -> str:
    """One line on the action coverage ``dataset.json`` records for ``split``: the goals of
    :mod:`datagen.action_coverage` met and the ones missed (what a training job prints before
    it starts, since a model learns only the actions its clips show)."""
    try:
        info = read_dataset(path)["action_coverage"][split]
    except (OSError, ValueError, KeyError, TypeError):
        return f"action coverage of {split}: not recorded in {path}'s dataset.json"
    goals = check_goals(info)
    missed = [g.describe() for g in goals if not g.met]
    return (f"action coverage of {split} ({info['frames']} frames): "
            f"{len(goals) - len(missed)} of {len(goals)} goals met"
            + (f"; missed {'; '.join(missed)}" if missed else ""))


def decode_mp4(data: bytes) -> np.ndarray:
    """MP4 bytes to uint8 RGB frames ``[T, H, W, 3]``."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ShardError("the mp4 has no frames")
    return np.stack(frames)


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes to a uint8 RGB image ``[H, W, 3]``."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a PNG image OpenCV can read")
    return np.ascontiguousarray(image[..., ::-1])


def decode_sample(
    sample: dict, space: ActionSpace, decode_video: bool = True, float_video: bool = False
) -> dict:
    """One raw tar sample (member name -> bytes) to the training dict (see module docstring)."""
    key, url = sample.get("__key__"), sample.get("__url__")
    where = f"sample {key!r} of {url}"
    missing = [m for m in MEMBERS if m not in sample]
    if missing:
        raise ShardError(f"{where}: missing members {missing} (has {sorted(sample)})")
    try:
        meta = json.loads(sample["json"])
        keys = np.load(io.BytesIO(sample["keys.npy"]), allow_pickle=False)
        mouse = np.load(io.BytesIO(sample["mouse.npy"]), allow_pickle=False)
        pose = np.load(io.BytesIO(sample["pose.npy"]), allow_pickle=False)
        video = decode_mp4(sample["mp4"]) if decode_video else sample["mp4"]
        latents = (np.load(io.BytesIO(sample[LATENTS]), allow_pickle=False)
                   if LATENTS in sample else None)
        ode = np.load(io.BytesIO(sample[ODE]), allow_pickle=False) if ODE in sample else None
        first = decode_png(sample[FIRST]) if FIRST in sample else None
    except (ValueError, OSError, av.FFmpegError) as exc:
        raise ShardError(f"{where}: cannot decode: {exc}") from exc
    if latents is not None and (latents.ndim != 5 or latents.shape[0] != 2
                                or latents.dtype != np.float16):
        raise ShardError(f"{where}: {LATENTS} is {latents.dtype} {list(latents.shape)}, not "
                         f"float16 [2, C, F, h, w]")
    if ode is not None and (latents is None or ode.ndim != 5 or ode.dtype != np.float16
                            or ode.shape[1:] != latents.shape[1:]):
        raise ShardError(f"{where}: {ODE} is {ode.dtype} {list(ode.shape)}; it must be float16 "
                         f"[K, C, F, h, w] beside a {LATENTS} of the same C, F, h, w")
    size = (meta.get("height"), meta.get("width"))
    if first is not None and first.shape != (*size, 3):
        raise ShardError(f"{where}: {FIRST} is {list(first.shape)}, not the json's "
                         f"{size[1]}x{size[0]} RGB")
    t = len(keys)
    if pose.shape != (t, 8) or mouse.shape != (t, 2):
        raise ShardError(f"{where}: keys {keys.shape}, mouse {mouse.shape}, pose {pose.shape} "
                         f"do not describe the same {t} frames ([T, 7], [T, 2], [T, 8])")
    if decode_video:
        if video.shape[0] != t or video.shape[1:3] != size:
            raise ShardError(f"{where}: video has {video.shape[0]} frames of "
                             f"{video.shape[2]}x{video.shape[1]}, the labels {t} frames and the "
                             f"json {size[1]}x{size[0]}")
        video = torch.from_numpy(video)
        if float_video:
            video = video.float().div_(127.5).sub_(1.0)
    try:
        keyboard, model_mouse = to_space(keys, mouse, space)
    except ValueError as exc:
        raise ShardError(f"{where}: {exc}") from exc
    sample = {
        "__key__": key,
        "video": video,
        "keys": torch.from_numpy(keyboard),
        "pose": torch.from_numpy(pose.astype(np.float64)),
        "meta": {**meta, "shard": url},
    }
    if model_mouse is not None:  # absent, not None, so torch's default collate still works
        sample["mouse"] = torch.from_numpy(model_mouse)
    if latents is not None:
        sample["latents"] = torch.from_numpy(latents)
    if ode is not None:
        sample["ode"] = torch.from_numpy(ode)
    if first is not None:
        sample["first"] = torch.from_numpy(first)
    return sample


def _rank_shards(urls: list[str], seed: int, epoch: int, shuffle: bool,
                 split_by_node: bool) -> Callable[[], Iterator[dict]]:
    """First stage: this rank's shards, after a (seed, epoch) shuffle shared by all ranks."""

    def stage() -> Iterator[dict]:
        order = list(urls)
        if shuffle:
            random.Random(f"shards:{seed}:{epoch}").shuffle(order)
        rank, world, _, _ = pytorch_worker_info()
        if split_by_node and world > 1:
            if len(order) < world:
                raise ValueError(f"{len(order)} shards cannot feed {world} ranks: write more, "
                                 "smaller shards (curation filter --maxcount)")
            order = order[rank::world]
        return iter({"url": u} for u in order)

    return stage


def _tar_samples(handler: Callable[[Exception], bool]
                 ) -> Callable[[Iterator[dict]], Iterator[dict]]:
    """webdataset's tarfile_to_samples, each tar opened by :func:`shards.location.open_stream`
    (a local file, an ``http(s)`` URL, or any fsspec URL)."""

    def opened(src: Iterator[dict]) -> Iterator[dict]:
        for sample in src:
            try:
                yield {**sample, "stream": open_stream(sample["url"])}
            except Exception as exc:  # as webdataset's url_opener: the handler decides
                exc.args = (*exc.args, sample["url"])
                if not handler(exc):
                    return

    def stage(src: Iterator[dict]) -> Iterator[dict]:
        return group_by_keys(tar_file_expander(opened(src), handler=handler), handler=handler)

    return stage


def _name_bad_tar(exc: Exception) -> bool:
    """Raise ``exc``; a tar that is not one as a :class:`ShardError` naming it (webdataset puts
    the tar's URL last in the arguments)."""
    if isinstance(exc, tarfile.TarError):
        raise ShardError(f"cannot read shard {exc.args[-1]}: {exc.args[0]}") from exc
    raise exc


def raw_samples(urls: list[str]) -> Iterator[dict]:
    """The samples of ``urls`` in order, as bytes per member (``{"__key__", "mp4", "json",
    ...}``): no shuffling, splitting or decoding. A missing tar is FileNotFoundError, one that
    is not a tar ShardError."""
    return _tar_samples(_name_bad_tar)(iter({"url": u} for u in urls))


def _shuffled(bufsize: int, seed: int, epoch: int) -> Callable[[Iterator[dict]], Iterator[dict]]:
    """Shuffle buffer whose generator is re-seeded on every pass (same order every iteration)."""

    def stage(src: Iterator[dict]) -> Iterator[dict]:
        rank = pytorch_worker_info()[0]
        rng = random.Random(f"samples:{seed}:{epoch}:{rank}")
        return wds.shuffle(bufsize, bufsize, rng=rng)(iter(src))

    return stage


def _rank_stream(urls: list[str], *, seed: int, shuffle: int, split_by_node: bool,
                 epoch: int, start: int, endless: bool,
                 handler: Callable[[Exception], bool]) -> Callable[[], Iterator[dict]]:
    """This rank's raw samples of ``epoch`` from its ``start``-th on (then of the epochs after
    it, if ``endless``), each tagged with its ``__position__``."""

    def one_epoch(e: int) -> Iterator[dict]:
        return iter(wds.DataPipeline(
            _rank_shards(urls, seed, e, shuffle > 0, split_by_node),
            _tar_samples(handler),
            _shuffled(shuffle, seed, e) if shuffle > 0 else None,
        ))

    def stage() -> Iterator[dict]:
        e, skip = epoch, start
        while True:
            count = 0
            for count, sample in enumerate(one_epoch(e), 1):
                if count > skip:
                    yield {**sample, "__position__": (e, count - 1)}
            if not endless:
                return
            if count == 0:
                raise ShardError(f"this rank's shards hold no clips ({urls})")
            e, skip = e + 1, 0

    return stage


def _for_worker(split_by_worker: bool) -> Callable[[Iterable], Iterator]:
    """Keep this worker's share of the stream: sample i goes to worker i % workers."""

    def stage(src: Iterable) -> Iterator:
        _, _, worker, workers = pytorch_worker_info()
        return islice(src, worker, None, workers) if split_by_worker else iter(src)

    return stage


def _decoded(decode: Callable[[dict], dict], handler: Callable[[Exception], bool],
             endless: bool) -> Callable[[Iterable[dict]], Iterator[dict]]:
    """Decode each raw sample; a failure goes to ``handler`` (True: skip it, False: stop). An
    endless stream whose samples all fail for a whole epoch can never yield one: an error."""

    def stage(src: Iterable[dict]) -> Iterator[dict]:
        failing_since = None  # the epoch of the first failure since the last decoded sample
        for sample in src:
            try:
                out = decode(sample)
            except Exception as exc:
                if not handler(exc):
                    return
                epoch = sample["__position__"][0]
                if failing_since is None:
                    failing_since = epoch
                elif endless and epoch >= failing_since + 2:
                    raise ShardError(f"no clip of epoch {epoch - 1} could be decoded (every "
                                     f"sample was skipped as bad, the last: {exc}); an endless "
                                     f"stream over them would never yield one") from exc
                continue
            failing_since = None
            yield out

    return stage


def clip_dataset(
    urls: str | list[str],
    *,
    seed: int = 0,
    shuffle: int = 0,
    split_by_node: bool = True,
    split_by_worker: bool = True,
    decode_video: bool = True,
    float_video: bool = False,
    space: str | ActionSpace = "worldforge",
    start: int = 0,
    epoch: int = 0,
    endless: bool = False,
    handler: Callable[[Exception], bool] = wds.reraise_exception,
) -> torch.utils.data.IterableDataset:
    """A dataset of clip dicts from WebDataset tars (a path, a brace pattern, or a list).

    ``shuffle`` is the sample shuffle-buffer size (0: no shuffling of shards or samples); the
    order is fixed by ``seed`` and ``epoch``; ``start`` resumes this rank's stream at its
    ``start``-th sample; ``endless`` goes on with the next epochs (a rank whose shards hold no
    samples, or none that decode for a whole epoch, is then an error). ``handler`` is
    webdataset's error policy (default: raise; ``webdataset.warn_and_continue`` skips bad
    samples with a warning).
    """
    if isinstance(urls, (str, Path)) and Path(urls).is_dir():
        raise ValueError(f"{urls} is a folder: pass its tars, e.g. open_shards({str(urls)!r})")
    url_list = wds.shardlists.expand_urls(urls) if isinstance(urls, str) else list(urls)
    if not url_list:
        raise ValueError("no shard urls given")
    if shuffle < 0 or start < 0:
        raise ValueError(f"shuffle and start must be >= 0, got shuffle={shuffle}, start={start}")
    if float_video and not decode_video:
        raise ValueError("float_video needs decode_video=True")
    action_space = get_space(space)

    def decode(sample: dict) -> dict:
        return {**decode_sample(sample, action_space, decode_video, float_video),
                "__position__": sample["__position__"]}

    return wds.DataPipeline(
        _rank_stream(url_list, seed=seed, shuffle=shuffle, split_by_node=split_by_node,
                     epoch=epoch, start=start, endless=endless, handler=handler),
        _for_worker(split_by_worker),
        _decoded(decode, handler, endless),
    )
