"""The adversary of ``training vae``: a discriminator that judges motion; the adaptive weight."""

from __future__ import annotations

import pytest
import torch

from training.vae_adversary import (
    PatchDiscriminator3D,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
)


def moving(texture: torch.Tensor, frames: int, speed: int) -> torch.Tensor:
    """``[B, 3, frames, H, W]``: a window panning over ``texture`` [B, 3, H, W + frames*speed]."""
    width = texture.shape[-1] - frames * speed
    return torch.stack([texture[..., t * speed:t * speed + width] for t in range(frames)], 2)


def test_the_discriminator_answers_per_patch_of_a_window():
    disc = PatchDiscriminator3D()
    assert disc(torch.zeros(2, 3, 9, 32, 64)).shape == (2, 1, 5, 4, 8)
    assert disc(torch.zeros(1, 3, 17, 64, 128)).shape == (1, 1, 9, 8, 16)


def test_the_discriminator_learns_motion_that_single_frames_cannot_show():
    """Real windows pan over a random texture; fake ones hold each frame for four frames, as a
    VAE that keeps no motion inside a latent does. Every frame of either is the same kind of
    random texture, so only how frames change tells them apart: a 3D discriminator learns it."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(channels=16)
    opt = torch.optim.AdamW(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        texture = torch.rand(4, 3, 32, 32 + 9 * 2, generator=gen) * 2 - 1
        real = moving(texture, 9, 2)
        held = real[:, :, [0, 0, 0, 0, 4, 4, 4, 4, 8]]  # latent k's picture for frames 4k-3..4k
        return real, held

    losses = []
    for _ in range(80):
        real, fake = batch()
        loss = discriminator_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(2.0, abs=0.3)  # hinge at chance: both logits near 0
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    with torch.no_grad():
        real, fake = batch()  # unseen textures
        assert disc(real).mean() > disc(fake).mean() + 0.5
        # the generator's loss is what a reconstruction pays for looking held
        assert generator_loss(disc(fake)) > generator_loss(disc(real))


def test_the_adaptive_weight_matches_the_gradients_at_the_last_layer():
    last = torch.nn.Parameter(torch.tensor([1.0, 2.0, 2.0]))
    a, b = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 0.5, 0.0])
    reconstruction, adversarial = (a * last).sum(), (b * last ** 2).sum()  # grads a and 2*b*last
    factor = adaptive_weight(reconstruction, adversarial, last, 0.1)
    assert factor.item() == pytest.approx(0.1 * 5.0 / (2.0 + 1e-4))
    assert not factor.requires_grad
    # the graphs stay usable for the backward pass that follows
    (reconstruction + factor * adversarial).backward()
    assert torch.allclose(last.grad, a + factor * 2 * b * last.detach())
    flat = torch.nn.Parameter(torch.ones(3))
    assert adaptive_weight((a * flat).sum(), flat.sum() * 0, flat, 1.0).item() == 1e4  # clamped
