"""The Matrix-Game 2.0 action module: keyboard and mouse inputs injected into a DiT block.

Frame actions ``[B, N, A]`` (``N = 4 * (F - 1) + 1`` video frames for ``F`` latent frames) are
windowed per latent frame: 12 copies of the first action are prepended, and latent ``i`` sees
the 12 frame actions ``a[4i - 12 .. 4i - 1]`` (:func:`action_windows`).

- Mouse branch: the hidden state is regrouped per spatial position (a sequence over time per
  token); the 24-d window (12 x ``[pitch, yaw]``) is concatenated to it, through an MLP
  (``dim + 24 -> 1024 -> 1024``, tanh-GELU, LayerNorm), then q/k/v (16 heads x 64, RMSNorm on q
  and k, a 1-D RoPE on the latent frame), temporal self-attention per token, a projection
  ``1024 -> dim`` and a residual.
- Keyboard branch: a per-frame MLP (``K -> 128 -> 128``, SiLU); each 12-frame group flattened
  (1536) gives k and v per latent frame; each token's query comes from the hidden state; RMSNorm
  and RoPE as above; each token attends over time to the keyboard keys; a projection
  ``1024 -> dim`` and a residual.

Both output projections start at zero, so an untrained module changes nothing. Temporal
attention is full (the bidirectional foundation model) unless a ``frame_mask`` ``[F, F]``
(True = may attend) is given, e.g. block-causal for a streaming student, or a
:class:`~training.causal.StreamCache`: then both branches read and write rolling caches of their
temporal keys and values, and the actions cover only the frames the block's windows need
(:func:`action_span`). Parameter names are
the released checkpoints' (``mouse_attn_q`` is the keyboard branch's query, as released).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.causal import StreamCache
from training.config import ActionConfig
from training.layers import LayerNorm, RMSNorm, attention
from training.rope import angles_time, apply_rope


def action_span(start: int, latent_frames: int, cfg: ActionConfig) -> tuple[int, int]:
    """First and last frame (inclusive) of the actions that latents ``start .. start + F - 1``
    are given: from the earliest frame their windows reach to ``ratio * (start + F - 1)``."""
    ratio = cfg.temporal_ratio
    return max(0, ratio * start - cfg.window * ratio), ratio * (start + latent_frames - 1)


def action_windows(actions: Tensor, latent_frames: int, window: int = 3, ratio: int = 4,
                   start: int = 0) -> Tensor:
    """``[B, N, A]`` frame actions to ``[B, F, window * ratio, A]``: row ``i`` holds
    ``a[ratio*i' - window*ratio .. ratio*i' - 1]`` of latent ``i' = start + i``, indices below 0
    taking ``a[0]``. ``actions`` holds the frames :func:`action_span` names (all of them from
    frame 0 when ``start`` is 0)."""
    pad = window * ratio
    first = max(0, ratio * start - pad)
    n = actions.shape[1]
    if n != ratio * (start + latent_frames - 1) + 1 - first:
        raise ValueError(f"latent frames {start}..{start + latent_frames - 1} need frame actions "
                         f"{first}..{ratio * (start + latent_frames - 1)} "
                         f"({ratio * (start + latent_frames - 1) + 1 - first}), got {n}")
    index = ratio * torch.arange(start, start + latent_frames, device=actions.device)[:, None] \
        + torch.arange(pad, device=actions.device) - pad
    return actions[:, index.clamp_min(0) - first]


class ActionModule(nn.Module):
    def __init__(self, dim: int, cfg: ActionConfig, eps: float = 1e-6) -> None:
        super().__init__()
        self.cfg = cfg
        span = cfg.frames_per_latent_window
        if cfg.mouse:
            c = cfg.mouse_hidden
            self.mouse_mlp = nn.Sequential(
                nn.Linear(dim + 2 * span, c), nn.GELU(approximate="tanh"), nn.Linear(c, c),
                LayerNorm(c))
            self.t_qkv = nn.Linear(c, 3 * c, bias=False)
            self.img_attn_q_norm = RMSNorm(c // cfg.heads, eps)
            self.img_attn_k_norm = RMSNorm(c // cfg.heads, eps)
            self.proj_mouse = nn.Linear(c, dim, bias=False)
        e, c = cfg.keyboard_embed, cfg.keyboard_hidden
        self.keyboard_embed = nn.Sequential(nn.Linear(cfg.keyboard_dim, e), nn.SiLU(),
                                            nn.Linear(e, e))
        self.key_attn_q_norm = RMSNorm(c // cfg.heads, eps)
        self.key_attn_k_norm = RMSNorm(c // cfg.heads, eps)
        self.mouse_attn_q = nn.Linear(dim, c, bias=False)
        self.keyboard_attn_kv = nn.Linear(e * span, 2 * c, bias=False)
        self.proj_keyboard = nn.Linear(c, dim, bias=False)

    def forward(self, x: Tensor, frames: int, keyboard: Tensor, mouse: Tensor | None,
                frame_mask: Tensor | None = None, cache: StreamCache | None = None,
                name: str = "action") -> Tensor:
        """``x [B, F * S, dim]`` (frame-major tokens) -> the same with both residuals added."""
        cfg = self.cfg
        b, length, dim = x.shape
        s = length // frames
        start = 0 if cache is None else cache.start
        angles = angles_time(frames, cfg.keyboard_hidden // cfg.heads, cfg.rope_time_dims,
                             cfg.rope_theta, x.device, frame_offset=start)
        if cfg.mouse:
            x = self._mouse(x, frames, s, mouse, frame_mask, cache, name, start)
        # Keyboard: queries stay in token order; every token of frame f has time position f.
        hd = cfg.keyboard_hidden // cfg.heads
        groups = action_windows(self.keyboard_embed(keyboard.to(x.dtype)), frames, cfg.window,
                                cfg.temporal_ratio, start).flatten(2)
        k, v = self.keyboard_attn_kv(groups).view(b, frames, 2, cfg.heads, hd).unbind(2)
        q = self.key_attn_q_norm(self.mouse_attn_q(x).view(b, length, cfg.heads, hd))
        q = apply_rope(q, angles.repeat_interleave(s, dim=0))
        k = apply_rope(self.key_attn_k_norm(k), angles)
        v = v.type_as(q)
        if cache is not None:
            k, v = cache.layer(f"{name}.keyboard", b, 1, cfg.heads, hd, x).update(k, v)
        mask = None if frame_mask is None else frame_mask.repeat_interleave(s, dim=0)
        return x + self.proj_keyboard(attention(q, k, v, mask))

    def _mouse(self, x: Tensor, frames: int, s: int, mouse: Tensor, frame_mask: Tensor | None,
               cache: StreamCache | None, name: str, start: int) -> Tensor:
        cfg = self.cfg
        b, _, dim = x.shape
        hd = cfg.mouse_hidden // cfg.heads
        per_token = x.view(b, frames, s, dim).transpose(1, 2).reshape(b * s, frames, dim)
        windows = action_windows(mouse.to(x.dtype), frames, cfg.window, cfg.temporal_ratio,
                                 start)
        windows = windows.flatten(2)[:, None].expand(b, s, frames, -1).reshape(b * s, frames, -1)
        hidden = self.mouse_mlp(torch.cat([per_token, windows], dim=-1))
        q, k, v = self.t_qkv(hidden).view(b * s, frames, 3, cfg.heads, hd).unbind(2)
        angles = angles_time(frames, hd, cfg.rope_time_dims, cfg.rope_theta, x.device,
                             frame_offset=start)
        q = apply_rope(self.img_attn_q_norm(q), angles)
        k = apply_rope(self.img_attn_k_norm(k), angles)
        v = v.type_as(q)
        if cache is not None:
            k, v = cache.layer(f"{name}.mouse", b * s, 1, cfg.heads, hd, x).update(k, v)
        per_token = per_token + self.proj_mouse(attention(q, k, v, frame_mask))
        return per_token.view(b, s, frames, dim).transpose(1, 2).reshape(b, frames * s, dim)
