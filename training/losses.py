"""The training objectives of ``training fit`` (:class:`training.fit.FitConfig` sets them).

- **flow** (:func:`flow_loss`): latent frame 0 is the given image: its ``x_t`` is its clean
  latent and its timestep is 0, in training and in sampling, and the loss leaves it out. The
  other frames are noised, ``x_t = (1 - s) x0 + s eps``, at sigmas drawn from the shifted grid,
  independently per frame (``per_frame_timesteps``, diffusion-forcing style) or one per clip;
  the model predicts the velocity ``eps - x0``; the loss is its mean squared error over frames
  1..F-1.
- History augmentation of frame 0 (its timestep stays 0, so the model learns to read slightly
  wrong history as history): ``history_noise`` adds ``u * eps`` with ``u ~ U(0, history_noise)``
  per clip; ``error_buffer`` (Matrix-Game 3.0, :class:`ErrorBuffer`) keeps the last
  ``error_buffer`` residuals ``x0_hat - x0`` of single predicted latent frames and adds
  ``error_gamma * delta``, ``delta`` drawn uniformly from the buffer, once it holds any.
- Classifier-free guidance dropout: per clip, keyboard and mouse are zeroed with probability
  ``action_dropout`` and the image tokens with probability ``image_dropout``.
- **ode** (:func:`ode_loss`; ``training distill``, stage 1 of self-forcing) trains a
  block-causal student on ODE pairs (``training odepairs``): per block of ``causal_block``
  latents a stored point of the teacher's trajectory is drawn, and the student's
  ``x0 = x_t - sigma v`` is regressed onto the trajectory's clean end.
- :func:`validation_loss`: the same losses without augmentation or dropout, under noise from a
  generator reseeded every time, so validation losses compare across steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.data import Batch
from training.flow import NUM_TIMESTEPS, add_noise, sample_sigmas, to_x0, velocity_target
from training.precision import autocast

if TYPE_CHECKING:
    from training.fit import FitConfig

VAL_SEED = 1234  # validation noise: the same draws at every validation


class ErrorBuffer:
    """Matrix-Game 3.0's error buffer: the latest ``size`` single-frame residuals
    ``x0_hat - x0`` (``[C, h, w]`` each), overwritten oldest first, drawn from uniformly."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: Tensor | None = None
        self.filled = 0
        self.next = 0

    def add(self, residuals: Tensor) -> None:
        """Store residuals ``[n, C, h, w]`` (the newest ``size`` of them when n > size)."""
        residuals = residuals.detach().float()[-self.size:]
        if self.data is None:
            self.data = residuals.new_zeros(self.size, *residuals.shape[1:])
        n = len(residuals)
        index = (self.next + torch.arange(n, device=self.data.device)) % self.size
        self.data[index] = residuals
        self.next = (self.next + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` residuals drawn uniformly (with replacement) from the filled part."""
        index = torch.randint(0, self.filled, (n,), generator=generator)
        return self.data[index.to(self.data.device)]

    def state(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {"error_buffer": self.data} if self.data is not None else {}
        return tensors, {"filled": self.filled, "next": self.next}

    def load(self, tensors: dict[str, Tensor], meta: dict, device: torch.device) -> None:
        if "error_buffer" in tensors:
            self.data = tensors["error_buffer"].to(device)
        self.filled, self.next = meta["filled"], meta["next"]


def velocity_loss(v: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Flow matching: the velocity ``v`` predicted for ``x0`` noised with ``noise`` against the
    true one, over frames 1..F-1 (frame 0 is the given image). ``training fit``'s loss, and the
    DMD critic's on the student's rollouts."""
    return F.mse_loss(v[:, :, 1:], velocity_target(x0, noise)[:, :, 1:])


def flow_loss(model: nn.Module, batch: Batch, cfg: FitConfig, generator: torch.Generator, *,
              precision: str = "fp32", train: bool = True,
              errors: ErrorBuffer | None = None, frame_mask: Tensor | None = None,
              noise_level: float | None = None) -> tuple[Tensor, Tensor]:
    """The flow-matching loss of ``batch`` (see the module docstring) and the residuals
    ``x0_hat - x0`` of frames 1..F-1 as ``[B * (F - 1), C, h, w]`` (detached).

    ``train=False`` (validation) turns off history augmentation and CFG dropout;
    ``noise_level`` puts every frame after the first at that sigma instead of drawing them.
    """
    x0 = batch.latents
    b, _, frames, _, _ = x0.shape
    dev = x0.device
    sigma = (sample_sigmas(b, frames, cfg.shift, cfg.per_frame_timesteps, generator)
             if noise_level is None else torch.full((b, frames), float(noise_level)))
    sigma[:, 0] = 0.0
    sigma = sigma.to(dev)
    noise = torch.randn(x0.shape, generator=generator).to(dev)
    x_t = add_noise(x0, noise, sigma)
    keyboard, mouse, image = batch.keyboard, batch.mouse, batch.image
    if train:
        history = x0[:, :, 0]
        if cfg.history_noise > 0:
            scale = torch.rand(b, generator=generator).to(dev) * cfg.history_noise
            eps = torch.randn(history.shape, generator=generator).to(dev)
            history = history + scale[:, None, None, None] * eps
        if errors is not None and errors.filled:
            history = history + cfg.error_gamma * errors.draw(b, generator)
        x_t = torch.cat([history[:, :, None], x_t[:, :, 1:]], dim=2)
        if cfg.action_dropout > 0:
            keep = (torch.rand(b, generator=generator) >= cfg.action_dropout).to(dev)
            keyboard = keyboard * keep[:, None, None]
            mouse = None if mouse is None else mouse * keep[:, None, None]
        if cfg.image_dropout > 0:
            keep = (torch.rand(b, generator=generator) >= cfg.image_dropout).to(dev)
            image = image * keep[:, None, None]
    with autocast(dev, precision):
        v = model(x_t, sigma * NUM_TIMESTEPS, batch.cond, image, keyboard, mouse,
                  frame_mask=frame_mask)
    v = v.float()
    loss = velocity_loss(v, x0, noise)
    residuals = (to_x0(x_t, v.detach(), sigma) - x0)[:, :, 1:]
    return loss, residuals.transpose(1, 2).flatten(0, 1)


def ode_sigmas(info: dict, shards: str | Path) -> Tensor:
    """The sigmas of the stored trajectory points of an ODE-pair shard set from its
    ``dataset.json`` (``info``, read from ``shards``), float32 ``[K]``."""
    if "ode" not in info:
        raise ValueError(f"{shards} holds no ODE pairs (no 'ode' in its dataset.json): objective "
                         f"ode trains on the output of training odepairs")
    return torch.tensor(info["ode"]["sigmas"], dtype=torch.float32)


def ode_loss(model: nn.Module, batch: Batch, cfg: FitConfig, generator: torch.Generator, *,
             sigmas: Tensor, precision: str = "fp32", frame_mask: Tensor | None = None
             ) -> tuple[Tensor, Tensor]:
    """Distillation stage 1: per block of ``cfg.causal_block`` latents (the whole clip when 0)
    one of the ``K`` stored trajectory points (``sigmas [K]``) is drawn; the model's
    ``x0 = x_t - sigma v`` is regressed onto the clean end (MSE over frames 1..F-1; latent 0 is
    the image, clean at t = 0). Returns the loss and the residuals as :func:`flow_loss` does."""
    if batch.ode is None:
        raise ValueError(f"objective ode needs ODE pairs (training odepairs); clip "
                         f"{batch.keys[0]!r} has none")
    x0, trajectory = batch.latents, batch.ode
    b, k, _, frames, _, _ = trajectory.shape
    if k != len(sigmas):
        raise ValueError(f"ODE pairs hold {k} points per trajectory, their dataset.json "
                         f"{len(sigmas)} sigmas")
    block = cfg.causal_block or frames
    drawn = torch.randint(0, k, (b, -(-frames // block)), generator=generator)
    point = drawn.repeat_interleave(block, dim=1)[:, :frames].to(x0.device)  # [B, F]
    rows = torch.arange(b, device=x0.device)[:, None]
    cols = torch.arange(frames, device=x0.device)[None, :]
    x_t = trajectory.permute(0, 3, 1, 2, 4, 5)[rows, cols, point]  # [B, F, C, h, w]
    x_t = x_t.permute(0, 2, 1, 3, 4).contiguous()
    sigma = sigmas.to(x0.device)[point]
    sigma[:, 0] = 0.0
    x_t[:, :, 0] = x0[:, :, 0]
    with autocast(x0.device, precision):
        v = model(x_t, sigma * NUM_TIMESTEPS, batch.cond, batch.image, batch.keyboard,
                  batch.mouse, frame_mask=frame_mask)
    x0_hat = to_x0(x_t, v.float(), sigma)
    loss = F.mse_loss(x0_hat[:, :, 1:], x0[:, :, 1:])
    residuals = (x0_hat.detach() - x0)[:, :, 1:]
    return loss, residuals.transpose(1, 2).flatten(0, 1)


def objective_loss(model: nn.Module, batch: Batch, cfg: FitConfig, generator: torch.Generator,
                   *, precision: str = "fp32", train: bool = True,
                   errors: ErrorBuffer | None = None, frame_mask: Tensor | None = None,
                   sigmas: Tensor | None = None, noise_level: float | None = None
                   ) -> tuple[Tensor, Tensor]:
    """The loss of ``cfg.objective`` (and its residuals) for one batch; ``noise_level`` is for
    the flow objective only."""
    if cfg.objective == "ode":
        if noise_level is not None:
            raise ValueError("noise_level is for the flow objective, not ode")
        return ode_loss(model, batch, cfg, generator, sigmas=sigmas, precision=precision,
                        frame_mask=frame_mask)
    return flow_loss(model, batch, cfg, generator, precision=precision, train=train,
                     errors=errors, frame_mask=frame_mask, noise_level=noise_level)


@torch.no_grad()
def validation_loss(model: nn.Module, batches: list[Batch], cfg: FitConfig,
                    precision: str = "fp32", seed: int = VAL_SEED,
                    frame_mask: Tensor | None = None, sigmas: Tensor | None = None,
                    noise_level: float | None = None) -> float:
    """Mean flow loss over ``batches`` with noise and timesteps from a generator seeded with
    ``seed`` (the same draws every call), no dropout and no history augmentation; at one
    ``noise_level`` (sigma) for every frame after the first when given."""
    if not batches:
        raise ValueError("no validation batches")
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total = count = 0.0
    for batch in batches:
        loss, _ = objective_loss(model, batch, cfg, generator, precision=precision, train=False,
                                 frame_mask=frame_mask, sigmas=sigmas, noise_level=noise_level)
        total += loss.item() * len(batch)
        count += len(batch)
    model.train(was_training)
    return total / count
