"""Training under bf16 autocast, the path a GPU runs (``--precision auto`` there), on the CPU:
CPU autocast runs the same code, so dtype mistakes in the losses, the block-causal mask, gradient
checkpointing or the rollout's cache show here before a GPU is lent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_dit import trained
from test_fit import random_batch

from training.causal import CausalConfig, block_causal_mask
from training.config import get_preset
from training.dit import WorldDiT
from training.dmd import rollout
from training.fit import FitConfig
from training.losses import flow_loss
from training.precision import autocast

CAUSAL = CausalConfig(block=3, local=6)


def gradients(model: WorldDiT, loss_of, precision: str) -> tuple[float, torch.Tensor]:
    model.zero_grad()
    loss = loss_of(precision)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()
                                   if p.grad is not None])


@pytest.mark.parametrize("case", ["bidirectional", "block-causal, checkpointed", "dmd rollout"])
def test_bf16_autocast_gives_the_float32_loss_and_gradients_within_rounding(case):
    torch.manual_seed(0)
    model = trained(WorldDiT(get_preset("tiny")))
    batch = random_batch(f=7)

    def loss_of(precision: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        if case == "dmd rollout":  # DMD's generator: gradients through the exit-step passes
            with autocast(torch.device("cpu"), precision):
                x = rollout(model, batch, CAUSAL, [1.0, 0.75, 0.5], 1, g, True)
            return F.mse_loss(x[:, :, 1:].float(), batch.latents[:, :, 1:])
        mask = block_causal_mask(7, CAUSAL) if case.startswith("block") else None
        model.gradient_checkpointing = case.endswith("checkpointed")
        return flow_loss(model, batch, FitConfig(out="o"), g, precision=precision,
                         frame_mask=mask)[0]

    loss32, grad32 = gradients(model, loss_of, "fp32")
    loss16, grad16 = gradients(model, loss_of, "bf16")
    assert grad16.dtype == torch.float32  # the weights' gradients stay float32
    assert loss16 != loss32  # bf16 did run
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    assert F.cosine_similarity(grad32, grad16, dim=0) > 0.999
