"""The adversary of ``training vae``: a 3D patch discriminator on video windows and its losses.

An L1 reconstruction loss averages away what the encoder cannot predict: texture, and the
frame-to-frame motion of texture, which is what the camera-motion probe reads (RESULTS, "Can the
probe read motion through the VAE?"). The latent-diffusion VAEs keep high frequencies with an
adversarial loss; here the discriminator sees whole windows ``[B, 3, T, H, W]`` through 3D
convolutions, so it judges how frames change as well as how each looks, and answers per
spatio-temporal patch. Hinge losses; the generator's share is scaled by
:func:`adaptive_weight`, so that ``weight`` means the same at any resolution and stage.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PatchDiscriminator3D(nn.Module):
    """Video windows ``[B, 3, T, H, W]`` in [-1, 1] -> logits ``[B, 1, T', H/8, W/8]``, one per
    patch: three strided 3D convolutions (time halved once) with group norms, then a 3x3x3 head.
    Each logit sees 13 frames by 38x38 pixels."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv3d(3, c, (3, 4, 4), (1, 2, 2), (1, 1, 1)),
                                   nn.LeakyReLU(0.2)]
        for c_in, c_out, t_stride in ((c, 2 * c, 2), (2 * c, 4 * c, 1)):
            layers += [nn.Conv3d(c_in, c_out, (3, 4, 4), (t_stride, 2, 2), (1, 1, 1)),
                       nn.GroupNorm(8, c_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv3d(4 * c, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)


def discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge loss of the discriminator's logits on real and reconstructed windows."""
    return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()


def generator_loss(fake: Tensor) -> Tensor:
    """Hinge generator loss: raise the discriminator's logits on reconstructions."""
    return -fake.mean()


def adaptive_weight(reconstruction: Tensor, adversarial: Tensor, last: Tensor,
                    weight: float) -> Tensor:
    """The factor on ``adversarial`` that makes its gradient at the parameter ``last`` (the
    decoder's output layer) ``weight`` times the reconstruction loss's there (as the
    latent-diffusion VAEs balance them), clamped to [0, 1e4]; no gradient flows through it."""
    g_rec = torch.autograd.grad(reconstruction, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adversarial, last, retain_graph=True)[0]
    return (weight * g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach()
