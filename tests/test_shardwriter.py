"""The shard set writer: deterministic tars, manifest, rejects, dataset.json, resume, growth.

Samples are synthetic but built like the contract's (random bytes stand in for the MP4; the npy
and json members are real), so every expected value is known by construction.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import signal
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from curation import shardwriter
from curation.config import FilterConfig
from curation.segments import Reject
from curation.shardwriter import (
    ShardSet,
    ShardSetError,
    split_of,
    tar_file_bytes,
    tar_member_bytes,
)
from datagen.action_coverage import count_actions, coverage, merge_counts
from datagen.episode import KEYS
from shards.reader import coverage_note


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def make_sample(episode: str, first: int, t: int = 4, mp4_bytes: int = 700,
                speed: float = 2.0, fps: float = 10.0) -> dict:
    """A contract-shaped sample: the camera moves along +x at ``speed`` m/s, key w held on even
    frames, mouse_dx = 1 degree per frame."""
    rng = np.random.default_rng(zlib.crc32(f"{episode}_{first}".encode()))
    keys = np.zeros((t, len(KEYS)), np.uint8)
    keys[::2, 0] = 1
    mouse = np.zeros((t, 2), np.float32)
    mouse[:, 0] = 1.0
    pose = np.zeros((t, 8))
    pose[:, 0] = np.arange(t) * speed / fps
    pose[:, 3] = 1.0
    pose[:, 7] = 90.0
    meta = {"episode": episode, "source_frames": list(range(first, first + t)), "fps": fps,
            "width": 64, "height": 36, "scene": "synth", "backend": "builtin",
            "keys": list(KEYS), "intrinsics": {"fx": 32.0, "fy": 32.0, "cx": 32.0, "cy": 18.0}}
    return {"__key__": f"{episode}_{first:06d}", "mp4": rng.bytes(mp4_bytes),
            "keys.npy": _npy(keys), "mouse.npy": _npy(mouse), "pose.npy": _npy(pose),
            "json": json.dumps(meta, sort_keys=True).encode()}


def make_inputs(n: int, start: int = 0) -> list[tuple[str, list[dict], list[Reject], dict]]:
    """``n`` episodes with 0..4 clips each; every third episode has a rejected segment."""
    out = []
    for i in range(start, start + n):
        ep = f"ep_{i:03d}"
        samples = [make_sample(ep, 4 * c) for c in range(i % 5)]
        rejects = ([Reject(f"/in/{ep}", ep, 40, 7, "too short: 7 frames (clip is 4)")]
                   if i % 3 == 0 else [])
        out.append((ep, samples, rejects, {"scene": "synth", "backend": "builtin",
                                           "frames": 60}))
    return out


CFG = FilterConfig(maxcount=3, val_fraction=0.3)


def write_all(out: Path, inputs, cfg: FilterConfig = CFG) -> dict:
    shards = ShardSet(out, cfg, source="/in")
    for ep, samples, rejects, info in inputs:
        if not shards.is_done(ep):
            shards.add_episode(ep, samples, rejects, info)
    return shards.close()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def tar_samples(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return list(dict.fromkeys(m.name.split(".")[0] for m in tar.getmembers()))


def test_same_inputs_give_byte_identical_folders(tmp_path):
    inputs = make_inputs(12)
    write_all(tmp_path / "a", inputs)
    write_all(tmp_path / "b", inputs)
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {"dataset.json", "manifest.parquet", "rejects.parquet", "train-000000.tar",
            "val-000000.tar"} <= a.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_tar_members_are_sorted_regular_files_with_fixed_metadata(tmp_path):
    write_all(tmp_path, [("ep_1", [make_sample("ep_1", 0), make_sample("ep_1", 4)], [], {})],
              FilterConfig(val_fraction=0.0))
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        members = tar.getmembers()
        assert tar.pax_headers == {}
    assert [m.name for m in members] == [
        f"ep_1_{f:06d}.{ext}" for f in (0, 4)
        for ext in ("json", "keys.npy", "mouse.npy", "mp4", "pose.npy")]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        assert m.isreg() and not m.pax_headers


def test_webdataset_reads_back_every_sample(tmp_path):
    inputs = make_inputs(9)
    write_all(tmp_path, inputs)
    urls = sorted(str(p) for p in tmp_path.glob("*.tar"))
    got = {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False)}
    want = {s["__key__"]: s for _, samples, _, _ in inputs for s in samples}
    assert got.keys() == want.keys()
    for key, sample in want.items():
        for member in ("mp4", "keys.npy", "mouse.npy", "pose.npy", "json"):
            assert got[key][member] == sample[member]


def test_maxcount_starts_a_new_shard_and_splits_follow_the_hash(tmp_path):
    inputs = make_inputs(15)
    summary = write_all(tmp_path, inputs)
    for split in ("train", "val"):
        tars = sorted(tmp_path.glob(f"{split}-*.tar"))
        assert [p.name for p in tars] == [f"{split}-{i:06d}.tar" for i in range(len(tars))]
        keys = [k for p in tars for k in tar_samples(p)]
        counts = [len(tar_samples(p)) for p in tars]
        assert all(c == 3 for c in counts[:-1]) and 1 <= counts[-1] <= 3
        want = [s["__key__"] for ep, samples, _, _ in inputs if split_of(ep, 0.3) == split
                for s in samples]
        assert keys == want  # samples in the order added
        assert summary["splits"][split]["clips"] == len(want)
        assert summary["splits"][split]["shards"] == len(tars)


def test_maxsize_bounds_every_shard_and_a_big_sample_gets_its_own(tmp_path):
    one = tar_member_bytes(make_sample("e", 0))
    cfg = FilterConfig(val_fraction=0.0, maxsize=tar_file_bytes(3 * one))  # three fit exactly
    samples = [make_sample("ep_a", 4 * i) for i in range(4)]
    samples.insert(2, make_sample("ep_a", 100, mp4_bytes=3 * cfg.maxsize))
    write_all(tmp_path, [("ep_a", samples, [], {})], cfg)
    tars = sorted(tmp_path.glob("train-*.tar"))
    assert [tar_samples(p) for p in tars] == [
        ["ep_a_000000", "ep_a_000004"], ["ep_a_000100"], ["ep_a_000008", "ep_a_000012"]]
    for p in tars:
        members = [s for s in samples if s["__key__"] in tar_samples(p)]
        assert p.stat().st_size == tar_file_bytes(sum(map(tar_member_bytes, members)))
        assert p.stat().st_size <= cfg.maxsize or len(members) == 1
    # exactly at the limit: three samples share a shard, a fourth starts the next
    write_all(tmp_path / "b", [("ep_b", [make_sample("ep_b", 4 * i) for i in range(4)], [], {})],
              cfg)
    assert [len(tar_samples(p)) for p in sorted((tmp_path / "b").glob("*.tar"))] == [3, 1]


def test_split_is_stable_and_near_the_fraction(tmp_path):
    ids = [f"city_7_{i:05d}" for i in range(1000)]
    splits = [split_of(i, 0.2) for i in ids]
    assert splits == [split_of(i, 0.2) for i in ids]
    assert 0.16 < splits.count("val") / 1000 < 0.24
    assert {split_of(i, 0.0) for i in ids} == {"train"}
    assert {split_of(i, 1.0) for i in ids} == {"val"}
    shards = ShardSet(tmp_path, FilterConfig(val_fraction=0.2))
    assert [shards.split_of(i) for i in ids] == splits


def test_manifest_rows_and_stats(tmp_path):
    inputs = make_inputs(8)
    write_all(tmp_path, inputs)
    rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert b"pandas" not in (tmp_path / "manifest.parquet").read_bytes()
    want = {s["__key__"]: ep for ep, samples, _, _ in inputs for s in samples}
    assert sorted(r["key"] for r in rows) == sorted(want)
    for r in rows:
        assert r["episode"] == want[r["key"]] and r["split"] == split_of(r["episode"], 0.3)
        assert r["shard"].startswith(r["split"] + "-")
        assert r["key"] in tar_samples(tmp_path / r["shard"])
        assert r["first_frame"] == int(r["key"].rsplit("_", 1)[1]) and r["frames"] == 4
        assert (r["scene"], r["backend"], r["fps"]) == ("synth", "builtin", 10.0)
        assert r["mean_speed"] == pytest.approx(2.0)
        assert r["key_w_frac"] == 0.5 and r["key_s_frac"] == 0.0
        assert (r["mouse_dx_abs_mean"], r["mouse_dy_abs_mean"]) == (1.0, 0.0)


def test_rejects_and_dataset_json(tmp_path):
    inputs = make_inputs(8)
    summary = write_all(tmp_path, inputs)
    rejects = pq.read_table(tmp_path / "rejects.parquet").to_pylist()
    assert rejects == [{"source": f"/in/ep_{i:03d}", "episode": f"ep_{i:03d}", "first_frame": 40,
                        "frames": 7, "reason": "too short: 7 frames (clip is 4)"}
                       for i in (0, 3, 6)]
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["format"] == "worldforge.shards/1"
    assert info["action_space"]["keys"] == list(KEYS)
    assert info["action_space"]["mouse"] == ["mouse_dx", "mouse_dy"]
    assert (info["clip_frames"], info["size"], info["fps"]) == (57, [640, 360], 10.0)
    assert info["config"] == CFG.to_dict() and info["rejects"] == {"too short": 3}
    assert info["counts"] == summary["splits"]
    clips = sum(i % 5 for i in range(8))
    assert sum(c["clips"] for c in info["counts"].values()) == clips
    assert sum(c["frames"] for c in info["counts"].values()) == 4 * clips
    assert sorted(info["episodes"]) == [f"ep_{i:03d}" for i in range(8)]
    assert info["episodes"]["ep_003"] == {
        "split": split_of("ep_003", 0.3), "clips": 3, "rejects": 1,
        "info": {"scene": "synth", "backend": "builtin", "frames": 60}}


def _split_counts(inputs, split: str) -> dict:
    return merge_counts([
        count_actions(np.load(io.BytesIO(x["keys.npy"])), np.load(io.BytesIO(x["mouse.npy"])))
        for ep, samples, _, _ in inputs if split_of(ep, CFG.val_fraction) == split
        for x in samples])


def test_dataset_json_carries_the_action_coverage_of_each_split(tmp_path):
    inputs = make_inputs(8)
    write_all(tmp_path, inputs)
    info = json.loads((tmp_path / "dataset.json").read_text())["action_coverage"]
    assert set(info) == {"train", "val"}
    for split in ("train", "val"):
        assert info[split]["counts"] == _split_counts(inputs, split)
        assert info[split] == json.loads(json.dumps(coverage(_split_counts(inputs, split))))
    train = info["train"]
    assert train["keys"]["w"] == 0.5 and train["directions"]["right"] == 1.0  # by construction
    assert {g["name"] for g in train["goals"] if not g["met"]} >= {"key s", "mouse up (x uniform)"}


def test_a_training_job_reads_the_coverage_as_one_line(tmp_path):
    write_all(tmp_path, make_inputs(8))
    line = coverage_note(tmp_path, "train")
    assert line.startswith("action coverage of train (") and "goals met; missed key s 0" in line
    assert "not recorded" in coverage_note(tmp_path, "test")
    assert "not recorded" in coverage_note(tmp_path / "nowhere", "train")


def test_coverage_of_an_older_shard_set_is_counted_from_its_tars(tmp_path):
    """A shard set written before dataset.json carried coverage: reopening counts its done
    clips from the tars, and growing it then gives what one run over everything gives."""
    inputs = make_inputs(10)
    write_all(tmp_path / "one", inputs)
    write_all(tmp_path / "two", inputs[:6])
    state = json.loads((tmp_path / "two" / "dataset.json").read_text())
    del state["action_coverage"]
    (tmp_path / "two" / "dataset.json").write_text(json.dumps(state))
    write_all(tmp_path / "two", inputs)
    one, two = (json.loads((tmp_path / f / "dataset.json").read_text()) for f in ("one", "two"))
    assert two["action_coverage"] == one["action_coverage"]


def test_other_settings_are_refused_by_name(tmp_path):
    write_all(tmp_path, make_inputs(2))
    with pytest.raises(ShardSetError, match=r"clip_frames=57 \(this run: 65\).*maxcount=3"):
        ShardSet(tmp_path, FilterConfig(clip_frames=65, maxcount=5, val_fraction=0.3))


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ShardSetError, match="not a shard set"):
        ShardSet(tmp_path, CFG)
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "dataset.json").write_text('{"format": "other/1"}')
    with pytest.raises(ShardSetError, match="format 'other/1'"):
        ShardSet(tmp_path, CFG)


def test_bad_samples_are_refused_before_anything_is_written(tmp_path):
    shards = ShardSet(tmp_path, FilterConfig(val_fraction=0.0))
    good = make_sample("ep_1", 0)
    no_pose = {k: v for k, v in make_sample("ep_1", 4).items() if k != "pose.npy"}
    with pytest.raises(ShardSetError, match=r"ep_1_000004.*missing members \['pose.npy'\]"):
        shards.add_episode("ep_1", [good, no_pose], [], {})
    with pytest.raises(ShardSetError, match="__key__ must be 'ep_2_<first_frame>'"):
        shards.add_episode("ep_2", [good], [], {})
    with pytest.raises(ShardSetError, match="repeated sample keys"):
        shards.add_episode("ep_1", [good, good], [], {})
    with pytest.raises(ShardSetError, match="bad episode id"):
        shards.add_episode("ep.1", [], [], {})
    shards.add_episode("ep_1", [good], [], {})
    with pytest.raises(ShardSetError, match="already added"):
        shards.add_episode("ep_1", [good], [], {})
    assert shards.close()["splits"]["train"]["clips"] == 1
    with pytest.raises(ShardSetError, match="closed"):
        shards.add_episode("ep_3", [], [], {})


def _run_and_die(out: str, inputs, kill: tuple[str, int]) -> None:
    """Child process: write ``inputs`` and SIGKILL itself at ``kill``."""
    what, when = kill
    calls = {"n": 0}

    def die_on(fn):
        def wrapped(*args, **kw):
            calls["n"] += 1
            if calls["n"] == when:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kw)
        return wrapped

    if what == "commit":  # after a shard's rename, before the state records it
        ShardSet._commit = die_on(ShardSet._commit)
    elif what == "parquet":  # after the manifest, before rejects and dataset.json
        shardwriter._write_parquet = die_on(shardwriter._write_parquet)
    shards = ShardSet(Path(out), CFG, source="/in")
    for i, (ep, samples, rejects, info) in enumerate(inputs):
        if what == "episode" and i == when:
            os.kill(os.getpid(), signal.SIGKILL)
        if not shards.is_done(ep):
            shards.add_episode(ep, samples, rejects, info)
    shards.close()
    os._exit(3)  # the kill point was never reached


@pytest.mark.parametrize("kill", [("episode", 5), ("episode", 11), ("commit", 3),
                                  ("parquet", 6), ("parquet", 2), ("episode", 0)])
def test_resume_after_sigkill_is_byte_identical(tmp_path, kill):
    inputs = make_inputs(16)
    write_all(tmp_path / "clean", inputs)
    child = mp.get_context("fork").Process(
        target=_run_and_die, args=(str(tmp_path / "run"), inputs, kill))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    write_all(tmp_path / "run", inputs)
    clean, run = folder_bytes(tmp_path / "clean"), folder_bytes(tmp_path / "run")
    assert run.keys() == clean.keys()
    assert [k for k in run if run[k] != clean[k]] == []


def test_reopening_deletes_leftovers_and_skips_done_episodes(tmp_path):
    inputs = make_inputs(6)
    write_all(tmp_path, inputs)
    (tmp_path / "train-000009.tar.tmp").write_bytes(b"half")
    (tmp_path / "val-000042.tar").write_bytes(b"renamed, never recorded")
    shards = ShardSet(tmp_path, CFG, source="/in")
    assert not (tmp_path / "train-000009.tar.tmp").exists()
    assert not (tmp_path / "val-000042.tar").exists()
    assert all(shards.is_done(ep) for ep, *_ in inputs) and not shards.is_done("ep_006")


def test_a_grown_input_adds_only_new_episodes_in_new_shards(tmp_path):
    first = write_all(tmp_path, make_inputs(7))
    before = folder_bytes(tmp_path)
    grown = write_all(tmp_path, make_inputs(12))
    after = folder_bytes(tmp_path)
    for name, data in before.items():
        if name.endswith(".tar"):
            assert after[name] == data
    new = sorted(set(after) - set(before))
    assert new and all(n.endswith(".tar") for n in new)
    for split in ("train", "val"):
        old_n = first["splits"][split]["shards"]
        assert all(int(n[-10:-4]) >= old_n for n in new if n.startswith(split))
    all_clips = sum(i % 5 for i in range(12))
    assert sum(c["clips"] for c in grown["splits"].values()) == all_clips
    assert grown["episodes_done"] == 12 and grown["rejects"] == {"too short": 4}
    rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert len(rows) == all_clips and len({r["key"] for r in rows}) == all_clips
    assert [len(tar_samples(p)) for p in sorted(tmp_path.glob("*.tar"))] == [
        sum(r["shard"] == p.name for r in rows) for p in sorted(tmp_path.glob("*.tar"))]


def test_an_exception_inside_with_commits_nothing_of_the_open_shard(tmp_path):
    with pytest.raises(KeyboardInterrupt), ShardSet(tmp_path, CFG) as shards:
        shards.add_episode("ep_1", [make_sample("ep_1", 0)], [], {})
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.glob("*.tmp")] == [f"{split_of('ep_1', 0.3)}-000000.tar.tmp"]
    assert json.loads((tmp_path / "dataset.json").read_text())["episodes"] == {}
    assert not ShardSet(tmp_path, CFG).is_done("ep_1")
    assert list(tmp_path.glob("*.tmp")) == []


def test_a_failing_close_gives_the_folder_back_and_the_next_run_finishes_it(tmp_path,
                                                                              monkeypatch):
    inputs = make_inputs(6)
    clean = write_all(tmp_path / "clean", inputs)
    shards = ShardSet(tmp_path / "full", CFG, source="/in")
    for ep, samples, rejects, info in inputs:
        shards.add_episode(ep, samples, rejects, info)
    real_commit = ShardSet._commit

    def disk_full(self):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ShardSet, "_commit", disk_full)
    with pytest.raises(OSError, match="No space"):
        shards.close()
    monkeypatch.setattr(ShardSet, "_commit", real_commit)
    assert shards.close() == shards.summary()  # closed: nothing more is written
    assert not (tmp_path / "full" / ".scratch").exists()
    assert write_all(tmp_path / "full", inputs) == clean  # the lock is free; resumed
    assert folder_bytes(tmp_path / "full") == folder_bytes(tmp_path / "clean")
