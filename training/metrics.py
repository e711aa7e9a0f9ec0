"""Reconstruction quality of videos ``[B, C, T, H, W]``: PSNR and SSIM, one value per video.

Both take the value range of the data as ``data_range``: 1.0 for videos in [0, 1] (the
default), 255.0 for [0, 255], 2.0 for [-1, 1]. They compute in float64.

- PSNR: ``10 log10(data_range^2 / MSE)`` with the MSE over the whole video (every frame, channel
  and pixel); ``inf`` for identical videos.
- SSIM: Wang et al. (2004) as in their reference code: an 11x11 Gaussian window with sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, population (co)variances, the map over the valid region only (no
  padding); averaged over pixels and channels per frame, then over the frames; 1.0 for identical
  videos. Frames must be at least 11x11.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _check(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"videos must both be [B, C, T, H, W], got {list(x.shape)} and "
                         f"{list(y.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per video, ``[B]`` float64."""
    _check(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(device: torch.device) -> Tensor:
    r = torch.arange(WINDOW, dtype=torch.float64, device=device) - WINDOW // 2
    g = torch.exp(-(r**2) / (2 * SIGMA**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity per video, ``[B]`` float64 (see the module docstring)."""
    _check(x, y)
    b, c, t, h, w = x.shape
    if h < WINDOW or w < WINDOW:
        raise ValueError(f"SSIM needs frames of at least {WINDOW}x{WINDOW}, got {w}x{h}")

    def frames(v: Tensor) -> Tensor:  # [B, C, T, H, W] -> [B*T, C, H, W]
        return v.double().permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)

    g = _gaussian_window(x.device)
    rows = g.view(1, 1, WINDOW, 1).expand(c, 1, WINDOW, 1)
    cols = g.view(1, 1, 1, WINDOW).expand(c, 1, 1, WINDOW)

    def blur(v: Tensor) -> Tensor:  # separable Gaussian, valid region, per channel
        return F.conv2d(F.conv2d(v, rows, groups=c), cols, groups=c)

    fx, fy = frames(x), frames(y)
    mx, my = blur(fx), blur(fy)
    vx = blur(fx * fx) - mx * mx
    vy = blur(fy * fy) - my * my
    cxy = blur(fx * fy) - mx * my
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return smap.flatten(1).mean(dim=1).view(b, t).mean(dim=1)
