"""The action-conditioned DiT world model (Matrix-Game 2.0 / Wan2.1 I2V shape). No training code.

Inputs: noisy latents ``x [B, 16, F, h, w]``, per-frame timesteps ``t [B, F]`` in [0, 1000],
the condition ``cond [B, 20, F, h, w]`` (4 mask channels, then the VAE latents of the first
frame followed by zero frames), image tokens ``image [B, L, image_dim]`` (CLIP ViT-H/14
penultimate tokens, or the stand-in of :func:`training.conditioning.image_tokens`), keyboard
``[B, N, K]`` and mouse ``[B, N, 2]`` per video frame (``N = 4 * (F - 1) + 1``). Output: the
flow velocity ``[B, 16, F, h, w]``.

Numerics follow the released model: patch (1, 2, 2) embedding of the 36 channels; per-frame
timestep modulation (6 vectors per block, 2 for the head) computed in float32; per block
self-attention (qk RMSNorm over the full width, 3D RoPE), image cross-attention on the norm3'd
stream, the action module (adds its own residual) and the tanh-GELU FFN. The output head, and
both action output projections, start at zero. Parameter names equal the released
checkpoints' (``training inspect``), so those load with ``strict=True``.

Block-causal use (:mod:`training.causal`): a ``frame_mask`` over latent frames for the whole
sequence in one pass, or a :class:`~training.causal.StreamCache` to run one block of latents at
the cache's position with every attention reading and writing its rolling cache; then the
keyboard and mouse cover frames ``first .. 4 * (start + F - 1)`` of the session, ``first =
max(0, 4 * start - 12)`` (:func:`training.action_module.action_span`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from training.action_module import ActionModule, action_span
from training.causal import RingCache, StreamCache
from training.config import DiTConfig
from training.layers import LayerNorm, RMSNorm, attention
from training.rope import angles_3d, apply_rope


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[len(t), dim]`` in float64: cosines, then sines (Wan's order)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = torch.outer(t.double(), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x: Tensor, angles: Tensor, mask: Tensor | None,
                cache: RingCache | None = None) -> Tensor:
        shape = (*x.shape[:2], self.heads, -1)
        q = apply_rope(self.norm_q(self.q(x)).view(shape), angles)
        k = apply_rope(self.norm_k(self.k(x)).view(shape), angles)
        v = self.v(x).view(shape).type_as(q)
        if cache is not None:
            k, v = cache.update(k, v)
        return self.o(attention(q, k, v, mask))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))
        k = self.norm_k(self.k(context)).unflatten(-1, (self.heads, -1))
        v = self.v(context).unflatten(-1, (self.heads, -1))
        return self.o(attention(q, k, v.type_as(q)))


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig, with_actions: bool) -> None:
        super().__init__()
        dim = cfg.dim
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.norm1 = LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, cfg.eps)
        self.norm3 = LayerNorm(dim, cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.eps)
        self.action_model = ActionModule(dim, cfg.action, cfg.eps) if with_actions else None
        self.norm2 = LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, dim))

    def forward(self, x: Tensor, e: Tensor, frames: int, angles: Tensor, context: Tensor,
                keyboard: Tensor, mouse: Tensor | None, token_mask: Tensor | None,
                frame_mask: Tensor | None, cache: StreamCache | None = None,
                name: str = "") -> Tensor:
        """``x [B, F * S, dim]`` float32; ``e [B, F, 6, dim]`` float32 timestep modulation;
        ``cache``: run at its position, this block's caches named after ``name``."""
        b, length, dim = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation[:, None] + e).chunk(6, 2)

        def per_frame(t: Tensor) -> Tensor:
            return t.view(b, frames, length // frames, dim)

        y = self.norm1(x).float()
        ring = None if cache is None else cache.layer(
            f"{name}.self", b, length // frames, self.self_attn.heads, dim // self.self_attn.heads,
            x)
        y = self.self_attn((per_frame(y) * (1 + scale1) + shift1).flatten(1, 2), angles,
                           token_mask, ring)
        x = x + (per_frame(y.float()) * gate1).flatten(1, 2)
        x = x + self.cross_attn(self.norm3(x), context).float()
        if self.action_model is not None:
            x = self.action_model(x, frames, keyboard, mouse, frame_mask, cache,
                                  f"{name}.action").float()
        y = self.ffn((per_frame(self.norm2(x).float()) * (1 + scale2) + shift2).flatten(1, 2))
        return x + (per_frame(y.float()) * gate2).flatten(1, 2)


class Head(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.norm = LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch))
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: Tensor, e: Tensor, frames: int) -> Tensor:
        """``x [B, F * S, dim]``, ``e [B, F, dim]`` -> ``[B, F * S, out * prod(patch)]``."""
        b, length, dim = x.shape
        shift, scale = (self.modulation[:, None] + e[:, :, None]).chunk(2, dim=2)
        y = self.norm(x).float().view(b, frames, length // frames, dim) * (1 + scale) + shift
        return self.head(y.flatten(1, 2))


class ImageProjection(nn.Module):
    """Image tokens ``[B, L, image_dim]`` to the model width (released ``img_emb``)."""

    def __init__(self, image_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(LayerNorm(image_dim), nn.Linear(image_dim, image_dim),
                                  nn.GELU(), nn.Linear(image_dim, dim), LayerNorm(dim))

    def forward(self, image: Tensor) -> Tensor:
        return self.proj(image)


class WorldDiT(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gradient_checkpointing = False
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_dim, dim, cfg.patch, stride=cfg.patch)
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, dim), nn.SiLU(),
                                            nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        actions = set(cfg.action.blocks)
        self.blocks = nn.ModuleList(Block(cfg, i in actions) for i in range(cfg.num_layers))
        self.head = Head(cfg)
        self.img_emb = ImageProjection(cfg.image_dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Wan's initialisation; zero output head and action output projections."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        for m in self.time_embedding:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        for block in self.blocks:
            if block.action_model is not None:
                for name in ("proj_mouse", "proj_keyboard"):
                    if hasattr(block.action_model, name):
                        nn.init.zeros_(getattr(block.action_model, name).weight)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, image: Tensor,
                keyboard: Tensor | None = None, mouse: Tensor | None = None,
                frame_mask: Tensor | None = None, cache: StreamCache | None = None) -> Tensor:
        cfg = self.cfg
        b, _, frames, h, w = x.shape
        self._check(x, t, cond, image)
        if cache is not None:
            if frame_mask is not None:
                raise ValueError("give a frame_mask (whole sequence) or a cache (one block)")
            cache.begin(frames)
        start = 0 if cache is None else cache.start
        pt, ph, pw = cfg.patch
        gh, gw = h // ph, w // pw
        first, last = action_span(start, frames, cfg.action)
        n = last + 1 - first
        if keyboard is None:
            keyboard = x.new_zeros(b, n, cfg.action.keyboard_dim)
        if cfg.action.mouse and mouse is None:
            mouse = x.new_zeros(b, n, 2)
        tokens = self.patch_embedding(torch.cat([x, cond], dim=1).to(self.patch_embedding.weight))
        tokens = tokens.flatten(2).transpose(1, 2).float()
        device_type = "cpu" if x.device.type == "meta" else x.device.type  # meta: FLOP counting
        with torch.autocast(device_type=device_type, enabled=False):
            e = self.time_embedding(timestep_embedding(t.flatten(), cfg.freq_dim).float())
            e0 = self.time_projection(e).view(b, frames, 6, cfg.dim)
            e = e.view(b, frames, cfg.dim)
        context = self.img_emb(image.to(tokens.dtype))
        angles = angles_3d(frames, gh, gw, cfg.head_dim, cfg.rope_theta, x.device,
                           frame_offset=start)
        token_mask = None if frame_mask is None else \
            frame_mask.repeat_interleave(gh * gw, 0).repeat_interleave(gh * gw, 1)
        for i, block in enumerate(self.blocks):
            args = (tokens, e0, frames, angles, context, keyboard, mouse, token_mask, frame_mask,
                    cache, str(i))
            # not with a cache: the recomputation in backward would read keys that later
            # blocks have since written over, and write this block's again
            if self.gradient_checkpointing and torch.is_grad_enabled() and cache is None:
                tokens = checkpoint(block, *args, use_reentrant=False)
            else:
                tokens = block(*args)
        out = self.head(tokens, e, frames).float()
        out = out.view(b, frames, gh, gw, pt, ph, pw, cfg.out_dim)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, cfg.out_dim, frames * pt, h, w)

    def _check(self, x: Tensor, t: Tensor, cond: Tensor, image: Tensor) -> None:
        cfg = self.cfg
        b, c, frames, h, w = x.shape
        problems = []
        if c + cond.shape[1] != cfg.in_dim:
            problems.append(f"x has {c} and cond {cond.shape[1]} channels; together they must "
                            f"be in_dim={cfg.in_dim}")
        if cond.shape[0] != b or cond.shape[2:] != x.shape[2:]:
            problems.append(f"cond {list(cond.shape)} does not match x {list(x.shape)}")
        if h % cfg.patch[1] or w % cfg.patch[2]:
            problems.append(f"latent size {h}x{w} is not a multiple of the patch {cfg.patch}")
        if t.shape != (b, frames):
            problems.append(f"t must be [B, F] = {[b, frames]}, got {list(t.shape)}")
        if image.shape[0] != b or image.shape[2] != cfg.image_dim:
            problems.append(f"image tokens must be [B, L, {cfg.image_dim}], got "
                            f"{list(image.shape)}")
        if problems:
            raise ValueError("WorldDiT inputs: " + "; ".join(problems))
