"""A preset on the meta device: parameter names and shapes, and FLOPs, without any weights."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from training.config import DiTConfig, get_preset
from training.dit import WorldDiT


def build_meta(cfg: DiTConfig) -> WorldDiT:
    """The model with every tensor on the meta device: shapes without memory."""
    with torch.device("meta"):
        return WorldDiT(cfg)


def _config(preset: str | DiTConfig) -> DiTConfig:
    return get_preset(preset) if isinstance(preset, str) else preset


def param_shapes(preset: str | DiTConfig) -> dict:
    """``{"params": {name: shape}, "count": N}`` in the model's registration order."""
    model = build_meta(_config(preset))
    params = {name: list(p.shape) for name, p in model.named_parameters()}
    return {"params": params, "count": sum(p.numel() for p in model.parameters())}


def forward_flops(preset: str | DiTConfig, latent_frames: int, h: int, w: int) -> int:
    """FLOPs of one forward pass on one sample of ``latent_frames x h x w`` latents (counted by
    ``torch.utils.flop_counter`` on the meta device: matmuls, convolutions and attention).
    A training step costs three times this per sample (forward and backward), not counting
    the recomputation of gradient checkpointing: the usual model-FLOPs utilisation basis."""
    cfg = _config(preset)
    model = build_meta(cfg)
    n = cfg.action.temporal_ratio * (latent_frames - 1) + 1
    with torch.device("meta"):
        args = (torch.empty(1, cfg.out_dim, latent_frames, h, w), torch.empty(1, latent_frames),
                torch.empty(1, cfg.in_dim - cfg.out_dim, latent_frames, h, w),
                torch.empty(1, cfg.image_tokens, cfg.image_dim),
                torch.empty(1, n, cfg.action.keyboard_dim),
                torch.empty(1, n, 2) if cfg.action.mouse else None)
    with FlopCounterMode(display=False) as counter:
        model(*args)
    return int(counter.get_total_flops())
