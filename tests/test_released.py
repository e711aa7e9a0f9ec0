"""``training import``: released Matrix-Game 2.0 weights become a run every command takes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fit_support import shard_set
from safetensors.torch import save_file
from torch import nn

from datagen.video import probe
from training import checkpoint
from training.cli import main as training
from training.config import get_preset
from training.dit import WorldDiT
from training.released import RELEASED_STREAMS, released_weights
from training.sample import load_run, write_inputs


class _Wrapper(nn.Module):
    """What the released inference loads a checkpoint into: the DiT as ``model``."""

    def __init__(self, dit: WorldDiT) -> None:
        super().__init__()
        self.model = dit


@pytest.fixture
def released(tmp_path) -> tuple[dict[str, torch.Tensor], Path]:
    """A tiny DiT with every weight non-zero (the action projections too), saved as the
    released files are: names prefixed ``model.``, bf16, in two shards."""
    torch.manual_seed(3)
    dit = WorldDiT(get_preset("tiny"))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {k: v.to(torch.bfloat16) for k, v in _Wrapper(dit).state_dict().items()}
    names = sorted(state)
    folder = tmp_path / "released"
    folder.mkdir()
    save_file({k: state[k] for k in names[:40]}, folder / "model-00001-of-00002.safetensors")
    save_file({k: state[k] for k in names[40:]}, folder / "model-00002-of-00002.safetensors")
    return {k.removeprefix("model."): v.float() for k, v in state.items()}, folder


def _args(folder, vae, out, *more: str) -> list[str]:
    return ["import", "--preset", "tiny", "--weights", str(folder), "--vae", str(vae),
            "--out", str(out), "--size", "64x32", "--frames", "9", *more]


def test_released_names_load_strictly_and_others_are_refused_by_name(released, tmp_path):
    state, folder = released
    weights = released_weights(folder, "tiny")
    assert list(weights) == list(WorldDiT(get_preset("tiny")).state_dict())
    assert all(torch.equal(weights[k], state[k]) for k in state)
    assert all(v.dtype == torch.float32 for v in weights.values())
    broken = dict(weights)
    del broken["head.head.bias"]
    broken["text_embedding.0.weight"] = torch.zeros(2, 2)
    broken["head.head.weight"] = torch.zeros(3, 3)
    save_file(broken, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a tiny checkpoint") as err:
        released_weights(tmp_path / "other.safetensors", "tiny")
    said = str(err.value)
    assert "1 missing" in said and "1 unexpected: text_embedding.0.weight" in said
    assert "head.head.weight [3, 3]" in said
    with pytest.raises(ValueError, match="not a mg2-universal checkpoint"):
        released_weights(folder, "mg2-universal")


def test_the_released_streaming_settings_are_the_reference_s():
    assert set(RELEASED_STREAMS) == {"mg2-universal", "mg2-gta-drive", "mg2-templerun"}
    for preset, stream in RELEASED_STREAMS.items():
        assert (stream.block, stream.sink, stream.shift) == (3, 0, 5.0)
        assert stream.local == (4 if preset == "mg2-gta-drive" else 6)
        steps = [1000.0, 750.0, 500.0, 250.0] if preset == "mg2-templerun" else [1000.0, 666.0,
                                                                                  333.0]
        assert list(stream.timesteps) == steps
    assert np.allclose(RELEASED_STREAMS["mg2-universal"].sigmas(), [1.0, 0.90884, 0.71398],
                       atol=1e-5)


@pytest.mark.slow
def test_an_imported_streaming_model_plays_with_the_released_weights(released, tmp_path,
                                                                      tmp_path_factory, capsys):
    state, folder = released
    data = shard_set(tmp_path_factory)
    run = tmp_path / "run"
    assert training(_args(folder, data["vae"], run, "--causal", "--fps", "15", "--local",
                          "4")) == 0
    assert "streaming: blocks of 3 latents, a window of 4" in capsys.readouterr().out
    loaded = load_run(run)
    assert all(torch.equal(loaded.model.state_dict()[k], state[k]) for k in state)
    assert loaded.stream["local"] == 4 and loaded.fps == 15.0 and loaded.size == (64, 32)
    trainer = checkpoint.read_trainer(checkpoint.latest(run))
    assert trainer["imported"]["weights"] == str(folder.resolve())
    assert len(trainer["imported"]["sha256"]) == 64
    image = tmp_path / "first.png"
    cv2.imwrite(str(image), np.full((32, 64, 3), 90, np.uint8))
    actions = tmp_path / "actions.csv"
    keys = np.zeros((21, 7), np.uint8)
    keys[:, 0] = 1  # W held
    write_inputs(actions, keys, np.tile([[0.0, 0.5]], (21, 1)), 15.0)
    out = tmp_path / "play.mp4"
    assert training(["play", "--ckpt", str(run), "--image", str(image), "--actions",
                     str(actions), "--out", str(out), "--no-progress"]) == 0
    assert probe(out).frames == 21
    # a bidirectional import (the foundation model's kind) samples, and refuses stream flags
    bidirectional = tmp_path / "foundation"
    bidirectional.mkdir()  # an empty folder may be the run folder
    assert training(_args(folder, data["vae"], bidirectional)) == 0
    assert not (tmp_path / "foundation.partial").exists()
    assert checkpoint.read_trainer(checkpoint.latest(bidirectional))["stream"] == {}
    assert "bidirectional; sample it" in capsys.readouterr().out
    assert training(_args(folder, data["vae"], tmp_path / "x", "--block", "2")) == 2
    assert "pass --causal" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_bad_import_writes_nothing(released, tmp_path, capsys):
    _, folder = released
    vae = tmp_path / "no-vae"
    out = tmp_path / "run"
    assert training(_args(folder, vae, out)) == 2
    assert "VAE folder" in capsys.readouterr().err and not out.exists()
    assert training(_args(folder, vae, out, "--frames", "10")) == 2
    assert "4k+1" in capsys.readouterr().err
    (tmp_path / "run.partial").write_text("not ours")
    assert training(_args(folder, vae, out)) == 2
    assert "is in the way" in capsys.readouterr().err
    assert (tmp_path / "run.partial").read_text() == "not ours"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert training(_args(folder, vae, out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert training(_args(folder, vae, tmp_path / "r", "--size", "60x32")) == 2
    assert "multiples of 16" in capsys.readouterr().err


def test_an_import_that_fails_while_writing_leaves_nothing(released, tmp_path, tmp_path_factory,
                                                           monkeypatch):
    _, folder = released
    data = shard_set(tmp_path_factory)

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint, "save_weights", full_disk)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        training(_args(folder, data["vae"], out))
    assert not out.exists() and not (tmp_path / "run.partial").exists()
