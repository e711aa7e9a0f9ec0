"""What ``training vae`` measures of a VAE being trained: reconstruction scores and the motion
kept on held-out clips (:func:`evaluate`), the latents' per-channel statistics that normalise
them (:func:`latent_stats`), and whether the latents follow the picture (:func:`latent_motion`)."""

from __future__ import annotations

import math

import torch
from diffusers import AutoencoderKLWan
from torch import Tensor

from training.metrics import frame_change, motion_kept, motion_steps, psnr, ssim


@torch.no_grad()
def evaluate(model: AutoencoderKLWan, clips: list[Tensor], batch_size: int) -> dict:
    """Mean reconstruction PSNR (dB), SSIM and L1 over ``clips`` (posterior means decoded),
    PSNR and SSIM on frames mapped to [0, 1]; ``motion_within`` and ``motion_across``:
    :func:`training.metrics.motion_kept` (None where the footage has no change to compare:
    with 1-frame clips, or still ones)."""
    model.eval()
    device = next(model.parameters()).device
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "l1": []}
    changes: tuple[list[Tensor], list[Tensor]] = ([], [])
    for i in range(0, len(clips), batch_size):
        x = torch.stack(clips[i:i + batch_size]).to(device)
        y = model.decode(model.encode(x).latent_dist.mode()).sample
        a, b = (x + 1) / 2, (y + 1) / 2
        scores["psnr"] += psnr(a, b).tolist()
        scores["ssim"] += ssim(a, b).tolist()
        scores["l1"] += (x - y).abs().flatten(1).mean(dim=1).tolist()
        changes[0].append(frame_change(x).cpu())
        changes[1].append(frame_change(y).cpu())
    kept = motion_kept(torch.cat(changes[0]), torch.cat(changes[1]))
    return {**{k: sum(v) / len(v) for k, v in scores.items()},
            **{f"motion_{k}": None if math.isnan(v) else v for k, v in kept.items()}}


@torch.no_grad()
def latent_stats(model: AutoencoderKLWan, clips: list[Tensor],
                 batch_size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the posterior means of ``clips``."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.cat([model.encode(torch.stack(clips[i:i + batch_size]).to(device))
                   .latent_dist.mode() for i in range(0, len(clips), batch_size)])
    per_channel = z.double().transpose(0, 1).flatten(1)  # [C, B*F*h*w]
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1, unbiased=False).clamp_min(1e-6)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


@torch.no_grad()
def latent_motion(model: AutoencoderKLWan, clips: list[Tensor], mean: list[float],
                  std: list[float], batch_size: int) -> Tensor:
    """:func:`training.metrics.motion_steps` of ``clips`` through the model, latents
    normalised with ``mean`` and ``std`` as they will be trained on."""
    model.eval()
    device = next(model.parameters()).device
    shift = torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1, 1)
    rows = []
    for i in range(0, len(clips), batch_size):
        x = torch.stack(clips[i:i + batch_size]).to(device)
        for z, video in zip(model.encode(x).latent_dist.mode(), x, strict=True):
            rows.append(motion_steps((z.cpu().double() - shift) / scale, video.cpu()))
    return torch.cat(rows)
