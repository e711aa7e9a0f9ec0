"""Sampling: the Euler integrator, sliding windows, determinism, the overlay video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datagen.video import probe
from shards.action_space import get_space
from training.config import get_preset
from training.data import latent_frames
from training.dit import WorldDiT
from training.image_encoder import StandinImageEncoder
from training.sample import SamplerConfig, denoise, generate, overlay_video, to_uint8
from training.vae import WanVAE, build_vae


class Oracle(torch.nn.Module):
    """Predicts the exact velocity towards known clean latents (tests the integrator alone)."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target
        self.calls: list[torch.Tensor] = []

    def forward(self, x, t, cond, image, keyboard, mouse):
        self.calls.append(t.clone())
        sigma = (t / 1000).clamp_min(1e-12)[:, None, :, None, None]
        return (x - self.target) / sigma


def test_euler_with_the_exact_velocity_lands_on_the_clean_latents():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 16, 3, 2, 4, generator=g)
    cond = torch.zeros_like(target)
    cond[:, :, :1] = target[:, :, :1]
    oracle = Oracle(target)
    out = denoise(oracle, cond, torch.zeros(1, 17, 192), torch.zeros(1, 9, 4), None,
                  SamplerConfig(steps=4, guidance=1.0), torch.Generator().manual_seed(1))
    assert torch.allclose(out, target, atol=1e-5)
    assert len(oracle.calls) == 4
    assert all(torch.all(t[:, 0] == 0) for t in oracle.calls)  # latent 0 stays clean
    assert oracle.calls[0][0, 1] == 1000
    guided = Oracle(target)
    denoise(guided, cond, torch.zeros(1, 17, 192), torch.zeros(1, 9, 4), None,
            SamplerConfig(steps=4, guidance=3.0), torch.Generator().manual_seed(1))
    assert len(guided.calls) == 8  # with and without actions per step


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = WorldDiT(get_preset("tiny")).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("head.head.weight", "proj_mouse.weight", "proj_keyboard.weight")):
                p.normal_(std=0.05)
    vae = WanVAE(build_vae("tiny"), {"name": "random-tiny"})
    return model, vae, StandinImageEncoder(model.cfg)


def test_long_videos_come_in_windows_that_start_from_the_last_frame(tiny):
    model, vae, enc = tiny
    first = torch.rand(1, 3, 32, 64) * 2 - 1
    n = 20
    keyboard = torch.randint(0, 2, (1, n, 4), generator=torch.Generator().manual_seed(0)).float()
    mouse = torch.randn(1, n, 2)
    cfg = SamplerConfig(steps=2, guidance=2.0, seed=3)
    video = generate(model, vae, enc, first, keyboard, mouse, window=9, cfg=cfg)
    assert video.shape == (1, 3, n, 32, 64)
    assert torch.equal(video[:, :, 0], first)
    assert video.abs().max() <= 1
    again = generate(model, vae, enc, first, keyboard, mouse, window=9, cfg=cfg)
    assert torch.equal(video, again)
    other = generate(model, vae, enc, first, keyboard, mouse, window=9,
                     cfg=SamplerConfig(steps=2, guidance=2.0, seed=4))
    assert not torch.equal(video, other)


def test_window_and_action_lengths_are_checked(tiny):
    model, vae, enc = tiny
    first = torch.zeros(1, 3, 32, 64)
    with pytest.raises(ValueError, match="4k\\+1"):
        generate(model, vae, enc, first, torch.zeros(1, 9, 4), None, window=8,
                 cfg=SamplerConfig())
    with pytest.raises(ValueError, match="keyboard has 9 frames, mouse 5"):
        generate(model, vae, enc, first, torch.zeros(1, 9, 4), torch.zeros(1, 5, 2),
                 window=9, cfg=SamplerConfig())
    assert latent_frames(57) == 15
    with pytest.raises(ValueError, match="steps >= 1"):
        SamplerConfig(steps=0)


def test_overlay_video_puts_generated_and_truth_side_by_side(tmp_path):
    frames = to_uint8(torch.rand(3, 5, 32, 64) * 2 - 1)
    assert frames.shape == (5, 32, 64, 3) and frames.dtype == np.uint8
    keyboard = np.zeros((5, 4), np.float32)
    keyboard[2, 0] = 1
    mouse = np.full((5, 2), 0.1, np.float32)
    out = overlay_video(tmp_path / "v.mp4", {"generated": frames, "truth": frames}, keyboard,
                        mouse, get_space("mg2_universal"), fps=15)
    info = probe(out)
    assert (info.width, info.height, info.frames) == (2 * 64 * 12, 32 * 12, 5)
    assert not list(tmp_path.glob("*.partial*"))
