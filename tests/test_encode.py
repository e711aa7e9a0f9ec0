"""`training encode` on real shards: latents the reader returns, byte-identical repeats."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import record_builtin

from curation.cli import main as curation
from shards.action_space import get_space
from shards.location import open_shards
from shards.reader import ShardError, clip_dataset, decode_mp4, decode_sample
from training.conditioning import condition_video
from training.data import prepare_sample
from training.encode import EncodeConfig, encode_png, encode_shards
from training.vae import VaeError, WanVAE, build_vae


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """64x32 shards of 9-frame clips in both splits (a city and a park episode)."""
    root = tmp_path_factory.mktemp("encode_data")
    record_builtin(root / "raw", 45, "city")
    record_builtin(root / "raw", 45, "park")
    out = root / "shards"
    assert curation(["filter", str(root / "raw"), "--out", str(out), "--size", "64x32",
                     "--clip-frames", "9", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "tiny"
    build_vae("tiny").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoded(shards, vae_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encoded") / "latent_shards"
    return encode_shards(EncodeConfig(shards=shards, vae=vae_folder, out=out, frames=5,
                                      progress=False))


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def members(tar: Path) -> dict[str, bytes]:
    with tarfile.open(tar) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def test_encoded_latents_decode_via_the_reader_and_match_the_vae(shards, encoded, vae_folder):
    vae = WanVAE.load(vae_folder)
    seen = 0
    for split in ("train", "val"):
        plain = {s["__key__"]: s for s in clip_dataset(open_shards(shards, split),
                                                       float_video=True)}
        for sample in clip_dataset(open_shards(encoded, split), float_video=True):
            latents = sample["latents"]
            assert latents.dtype == torch.float16 and latents.shape == (2, 16, 2, 4, 8)
            assert sample["meta"]["latents"] == {"vae": vae.identity, "frames": 5}
            video = sample["video"][:5].permute(3, 0, 1, 2)[None]  # [1, 3, 5, 32, 64]
            assert torch.equal(sample["video"], plain[sample["__key__"]]["video"])
            expected = torch.cat([vae.encode(video),
                                  vae.encode(condition_video(video[:, :, 0], 5))])
            assert torch.allclose(latents.float(), expected, atol=2e-3, rtol=1e-3)
            seen += 1
    assert seen == sum(len(list(clip_dataset(open_shards(shards, s)))) for s in ("train", "val"))
    dataset = json.loads((encoded / "dataset.json").read_text())
    assert dataset["latents"] == {"vae": vae.identity, "frames": 5}
    for name in ("manifest.parquet", "rejects.parquet"):
        assert (encoded / name).read_bytes() == (shards / name).read_bytes()


def test_encoding_keeps_every_other_member_byte_for_byte(shards, encoded):
    for tar in sorted(shards.glob("*.tar")):
        before, after = members(tar), members(encoded / tar.name)
        keys = [n.split(".")[0] for n in before if n.endswith(".mp4")]
        assert sorted(after) == sorted([*before, *(f"{k}.latents.npy" for k in keys),
                                        *(f"{k}.first.png" for k in keys)])
        for name, data in before.items():
            if not name.endswith(".json"):
                assert after[name] == data, name
            else:
                meta = json.loads(after[name])
                assert {k: v for k, v in meta.items() if k != "latents"} == json.loads(data)


def test_encoding_again_gives_the_same_bytes_and_never_touches_the_input(
        shards, encoded, vae_folder, tmp_path):
    before = digest(shards)
    again = encode_shards(EncodeConfig(shards=shards, vae=vae_folder, out=tmp_path / "again",
                                       frames=5, progress=False))
    assert digest(again) == digest(encoded)
    assert digest(shards) == before
    assert not (tmp_path / "again.partial").exists()


def test_encode_refuses_what_it_cannot_do(shards, encoded, vae_folder, tmp_path):
    def run(**changes) -> Path:
        cfg = {"shards": shards, "vae": vae_folder, "out": tmp_path / "out", "frames": 5,
               "progress": False, **changes}
        return encode_shards(EncodeConfig(**cfg))

    with pytest.raises(FileExistsError, match="already exists"):
        run(out=encoded)
    with pytest.raises(ValueError, match="frames must be 4k\\+1"):
        run(frames=6)
    with pytest.raises(VaeError, match="9-frame clips; cannot encode 13"):
        run(frames=13)
    with pytest.raises(FileNotFoundError, match="VAE folder .*nowhere does not exist"):
        run(vae=tmp_path / "nowhere")
    with pytest.raises(VaeError, match="inside the input"):
        run(out=shards / "latents")
    odd = tmp_path / "odd"
    shutil.copytree(shards, odd)
    dataset = json.loads((odd / "dataset.json").read_text())
    (odd / "dataset.json").write_text(json.dumps({**dataset, "size": [60, 34]}))
    with pytest.raises(VaeError, match="60x34 clips; the VAE needs multiples of 8"):
        run(shards=odd)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_reader_leaves_samples_without_latents_alone_and_checks_bad_ones(shards):
    sample = next(iter(clip_dataset(open_shards(shards, "train"))))
    assert "latents" not in sample and "latents" not in sample["meta"]
    raw = {k.split(".", 1)[1]: v for k, v in
           members(Path(open_shards(shards, "train")[0])).items()
           if k.startswith(sample["__key__"] + ".")}
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 16, 2, 4, 8), dtype=np.float32))
    with pytest.raises(ShardError, match="latents.npy is float32 \\[2, 16, 2, 4, 8\\]"):
        decode_sample({**raw, "__key__": sample["__key__"], "latents.npy": buf.getvalue()},
                      get_space("worldforge"))
    raw["__key__"] = sample["__key__"]
    with pytest.raises(ShardError, match="cannot decode: not a PNG"):
        decode_sample({**raw, "first.png": b"\x89PNG broken"}, get_space("worldforge"))
    with pytest.raises(ShardError, match="first.png is \\[16, 64, 3\\], not the json's 64x32"):
        decode_sample({**raw, "first.png": encode_png(np.zeros((16, 64, 3), np.uint8))},
                      get_space("worldforge"))


def test_the_first_png_is_the_decoded_first_frame_and_trains_alike(shards, encoded):
    """first.png spares the trainer the MP4: the same pixels, so the same batches."""
    for sample in clip_dataset(open_shards(encoded, "train"), decode_video=False):
        assert torch.equal(sample["first"], torch.from_numpy(decode_mp4(sample["video"])[0]))
        with_png = prepare_sample(sample, 5)
        without = prepare_sample({k: v for k, v in sample.items() if k != "first"}, 5)
        assert np.array_equal(with_png["first"], without["first"])
