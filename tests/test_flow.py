"""Flow matching: the sigma grid, the velocity target and its x0 conversion, timestep draws."""

from __future__ import annotations

import pytest
import torch

from training.conditioning import condition_video, first_frame_mask, image_tokens
from training.config import get_preset
from training.flow import (
    add_noise,
    sample_sigmas,
    sampling_sigmas,
    shift_sigma,
    to_x0,
    training_sigmas,
    velocity_target,
)


def test_shift_warps_the_released_denoising_steps():
    # Matrix-Game 2.0: steps [1000, 666, 333] at shift 5 -> [1000, 908.84, 713.98]
    t = 1000 * shift_sigma(torch.tensor([1.0, 0.666, 0.333]), 5.0)
    assert torch.allclose(t, torch.tensor([1000.0, 908.84, 713.98], dtype=torch.float64),
                          atol=0.01)
    t = 1000 * shift_sigma(torch.tensor([1.0, 0.75, 0.5, 0.25]), 5.0)
    assert torch.allclose(t, torch.tensor([1000, 937.5, 833.33, 625], dtype=torch.float64),
                          atol=0.01)
    sigma = torch.tensor([0.3], dtype=torch.float64)
    assert torch.equal(shift_sigma(sigma, 1.0), sigma)
    with pytest.raises(ValueError, match="shift must be positive"):
        shift_sigma(0.5, 0.0)


def test_training_grid_runs_from_one_down_and_never_reaches_zero():
    grid = training_sigmas(3.0)
    assert grid.shape == (1000,) and grid[0] == 1.0 and grid[-1] > 0
    assert torch.all(grid[1:] < grid[:-1])
    assert torch.allclose(grid, shift_sigma(torch.linspace(1, 0, 1001)[:-1].double(), 3.0))


def test_velocity_target_and_x0_conversion_invert_the_noising():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 2, 16, 3, 4, 6, generator=g).unbind(0)
    sigma = torch.rand(2, 3, generator=g)
    x_t = add_noise(x0, noise, sigma)
    v = velocity_target(x0, noise)
    assert torch.allclose(to_x0(x_t, v, sigma), x0, atol=1e-6)
    assert torch.allclose(add_noise(x0, noise, torch.ones(2, 3)), noise)
    assert torch.equal(add_noise(x0, noise, torch.zeros(2, 3)), x0)
    # a perfect velocity carries x_t along the straight path to x0 in one Euler step
    assert torch.allclose(x_t + (0 - sigma[:, None, :, None, None]) * v, x0, atol=1e-6)
    with pytest.raises(ValueError, match=r"sigma must be \[B, F\]"):
        add_noise(x0, noise, sigma[:, :2])


def test_per_frame_and_per_clip_timestep_draws():
    g = torch.Generator().manual_seed(0)
    per_clip = sample_sigmas(64, 5, 3.0, per_frame=False, generator=g)
    assert per_clip.shape == (64, 5) and torch.all(per_clip == per_clip[:, :1])
    per_frame = sample_sigmas(64, 5, 3.0, per_frame=True, generator=g)
    assert (per_frame != per_frame[:, :1]).any()
    grid = training_sigmas(3.0).float()
    assert torch.isin(per_frame, grid).all()
    again = sample_sigmas(64, 5, 3.0, True, torch.Generator().manual_seed(0))
    assert torch.equal(again, sample_sigmas(64, 5, 3.0, True, torch.Generator().manual_seed(0)))


def test_sampling_sigmas_end_at_zero():
    s = sampling_sigmas(3, 5.0)
    assert s[0] == 1 and s[-1] == 0 and len(s) == 4
    with pytest.raises(ValueError, match="at least 1"):
        sampling_sigmas(0, 5.0)


def test_condition_mask_video_and_image_tokens():
    mask = first_frame_mask(4, 2, 3)
    assert mask.shape == (4, 4, 2, 3) and mask[:, 0].eq(1).all() and mask[:, 1:].eq(0).all()
    first = torch.rand(2, 3, 16, 24) * 2 - 1
    video = condition_video(first, 5)
    assert video.shape == (2, 3, 5, 16, 24)
    assert torch.equal(video[:, :, 0], first) and video[:, :, 1:].eq(0).all()
    tokens = image_tokens(first, get_preset("tiny"))
    assert tokens.shape == (2, 17, 192)
    assert torch.allclose(tokens[:, 0], tokens[:, 1:].mean(1), atol=1e-6)  # global token
    assert not torch.equal(tokens[0], tokens[1])
    assert image_tokens(first, get_preset("mg2-universal")).shape == (2, 257, 1280)
