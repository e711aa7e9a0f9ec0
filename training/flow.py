"""Flow matching in the Wan / Matrix-Game convention: the sigma grid, noising, targets, sampling.

``x_t = (1 - sigma) * x0 + sigma * noise``; the model predicts the velocity ``v = noise - x0``,
so ``x0 = x_t - sigma * v``. The training grid is ``linspace(1, 0, 1001)[:-1]`` warped by the
shift ``s * sigma / (1 + (s - 1) * sigma)``; the model sees ``t = 1000 * sigma``. Sigmas are
``[B, F]``: one per latent frame (diffusion forcing) or one per clip repeated over its frames.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_TIMESTEPS = 1000


def shift_sigma(sigma: Tensor | float, shift: float) -> Tensor:
    """Warp sigmas in [0, 1] towards 1 (more noise) by ``shift``; ``shift=1`` is the identity."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return shift * sigma / (1 + (shift - 1) * sigma)


def training_sigmas(shift: float) -> Tensor:
    """The 1000 training sigmas, float64, from 1 (pure noise) down to just above 0."""
    return shift_sigma(torch.linspace(1, 0, NUM_TIMESTEPS + 1, dtype=torch.float64)[:-1], shift)


def sample_sigmas(batch: int, frames: int, shift: float, per_frame: bool,
                  generator: torch.Generator) -> Tensor:
    """Sigmas ``[batch, frames]`` (float32) drawn uniformly from the training grid: independently
    per latent frame when ``per_frame``, else one per clip shared by its frames."""
    grid = training_sigmas(shift)
    cols = frames if per_frame else 1
    idx = torch.randint(0, NUM_TIMESTEPS, (batch, cols), generator=generator)
    return grid[idx].float().expand(batch, frames).contiguous()


def _frames_view(sigma: Tensor, x: Tensor) -> Tensor:
    """``[B, F]`` sigmas broadcast against ``[B, C, F, h, w]`` latents."""
    if sigma.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"sigma must be [B, F] = {[x.shape[0], x.shape[2]]} for latents "
                         f"{list(x.shape)}, got {list(sigma.shape)}")
    return sigma.to(x.dtype)[:, None, :, None, None]


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """``x_t = (1 - sigma) x0 + sigma noise`` for latents ``[B, C, F, h, w]``."""
    s = _frames_view(sigma, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The flow-matching target ``noise - x0``."""
    return noise - x0


def to_x0(x_t: Tensor, v: Tensor, sigma: Tensor) -> Tensor:
    """The clean latents implied by a velocity: ``x_t - sigma * v``."""
    return x_t - _frames_view(sigma, x_t) * v


def sampling_sigmas(steps: int, shift: float) -> Tensor:
    """``steps + 1`` sigmas from 1 down to 0 (shifted) for Euler sampling; e.g. 3 steps at
    shift 5 give timesteps 1000, 909.09, 714.29, then 0."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return shift_sigma(torch.linspace(1, 0, steps + 1, dtype=torch.float64), shift)


def ode_grid(timesteps: tuple[float, ...] | list[float], substeps: int, shift: float
             ) -> tuple[Tensor, list[int]]:
    """A teacher's Euler grid from pure noise through a few-step student's timesteps:
    ``substeps`` steps (uniform before the shift) from 1000 to the first of ``timesteps`` (``t``
    in (0, 1000], decreasing; none when it is 1000), from each to the next, and from the last to
    0. Returns the shifted sigmas (float64, 1 down to 0) and the index of each of ``timesteps``
    in them."""
    if substeps < 1:
        raise ValueError(f"substeps must be at least 1, got {substeps}")
    points = [float(t) / NUM_TIMESTEPS for t in timesteps]
    if not points or any(not 0 < p <= 1 for p in points) \
            or points != sorted(set(points), reverse=True):
        raise ValueError(f"timesteps must be decreasing values in (0, {NUM_TIMESTEPS}], got "
                         f"{list(timesteps)}")
    knots = ([1.0] if points[0] < 1.0 else []) + points + [0.0]
    parts = [torch.linspace(a, b, substeps + 1, dtype=torch.float64)[:-1]
             for a, b in zip(knots[:-1], knots[1:], strict=True)]
    grid = torch.cat([*parts, torch.zeros(1, dtype=torch.float64)])
    first = substeps if points[0] < 1.0 else 0
    return shift_sigma(grid, shift), [first + k * substeps for k in range(len(points))]
