"""Rotary position embeddings: Wan's 3D RoPE for self-attention, a 1-D one for the actions.

Both rotate consecutive pairs of head dims ``(x[2j], x[2j+1])`` by an angle ``pos * freq_j``
(the complex-multiplication form of Wan and HunyuanVideo). Angles are computed in float64 and
applied in float32, then cast back.

- 3D (self-attention): head dim ``d`` split ``d - 4*(d//6)`` (time), ``2*(d//6)`` (height),
  ``2*(d//6)`` (width); each part has ``freq_j = theta ** (-2j / part)`` with theta 10000.
- Actions: the released ``rope_dim_list`` [8, 28, 28] is used with spatial positions all zero,
  so only the first 8 dims rotate (theta 256), by the absolute latent frame.
"""

from __future__ import annotations

import torch
from torch import Tensor


def axis_freqs(dims: int, theta: float) -> Tensor:
    """``dims // 2`` float64 frequencies ``theta ** (-2j / dims)``."""
    return 1.0 / theta ** (torch.arange(0, dims, 2, dtype=torch.float64) / dims)


def split_3d(head_dim: int) -> tuple[int, int, int]:
    """Dims of the head given to (time, height, width)."""
    part = head_dim // 6
    return head_dim - 4 * part, 2 * part, 2 * part


def angles_3d(frames: int, height: int, width: int, head_dim: int, theta: float,
              device: torch.device | None = None, frame_offset: int = 0) -> Tensor:
    """Angles ``[frames * height * width, head_dim // 2]`` (float64) for tokens in
    frame-major, then row-major order."""
    dt, dh, dw = split_3d(head_dim)
    t = torch.arange(frame_offset, frame_offset + frames, dtype=torch.float64)
    h = torch.arange(height, dtype=torch.float64)
    w = torch.arange(width, dtype=torch.float64)
    at = torch.outer(t, axis_freqs(dt, theta))[:, None, None, :].expand(frames, height, width, -1)
    ah = torch.outer(h, axis_freqs(dh, theta))[None, :, None, :].expand(frames, height, width, -1)
    aw = torch.outer(w, axis_freqs(dw, theta))[None, None, :, :].expand(frames, height, width, -1)
    return torch.cat([at, ah, aw], dim=-1).reshape(frames * height * width, -1).to(device)


def angles_time(frames: int, head_dim: int, rotated_dims: int, theta: float,
                device: torch.device | None = None, frame_offset: int = 0) -> Tensor:
    """Angles ``[frames, head_dim // 2]``: the first ``rotated_dims`` dims turn with the
    frame index, the rest not at all (angle 0)."""
    t = torch.arange(frame_offset, frame_offset + frames, dtype=torch.float64)
    angles = torch.zeros(frames, head_dim // 2, dtype=torch.float64)
    angles[:, : rotated_dims // 2] = torch.outer(t, axis_freqs(rotated_dims, theta))
    return angles.to(device)


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate ``x [..., L, heads, head_dim]`` by ``angles [L, head_dim // 2]``."""
    cos = torch.cos(angles).float()[:, None, :]
    sin = torch.sin(angles).float()[:, None, :]
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)
