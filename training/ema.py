"""Exponential moving average of a model's weights: ``ema = decay * ema + (1 - decay) * w``.

The average is kept per parameter name of the unwrapped model. Under FSDP2 a parameter is a
sharded DTensor and so is its average: each rank averages its own shard, and
:meth:`EMA.state_dict` gathers full tensors (a collective: every rank calls it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor, distribute_tensor

from training.distributed import reshard


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step towards the model's current weights."""
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the averages (e.g. for sampling)."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` with the averages in place of its weights inside the block (e.g. for a
        validation loss), its own weights restored exactly after."""
        reshard(model)  # FSDP2 keeps the root's parameters gathered after a forward
        with torch.no_grad():
            own = {name: p.detach().clone() for name, p in model.named_parameters()}
            self.copy_to(model)
        try:
            yield model
        finally:
            reshard(model)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(own[name])

    def state_dict(self) -> dict[str, Tensor]:
        """Full (unsharded) averages on the CPU, by parameter name."""
        return {name: (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu()
                for name, t in self.shadow.items()}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict[str, Tensor]) -> None:
        """Load full averages (as :meth:`state_dict` returns them); each rank keeps its shard."""
        missing = sorted(set(self.shadow) - set(tensors))
        unexpected = sorted(set(tensors) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA weights do not match the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        for name, dst in self.shadow.items():
            src = tensors[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"EMA weight {name}: shape {list(src.shape)}, the model's "
                                 f"{list(dst.shape)}")
            if isinstance(dst, DTensor):
                src = distribute_tensor(src.to(dst.device, dst.dtype), dst.device_mesh,
                                        dst.placements, src_data_rank=None)
            dst.copy_(src)
