"""Shards at a URL (shards.location): a job on machines that share no disk streams a shard set
from a real HTTP server, or from an fsspec store (what curation filter --out URL writes to), and
trains, evaluates and trains a VAE exactly as from the folder."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fit_support import shard_set

from shards.location import open_shards, read_dataset
from shards.reader import clip_dataset, coverage_note
from training.encode import EncodeConfig, encode_shards
from training.evaluate import held_out_clips
from training.fit import fit, load_config
from training.vae import WanVAE
from training.vae_train import VaeConfig, train_vae


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requested: list[str]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet, but remember what was asked for
        self.server.requested.append(self.path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return shard_set(tmp_path_factory)


@pytest.fixture(scope="module")
def served(data):
    """``(base URL, requested paths)``: a real HTTP file server on the shard set's folder."""
    root = data["shards"].parent
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.requested
    server.shutdown()
    server.server_close()


def test_a_served_set_lists_the_folders_tars_and_reads_its_dataset_json(data, served):
    base, _ = served
    url = f"{base}/{data['shards'].name}/"  # a trailing slash is fine
    for split in ("train", "val"):
        local = [Path(p).name for p in open_shards(data["shards"], split)]
        assert open_shards(url, split) == [f"{url.rstrip('/')}/{n}" for n in local]
    assert read_dataset(url) == json.loads((data["shards"] / "dataset.json").read_text())
    assert coverage_note(url) == coverage_note(data["shards"])


def test_fit_streams_a_served_set_exactly_as_the_folder(data, served, tmp_path):
    base, requested = served
    runs = {}
    for name, shards in (("folder", str(data["shards"])), ("served", f"{base}/latents")):
        cfg = load_config(None, dict(out=str(tmp_path / name), shards=shards, frames=9,
                                     batch_size=2, steps=4, lr=1e-3, checkpoint_every=0,
                                     val_every=2, val_batches=1, shuffle=8, num_workers=1,
                                     progress=False))
        fit(cfg)
        runs[name] = [json.loads(line) for line in
                      (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    trace = {k: [(r["step"], r.get("loss"), r.get("val_loss")) for r in rows]
             for k, rows in runs.items()}
    assert trace["served"] == trace["folder"] and len(trace["folder"]) == 5
    assert any(p.startswith("/latents/train-") for p in requested)  # read over HTTP
    assert any(p.startswith("/latents/val-") for p in requested)


def test_clips_first_frames_and_a_vae_come_from_a_served_set_as_from_the_folder(
        data, served, tmp_path):
    base, _ = served
    url = f"{base}/shards"
    local, remote = (held_out_clips(s, "train", 3) for s in (data["raw"], url))
    assert [c.key for c in remote] == [c.key for c in local] and len(local) == 3
    for a, b in zip(local, remote, strict=True):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.keys, b.keys)
        assert np.array_equal(a.mouse, b.mouse) and (a.fps, a.fov) == (b.fps, b.fov)
    from training.ode_pairs import _sources  # odepairs' first frames

    for a, b in zip(_sources(str(data["raw"]), "val", 2), _sources(url, "val", 2), strict=True):
        assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2]
    sha = []
    for name, shards in (("folder", data["raw"]), ("served", url)):
        run = train_vae(VaeConfig(shards=shards, out=tmp_path / name, steps=2, batch_size=2,
                                  eval_split="train", eval_clips=1, stats_clips=2,
                                  motion_clips=0, probe_clips=0, progress=False))
        sha.append(WanVAE.load(run).identity["sha256"])
    assert sha[0] == sha[1]


def test_encode_of_a_served_set_writes_the_folders_bytes(data, served, tmp_path):
    base, requested = served
    out = {}
    for name, shards in (("folder", data["raw"]), ("served", f"{base}/shards")):
        out[name] = encode_shards(EncodeConfig(shards=shards, vae=data["vae"],
                                               out=tmp_path / name, progress=False))
    files = {k: {p.name: p.read_bytes() for p in sorted(v.iterdir())} for k, v in out.items()}
    assert files["served"] == files["folder"]
    assert {"dataset.json", "manifest.parquet", "train-000000.tar"} <= set(files["folder"])
    assert "/shards/manifest.parquet" in requested
    broken = data["shards"].parent / "encode-listed-but-missing"
    broken.mkdir(exist_ok=True)
    (broken / "dataset.json").write_bytes((data["raw"] / "dataset.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=f"{broken.name}/train-000000.tar answers 404"):
        encode_shards(EncodeConfig(shards=f"{base}/{broken.name}", vae=data["vae"],
                                   out=tmp_path / "broken", progress=False))
    assert not (tmp_path / "broken").exists()


def test_a_url_that_serves_no_shard_set_is_a_clear_error(data, served, tmp_path):
    base, _ = served
    with pytest.raises(FileNotFoundError, match="is not a shard set: .*/nothing/dataset.json "
                                                "does not exist"):
        open_shards(f"{base}/nothing", "train")
    with pytest.raises(FileNotFoundError, match="no test shards listed in .*splits there: "
                                                "\\['train', 'val'\\]"):
        open_shards(f"{base}/latents", "test")
    with pytest.raises(FileNotFoundError, match="is not a shard set"):
        train_vae(VaeConfig(shards=f"{base}/nothing", out=tmp_path / "vae"))
    assert not (tmp_path / "vae").exists()
    broken = data["shards"].parent / "listed-but-missing"  # dataset.json names absent tars
    broken.mkdir(exist_ok=True)
    (broken / "dataset.json").write_bytes((data["shards"] / "dataset.json").read_bytes())
    urls = open_shards(f"{base}/{broken.name}", "train")
    with pytest.raises(FileNotFoundError, match=f"{broken.name}/train-000000.tar answers 404"):
        next(iter(clip_dataset(urls, decode_video=False)))
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    with pytest.raises(OSError, match=f"cannot read http://127.0.0.1:{port}/x/dataset.json"):
        read_dataset(f"http://127.0.0.1:{port}/x")


def test_an_fsspec_store_reads_like_the_folder(data):
    """An object store as curation filter --out s3://... leaves it, here fsspec's in-memory one
    (also what file:// and s3:// go through)."""
    fsspec = pytest.importorskip("fsspec")
    store = fsspec.filesystem("memory")
    for path in sorted(data["shards"].iterdir()):
        store.pipe_file(f"/latents-copy/{path.name}", path.read_bytes())
    url = "memory://latents-copy"
    assert read_dataset(url) == read_dataset(data["shards"])

    def stream(shards):
        return [(s["__key__"], s["latents"].numpy().tobytes()) for s in clip_dataset(
            open_shards(shards, "train"), shuffle=4, seed=3, decode_video=False)]

    local = stream(data["shards"])
    assert stream(url) == local and len(local) >= 4
    assert [c.key for c in held_out_clips(url, "val", 2)] == \
        [c.key for c in held_out_clips(data["shards"], "val", 2)]
    with pytest.raises(FileNotFoundError, match="memory://nothing is not a shard set"):
        open_shards("memory://nothing")


def test_a_dataset_json_of_something_else_is_refused(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "someone-else/2"}))
    with pytest.raises(ValueError, match="is not the dataset.json of a worldforge.shards/1"):
        read_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="dataset.json is not JSON"):
        open_shards(f"file://{tmp_path}")
