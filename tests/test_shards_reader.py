"""The shard reader: round trips, determinism, node/worker splits, resume, and other readers."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from conftest import synthetic_frames

from datagen.episode import KEYS
from datagen.video import H264Writer, read_frames
from shards import SPACES, ShardError, clip_dataset, to_space
from shards.location import open_shards
from shards.reader import decode_mp4

WIDTH, HEIGHT, T = 64, 36, 5
SHARDS, PER_SHARD = 3, 4


@dataclass
class Clip:
    key: str
    frames: np.ndarray  # [T, H, W, 3] uint8 that went into the mp4
    mp4: Path  # the encoded clip, as stored in the tar
    keys: np.ndarray
    mouse: np.ndarray
    pose: np.ndarray
    meta: dict


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def make_clip(tmp: Path, index: int, rng: np.random.Generator) -> tuple[Clip, dict[str, bytes]]:
    """One contract sample (member -> bytes) and the arrays it was made from."""
    frames = synthetic_frames(T * (index + 1), WIDTH, HEIGHT)[-T:]
    path = tmp / f"clip{index}.mp4"  # not in the shard folder's *.tar glob
    with H264Writer(path, WIDTH, HEIGHT, fps=10) as writer:
        for f in frames:
            writer.write(f)
    episode, first = f"synth_0_{index // 2:05d}", (index % 2) * T
    fx = (WIDTH / 2) / np.tan(np.radians(45))
    meta = {"episode": episode, "source_frames": list(range(first, first + T)), "fps": 10,
            "width": WIDTH, "height": HEIGHT, "scene": "synth", "backend": "builtin",
            "keys": list(KEYS), "intrinsics": {"fx": fx, "fy": fx, "cx": WIDTH / 2,
                                                "cy": HEIGHT / 2}}
    clip = Clip(f"{episode}_{first:06d}", frames, path,
                rng.integers(0, 2, (T, 7)).astype(np.uint8),
                rng.uniform(-20, 20, (T, 2)).astype(np.float32),
                rng.normal(size=(T, 8)) * 1e3, meta)
    members = {"mp4": path.read_bytes(), "keys.npy": _npy(clip.keys),
               "mouse.npy": _npy(clip.mouse), "pose.npy": _npy(clip.pose),
               "json": json.dumps(meta).encode()}
    return clip, members


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    """A deterministic WebDataset tar: members ``<key>.<ext>`` sorted, fixed mtime and owner."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext in sorted(members):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(members[ext]), 0, 0o444
                tar.addfile(info, io.BytesIO(members[ext]))


