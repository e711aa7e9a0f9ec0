"""Shard clips to DiT training batches.

Two stages, one per process kind::

    DataLoader worker (per sample)                 main process (per batch, on the device)
    shards.clip_dataset (this rank's stream)       stack B samples, pixels to [-1, 1]
    -> first `frames` (4k+1) frames of the clip    -> latents: from latents.npy, or WanVAE.encode
       keyboard/mouse rows 0..frames-1                of the clip and of its condition video
       (N = 4 (F - 1) + 1 = frames)                -> cond  = cat(first_frame_mask, cond latents)
       latents.npy sliced to F latent frames       -> image = conditioning.image_tokens(frame 0)
       and the first frame (first.png, or the MP4's)  (or a CLIP tower: training.image_encoder)
       or the decoded clip (uint8)

A prepared sample holds numpy arrays, not tensors: they cross from the worker pickled through its
pipe, where torch tensors would each be handed over through shared memory (on the test machine
about 4 ms for a tiny sample's four tensors, against 0.5 ms for the same arrays pickled); pixels
stay uint8 until the batch, a quarter of the bytes.

A sample uses its ``latents.npy`` (written by ``training encode``) when it has one, after checking
its VAE identity against the run's (a mismatch is an error naming both VAEs); a sample without
one is encoded on the fly, which needs a VAE. Wan's VAE is causal, so the first ``F`` latents of a
longer clip's encoding are the latents of its first ``4 (F - 1) + 1`` frames.

:class:`ClipStream` is a rank's endless stream of batches: the DataLoader yields samples one at a
time (``batch_size=None``), which keeps the reader's order for any number of workers, so the
position ``(epoch, start)`` -- ``start`` = samples of this epoch consumed -- resumes it exactly.
Its reader goes from epoch to epoch itself (``endless``), so the loader's workers start once per
run and read ahead across the end of an epoch, where a new loader per epoch made the trainer wait
for fresh workers. It also measures how long the trainer waited on the loader.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import av
import numpy as np
import torch
from torch import Tensor

from shards.action_space import ActionSpace
from shards.reader import ShardError, clip_dataset, decode_mp4
from training.conditioning import condition_video, first_frame_mask, image_tokens
from training.config import DiTConfig
from training.vae import WanVAE, check_identity

TEMPORAL = 4  # video frames per latent frame (Wan VAE)


def latent_frames(frames: int) -> int:
    """Latent frames ``F`` of a ``frames``-frame clip (``frames = 4k + 1``)."""
    if frames < 1 or (frames - 1) % TEMPORAL:
        raise ValueError(f"frames must be 4k+1 (5, 9, 13, 17, ...), got {frames}")
    return (frames - 1) // TEMPORAL + 1


@dataclass
class Batch:
    keys: list[str]  # the clips' __key__s
    latents: Tensor  # [B, 16, F, h, w] normalised clean latents
    cond: Tensor  # [B, 20, F, h, w]: first-frame mask (4), condition-video latents (16)
    image: Tensor  # [B, L, D] image tokens of the first frame
    keyboard: Tensor  # [B, N, K] float multi-hot, N = 4 (F - 1) + 1
    mouse: Tensor | None  # [B, N, 2] in the action space's units, or None (no mouse)
    ode: Tensor | None = None  # [B, K, 16, F, h, w] ODE-pair trajectory points (odepairs)

    def __len__(self) -> int:
        return len(self.keys)


def first_frame(mp4: bytes) -> np.ndarray:
    """The first frame of an MP4 as uint8 RGB ``[H, W, 3]`` (decodes nothing after it)."""
    with av.open(io.BytesIO(mp4)) as container:
        for frame in container.decode(container.streams.video[0]):
            return frame.to_ndarray(format="rgb24")
    raise ShardError("the mp4 has no frames")


def _pixels(images: list[np.ndarray], device: torch.device) -> Tensor:
    """uint8 ``[..., H, W, 3]`` arrays -> float32 ``[B, 3, ..., H, W]`` in [-1, 1] on
    ``device``."""
    batch = torch.from_numpy(np.stack(images)).to(device)
    return batch.float().div_(127.5).sub_(1.0).movedim(-1, 1).contiguous()


def prepare_sample(sample: dict, frames: int) -> dict:
    """A reader sample (``decode_video=False``) to what a batch needs (runs in the workers)."""
    key = sample["__key__"]
    where = f"clip {key!r} of {sample['meta'].get('shard')}"
    if len(sample["keys"]) < frames:
        raise ShardError(f"{where} has {len(sample['keys'])} frames, fewer than frames={frames}")
    out = {"key": key, "where": where, "position": sample["__position__"],
           "keyboard": sample["keys"][:frames].numpy()}
    if "mouse" in sample:
        out["mouse"] = sample["mouse"][:frames].numpy()
    if "latents" in sample:
        f = latent_frames(frames)
        info = sample["meta"].get("latents") or {}
        if sample["latents"].shape[2] < f or info.get("frames", 0) < frames:
            raise ShardError(f"{where}: latents.npy covers {info.get('frames')} frames, fewer "
                             f"than frames={frames}; re-encode (training encode --frames "
                             f"{frames}) or train on fewer frames")
        out["latents"] = sample["latents"][:, :, :f].numpy()
        if "ode" in sample:
            out["ode"] = sample["ode"][:, :, :f].numpy()
        out["vae"] = info.get("vae")
        # first.png (training encode) spares opening the MP4, the costliest part of a sample
        out["first"] = (sample["first"].numpy() if "first" in sample
                        else first_frame(sample["video"]))
    else:
        video = decode_mp4(sample["video"])
        if len(video) < frames:
            raise ShardError(f"{where}: the video has {len(video)} frames, fewer than "
                             f"frames={frames}")
        out["video"] = video[:frames]
        out["first"] = video[0]
    return out


class _Prepared(torch.utils.data.IterableDataset):
    """The reader's stream with :func:`prepare_sample` applied in the worker."""

    def __init__(self, clips: torch.utils.data.IterableDataset, frames: int) -> None:
        self.clips, self.frames = clips, frames

    def __iter__(self) -> Iterator[dict]:
        for sample in self.clips:
            yield prepare_sample(sample, self.frames)


