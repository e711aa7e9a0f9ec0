"""One process or many: ``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, and then
training runs data-parallel (nanoGPT's convention: ``RANK`` in the environment means DDP).

- ``ddp``: every rank holds the whole model; gradients are averaged (gloo on CPU, nccl on GPU).
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) on each transformer block, then on the
  root, for presets whose weights and optimizer state do not fit one device.

Only the master process (rank 0) creates folders, writes logs and checkpoints; the noise seed is
offset by rank so ranks draw different noise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

PARALLEL = ("ddp", "fsdp")


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1 or dist.is_initialized()


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when there is one, else the CPU; or ``cpu`` / ``cuda``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no GPU")
        return torch.device("cuda", local_rank)
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if "RANK" not in os.environ:
        return Dist(0, 1, 0, resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                device_id=dev if dev.type == "cuda" else None)
    return Dist(rank, world, local_rank, dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def wrap(model: nn.Module, d: Dist, parallel: str) -> nn.Module:
    """The module to train: ``model`` itself on one process, else DDP or FSDP2 around it.

    FSDP2 shards ``model`` in place (its parameters become DTensors) and returns it; DDP returns
    a wrapper whose ``.module`` is ``model``.
    """
    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
    if not d.enabled:
        return model
    if parallel == "ddp":
        ids = [d.device.index] if d.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(d.device.type, (d.world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def reshard(model: nn.Module) -> None:
    """FSDP2: put every parameter back in its sharded form (after a forward outside training
    the root module keeps its parameters gathered); nothing for other modules."""
    for module in model.modules():
        if hasattr(module, "reshard") and hasattr(module, "set_requires_gradient_sync"):
            module.reshard()


def gradient_sync(model: nn.Module, sync: bool) -> AbstractContextManager:
    """Skip the gradient all-reduce on the micro-steps of an accumulation before the last."""
    if isinstance(model, DistributedDataParallel) and not sync:
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # an FSDP2 module
        model.set_requires_gradient_sync(sync)
    return nullcontext()


def accumulate(model: nn.Module, micro_steps: int, loss_of: Callable[[], torch.Tensor]) -> float:
    """One update's backward over ``micro_steps`` micro-batches: each call of ``loss_of`` (a fresh
    micro-batch's loss) scaled by ``1 / micro_steps``, so the gradients add up to those of the
    mean loss; DDP and FSDP2 reduce them on the last micro-step only. Returns the mean loss."""
    total = 0.0
    for micro in range(micro_steps):
        with gradient_sync(model, micro == micro_steps - 1):
            loss = loss_of()
            (loss / micro_steps).backward()
        total += loss.item()
    return total / micro_steps


def full(value: torch.Tensor) -> torch.Tensor:
    """``value`` whole: an FSDP2 DTensor gathered (a collective), any other tensor as it is."""
    return value.full_tensor() if isinstance(value, DTensor) else value


def mean(value: float, d: Dist) -> float:
    """The mean of ``value`` over all ranks (``value`` itself on one process)."""
    if not d.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / d.world
