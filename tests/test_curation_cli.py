"""`curation` end to end on built-in recordings: filter -> shards -> reader, report, preview."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curation.cli import main as curation
from datagen.cli import main as datagen
from datagen.episode import ACTIONS_FILE, read_episode
from datagen.episode_check import validate_episode
from datagen.video import probe
from shards.location import open_shards
from shards.reader import clip_dataset, decode_mp4

CLIP = ["--clip-frames", "16", "--size", "160x90", "--no-progress"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Three finished recordings, one broken copy and one unfinished (.partial) folder."""
    root = tmp_path_factory.mktemp("raw")
    for scene, episodes in (("city", 2), ("park", 1)):
        assert datagen(["record", "--out", str(root), "--scene", scene, "--episodes",
                        str(episodes), "--frames", "120", "--size", "160x90", "--streams", "1",
                        "--profile", "balanced", "--no-progress"]) == 0
    broken = root / "city" / "city_0_00009"
    shutil.copytree(root / "city" / "city_0_00000", broken)
    meta = json.loads((broken / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps({**meta, "episode_id": "city_0_00009"}))
    lines = (broken / ACTIONS_FILE).read_text().splitlines()
    (broken / ACTIONS_FILE).write_text("\n".join(lines[:-5]) + "\n")
    shutil.copytree(root / "park" / "park_0_00000", root / "park" / "park_0_00007.partial")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def samples(shards: Path) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for member in tf.getmembers():
                key, ext = member.name.split(".", 1)
                out.setdefault(key, {})[ext] = tf.extractfile(member).read()
    return out


@pytest.fixture(scope="module")
def shards(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "ds"
    assert curation(["filter", str(raw), "--out", str(out), *CLIP]) == 0
    return out


def test_filter_writes_the_shards_the_contract_describes(raw, shards):
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["format"] == "worldforge.shards/1" and dataset["clip_frames"] == 16
    got = samples(shards)
    manifest = pq.read_table(shards / "manifest.parquet").to_pylist()
    assert sorted(r["key"] for r in manifest) == sorted(got) and len(got) >= 4
    for key, sample in got.items():
        assert "." not in key
        assert set(sample) == {"mp4", "keys.npy", "mouse.npy", "pose.npy", "json"}
        meta = json.loads(sample["json"])
        assert decode_mp4(sample["mp4"]).shape == (16, 90, 160, 3)  # exact frame count
        keys = np.load(io.BytesIO(sample["keys.npy"]))
        pose = np.load(io.BytesIO(sample["pose.npy"]))
        assert keys.shape == (16, 7) and keys.dtype == np.uint8 and pose.dtype == np.float64
        source = read_episode(raw / meta["scene"] / meta["episode"]).data
        rows = np.array(meta["source_frames"])
        assert key == f"{meta['episode']}_{rows[0]:06d}"
        cols = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")
        expected = np.stack([source[c][rows] for c in cols], axis=1)
        assert np.array_equal(pose, expected)  # float64-equal to the source rows


def test_bad_and_unfinished_episodes_are_rejects_not_failures(raw, shards, capsys):
    rejects = pq.read_table(shards / "rejects.parquet").to_pylist()
    broken = [r for r in rejects if r["episode"] == "city_0_00009"]
    assert broken and broken[0]["reason"].startswith("invalid episode:")
    assert "115" in broken[0]["reason"] and "120" in broken[0]["reason"]
    out = raw.parent / "strict"
    assert curation(["filter", str(raw), "--out", str(out), "--strict", *CLIP]) == 1
    printed = capsys.readouterr().out
    assert "park_0_00007.partial: unfinished recording" in printed
    assert "rejected" in printed and "invalid episode" in printed
    shutil.rmtree(out)


def test_balanced_recordings_keep_their_action_coverage_through_the_filter(tmp_path):
    """What the recorder's default profile puts in (look-arounds, pauses, every key) is what
    the shards hold: nothing is dropped as stationary while the camera turns or for a pause of
    a few seconds, and dataset.json's coverage counts every frame of every clip."""
    raw, out = tmp_path / "raw", tmp_path / "ds"
    assert datagen(["record", "--out", str(raw), "--scene", "city", "--episodes", "2",
                    "--frames", "600", "--size", "64x36", "--streams", "1", "--no-progress"]) == 0
    assert curation(["filter", str(raw), "--out", str(out), "--clip-frames", "33",
                     "--size", "64x36", "--val-fraction", "0", "--no-progress"]) == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert "stationary" not in dataset["rejects"]
    kept = dataset["counts"]["train"]["frames"]
    assert kept >= 0.8 * 1200
    coverage = dataset["action_coverage"]["train"]
    assert coverage["frames"] == kept
    recorded = [json.loads(p.read_text())["settings"]["action_coverage"]
                for p in sorted(raw.glob("city/*/meta.json"))]
    for key in ("s", "a", "d", "space", "ctrl"):  # the keys explore hardly presses survive
        assert coverage["keys"][key] >= 0.05, key
    looked = sum(r["counts"]["directions"]["up"] for r in recorded)
    assert coverage["counts"]["directions"]["up"] >= 0.7 * looked  # looking up survives


def test_inputs_are_never_modified(raw, tmp_path):
    before = tree_digest(raw)
    assert curation(["filter", str(raw), "--out", str(tmp_path / "ds"), *CLIP]) == 0
    assert tree_digest(raw) == before


def test_same_inputs_give_byte_identical_shards_whatever_the_workers(raw, shards, tmp_path):
    assert curation(["filter", str(raw), "--out", str(tmp_path / "two"), "--workers", "2",
                     *CLIP]) == 0
    assert tree_digest(tmp_path / "two") == tree_digest(shards)
    # no memory for decoded frames: every episode is decoded twice, same bytes
    assert curation(["filter", str(raw), "--out", str(tmp_path / "lean"),
                     "--decode-memory-gb", "0", *CLIP]) == 0
    assert tree_digest(tmp_path / "lean") == tree_digest(shards)


def test_a_rerun_over_grown_input_processes_only_the_new_episodes(raw, tmp_path, capsys):
    grown = tmp_path / "raw"
    shutil.copytree(raw, grown)
    out = tmp_path / "ds"
    assert curation(["filter", str(grown), "--out", str(out), *CLIP]) == 0
    first = tree_digest(out)
    assert datagen(["record", "--out", str(grown), "--scene", "hills", "--frames", "120",
                    "--size", "160x90", "--streams", "1", "--profile", "balanced",
                    "--no-progress"]) == 0
    capsys.readouterr()
    assert curation(["filter", str(grown), "--out", str(out), *CLIP]) == 0
    assert "1 episode(s) processed (4 done before)" in capsys.readouterr().out
    after = tree_digest(out)
    assert all(after[name] == digest for name, digest in first.items()
               if name.endswith(".tar"))  # earlier shards untouched
    assert any("hills_0_00000" in k for k in samples(out)) or any(
        r["episode"] == "hills_0_00000"
        for r in pq.read_table(out / "rejects.parquet").to_pylist())


def test_settings_errors_are_one_line_and_mixing_configs_is_refused(raw, shards, capsys):
    assert curation(["filter", str(raw), "--out", str(shards), "--clip-frames", "0"]) == 2
    assert "clip_frames must be at least 1" in capsys.readouterr().err
    assert curation(["filter", str(raw / "nope"), "--out", str(shards)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert curation(["filter", str(raw), "--out", str(shards), "--clip-frames", "20",
                     "--size", "160x90", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "clip_frames" in err and "Traceback" not in err


def test_shards_stream_into_a_dataloader_with_workers(shards):
    urls = open_shards(shards, "train")
    loader = torch.utils.data.DataLoader(
        clip_dataset(urls, seed=3, shuffle=8, space="mg2_universal"), batch_size=None,
        num_workers=2)
    seen = [item for item in loader]
    manifest = pq.read_table(shards / "manifest.parquet").to_pylist()
    train = sorted(r["key"] for r in manifest if r["split"] == "train")
    assert sorted(item["__key__"] for item in seen) == train
    for item in seen:
        assert tuple(item["video"].shape) == (16, 90, 160, 3)
        assert tuple(item["keys"].shape) == (16, 4) and tuple(item["mouse"].shape) == (16, 2)


def test_report_and_preview_from_the_command_line(raw, shards, tmp_path):
    assert curation(["report", str(shards), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "index.html").read_text()
    assert "invalid episode" in html and ".png" in html
    tar = sorted(shards.glob("*.tar"))[0]
    assert curation(["preview", str(tar), "--out", str(tmp_path / "clip.mp4")]) == 0
    assert probe(tmp_path / "clip.mp4").frames == 16
    episode = raw / "city" / "city_0_00000"
    assert curation(["preview", str(episode), "--out", str(tmp_path / "ep.mp4")]) == 0
    assert probe(tmp_path / "ep.mp4").frames == 120


def test_annotate_from_the_command_line(raw, tmp_path, capsys):
    assert curation(["annotate", str(raw / "park"), "--out", str(tmp_path)]) == 0
    [annotated] = sorted((tmp_path / "park").iterdir())
    assert validate_episode(annotated) == []
    assert json.loads((annotated / "meta.json").read_text())["annotation"]["config"][
        "walk_speed"] == 2.0
    # every decoder setting is a flag; the settings used are recorded with the episode
    assert curation(["annotate", str(raw / "park"), "--out", str(tmp_path / "tuned"),
                     "--walk-speed", "2.5", "--estimate-dynamics", "no"]) == 0
    [tuned] = sorted((tmp_path / "tuned" / "park").iterdir())
    config = json.loads((tuned / "meta.json").read_text())["annotation"]["config"]
    assert (config["walk_speed"], config["estimate_dynamics"]) == (2.5, False)
    assert curation(["annotate", str(raw / "park"), "--out", str(tmp_path / "bad"),
                     "--walk-speed", "5", "--sprint-speed", "4"]) == 2
    assert "need walk_speed < sprint_speed" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_same_bytes(tmp_path):
    """kill -9 of the whole run (workers and ffmpeg too) leaves only closed shards; the same
    command again finishes the job, byte for byte like a run that was never interrupted."""
    raw = tmp_path / "raw"
    assert datagen(["record", "--out", str(raw), "--scene", "park", "--episodes", "8",
                    "--frames", "90", "--size", "96x54", "--streams", "2", "--profile",
                    "balanced", "--no-progress"]) == 0
    args = ["filter", str(raw), "--clip-frames", "12", "--size", "96x54", "--maxcount", "3",
            "--workers", "2", "--no-progress"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert curation([*args, "--out", str(clean)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "curation.cli", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(killed.glob("*.tar")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it really was interrupted mid-way
    assert tree_digest(killed) != tree_digest(clean)
    assert (killed / ".scratch").is_dir()  # its clip scratch space stays inside --out ...
    assert curation([*args, "--out", str(killed)]) == 0
    assert tree_digest(killed) == tree_digest(clean)
    assert not (killed / ".scratch").exists()  # ... and the next run there removes it


def test_shards_for_a_url_are_staged_then_uploaded_commit_record_last(raw, shards, tmp_path,
                                                                     monkeypatch, capsys):
    """``--out file://...`` (renames) and an object store (fsspec's in-memory one: whole-file
    puts) get the shard set of a local run, dataset.json after every file it names; a re-run
    that lost its staging folder resumes from the URL."""
    import fsspec

    url = f"file://{tmp_path}/bucket/ds"
    assert curation(["filter", str(raw), "--out", url, "--stage", str(tmp_path / "stage"),
                     *CLIP]) == 0
    uploaded = tmp_path / "bucket" / "ds"
    local = {k: v for k, v in tree_digest(shards).items() if not k.startswith(".lock")}
    assert tree_digest(uploaded) == local

    sent: list[str] = []
    memory = fsspec.filesystem("memory")
    put = type(memory).put_file
    monkeypatch.setattr(type(memory), "put_file",
                        lambda self, lpath, rpath, **kw: (sent.append(rpath),
                                                          put(self, lpath, rpath, **kw))[1])
    try:
        url = "memory://bucket/ds"
        assert curation(["filter", str(raw), "--out", url, "--stage",
                         str(tmp_path / "stage2"), *CLIP]) == 0
        assert sent[-1].endswith("/dataset.json") and len(sent) == len(local)
        assert {f"/bucket/ds/{k}" for k in local} == set(sent)
        shutil.rmtree(tmp_path / "stage2")  # the driver's machine is gone
        sent.clear()
        capsys.readouterr()
        assert curation(["filter", str(raw), "--out", url, "--stage",
                         str(tmp_path / "stage2"), *CLIP]) == 0
        printed = capsys.readouterr().out
        assert f"resuming from {url}: {len(local)} file(s) fetched" in printed
        assert "0 episode(s) processed (4 done before)" in printed
        assert [s.rsplit("/", 1)[-1] for s in sent] == ["dataset.json"]
    finally:
        memory.rm("/bucket", recursive=True)
