"""Does a model use its inputs? Validation loss with the true actions, another clip's, or none.

A world model that ignores its actions predicts as well with shuffled actions as with the true
ones. :func:`action_use` scores the same held-out batches three ways, with the same noise
draws (several seeds, averaged): the true actions, every clip's actions taken from the clip
``shift`` further on (:func:`with_actions_of`), and all-zero actions (the classifier-free
guidance "no input"). A lower true loss than shuffled means the model reads its inputs.

Actions matter most where the noisy latents say least about the frames: at ``noise_level``
1.0 (pure noise, the first step of generation, where the motion is decided) the model must
take the motion from its inputs alone, while at low noise the latents give it away. Scoring
at fixed noise levels shows where a model uses its actions (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from training.data import Batch
from training.fit import FitConfig
from training.losses import validation_loss


def with_actions_of(batches: list[Batch], shift: int) -> list[Batch]:
    """The batches with every clip's keyboard and mouse taken from the clip ``shift`` later."""
    keyboard = torch.cat([b.keyboard for b in batches]).roll(shift, 0)
    mouse = None if batches[0].mouse is None else \
        torch.cat([b.mouse for b in batches]).roll(shift, 0)
    out, i = [], 0
    for b in batches:
        out.append(dataclasses.replace(
            b, keyboard=keyboard[i:i + len(b)],
            mouse=None if mouse is None else mouse[i:i + len(b)]))
        i += len(b)
    return out


def without_actions(batches: list[Batch]) -> list[Batch]:
    """The batches with all-zero keyboard and mouse."""
    return [dataclasses.replace(b, keyboard=torch.zeros_like(b.keyboard),
                                mouse=None if b.mouse is None else torch.zeros_like(b.mouse))
            for b in batches]


def action_use(model: nn.Module, batches: list[Batch], cfg: FitConfig,
               seeds: tuple[int, ...] = (1, 2, 3),
               noise_level: float | None = None) -> dict[str, float]:
    """Mean validation loss over ``seeds`` with true, shuffled and zero actions: over
    training's noise levels, or at one ``noise_level`` (sigma, 0..1) for every frame."""
    clips = sum(len(b) for b in batches)
    if clips < 2:
        raise ValueError("action_use needs at least two clips to shuffle actions between")
    variants = {"true": batches, "shuffled": with_actions_of(batches, clips // 2),
                "zero": without_actions(batches)}
    return {name: sum(validation_loss(model, v, cfg, seed=s, noise_level=noise_level)
                      for s in seeds) / len(seeds)
            for name, v in variants.items()}
