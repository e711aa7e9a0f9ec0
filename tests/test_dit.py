"""The DiT: shapes, action windowing, zero-init, RoPE, masks, and Wan numerics via diffusers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from training.action_module import action_windows
from training.config import (
    PRESETS,
    ActionConfig,
    DiTConfig,
    block_ranges,
    get_preset,
    same_but_action_blocks,
    with_action_blocks,
)
from training.dit import WorldDiT
from training.init_weights import init_from_wan
from training.params import forward_flops, param_shapes
from training.rope import angles_3d, angles_time, apply_rope

MG2_PARAMS = Path(__file__).resolve().parents[2] / "shared" / "docs" / "mg2-params.json"
RELEASED = {"mg2-foundation": "foundation", "mg2-universal": "universal",
            "mg2-gta-drive": "gta_drive", "mg2-templerun": "templerun"}


def inputs(cfg: DiTConfig, frames: int, h: int = 4, w: int = 6, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = 4 * (frames - 1) + 1
    return dict(
        x=torch.randn(batch, 16, frames, h, w, generator=g),
        t=torch.rand(batch, frames, generator=g) * 1000,
        cond=torch.randn(batch, 20, frames, h, w, generator=g),
        image=torch.randn(batch, cfg.image_tokens, cfg.image_dim, generator=g),
        keyboard=torch.randint(0, 2, (batch, n, cfg.action.keyboard_dim), generator=g).float(),
        mouse=torch.randn(batch, n, 2, generator=g) if cfg.action.mouse else None)


def trained(model: WorldDiT, seed: int = 1) -> WorldDiT:
    """Give the zero-initialised projections weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("head.head.weight", "proj_mouse.weight", "proj_keyboard.weight")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.mark.parametrize("frames", [1, 2, 3, 5])
def test_output_matches_the_noisy_latent_shape_for_several_frame_counts(frames):
    cfg = get_preset("tiny")
    model = trained(WorldDiT(cfg))
    out = model(**inputs(cfg, frames, h=4, w=8))
    assert out.shape == (2, 16, frames, 4, 8)
    assert torch.isfinite(out).all()


def test_keyboard_only_model_runs_without_mouse():
    cfg = dataclasses.replace(get_preset("tiny"), action=ActionConfig(
        keyboard_dim=7, mouse=False, blocks=(1,), heads=2, mouse_hidden=64, keyboard_hidden=64,
        keyboard_embed=16))
    model = trained(WorldDiT(cfg))
    assert not hasattr(model.blocks[1].action_model, "mouse_mlp")
    assert model.blocks[0].action_model is None
    assert model(**inputs(cfg, 3)).shape == (2, 16, 3, 4, 6)


def test_action_windows_follow_the_released_alignment():
    frames = 4
    actions = torch.arange(4 * (frames - 1) + 1, dtype=torch.float32)[None, :, None] + 100
    windows = action_windows(actions, frames, window=3, ratio=4)
    assert windows.shape == (1, frames, 12, 1)
    for i in range(frames):  # latent i sees a[4i-12 .. 4i-1], padded with a[0]
        expected = [actions[0, max(j, 0), 0].item() for j in range(4 * i - 12, 4 * i)]
        assert windows[0, i, :, 0].tolist() == expected
    with pytest.raises(ValueError, match=r"need frame actions 0..12 \(13\), got 12"):
        action_windows(actions[:, :12], frames)


def test_untrained_action_modules_change_nothing_and_trained_ones_do():
    cfg = get_preset("tiny")
    model = WorldDiT(cfg)
    torch.nn.init.normal_(model.head.head.weight, std=0.05)  # a live head, zero action outputs
    batch = inputs(cfg, 3)
    with torch.no_grad():
        base = model(**batch)
        other = model(**{**batch, "keyboard": 1 - batch["keyboard"], "mouse": -batch["mouse"]})
        assert torch.equal(base, other)
        trained(model)
        moved = model(**{**batch, "keyboard": 1 - batch["keyboard"], "mouse": -batch["mouse"]})
        assert (model(**batch) - moved).abs().max() > 1e-4


def test_untrained_head_predicts_zero_velocity():
    cfg = get_preset("tiny")
    assert WorldDiT(cfg)(**inputs(cfg, 2)).abs().max() == 0


def test_block_causal_frame_mask_keeps_early_frames_blind_to_later_ones():
    cfg = get_preset("tiny")
    model = trained(WorldDiT(cfg)).eval()
    batch = inputs(cfg, 4)
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    later = {**batch, "x": batch["x"].clone(), "keyboard": batch["keyboard"].clone()}
    later["x"][:, :, 2:] += 1.0
    later["keyboard"][:, 9:] = 1 - later["keyboard"][:, 9:]  # frames 9.. reach latents 3 only
    with torch.no_grad():
        a = model(**batch, frame_mask=mask)
        b = model(**later, frame_mask=mask)
        full_a, full_b = model(**batch), model(**later)
    assert torch.allclose(a[:, :, :2], b[:, :, :2], atol=1e-6)
    assert (a[:, :, 2:] - b[:, :, 2:]).abs().max() > 1e-3
    assert (full_a[:, :, :2] - full_b[:, :, :2]).abs().max() > 1e-4  # full attention sees them


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = get_preset("tiny")
    batch = inputs(cfg, 3)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = trained(WorldDiT(cfg))
        model.gradient_checkpointing = checkpointing
        model(**batch).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_rope_is_a_rotation_that_depends_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 32, generator=g).unbind(0)
    angles = angles_time(10, 32, 8, 256.0)
    rq = apply_rope(q.expand(10, 1, 32), angles)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1).expand(10, 1), atol=1e-5)
    assert torch.equal(rq[:, 0, 8:], q.expand(10, 1, 32)[:, 0, 8:])  # only 8 dims turn
    rk = apply_rope(k.expand(10, 1, 32), angles)
    dots = (rq[:, None] * rk[None]).sum(-1)[..., 0]  # [10, 10]: <R_i q, R_j k>
    assert torch.allclose(dots[3, 1], dots[7, 5], atol=1e-5)
    assert torch.allclose(dots[2, 2], dots[9, 9], atol=1e-5)
    assert angles_3d(2, 3, 4, 128, 1e4).shape == (24, 64)


