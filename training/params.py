"""Parameter names and shapes of a preset, built on the meta device (no weights allocated)."""

from __future__ import annotations

import torch

from training.config import DiTConfig, get_preset
from training.dit import WorldDiT


def build_meta(cfg: DiTConfig) -> WorldDiT:
    """The model with every tensor on the meta device: shapes without memory."""
    with torch.device("meta"):
        return WorldDiT(cfg)


def param_shapes(preset: str | DiTConfig) -> dict:
    """``{"params": {name: shape}, "count": N}`` in the model's registration order."""
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    model = build_meta(cfg)
    params = {name: list(p.shape) for name, p in model.named_parameters()}
    return {"params": params, "count": sum(p.numel() for p in model.parameters())}
