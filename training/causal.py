"""Block-causal attention for the streaming student: the training mask and the rolling KV cache.

Latent frames come in blocks of ``block`` (3 in Matrix-Game 2.0). A query sees the keys of its
own block and of earlier ones, limited to a window of ``local`` latents that ends with its own
block, plus the first ``sink`` latents kept for good. Two paths compute the same thing:

- **masked** (training, teacher-forced): the whole sequence in one pass with
  :func:`block_causal_mask` as the ``frame_mask`` of :class:`training.dit.WorldDiT`;
- **cached** (generation): block by block, each attention layer keeping the keys (after RoPE at
  their absolute latent index) and values of the visible latents in a :class:`RingCache`.

A :class:`StreamCache` holds every layer's ring buffers, preallocated once for ``local``
latents: a block writes its keys into the slots of the latents it evicts (those it may no
longer see), so per-block time and memory do not depend on how long a session has run.
Denoising a block calls the model several times at the same position (each call overwrites the
block's slots); :meth:`StreamCache.advance` moves on once the block is final (after the clean
pass at ``t = 0`` that writes its keys for good).

Gradients never flow through the cache: what a call writes is detached, so a later block's loss
cannot reach the passes that produced earlier blocks' keys (Self-Forcing's public trainer lets
them leak). Within a call that needs gradients, the block's own keys and values keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CausalConfig:
    block: int = 3  # latent frames generated together (Matrix-Game 2.0: 3)
    local: int = 6  # latents a query sees, its own block included (MG2: 6; driving: 4)
    sink: int = 0  # first latents every query also sees, kept for good (MG2: none)

    def __post_init__(self) -> None:
        if self.block < 1 or self.sink < 0:
            raise ValueError(f"causal config: block >= 1 and sink >= 0 required, got "
                             f"block={self.block}, sink={self.sink}")
        if self.local - self.sink < self.block:
            raise ValueError(f"causal config: the window (local={self.local}) must hold the sink "
                             f"({self.sink}) and a whole block ({self.block})")


def block_causal_mask(frames: int, cfg: CausalConfig, device: torch.device | None = None
                      ) -> Tensor:
    """Bool ``[frames, frames]``, True where latent ``i`` may attend to latent ``j``: ``j``
    ends no later than ``i``'s block and lies in the window of ``local`` latents ending there,
    or among the first ``sink``. A last block shorter than ``block`` ends at ``frames``, as it
    does when generated."""
    i = torch.arange(frames, device=device)[:, None]
    j = torch.arange(frames, device=device)[None, :]
    end = ((i // cfg.block + 1) * cfg.block).clamp_max(frames)
    return (j < end) & ((j >= end - (cfg.local - cfg.sink)) | (j < cfg.sink))


class StreamCache:
    """Every layer's rolling caches for one stream (a batch of sessions generated together),
    and the position of the block being generated."""

    def __init__(self, cfg: CausalConfig) -> None:
        self.cfg = cfg
        self.start = 0  # absolute latent index of the block being generated
        self.frames = 0  # latents in that block (set by the model per call)
        self.layers: dict[str, RingCache] = {}

    def begin(self, frames: int) -> None:
        """The model is about to run ``frames`` latents at :attr:`start`."""
        if frames > self.cfg.block:
            raise ValueError(f"a block holds at most {self.cfg.block} latents, got {frames}")
        self.frames = frames

    def advance(self) -> None:
        """The block at :attr:`start` is final: the next call generates the one after it."""
        self.start += self.frames
        self.frames = 0

    def slots(self, device: torch.device) -> Tensor:
        """Ring slots of latents ``start .. start + frames - 1``."""
        idx = torch.arange(self.start, self.start + self.frames, device=device)
        ring = self.cfg.local - self.cfg.sink
        return torch.where(idx < self.cfg.sink, idx, self.cfg.sink + (idx - self.cfg.sink) % ring)

    @property
    def visible(self) -> int:
        """Latents the block sees: all so far, up to the window (slots ``0 .. visible - 1``)."""
        return min(self.start + self.frames, self.cfg.local)

    def layer(self, name: str, rows: int, per_latent: int, heads: int, head_dim: int,
              like: Tensor) -> RingCache:
        """The ring buffers of layer ``name``, made on first use."""
        cache = self.layers.get(name)
        if cache is None:
            dtype = like.dtype
            if torch.is_autocast_enabled(like.device.type):  # attention runs in its dtype
                dtype = torch.get_autocast_dtype(like.device.type)
            cache = self.layers[name] = RingCache(self, rows, per_latent, heads, head_dim,
                                                  dtype, like.device)
        return cache

    def nbytes(self) -> int:
        return sum(c.keys.nbytes + c.values.nbytes for c in self.layers.values())


class RingCache:
    """Keys and values ``[rows, local, per_latent, heads, head_dim]`` of one attention layer:
    ``rows`` independent sequences (batch, or batch x spatial token for the mouse branch), each
    with ``per_latent`` tokens per latent frame. Under autocast they are kept in its dtype (bf16
    on a GPU), the precision attention reads them in: half the memory of float32."""

    def __init__(self, stream: StreamCache, rows: int, per_latent: int, heads: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device) -> None:
        self.stream, self.per_latent = stream, per_latent
        shape = (rows, stream.cfg.local, per_latent, heads, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the block's ``k, v [rows, frames * per_latent, heads, head_dim]`` into its
        slots; return all visible keys and values ``[rows, visible * per_latent, heads, hd]``."""
        rows, _, heads, hd = k.shape
        if rows != self.keys.shape[0] or (heads, hd) != tuple(self.keys.shape[3:]):
            raise ValueError(f"cache holds [{self.keys.shape[0]}, ., {self.keys.shape[3]}, "
                             f"{self.keys.shape[4]}] rows/heads/dims, got {list(k.shape)}")
        n = self.stream.frames
        slots = self.stream.slots(k.device)
        block = (rows, n, self.per_latent, heads, hd)
        self.keys.index_copy_(1, slots, k.detach().reshape(block).to(self.keys.dtype))
        self.values.index_copy_(1, slots, v.detach().reshape(block).to(self.values.dtype))
        seen = self.stream.visible
        if not (k.requires_grad or v.requires_grad):
            return self.keys[:, :seen].flatten(1, 2), self.values[:, :seen].flatten(1, 2)
        # With gradients: earlier latents from the cache (no gradient reaches the pass that
        # wrote them), the block's own keys and values as computed (order does not matter to
        # attention: positions are in the rotated keys).
        others = torch.ones(seen, dtype=torch.bool, device=k.device)
        others[slots] = False
        return (torch.cat([self.keys[:, :seen][:, others].flatten(1, 2).to(k.dtype), k], dim=1),
                torch.cat([self.values[:, :seen][:, others].flatten(1, 2).to(v.dtype), v], dim=1))
