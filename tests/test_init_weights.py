"""--init from Wan checkpoints: the text branch dropped, image keys kept, actions fresh."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from training.config import get_preset
from training.dit import WorldDiT
from training.init_weights import check_init, init_from_wan, read_safetensors


@pytest.fixture
def wan_i2v():
    diffusers = pytest.importorskip("diffusers")
    cfg = get_preset("tiny")
    return diffusers.WanTransformer3DModel(
        patch_size=cfg.patch, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=36, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        image_dim=cfg.image_dim, added_kv_proj_dim=cfg.dim)


def test_an_i2v_checkpoint_in_diffusers_names_fills_everything_but_the_actions(wan_i2v, tmp_path):
    state = wan_i2v.state_dict()
    half = len(state) // 2  # a sharded checkpoint: two files in one folder
    names = sorted(state)
    save_file({k: state[k] for k in names[:half]}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({k: state[k] for k in names[half:]}, tmp_path / "model-00002-of-00002.safetensors")
    model = WorldDiT(get_preset("tiny"))
    report = init_from_wan(model, tmp_path)
    ours = model.state_dict()
    assert not report.mismatched
    assert report.fresh and all(".action_model." in n for n in report.fresh)
    assert torch.equal(ours["blocks.1.cross_attn.k.weight"],
                       state["blocks.1.attn2.add_k_proj.weight"])
    assert torch.equal(ours["blocks.0.cross_attn.norm_k.weight"],
                       state["blocks.0.attn2.norm_added_k.weight"])
    assert torch.equal(ours["img_emb.proj.1.weight"],
                       state["condition_embedder.image_embedder.ff.net.0.proj.weight"])
    assert torch.equal(ours["head.head.weight"], state["proj_out.weight"])
    dropped = set(report.dropped)
    assert "text_embedding.0.weight" in dropped and "blocks.0.cross_attn.k.weight" in dropped
    assert "dropped" in report.summary() and "blocks.*.action_model" in report.summary()


def test_original_wan_names_load_directly_and_shape_mismatches_are_reported(tmp_path):
    donor = WorldDiT(get_preset("tiny")).state_dict()
    donor = {k: v + 1 for k, v in donor.items() if ".action_model." not in k}
    donor["patch_embedding.weight"] = torch.zeros(64, 20, 1, 2, 2)  # a 20-channel model
    donor["text_embedding.0.weight"] = torch.zeros(64, 32)
    save_file(donor, tmp_path / "wan.safetensors")
    model = WorldDiT(get_preset("tiny"))
    check_init(tmp_path / "wan.safetensors", get_preset("tiny"))  # names that fit: no error
    save_file(WorldDiT(get_preset("small")).state_dict(), tmp_path / "small.safetensors")
    with pytest.raises(ValueError, match="a model of another size"):
        check_init(tmp_path / "small.safetensors", get_preset("tiny"))
    report = init_from_wan(model, tmp_path / "wan.safetensors")
    assert report.mismatched == ["patch_embedding.weight: ours [64, 36, 1, 2, 2] vs theirs "
                                 "[64, 20, 1, 2, 2]"]
    assert "patch_embedding.weight" in report.fresh
    assert torch.equal(model.state_dict()["blocks.0.ffn.0.bias"], donor["blocks.0.ffn.0.bias"])
    assert report.dropped == ["text_embedding.0.weight"]


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    released = tmp_path / "released"
    released.mkdir()
    save_file({f"model.{k}": v for k, v in WorldDiT(get_preset("tiny")).state_dict().items()},
              released / "matrix-game.safetensors")  # what the released files hold
    with pytest.raises(ValueError, match="no tensor of .* fits the model.*training import"):
        check_init(released, get_preset("tiny"))
    with pytest.raises(FileNotFoundError, match="no .safetensors checkpoint"):
        read_safetensors(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no .safetensors checkpoint"):
        read_safetensors(tmp_path)


@pytest.mark.slow
def test_fit_starts_from_a_wan_checkpoint_with_a_clip_encoder_and_says_so(
        wan_i2v, tmp_path, tmp_path_factory, capsys):
    transformers = pytest.importorskip("transformers")
    from fit_support import shard_set

    from training import checkpoint
    from training.cli import main as training

    state = wan_i2v.state_dict()
    save_file(state, tmp_path / "wan.safetensors")
    clip = transformers.CLIPVisionConfig(hidden_size=192, intermediate_size=256,
                                         num_hidden_layers=3, num_attention_heads=4,
                                         image_size=32, patch_size=8)  # the tiny preset's shape
    transformers.CLIPVisionModel(clip).save_pretrained(tmp_path / "clip")
    data = shard_set(tmp_path_factory)
    run = tmp_path / "run"
    assert training(["fit", "--shards", str(data["shards"]), "--vae", str(data["vae"]),
                     "--out", str(run), "--init", str(tmp_path / "wan.safetensors"),
                     "--image-encoder", str(tmp_path / "clip"), "--frames", "9", "--steps", "1",
                     "--lr", "1e-12", "--batch-size", "1", "--val-every", "0",
                     "--num-workers", "0", "--progress", "false"]) == 0
    printed = capsys.readouterr().out
    assert f"initialised from {tmp_path / 'wan.safetensors'}" in printed
    assert "dropped" in printed and "blocks.*.action_model" in printed
    assert "from the weights above" in printed and "from scratch" not in printed
    step = checkpoint.latest(run)
    assert checkpoint.read_trainer(step)["image_encoder"]["kind"] == "clip"
    ours = checkpoint.load_weights(step, ema=False)  # one step at lr 1e-12: still the start
    assert torch.allclose(ours["blocks.1.cross_attn.k.weight"],
                          state["blocks.1.attn2.add_k_proj.weight"], atol=1e-9)
    assert torch.allclose(ours["img_emb.proj.1.weight"],
                          state["condition_embedder.image_embedder.ff.net.0.proj.weight"],
                          atol=1e-9)
