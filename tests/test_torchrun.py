"""``training fit`` under ``torchrun --nproc-per-node 2`` on the CPU (gloo): DDP and FSDP2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fit_support import REPO, shard_set, subprocess_env, write_config
from safetensors.torch import load_file

from training import checkpoint

ENTRY = str(REPO / "tests" / "fit_support.py")
STEPS = 6
BATCH = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return shard_set(tmp_path_factory)


def torchrun(data: dict, tmp_path: Path, parallel: str) -> tuple[Path, Path]:
    run, record = tmp_path / parallel, tmp_path / f"{parallel}-record"
    cfg = write_config(tmp_path / f"{parallel}.toml", out=str(run), shards=str(data["shards"]),
                       frames=9, batch_size=BATCH, steps=STEPS, lr=1e-3, warmup=1, val_every=3,
                       val_batches=1, checkpoint_every=3, shuffle=8, num_workers=1,
                       progress=False, parallel=parallel, error_buffer=8)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", ENTRY, str(cfg), str(record)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return run, record


@pytest.fixture(scope="module")
def ddp(data, tmp_path_factory) -> tuple[Path, Path]:
    return torchrun(data, tmp_path_factory.mktemp("ddp"), "ddp")


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ddp_ranks_see_disjoint_clips_and_end_with_identical_weights(ddp):
    run, record = ddp
    # Each epoch deals whole shards out to the ranks afresh (shards.reader), so a rank's clips
    # are disjoint from the other rank's clips of the same epoch.
    taken = [json.loads((record / f"keys-{r}.json").read_text()) for r in range(2)]
    assert [len(t) for t in taken] == [STEPS * BATCH, STEPS * BATCH]
    epochs = [{} for _ in taken]
    for rank, samples in enumerate(taken):
        for epoch, key in samples:
            epochs[rank].setdefault(epoch, set()).add(key)
    assert epochs[0][0] and epochs[1][0]
    for epoch in epochs[0].keys() & epochs[1].keys():
        assert not epochs[0][epoch] & epochs[1][epoch], epoch
    a, b = (load_file(str(record / f"weights-{r}.safetensors")) for r in range(2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = checkpoint.load_weights(checkpoint.latest(run))
    assert all(torch.equal(saved[k], a[k]) for k in a)
    folder = checkpoint.latest(run)
    assert {p.name for p in folder.glob("rank-*")} == {"rank-00000.safetensors",
                                                        "rank-00001.safetensors"}
    assert [r["step"] for r in metrics(run)] == list(range(STEPS + 1))  # logged once


@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_saves_full_weights(data, ddp, tmp_path):
    fsdp, record = torchrun(data, tmp_path, "fsdp")
    a, b = metrics(ddp[0]), metrics(fsdp)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        for key in ("loss", "val_loss", "grad_norm"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key)
    full_ddp = checkpoint.load_weights(checkpoint.latest(ddp[0]))
    full_fsdp = checkpoint.load_weights(checkpoint.latest(fsdp))
    assert full_fsdp.keys() == full_ddp.keys()
    for name, value in full_ddp.items():
        assert full_fsdp[name].shape == value.shape
        assert torch.allclose(full_fsdp[name], value, rtol=1e-3, atol=1e-5), name
    shards = [load_file(str(record / f"weights-{r}.safetensors")) for r in range(2)]
    name = "blocks.0.ffn.0.weight"  # sharded along dim 0 between the ranks
    assert shards[0][name].shape[0] + shards[1][name].shape[0] == full_fsdp[name].shape[0]
