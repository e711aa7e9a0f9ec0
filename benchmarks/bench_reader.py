"""Shard reader throughput: clips/s and frames/s into uint8 tensors, with 0, 1, 2 loader workers.

Records one built-in episode (``datagen record``), cuts it into clips of ``--clip-frames``
frames at the recorded size, writes them as contract samples into WebDataset tars, then times
``DataLoader(clip_dataset(urls), batch_size=None, num_workers=N)`` over every clip (worker
start-up included), after one untimed warm-up pass so the tars are in the page cache: from the
folder, then from a local HTTP server on it (shards.location: what a URL costs beyond the
network itself).

    python benchmarks/bench_reader.py [--clips 24] [--clip-frames 57] [--size 640x360]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import os
import platform
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from datagen.cli import main as datagen
from datagen.command import parse_size
from datagen.episode import KEY_COLUMNS, KEYS, find_episodes, read_episode
from datagen.video import H264Writer, read_frames
from shards import clip_dataset
from shards.location import open_shards

POSE_COLUMNS = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def make_shards(root: Path, clips: int, clip_frames: int, width: int, height: int,
                per_shard: int) -> list[str]:
    """Record an episode and write its clips as ``train-NNNNNN.tar`` under ``root``."""
    datagen(["record", "--out", str(root / "episodes"), "--scene", "city", "--frames",
             str(clips * clip_frames), "--size", f"{width}x{height}", "--streams", "1",
             "--no-progress"])
    [path], _ = find_episodes(root / "episodes")
    episode = read_episode(path)
    d, fps = episode.data, episode.meta.fps
    frames = read_frames(path / "video.mp4")
    shards = root / "shards"
    shards.mkdir()
    fx = (width / 2) / np.tan(np.radians(d["fov"][0] / 2))
    for s in range(0, clips, per_shard):
        with tarfile.open(shards / f"train-{s // per_shard:06d}.tar", "w") as tar:
            for c in range(s, min(s + per_shard, clips)):
                rows = slice(c * clip_frames, (c + 1) * clip_frames)
                mp4 = root / "clip.mp4"
                with H264Writer(mp4, width, height, fps, crf=20) as writer:
                    for _ in range(clip_frames):
                        writer.write(next(frames))
                key = f"{episode.meta.episode_id}_{rows.start:06d}"
                meta = {"episode": episode.meta.episode_id,
                        "source_frames": list(range(rows.start, rows.stop)), "fps": fps,
                        "width": width, "height": height, "scene": "city", "backend": "builtin",
                        "keys": list(KEYS), "intrinsics": {"fx": fx, "fy": fx, "cx": width / 2,
                                                            "cy": height / 2}}
                members = {
                    "mp4": mp4.read_bytes(),
                    "keys.npy": _npy(np.stack([d[k][rows] for k in KEY_COLUMNS], 1)
                                     .astype(np.uint8)),
                    "mouse.npy": _npy(np.stack([d["mouse_dx"][rows], d["mouse_dy"][rows]], 1)
                                      .astype(np.float32)),
                    "pose.npy": _npy(np.stack([d[k][rows] for k in POSE_COLUMNS], 1)),
                    "json": json.dumps(meta).encode(),
                }
                for ext in sorted(members):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(members[ext])
                    tar.addfile(info, io.BytesIO(members[ext]))
    return open_shards(shards)


def time_loader(urls: list[str], workers: int) -> tuple[int, int, float]:
    """(clips, frames, seconds) for one pass of a DataLoader with ``workers`` workers."""
    loader = torch.utils.data.DataLoader(clip_dataset(urls), batch_size=None,
                                         num_workers=workers)
    clips = frames = 0
    start = time.perf_counter()
    for sample in loader:
        assert sample["video"].dtype == torch.uint8
        clips += 1
        frames += sample["video"].shape[0]
    return clips, frames, time.perf_counter() - start


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def served(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local HTTP server on ``folder`` (in a thread) and its base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--clip-frames", type=int, default=57)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--per-shard", type=int, default=8)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        urls = make_shards(Path(tmp), args.clips, args.clip_frames, width, height,
                           args.per_shard)
        mb = sum(os.path.getsize(u) for u in urls) / 1e6
        time_loader(urls, 0)  # warm-up: page cache, imports
        print(f"{args.clips} clips x {args.clip_frames} frames at {width}x{height} in "
              f"{len(urls)} shards ({mb:.1f} MB); {os.cpu_count()} cores, "
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}\n")
        server, base = served(Path(tmp) / "shards")
        sources = {"folder": urls, "http (localhost)": [f"{base}/{Path(u).name}" for u in urls]}
        print("| source | workers | clips | s | clips/s | frames/s | frames/s per worker |")
        print("|---|---|---|---|---|---|---|")
        for workers in (int(w) for w in args.workers.split(",")):
            for source, tars in sources.items():
                clips, frames, seconds = time_loader(tars, workers)
                per = frames / seconds / max(workers, 1)
                print(f"| {source} | {workers} | {clips} | {seconds:.2f} | "
                      f"{clips / seconds:.1f} | {frames / seconds:.0f} | {per:.0f} |")
        server.shutdown()


if __name__ == "__main__":
    main()