def test_inputs_of_the_wrong_shape_are_refused_by_name():
    cfg = get_preset("tiny")
    model = WorldDiT(cfg)
    batch = inputs(cfg, 3)
    with pytest.raises(ValueError, match=r"t must be \[B, F\]"):
        model(**{**batch, "t": batch["t"][:, :2]})
    with pytest.raises(ValueError, match="image tokens must be"):
        model(**{**batch, "image": batch["image"][..., :10]})
    with pytest.raises(ValueError, match="must be in_dim=36"):
        model(**{**batch, "cond": batch["cond"][:, :4]})


@pytest.mark.parametrize("preset", sorted(RELEASED))
def test_mg2_presets_have_the_released_parameter_names_and_shapes(preset):
    released = json.loads(MG2_PARAMS.read_text())["models"][RELEASED[preset]]
    ours = param_shapes(preset)
    assert ours["params"] == released["params"]
    assert ours["count"] == released["n_params"]


def test_action_blocks_turn_the_foundation_model_into_the_released_students():
    foundation = get_preset("mg2-foundation")
    assert with_action_blocks(foundation, "0-14") == get_preset("mg2-universal")
    assert with_action_blocks(foundation, "") == foundation
    assert with_action_blocks(get_preset("small"), "4,0-1").action.blocks == (0, 1, 4)
    assert block_ranges((0, 1, 4)) == "0-1,4"
    assert block_ranges(get_preset("mg2-universal").action.blocks) == "0-14"
    assert same_but_action_blocks(foundation, get_preset("mg2-universal"))
    assert not same_but_action_blocks(get_preset("mg2-universal"), get_preset("mg2-gta-drive"))
    for bad in ("0-30", "x", "3-1", "-1", "5-3,7"):
        with pytest.raises(ValueError, match="action blocks"):
            with_action_blocks(foundation, bad)


def test_presets_build_and_are_valid():
    for name, cfg in PRESETS.items():
        assert param_shapes(cfg)["count"] > 0, name
    with pytest.raises(ValueError, match="unknown preset 'huge'; known: tiny"):
        get_preset("huge")
    with pytest.raises(ValueError, match="exceed num_layers=2"):
        dataclasses.replace(get_preset("tiny"), action=ActionConfig(
            blocks=(0, 5), heads=2, mouse_hidden=64, keyboard_hidden=64))


def test_without_action_modules_it_computes_what_diffusers_wan_computes(tmp_path):
    """The backbone equals diffusers' WanTransformer3DModel with per-token timesteps when
    started from its weights with --init (its text projection swapped for our image one)."""
    diffusers = pytest.importorskip("diffusers")
    cfg = dataclasses.replace(get_preset("tiny"), action=ActionConfig(
        blocks=(), heads=2, mouse_hidden=64, keyboard_hidden=64))
    wan = diffusers.WanTransformer3DModel(
        patch_size=cfg.patch, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_dim, out_channels=cfg.out_dim, text_dim=cfg.image_dim,
        freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=cfg.eps, image_dim=None)
    with torch.no_grad():
        for p in wan.parameters():  # non-trivial norms, biases and output head
            p.add_(torch.randn_like(p) * 0.05)
    ours = WorldDiT(cfg)
    wan.condition_embedder.text_embedder = ours.img_emb
    save_file(wan.state_dict(), tmp_path / "wan.safetensors")
    report = init_from_wan(ours, tmp_path / "wan.safetensors")
    # everything but the image projection comes from the checkpoint (which shares ours)
    assert {n.split(".")[0] for n in report.fresh} == {"img_emb"} and not report.mismatched
    assert len(report.loaded) == len(ours.state_dict()) - len(report.fresh)
    batch = inputs(cfg, 3, h=4, w=6)
    tokens_per_frame = (4 // 2) * (6 // 2)
    with torch.no_grad():
        expected = wan(torch.cat([batch["x"], batch["cond"]], 1),
                       batch["t"].repeat_interleave(tokens_per_frame, dim=1),
                       batch["image"], return_dict=False)[0]
        got = ours(batch["x"], batch["t"], batch["cond"], batch["image"])
    assert expected.abs().max() > 1e-2
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_flops_grow_with_tokens_and_match_the_dense_estimate():
    small = forward_flops("tiny", 3, 4, 8)
    assert forward_flops("tiny", 5, 4, 8) > small
    big = forward_flops("mg2-foundation", 15, 44, 80)  # 57 frames at 352x640
    tokens = 15 * 22 * 40
    dense = 2 * param_shapes("mg2-foundation")["count"] * tokens  # matmuls alone
    assert dense < big < 2 * dense  # attention over 13200 tokens adds the rest
