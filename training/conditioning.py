"""What the DiT is conditioned on besides noise: the first-frame mask and video, image tokens.

- ``first_frame_mask``: 4 channels, 1 on latent frame 0 and 0 elsewhere (Wan2.1 I2V's mask
  folded to the latent frame rate).
- ``condition_video``: the first frame followed by zero frames; its VAE latents, after the mask,
  make the 20 condition channels.
- ``image_tokens``: the cross-attention context. The released model uses CLIP ViT-H/14
  penultimate tokens ``[B, 257, 1280]``. Without an image encoder we use a fixed stand-in of the
  same shape: the first frame resized to ``g*p x g*p`` (``g = sqrt(L - 1)``, ``p`` the largest
  patch with ``3*p*p <= D``), cut into ``g*g`` patches of ``3*p*p`` pixels, their mean prepended
  as the global token, zero-padded to ``D``. It has no weights: the model's ``img_emb``
  projection learns to read it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from training.config import DiTConfig


def first_frame_mask(frames: int, h: int, w: int) -> Tensor:
    """``[4, frames, h, w]`` float32: ones on latent frame 0, zeros elsewhere."""
    mask = torch.zeros(4, frames, h, w)
    mask[:, 0] = 1.0
    return mask


def condition_video(first: Tensor, frames: int) -> Tensor:
    """``first [B, 3, H, W]`` in [-1, 1] -> ``[B, 3, frames, H, W]``: it, then zero frames."""
    if first.ndim != 4 or first.shape[1] != 3:
        raise ValueError(f"first frame must be [B, 3, H, W], got {list(first.shape)}")
    video = first.new_zeros(first.shape[0], 3, frames, *first.shape[2:])
    video[:, :, 0] = first
    return video


def standin_layout(cfg: DiTConfig) -> tuple[int, int]:
    """(grid, patch) of the stand-in image tokens for ``cfg``'s token count and width."""
    grid = math.isqrt(cfg.image_tokens - 1)
    patch = math.isqrt(cfg.image_dim // 3)
    if grid * grid != cfg.image_tokens - 1 or patch < 1:
        raise ValueError(f"stand-in image tokens need image_tokens = g*g + 1 and image_dim >= 3, "
                         f"got {cfg.image_tokens} and {cfg.image_dim}")
    return grid, patch


def image_tokens(first: Tensor, cfg: DiTConfig) -> Tensor:
    """Stand-in image tokens ``[B, image_tokens, image_dim]`` from ``first [B, 3, H, W]``."""
    grid, patch = standin_layout(cfg)
    side = grid * patch
    image = F.interpolate(first.float(), size=(side, side), mode="bilinear", antialias=True,
                          align_corners=False)
    patches = F.unfold(image, kernel_size=patch, stride=patch).transpose(1, 2)  # [B, g*g, 3p^2]
    tokens = torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1)
    return F.pad(tokens, (0, cfg.image_dim - tokens.shape[2]))
