"""Small layers the DiT and its action module share: float32 norms and multi-head attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """RMS norm over the last dim, computed in float32, with a learned scale (Wan's)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) \
            * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (Wan's), with or without affine."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type_as(x)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """``[B, Lq, H, D]`` queries over ``[B, Lk, H, D]`` keys and values -> ``[B, Lq, H * D]``;
    ``mask`` (bool, broadcastable to ``[Lq, Lk]``, True = may attend) or None for full."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=mask)
    return out.transpose(1, 2).flatten(2)