def _as_is(sample: dict) -> dict:
    """The loader's collate: none (its default would turn the arrays into tensors in the
    worker)."""
    return sample


def sample_loader(urls: list[str], *, frames: int, space: ActionSpace, seed: int, shuffle: int,
                  epoch: int, start: int, num_workers: int, split_by_node: bool = True,
                  endless: bool = False, ahead: int = 2) -> torch.utils.data.DataLoader:
    """This rank's samples from its ``start``-th of ``epoch`` on, prepared, one at a time: to
    the end of the epoch, or through all the epochs after it (``endless``). The workers keep
    at least ``ahead`` samples ready between them."""
    clips = clip_dataset(urls, seed=seed, shuffle=shuffle, split_by_node=split_by_node,
                         decode_video=False, space=space, start=start, epoch=epoch,
                         endless=endless)
    extra = {"prefetch_factor": max(2, -(-ahead // num_workers))} if num_workers else {}
    return torch.utils.data.DataLoader(_Prepared(clips, frames), batch_size=None,
                                       num_workers=num_workers, collate_fn=_as_is, **extra)


@dataclass
class BatchBuilder:
    """Stacks prepared samples into a :class:`Batch` on ``device`` (main process)."""

    model: DiTConfig
    device: torch.device
    vae: WanVAE | None = None  # needed for samples without latents.npy
    identity: dict | None = None  # the VAE the latents must come from (None: the first seen)
    images: Callable[[Tensor], Tensor] | None = None  # first frames -> image tokens; None:
    #                                                   conditioning.image_tokens (stand-in)
    encoded: int = field(default=0, init=False)  # samples encoded on the fly so far

    def __post_init__(self) -> None:
        if self.vae is not None:
            if self.identity is not None:
                check_identity(self.vae.identity, self.identity, "the VAE given")
            self.identity = self.vae.identity

    def _check_latents(self, sample: dict) -> None:
        found = sample["vae"]
        if found is None:
            raise ShardError(f"{sample['where']}: latents.npy without a VAE identity in its json")
        if self.identity is None:
            self.identity = found
        check_identity(found, self.identity, f"the latents of {sample['where']}")

    def __call__(self, samples: list[dict]) -> Batch:
        dev = self.device
        first = _pixels([s["first"] for s in samples], dev)
        latents, cond_latents = [None] * len(samples), [None] * len(samples)
        todo = []
        for i, s in enumerate(samples):
            if "latents" in s:
                self._check_latents(s)
                pair = torch.from_numpy(s["latents"]).to(dev, torch.float32)
                latents[i], cond_latents[i] = pair[0], pair[1]
            else:
                todo.append(i)
        if todo:
            if self.vae is None:
                raise ShardError(f"{samples[todo[0]]['where']} has no latents.npy: give a VAE "
                                 f"(--vae) to encode on the fly, or run training encode")
            video = _pixels([samples[i]["video"] for i in todo], dev)  # [B, 3, T, H, W]
            frames = video.shape[2]
            both = self.vae.encode(torch.cat([video, condition_video(video[:, :, 0], frames)]))
            for j, i in enumerate(todo):
                latents[i], cond_latents[i] = both[j], both[len(todo) + j]
            self.encoded += len(todo)
        x = torch.stack(latents)
        b, _, f, h, w = x.shape
        mask = first_frame_mask(f, h, w).to(dev).expand(b, -1, -1, -1, -1)
        keyboard = torch.from_numpy(np.stack([s["keyboard"] for s in samples])).to(dev)
        mouse = (torch.from_numpy(np.stack([s["mouse"] for s in samples])).to(dev)
                 if "mouse" in samples[0] else None)
        ode = None
        if any("ode" in s for s in samples):
            if not all("ode" in s for s in samples):
                raise ShardError("a batch mixes ODE pairs and plain clips: keep them in separate "
                                 "shard folders")
            ode = torch.from_numpy(np.stack([s["ode"] for s in samples])).to(dev, torch.float32)
        return Batch(keys=[s["key"] for s in samples], latents=x, ode=ode,
                     cond=torch.cat([mask, torch.stack(cond_latents)], dim=1),
                     image=(self.images(first) if self.images is not None
                            else image_tokens(first, self.model)).to(dev), keyboard=keyboard,
                     mouse=mouse)


class ClipStream:
    """A rank's endless stream of batches, epoch after epoch, resumable from its position."""

    def __init__(self, urls: list[str], build: BatchBuilder, *, batch_size: int, frames: int,
                 space: ActionSpace, seed: int, shuffle: int, num_workers: int,
                 epoch: int = 0, start: int = 0) -> None:
        self.urls, self.build, self.batch_size = urls, build, batch_size
        self.options = {"frames": frames, "space": space, "seed": seed, "shuffle": shuffle,
                        "num_workers": num_workers}
        self.epoch, self.start = epoch, start
        self.waited = 0.0  # seconds spent waiting for samples (see take_wait)
        self._samples: Iterator[dict] | None = None

    @property
    def position(self) -> dict:
        """``{"epoch": e, "start": k}``: this rank has consumed ``k`` samples of epoch ``e``."""
        return {"epoch": self.epoch, "start": self.start}

    def take_wait(self) -> float:
        """Seconds waited on the loader since the last call."""
        waited, self.waited = self.waited, 0.0
        return waited

    def _next_sample(self) -> dict:
        if self._samples is None:  # one loader, and one set of workers, for the whole run
            self._samples = iter(sample_loader(self.urls, epoch=self.epoch, start=self.start,
                                               endless=True, ahead=2 * self.batch_size,
                                               **self.options))
        sample = next(self._samples)
        epoch, index = sample["position"]
        self.epoch, self.start = epoch, index + 1
        return sample

    def next_batch(self) -> Batch:
        began = time.perf_counter()
        samples = [self._next_sample() for _ in range(self.batch_size)]
        self.waited += time.perf_counter() - began
        return self.build(samples)

    def close(self) -> None:
        self._samples = None  # lets the DataLoader shut its workers down


def fixed_batches(urls: list[str], build: BatchBuilder, *, batch_size: int, count: int,
                  frames: int, space: ActionSpace) -> list[Batch]:
    """The first ``count`` batches of ``urls`` in shard order, the same on every rank (for
    validation: every rank sees every batch); fewer when the clips run out."""
    loader = sample_loader(urls, frames=frames, space=space, seed=0, shuffle=0, epoch=0,
                           start=0, num_workers=0, split_by_node=False)
    samples = iter(loader)
    out = []
    for _ in range(count):
        chunk = list(islice(samples, batch_size))
        if not chunk:
            break
        out.append(build(chunk))
    return out
