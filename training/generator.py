"""Streaming generation with a block-causal model: ``Generator.reset(image)``, ``.step(actions)``.

A session starts from one image and goes on for as long as actions arrive, a block of
``block`` latent frames at a time (:mod:`training.causal`):

1. The block's latents start as noise (latent 0, the image, is given clean at ``t = 0``) and
   are denoised in a few steps (``timesteps``, default Matrix-Game 2.0's [1000, 666, 333] warped
   at shift 5 to [1000, 908.8, 714.0]): the model predicts the velocity, ``x0 = x_t - sigma
   v``, and ``x0`` is re-noised with fresh noise to the next step's sigma.
2. One more pass at ``t = 0`` on the final ``x0`` writes the block's clean keys and values into
   the rolling cache (:meth:`StreamCache.advance` then moves on).
3. Each latent is decoded as soon as it is final, one at a time with the VAE decoder's causal
   cache (:class:`training.vae.StreamingDecoder`): block 0 gives ``1 + 4 (block - 1)`` frames,
   every later block ``4 * block``. Frame 0 is the image itself, as in ``training sample``
   (latent 0 is still decoded, for the decoder's cache), so rollouts of both measure drift
   from the same frame.

The condition channels (first-frame mask and the latents of the first frame followed by zero
frames) are encoded latent by latent with the VAE encoder's causal cache, exactly as a whole
encode of an endless condition video would give them, until two consecutive latents agree (the
encoder has forgotten the image); from then on the last one is reused. Actions are the
contract's (keys ``[n, 7]``, mouse ``[n, 2]`` degrees) for the frames the block produces, mapped
by the model's action space; row 0 of the first block is the action before the image, as in a
recorded clip. Per-block time and memory do not grow with the session's length. On a GPU a
block runs under bf16 autocast (``precision``), as the released model plays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from shards.action_space import ActionSpace, to_space
from training.action_module import action_span
from training.causal import CausalConfig, StreamCache
from training.conditioning import first_frame_mask
from training.dit import WorldDiT
from training.flow import NUM_TIMESTEPS
from training.image_encoder import ClipImageEncoder, StandinImageEncoder
from training.precision import PRECISIONS, autocast, resolve_precision
from training.sample import to_uint8
from training.vae import StreamingDecoder, StreamingEncoder, WanVAE

CONDITION_TOLERANCE = 1e-5  # condition latents this close in a row: the encoder has converged


@dataclass(frozen=True)
class StreamConfig:
    block: int = 3  # latent frames per block (Matrix-Game 2.0: 3)
    local: int = 6  # latents attention sees, its own block included (MG2: 6; driving: 4)
    sink: int = 0  # first latents always seen (MG2: none)
    timesteps: tuple[float, ...] = (1000.0, 666.0, 333.0)  # denoising steps, before the shift
    shift: float = 5.0  # timestep warp: s' = shift s / (1 + (shift - 1) s), s = t / 1000
    seed: int = 0  # noise: same seed, image and actions -> same frames
    precision: str = "auto"  # "auto" (bf16 autocast on a GPU, fp32 on the CPU), "bf16", "fp32"

    def __post_init__(self) -> None:
        CausalConfig(self.block, self.local, self.sink)  # checks the window
        if not self.timesteps or any(not 0 < t <= NUM_TIMESTEPS for t in self.timesteps) \
                or list(self.timesteps) != sorted(self.timesteps, reverse=True):
            raise ValueError(f"timesteps must be decreasing values in (0, {NUM_TIMESTEPS}], got "
                             f"{list(self.timesteps)}")
        if not self.shift > 0:
            raise ValueError(f"shift must be positive, got {self.shift}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def recorded(cls, stream: dict, **override: object) -> StreamConfig:
        """The settings a causal run recorded (``LoadedRun.stream``, JSON lists as tuples)."""
        saved = {k: tuple(v) if isinstance(v, list) else v for k, v in stream.items()}
        return cls(**{**saved, **override})

    @property
    def causal(self) -> CausalConfig:
        return CausalConfig(self.block, self.local, self.sink)

    def sigmas(self) -> list[float]:
        """The warped noise levels of the denoising steps, in (0, 1]."""
        s = np.asarray(self.timesteps, dtype=np.float64) / NUM_TIMESTEPS
        return (self.shift * s / (1 + (self.shift - 1) * s)).tolist()


class Generator:
    """One streaming session of a block-causal model (batch 1); see the module docstring."""

    def __init__(self, model: WorldDiT, vae: WanVAE,
                 images: StandinImageEncoder | ClipImageEncoder, space: ActionSpace,
                 cfg: StreamConfig = StreamConfig()) -> None:
        self.model, self.vae, self.images, self.space, self.cfg = model, vae, images, space, cfg
        self.device = vae.device
        self.precision = resolve_precision(cfg.precision, self.device)
        self._encoder, self._decoder = StreamingEncoder(vae), StreamingDecoder(vae)
        self._session = False

    def reset(self, image: Tensor) -> None:
        """Start a session from ``image [1, 3, H, W]`` in [-1, 1] (H, W multiples of 16)."""
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"the image must be [1, 3, H, W], got {list(image.shape)}")
        self._image = image.to(self.device)
        self._context = self.images(self._image)
        self._encoder.reset()
        self._decoder.reset()
        self._cond: list[Tensor] = []  # condition latents so far (until converged)
        self._converged = False
        self.cache = StreamCache(self.cfg.causal)
        self._history: tuple[Tensor, Tensor | None] | None = None  # model-space actions
        self._first_frame = 0  # absolute frame index of the history's first row
        self._noise = torch.Generator().manual_seed(self.cfg.seed)
        self._session = True

    @property
    def frames_needed(self) -> int:
        """Action rows (and frames) of the next block: ``1 + 4 (block - 1)`` first, then
        ``4 * block``."""
        ratio = self.model.cfg.action.temporal_ratio
        return 1 + ratio * (self.cfg.block - 1) if self.cache.start == 0 else ratio * self.cfg.block

    def _condition(self, latent: int) -> Tensor:
        """Condition latent ``latent`` ``[1, 16, 1, h, w]`` (mask channels not included)."""
        while len(self._cond) <= latent and not self._converged:
            if not self._cond:
                frames = self._image[:, :, None]
            else:
                frames = self._image.new_zeros(1, 3, self.vae.temporal, *self._image.shape[2:])
            z = self._encoder(frames)
            if len(self._cond) > 1 and (z - self._cond[-1]).abs().max() < CONDITION_TOLERANCE:
                self._converged = True
            self._cond.append(z)
        return self._cond[min(latent, len(self._cond) - 1)]

    def _actions(self, keys: np.ndarray, mouse: np.ndarray, latents: int
                 ) -> tuple[Tensor, Tensor | None]:
        """Append the block's actions to the history; return the span the block needs."""
        kb, ms = to_space(keys, mouse, self.space)
        kb = torch.from_numpy(kb)[None].to(self.device)
        ms = None if ms is None else torch.from_numpy(ms)[None].to(self.device)
        if self._history is not None:
            kb = torch.cat([self._history[0], kb], dim=1)
            ms = None if ms is None else torch.cat([self._history[1], ms], dim=1)
        first, last = action_span(self.cache.start, latents, self.model.cfg.action)
        drop = first - self._first_frame
        kb, ms = kb[:, drop:], None if ms is None else ms[:, drop:]
        if kb.shape[1] != last + 1 - first:
            raise AssertionError(f"action history holds {kb.shape[1]} frames, the block needs "
                                 f"{last + 1 - first}")
        self._history, self._first_frame = (kb, ms), first
        return kb, ms

    def blocks(self, keys: np.ndarray, mouse: np.ndarray) -> Iterator[np.ndarray]:
        """The session's frames block by block for all of ``keys [T, 7]``, ``mouse [T, 2]``
        (``T`` frames in all: a last, shorter block holds its last action and is cut)."""
        total, done = len(keys), 0
        while done < total:
            n = self.frames_needed
            k, m = keys[done:done + n], mouse[done:done + n]
            if len(k) < n:
                k = np.concatenate([k, np.repeat(k[-1:], n - len(k), axis=0)])
                m = np.concatenate([m, np.repeat(m[-1:], n - len(m), axis=0)])
            frames = self.step(k, m)[:total - done]
            done += len(frames)
            yield frames

    @torch.no_grad()
    def step(self, keys: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        """Generate the next block under contract actions ``keys [n, 7]``, ``mouse [n, 2]``
        (``n = frames_needed``); returns its frames, uint8 ``[n, H, W, 3]``."""
        with autocast(self.device, self.precision):
            return self._step(keys, mouse)

    def _step(self, keys: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        if not self._session:
            raise RuntimeError("call reset(image) before step()")
        n = self.frames_needed
        if len(keys) != n or len(mouse) != n:
            raise ValueError(f"this block needs {n} frames of actions, got {len(keys)} keys and "
                             f"{len(mouse)} mouse rows")
        start, latents = self.cache.start, self.cfg.block
        keyboard, mouse_t = self._actions(np.asarray(keys), np.asarray(mouse), latents)
        cond_latents = torch.cat([self._condition(start + i) for i in range(latents)], dim=2)
        _, _, _, h, w = cond_latents.shape
        mask = first_frame_mask(start + latents, h, w)[:, start:].to(cond_latents)[None]
        cond = torch.cat([mask, cond_latents], dim=1)
        x0 = self.denoise(cond, keyboard, mouse_t)
        t0 = torch.zeros(1, latents, device=self.device)
        self.model(x0, t0, cond, self._context, keyboard, mouse_t, cache=self.cache)
        self.cache.advance()
        frames = [self._decoder(x0[:, :, i:i + 1]) for i in range(latents)]
        video = to_uint8(torch.cat(frames, dim=2)[0].cpu())
        if start == 0:  # frame 0 is the image itself, as training sample gives it
            video[0] = to_uint8(self._image[0, :, None].clamp(-1, 1).cpu())[0]
        return video

    def denoise(self, cond: Tensor, keyboard: Tensor, mouse: Tensor | None) -> Tensor:
        """The block's clean latents ``[1, 16, block, h, w]`` in ``len(timesteps)`` steps."""
        latents, (h, w) = self.cfg.block, cond.shape[3:]
        shape = (1, self.vae.z_dim, latents, h, w)
        x = torch.randn(shape, generator=self._noise).to(self.device)
        given = self.cache.start == 0  # latent 0 is the image: clean, at t = 0
        sigmas = self.cfg.sigmas()
        for i, sigma in enumerate(sigmas):
            if given:
                x[:, :, 0] = cond[:, 4:, 0]
            t = torch.full((1, latents), NUM_TIMESTEPS * sigma, device=self.device)
            if given:
                t[:, 0] = 0.0
            v = self.model(x, t, cond, self._context, keyboard, mouse, cache=self.cache)
            x0 = x - sigma * v
            if i + 1 < len(sigmas):
                noise = torch.randn(shape, generator=self._noise).to(self.device)
                x = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * noise
        if given:
            x0[:, :, 0] = cond[:, 4:, 0]
        return x0