@pytest.fixture(scope="session")
def shard_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Clip]]:
    """``SHARDS`` train tars of ``PER_SHARD`` clips each, plus one val tar."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    clips: dict[str, Clip] = {}
    for s in range(SHARDS + 1):
        samples = []
        for i in range(PER_SHARD if s < SHARDS else 1):
            clip, members = make_clip(root, s * PER_SHARD + i, rng)
            clips[clip.key] = clip
            samples.append((clip.key, members))
        split, n = ("train", s) if s < SHARDS else ("val", 0)
        write_tar(root / f"{split}-{n:06d}.tar", samples)
    return root, clips


@pytest.fixture
def single_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def keys_of(dataset) -> list[str]:
    return [s["__key__"] for s in dataset]


def test_open_shards_lists_split_in_order_and_explains_missing(shard_set, tmp_path):
    root, _ = shard_set
    assert [Path(u).name for u in open_shards(root)] == [
        f"train-{i:06d}.tar" for i in range(SHARDS)]
    assert [Path(u).name for u in open_shards(root, "val")] == ["val-000000.tar"]
    with pytest.raises(FileNotFoundError, match="splits there: \\['train', 'val'\\]"):
        open_shards(root, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_shards(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be"):
        open_shards(root, "../train")


def test_round_trip_equals_source_arrays(shard_set, single_rank):
    root, clips = shard_set
    seen = list(clip_dataset(open_shards(root)))
    assert len(seen) == SHARDS * PER_SHARD
    for sample in seen:
        clip = clips[sample["__key__"]]
        assert sample["video"].dtype == torch.uint8
        assert tuple(sample["video"].shape) == (T, HEIGHT, WIDTH, 3)
        video = sample["video"].numpy()
        assert np.array_equal(video, np.stack(list(read_frames(clip.mp4))))
        error = np.abs(video.astype(int) - clip.frames).mean(axis=(1, 2, 3))
        assert error.max() < 5.0, error  # H.264 CRF 18, chroma subsampled at 64x36
        assert np.array_equal(sample["keys"].numpy(), clip.keys.astype(np.float32))
        assert np.array_equal(sample["mouse"].numpy(), clip.mouse)
        assert sample["pose"].dtype == torch.float64
        assert np.array_equal(sample["pose"].numpy(), clip.pose)  # float64-exact
        assert {k: v for k, v in sample["meta"].items() if k != "shard"} == clip.meta
        assert sample["meta"]["shard"].endswith(".tar")


def test_action_space_applied_in_reader(shard_set, single_rank):
    root, clips = shard_set
    for sample in clip_dataset(open_shards(root), space="mg2_universal"):
        clip = clips[sample["__key__"]]
        keyboard, mouse = to_space(clip.keys, clip.mouse, SPACES["mg2_universal"])
        assert sample["keys"].shape == (T, 4)
        assert np.array_equal(sample["keys"].numpy(), keyboard)
        assert np.array_equal(sample["mouse"].numpy(), mouse)


def test_a_space_without_mouse_batches_with_the_default_collate(shard_set, single_rank):
    from shards.action_space import ActionSpace

    root, _ = shard_set
    space = ActionSpace("driving_keys", ("w", "s"), mouse=False)
    loader = torch.utils.data.DataLoader(clip_dataset(open_shards(root), space=space),
                                         batch_size=2)
    batch = next(iter(loader))
    assert "mouse" not in batch and batch["keys"].shape == (2, T, 2)


def test_float_video_in_unit_range(shard_set, single_rank):
    root, clips = shard_set
    sample = next(iter(clip_dataset(open_shards(root), float_video=True)))
    video = sample["video"]
    assert video.dtype == torch.float32
    assert video.min() >= -1.0 and video.max() <= 1.0
    assert video.min() < -0.5 and video.max() > 0.5  # the gradients span the range
    uint8 = next(iter(clip_dataset(open_shards(root))))["video"]
    assert torch.allclose(video, uint8.float() / 127.5 - 1.0)


def test_undecoded_video_is_the_mp4_bytes(shard_set, single_rank):
    root, _ = shard_set
    sample = next(iter(clip_dataset(open_shards(root), decode_video=False)))
    assert isinstance(sample["video"], bytes) and sample["video"][4:8] == b"ftyp"


def test_same_seed_same_order_other_seed_differs(shard_set, single_rank):
    root, _ = shard_set
    urls = open_shards(root)
    dataset = clip_dataset(urls, seed=1, shuffle=8, decode_video=False)
    first = keys_of(dataset)
    assert keys_of(dataset) == first  # a second pass over the same object
    assert keys_of(clip_dataset(urls, seed=1, shuffle=8, decode_video=False)) == first
    assert sorted(first) == sorted(keys_of(clip_dataset(urls, decode_video=False)))
    assert keys_of(clip_dataset(urls, seed=2, shuffle=8, decode_video=False)) != first
    assert keys_of(clip_dataset(urls, seed=1, shuffle=8, epoch=1, decode_video=False)) != first


def test_dataloader_workers_yield_each_sample_once_in_stream_order(shard_set, single_rank):
    root, _ = shard_set
    dataset = clip_dataset(open_shards(root), seed=3, shuffle=6)
    stream = keys_of(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    loaded = [s["__key__"] for s in loader]
    assert loaded == stream  # every sample once, and the order does not depend on workers
    assert len(set(loaded)) == SHARDS * PER_SHARD


def test_split_by_node_partitions_samples(shard_set, monkeypatch):
    root, clips = shard_set
    train = sorted(k for k in clips if clips[k].meta["episode"] != "synth_0_00006")  # val clip
    monkeypatch.setenv("WORLD_SIZE", "2")
    parts = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        parts.append(keys_of(clip_dataset(open_shards(root), shuffle=4, decode_video=False)))
    assert parts[0] and parts[1]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == train


def test_more_ranks_than_shards_is_a_clear_error(shard_set, monkeypatch):
    root, _ = shard_set
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="3 shards cannot feed 8 ranks"):
        keys_of(clip_dataset(open_shards(root), decode_video=False))


def test_resume_from_start_gives_tail_of_stream(shard_set, single_rank):
    root, _ = shard_set
    urls = open_shards(root)
    stream = keys_of(clip_dataset(urls, seed=5, shuffle=8, decode_video=False))
    for start in (0, 1, 7, len(stream)):
        tail = clip_dataset(urls, seed=5, shuffle=8, start=start, decode_video=False)
        assert keys_of(tail) == stream[start:]
    resumed = clip_dataset(urls, seed=5, shuffle=8, start=5)
    loader = torch.utils.data.DataLoader(resumed, batch_size=None, num_workers=2)
    assert [s["__key__"] for s in loader] == stream[5:]


def test_endless_stream_runs_epoch_after_epoch_in_order_for_any_workers(shard_set, single_rank):
    root, _ = shard_set
    urls = open_shards(root)
    epochs = [keys_of(clip_dataset(urls, seed=4, shuffle=8, epoch=e, decode_video=False))
              for e in (2, 3, 4)]
    assert epochs[0] != epochs[1]  # each epoch has its own order
    length = len(epochs[0])
    expected = [(key, (2 + e, i)) for e, keys in enumerate(epochs) for i, key in
                enumerate(keys)][5:]  # resumed at (epoch 2, start 5)
    for workers in (0, 2):  # 7 samples left of epoch 2: the workers' turns run across its end
        endless = clip_dataset(urls, seed=4, shuffle=8, epoch=2, start=5, endless=True)
        loader = torch.utils.data.DataLoader(endless, batch_size=None, num_workers=workers)
        got = [(s["__key__"], tuple(s["__position__"])) for s in islice(loader, 2 * length)]
        assert got == expected[:2 * length]
    # the position after the last sample of an epoch resumes at the next one
    after = clip_dataset(urls, seed=4, shuffle=8, epoch=2, start=length, endless=True)
    assert next(iter(after))["__position__"] == (3, 0)


def test_an_endless_stream_over_no_samples_is_an_error(tmp_path, single_rank):
    write_tar(tmp_path / "train-000000.tar", [])
    with pytest.raises(ShardError, match="hold no clips"):
        next(iter(clip_dataset(open_shards(tmp_path), endless=True)))


def test_an_endless_stream_whose_samples_all_fail_is_an_error_not_a_hang(tmp_path, single_rank):
    rng = np.random.default_rng(3)
    clips = [make_clip(tmp_path, i, rng)[1] for i in range(3)]
    write_tar(tmp_path / "train-000000.tar", [(f"bad_{i:06d}", dict(m, mp4=b"not a video"))
                                              for i, m in enumerate(clips)])
    stream = iter(clip_dataset(open_shards(tmp_path), endless=True,
                               handler=wds.ignore_and_continue))
    with pytest.raises(ShardError, match="no clip of epoch 1 could be decoded"):
        next(stream)
    # one good sample among them keeps it going, epoch after epoch
    write_tar(tmp_path / "train-000000.tar", [(f"bad_{i:06d}", dict(m, mp4=b"not a video"))
                                              for i, m in enumerate(clips[:2])]
              + [("good_000002", clips[2])])
    stream = clip_dataset(open_shards(tmp_path), endless=True, handler=wds.ignore_and_continue)
    assert [s["__position__"] for s in islice(stream, 4)] == [(0, 2), (1, 2), (2, 2), (3, 2)]


def test_bad_sample_names_key_and_shard(tmp_path, shard_set, single_rank):
    root, _ = shard_set
    rng = np.random.default_rng(1)
    _, members = make_clip(tmp_path, 0, rng)
    broken = dict(members, mp4=b"not a video")
    write_tar(tmp_path / "train-000000.tar", [("bad_000000", broken)])
    with pytest.raises(ShardError, match="'bad_000000' of .*train-000000.tar: cannot decode"):
        keys_of(clip_dataset(open_shards(tmp_path)))
    del members["pose.npy"]
    write_tar(tmp_path / "train-000000.tar", [("bad_000000", members)])
    with pytest.raises(ShardError, match=r"missing members \['pose.npy'\]"):
        keys_of(clip_dataset(open_shards(tmp_path)))
    assert keys_of(clip_dataset(open_shards(tmp_path), handler=wds.ignore_and_continue)) == []


def test_reads_shards_of_the_curation_shard_writer(tmp_path, single_rank):
    shardwriter = pytest.importorskip("curation.shardwriter")
    from curation.config import FilterConfig

    rng = np.random.default_rng(2)
    made = [make_clip(tmp_path, i, rng) for i in range(4)]  # 2 episodes x 2 clips
    cfg = FilterConfig(clip_frames=T, width=WIDTH, height=HEIGHT, val_fraction=0.0, maxcount=3)
    with shardwriter.ShardSet(tmp_path / "out", cfg) as shard_set:
        for e in range(2):
            episode = made[2 * e][0].meta["episode"]
            shard_set.add_episode(episode, [dict(m, __key__=c.key) for c, m in made[2 * e:][:2]],
                                  [], {"scene": "synth", "backend": "builtin"})
    urls = open_shards(tmp_path / "out")
    assert len(urls) == 2  # maxcount 3
    clips = {c.key: c for c, _ in made}
    seen = list(clip_dataset(urls))
    assert sorted(s["__key__"] for s in seen) == sorted(clips)
    for sample in seen:
        clip = clips[sample["__key__"]]
        assert np.array_equal(sample["video"].numpy(), np.stack(list(read_frames(clip.mp4))))
        assert np.array_equal(sample["pose"].numpy(), clip.pose)


def test_bad_arguments_are_refused(shard_set):
    root, _ = shard_set
    with pytest.raises(ValueError, match="unknown action space 'mg3'"):
        clip_dataset(open_shards(root), space="mg3")
    with pytest.raises(ValueError, match="start must be >= 0"):
        clip_dataset(open_shards(root), start=-1)
    with pytest.raises(ValueError, match="no shard urls"):
        clip_dataset([])
    with pytest.raises(ValueError, match="is a folder: pass its tars, e.g. open_shards"):
        clip_dataset(str(root))


def test_plain_webdataset_reads_the_shards(shard_set):
    root, clips = shard_set
    dataset = wds.WebDataset(open_shards(root), shardshuffle=False).decode()
    samples = list(dataset)
    assert len(samples) == SHARDS * PER_SHARD
    for s in samples:
        assert set(s) >= {"__key__", "mp4", "keys.npy", "mouse.npy", "pose.npy", "json"}
        assert np.array_equal(s["pose.npy"], clips[s["__key__"]].pose)
        assert s["json"]["episode"] == clips[s["__key__"]].meta["episode"]


def test_hugging_face_datasets_opens_the_shards(shard_set, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    root, clips = shard_set
    ds = datasets.load_dataset("webdataset", data_files={"train": open_shards(root)},
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == SHARDS * PER_SHARD
    assert {"__key__", "mp4", "keys.npy", "mouse.npy", "pose.npy", "json"} <= set(ds.column_names)
    # datasets decodes video with torchcodec (not installed): take the mp4 bytes and use PyAV
    ds = ds.cast_column("mp4", datasets.Video(decode=False))
    row = ds[0]
    clip = clips[row["__key__"]]
    assert np.array_equal(decode_mp4(row["mp4"]["bytes"]), np.stack(list(read_frames(clip.mp4))))
    assert np.array_equal(np.asarray(row["keys.npy"]), clip.keys)
    assert np.array_equal(np.asarray(row["pose.npy"]), clip.pose)
    assert row["json"]["episode"] == clip.meta["episode"]
