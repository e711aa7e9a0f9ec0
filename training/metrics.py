"""Reconstruction quality of videos ``[B, C, T, H, W]``: PSNR and SSIM, one value per video;
and whether a VAE's latents follow the picture (:func:`motion_steps`).

Both take the value range of the data as ``data_range``: 1.0 for videos in [0, 1] (the
default), 255.0 for [0, 255], 2.0 for [-1, 1]. They compute in float64.

- PSNR: ``10 log10(data_range^2 / MSE)`` with the MSE over the whole video (every frame, channel
  and pixel); ``inf`` for identical videos.
- SSIM: Wang et al. (2004) as in their reference code: an 11x11 Gaussian window with sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, population (co)variances, the map over the valid region only (no
  padding); averaged over pixels and channels per frame, then over the frames; 1.0 for identical
  videos. Frames must be at least 11x11.
- Latent motion: a world model learns its actions from how its latents change, so they must
  change where the picture does. :func:`motion_steps` pairs, for each step between
  consecutive 4-frame latents (``k`` to ``k + 1``, ``k >= 1``: latent 0 holds frame 0 alone),
  the latents' mean absolute change with the pixels' over the same 4 frames;
  :func:`follows_picture` is their correlation (about 0.7 for a VAE whose latents follow the
  picture, near 0 or below for one whose do not: ``benchmarks/RESULTS.md``).
- Frame motion: a 4x temporal VAE must also render the motion *inside* each latent's four
  frames. :func:`frame_change` is the mean absolute change between consecutive frames;
  :func:`motion_kept` compares a reconstruction's with the original's, separately for steps
  inside a latent (frame ``4k+1`` to ``4k+4``) and steps across latents (``4k`` to ``4k+1``). A
  decoder that repeats a picture four times keeps 0 inside; a faithful one about 1 in both.
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


def motion_steps(latents: Tensor, video: Tensor) -> Tensor:
    """float64 ``[steps, 2]``: (latent change, pixel change) per latent step ``k >= 1`` of
    ``latents [C, T', h, w]`` (normalised) and its ``video [C, T, H, W]``, ``T = 4 (T' - 1) + 1``
    frames."""
    frames = latents.shape[1]
    if video.shape[1] != 4 * (frames - 1) + 1:
        raise ValueError(f"{frames} latents need {4 * (frames - 1) + 1} frames, got "
                         f"{video.shape[1]}")
    z, x = latents.double(), video.double()
    rows = [(float((z[:, k + 1] - z[:, k]).abs().mean()),
             float((x[:, 4 * k + 4] - x[:, 4 * k]).abs().mean())) for k in range(1, frames - 1)]
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 2)


def follows_picture(steps: Tensor) -> float:
    """The correlation of latent and pixel change over :func:`motion_steps` rows (NaN when
    either does not vary)."""
    return float(torch.corrcoef(steps.T)[0, 1])


def frame_change(video: Tensor) -> Tensor:
    """float64 ``[B, T-1]``: mean absolute change from each frame to the next of
    ``[B, C, T, H, W]``."""
    v = video.double()
    return (v[:, :, 1:] - v[:, :, :-1]).abs().mean(dim=(1, 3, 4))


def motion_kept(original: Tensor, reconstructed: Tensor, temporal: int = 4) -> dict[str, float]:
    """``within`` and ``across``: the reconstruction's :func:`frame_change` over the original's,
    summed over the steps inside latents and the steps across them (``[N, T-1]`` each, e.g. many
    clips' rows stacked); NaN when the original does not change there."""
    if original.shape != reconstructed.shape or original.ndim != 2:
        raise ValueError(f"frame changes must both be [N, T-1], got {list(original.shape)} and "
                         f"{list(reconstructed.shape)}")
    across = torch.arange(original.shape[1]) % temporal == 0  # step 4k -> 4k+1 enters a latent
    out = {}
    for name, where in (("within", ~across), ("across", across)):
        total = float(original[:, where].sum())
        out[name] = float(reconstructed[:, where].sum()) / total if total > 0 else float("nan")
    return out
