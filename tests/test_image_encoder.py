"""Image condition: a local CLIP vision tower's penultimate tokens, or the stand-in."""

from __future__ import annotations

import pytest
import torch

from training.config import get_preset
from training.image_encoder import ClipImageEncoder, make_image_encoder


@pytest.fixture
def clip_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPVisionConfig(
        hidden_size=192, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
        image_size=32, patch_size=8)  # 17 tokens of 192: the tiny preset's image shape
    torch.manual_seed(0)
    transformers.CLIPVisionModel(config).save_pretrained(tmp_path / "clip")
    return tmp_path / "clip"


def test_clip_tokens_are_the_penultimate_block_output(clip_folder):
    import transformers

    enc = make_image_encoder(get_preset("tiny"), clip_folder)
    first = torch.rand(2, 3, 36, 64) * 2 - 1
    tokens = enc(first)
    assert tokens.shape == (2, 17, 192) and enc.identity["kind"] == "clip"
    reference = transformers.CLIPVisionModel.from_pretrained(clip_folder).eval()
    pixels = torch.nn.functional.interpolate(first, size=(32, 32), mode="bicubic")
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    with torch.no_grad():
        states = reference(pixel_values=(((pixels + 1) / 2).clamp(0, 1) - mean) / std,
                           output_hidden_states=True).hidden_states
    assert len(states) == 4  # embeddings + 3 blocks: [-2] is the output of block 2 of 3
    assert torch.allclose(tokens, states[-2], atol=1e-5)
    assert not torch.allclose(tokens, states[-1], atol=1e-3)


def test_a_clip_of_the_wrong_shape_or_a_missing_folder_is_refused(clip_folder, tmp_path):
    with pytest.raises(ValueError, match="gives 17 tokens of 192; the DiT expects 257 of 1280"):
        ClipImageEncoder(clip_folder, get_preset("mg2-universal"))
    with pytest.raises(FileNotFoundError, match="not a CLIP vision model folder"):
        ClipImageEncoder(tmp_path / "none", get_preset("tiny"))


def test_without_a_path_the_standin_is_used():
    enc = make_image_encoder(get_preset("tiny"))
    assert enc.identity == {"kind": "standin", "tokens": 17, "dim": 192}
    assert enc(torch.zeros(1, 3, 32, 64)).shape == (1, 17, 192)
