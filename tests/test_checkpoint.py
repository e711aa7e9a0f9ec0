"""Trainer checkpoints: safetensors round trips of model, optimizer, EMA and RNG; the folder."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from training import checkpoint
from training.config import get_preset
from training.distributed import Dist
from training.dit import WorldDiT
from training.ema import EMA
from training.fit import make_optimizer

SOLO = Dist(rank=0, world=1, local_rank=0, device=torch.device("cpu"))


def inputs(seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    cfg = get_preset("tiny")
    b, f, h, w = 2, 3, 4, 4
    return (torch.randn(b, 16, f, h, w, generator=g), torch.rand(b, f, generator=g) * 1000,
            torch.randn(b, 20, f, h, w, generator=g),
            torch.randn(b, cfg.image_tokens, cfg.image_dim, generator=g),
            (torch.rand(b, 4 * (f - 1) + 1, 4, generator=g) > 0.5).float(),
            torch.randn(b, 4 * (f - 1) + 1, 2, generator=g))


def trainer_state(seed: int = 0):
    torch.manual_seed(seed)
    model = WorldDiT(get_preset("tiny"))
    optimizer = make_optimizer(model, 1e-3, (0.9, 0.999), 0.01)
    return model, optimizer, EMA(model, 0.9)


def train_step(model, optimizer, ema, seed: int) -> None:
    out = model(*inputs(seed))
    out.square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    ema.update(model)


def save(run, step, model, optimizer, ema, **kwargs):
    return checkpoint.save(run, step, SOLO, model=model, optimizer=optimizer, ema=ema,
                           trainer={"note": "test"}, keep=kwargs.pop("keep", 0),
                           rank_tensors={"noise_generator": torch.Generator().manual_seed(
                               step).get_state()},
                           rank_meta={"position": {"epoch": 1, "start": 7 * step}})


def test_round_trip_restores_model_optimizer_ema_rng_and_rank_state(tmp_path):
    model, optimizer, ema = trainer_state(0)
    for i in range(3):
        train_step(model, optimizer, ema, i)
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    folder = save(tmp_path, 3, model, optimizer, ema)
    expected_rng = (torch.rand(4), np.random.rand(3), random.random())

    other, other_opt, other_ema = trainer_state(1)  # different weights, empty optimizer state
    trainer, own, meta = checkpoint.load(folder, SOLO, model=other, optimizer=other_opt,
                                         ema=other_ema)
    assert trainer["step"] == 3 and trainer["note"] == "test" and trainer["world_size"] == 1
    assert meta["position"] == {"epoch": 1, "start": 21} and meta["rank"] == 0
    assert torch.equal(own["noise_generator"], torch.Generator().manual_seed(3).get_state())
    got_rng = (torch.rand(4), np.random.rand(3), random.random())
    assert torch.equal(got_rng[0], expected_rng[0])
    assert np.array_equal(got_rng[1], expected_rng[1]) and got_rng[2] == expected_rng[2]

    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    for name in ema.shadow:
        assert torch.equal(ema.shadow[name], other_ema.shadow[name]), name
    a_state, b_state = optimizer.state_dict(), other_opt.state_dict()
    assert a_state["param_groups"] == b_state["param_groups"]
    for index, entries in a_state["state"].items():
        for key, value in entries.items():
            assert torch.equal(value, b_state["state"][index][key]), (index, key)
    # and training goes on identically
    train_step(model, optimizer, ema, 10)
    train_step(other, other_opt, other_ema, 10)
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name


def test_folder_holds_safetensors_and_json_only_with_last_pointing_at_the_newest(tmp_path):
    model, optimizer, ema = trainer_state(0)
    train_step(model, optimizer, ema, 0)
    assert checkpoint.latest(tmp_path) is None
    save(tmp_path, 1, model, optimizer, ema)
    stale = tmp_path / "checkpoints" / "step-000002.partial"  # a save killed half way
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"truncated")
    folder = save(tmp_path, 2, model, optimizer, ema)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["last", "step-000001", "step-000002"]
    assert (root / "last").is_symlink() and checkpoint.latest(tmp_path) == folder.resolve()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["ema.safetensors", "model.safetensors", "optimizer.json",
                     "optimizer.safetensors", "rank-00000.safetensors", "trainer.json"]
    for name in names:
        if name.endswith(".json"):
            json.loads((folder / name).read_text())
        else:
            with safe_open(str(folder / name), framework="pt") as f:
                assert list(f.keys())
    with safe_open(str(folder / "optimizer.safetensors"), framework="pt") as f:
        assert "blocks.0.self_attn.q.weight/exp_avg" in list(f.keys())
    weights = checkpoint.load_weights(folder)
    assert weights.keys() == model.state_dict().keys()
    save(tmp_path, 3, model, optimizer, ema, keep=2)
    assert sorted(p.name for p in root.iterdir()) == ["last", "step-000002", "step-000003"]


def test_a_companion_model_round_trips_beside_the_main_one(tmp_path):
    model, optimizer, ema = trainer_state(0)
    critic, critic_opt, _ = trainer_state(2)
    for i in range(2):
        train_step(model, optimizer, ema, i)
        train_step(critic, critic_opt, EMA(critic, 0.5), 10 + i)
    folder = checkpoint.save(tmp_path, 2, SOLO, model=model, optimizer=optimizer, ema=ema,
                             trainer={}, rank_tensors={}, rank_meta={},
                             companions={"critic": (critic, critic_opt)})
    assert {"critic.safetensors", "critic-optimizer.safetensors",
            "critic-optimizer.json"} <= {p.name for p in folder.iterdir()}
    other, other_opt, other_ema = trainer_state(1)
    other_critic, other_critic_opt, _ = trainer_state(3)
    checkpoint.load(folder, SOLO, model=other, optimizer=other_opt, ema=other_ema,
                    companions={"critic": (other_critic, other_critic_opt)})
    for a, b in ((model, other), (critic, other_critic)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values(), strict=True))
    train_step(critic, critic_opt, EMA(critic, 0.5), 20)  # its optimizer state came back too
    train_step(other_critic, other_critic_opt, EMA(other_critic, 0.5), 20)
    assert all(torch.equal(x, y) for x, y in zip(critic.state_dict().values(),
                                                 other_critic.state_dict().values(),
                                                 strict=True))
    with pytest.raises(checkpoint.CheckpointError, match="critic.safetensors is missing"):
        checkpoint.load(save(tmp_path / "plain", 1, model, optimizer, ema), SOLO, model=other,
                        optimizer=other_opt, ema=other_ema,
                        companions={"critic": (other_critic, other_critic_opt)})


def test_optimizer_state_flattens_to_named_tensors_and_back():
    model, optimizer, ema = trainer_state(0)
    train_step(model, optimizer, ema, 0)
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = get_optimizer_state_dict(model, optimizer)
    tensors, rest = checkpoint.flatten_optimizer(state)
    json.dumps(rest)
    back = checkpoint.unflatten_optimizer(tensors, json.loads(json.dumps(rest)))
    assert back["param_groups"] == state["param_groups"]
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["state"].keys() == state["state"].keys()
    for name, entries in state["state"].items():
        for key, value in entries.items():
            assert torch.equal(back["state"][name][key], value)


def test_load_refuses_another_world_size_and_a_broken_last_link(tmp_path):
    model, optimizer, ema = trainer_state(0)
    train_step(model, optimizer, ema, 0)
    folder = save(tmp_path, 1, model, optimizer, ema)
    two = Dist(rank=0, world=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(checkpoint.CheckpointError, match="written by 1 rank"):
        checkpoint.load(folder, two, model=model, optimizer=optimizer, ema=ema)
    (folder / "trainer.json").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="not a complete checkpoint"):
        checkpoint.latest(tmp_path)
