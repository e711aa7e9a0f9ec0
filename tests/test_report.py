"""``curation report`` on a hand-made shard folder cut from real built-in recordings."""

from __future__ import annotations

import html
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import record_builtin

from curation.config import FilterConfig
from curation.report import ReportError, histogram, speeds, write_report
from curation.segments import Reject
from curation.shardwriter import ShardSet
from datagen.episode import KEY_COLUMNS, read_episode
from datagen.video import H264Writer, read_frames

CLIP = 30
POSE_COLUMNS = ("pos_x", "pos_y", "pos_z", "qw", "qx", "qy", "qz", "fov")
REASONS = [
    "invalid episode: actions.csv has 89 rows but video.mp4 decodes 90 frames",
    "too short (20 frames < 30 per clip): segment dropped",
    "static: nothing moves for 3.4 s <frames 10-112> & camera still",
]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def make_shards(root: Path, episodes: list[Path], drop_member: str | None = None) -> dict:
    """A shard folder written by the real ShardSet from clips of CLIP frames of ``episodes``,
    three rejects of REASONS with the first; ``drop_member`` then removes that member of every
    sample (a broken shard). Returns the manifest rows and the keys that went in."""
    cfg = FilterConfig(clip_frames=CLIP, width=160, height=90, val_fraction=0.5)
    keys_in = []
    with ShardSet(root, cfg) as shards:
        for index, path in enumerate(episodes):
            samples = [{"__key__": key, **members}
                       for key, members in _clips(path, root.parent / "clip.mp4")]
            keys_in += [np.load(io.BytesIO(s["keys.npy"])) for s in samples]
            meta = json.loads(samples[0]["json"])
            rejects = [Reject(str(path), path.name, first, frames, reason) for first, frames,
                       reason in zip([-1, 40, 10], [-1, 20, 102], REASONS, strict=True)]
            shards.add_episode(path.name, samples, rejects if index == 0 else [],
                               {"scene": meta["scene"], "backend": "builtin"})
    if drop_member:
        for tar in root.glob("*.tar"):
            with tarfile.open(tar) as f:
                kept = [(info, f.extractfile(info).read()) for info in f
                        if not info.name.endswith(f".{drop_member}")]
            with tarfile.open(tar, "w") as f:
                for info, data in kept:
                    f.addfile(info, io.BytesIO(data))
    return {"manifest": pd.read_parquet(root / "manifest.parquet"),
            "keys": np.concatenate(keys_in)}


def _clips(path: Path, scratch: Path) -> list[tuple[str, dict[str, bytes]]]:
    """The recording at ``path`` cut into clips of CLIP frames: (key, members) per clip."""
    ep = read_episode(path)
    frames = np.stack(list(read_frames(path / "video.mp4")))
    out = []
    for first in range(0, len(frames) - CLIP + 1, CLIP):
        rows = slice(first, first + CLIP)
        keys = np.stack([ep.data[c][rows] for c in KEY_COLUMNS], axis=1).astype(np.uint8)
        mouse = np.stack([ep.data["mouse_dx"][rows], ep.data["mouse_dy"][rows]], axis=1)
        pose = np.stack([ep.data[c][rows] for c in POSE_COLUMNS], axis=1)
        with H264Writer(scratch, ep.meta.width, ep.meta.height, ep.meta.fps) as writer:
            for image in frames[rows]:
                writer.write(image)
        meta = {"episode": ep.meta.episode_id, "source_frames": list(range(first, first + CLIP)),
                "fps": ep.meta.fps, "width": ep.meta.width, "height": ep.meta.height,
                "scene": ep.meta.scene, "backend": "builtin"}
        out.append((f"{ep.meta.episode_id}_{first:06d}", {
            "json": json.dumps(meta).encode(), "keys.npy": _npy(keys),
            "mouse.npy": _npy(mouse.astype(np.float32)), "mp4": scratch.read_bytes(),
            "pose.npy": _npy(pose)}))
        scratch.unlink()
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("rec")
    record_builtin(out, 60, "city")
    return record_builtin(out, 60, "park")


@pytest.fixture(scope="module")
def report(recordings: list[Path], tmp_path_factory: pytest.TempPathFactory):
    shards = tmp_path_factory.mktemp("shards") / "ds"
    truth = make_shards(shards, recordings)
    index = write_report(shards)
    page = index.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)'
                                r"</script>", page, re.S).group(1))
    return shards, index, page, data, truth


def test_report_links_only_pngs_that_exist(report) -> None:
    shards, index, page, _, _ = report
    assert index == shards / "report" / "index.html"
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"keys.png", "combos.png", "mouse.png", "speed.png", "rejects.png",
            "strip.png"} <= set(images)
    assert sum(name.startswith("trajectories_") for name in images) == 2  # one per scene
    for name in images:
        assert "/" not in name and (index.parent / name).stat().st_size > 1000


def test_report_counts_clips_frames_and_hours(report) -> None:
    _, _, page, data, truth = report
    counts = {(r["split"], r["scene"]): r for r in data["counts"]}
    manifest = truth["manifest"]
    assert set(manifest["split"]) == {"train", "val"}  # one recording in each split
    for (split, scene), rows in manifest.groupby(["split", "scene"]):
        assert counts[split, scene]["clips"] == len(rows) == 2
        assert counts[split, scene]["frames"] == rows["frames"].sum() == 2 * CLIP
        assert counts[split, "all"]["clips"] == 2
    assert counts["all", "all"]["frames"] == data["frames"] == len(truth["keys"]) == 4 * CLIP
    assert counts["all", "all"]["hours"] == pytest.approx(4 * CLIP / 30 / 3600)
    assert data["manifest_only"] == data["tars_only"] == []
    assert "<td>park</td>" in page and f'<td class="n">{4 * CLIP}</td>' in page


def test_report_lists_every_reject_reason(report) -> None:
    _, _, page, data, _ = report
    for reason in REASONS:
        assert html.escape(reason) in page
    assert data["rejects_by_kind"] == {"invalid episode": {"rows": 1, "frames": 0},
                                       "too short": {"rows": 1, "frames": 20},
                                       "static": {"rows": 1, "frames": 102}}


def test_action_histograms_add_up_to_the_frames(report) -> None:
    _, _, _, data, truth = report
    frames = data["frames"]
    for name in ("mouse_dx", "mouse_dy", "speed"):
        assert sum(data[name]["counts"]) == frames
        assert len(data[name]["edges"]) == len(data[name]["counts"]) + 1
    assert sum(n for _, n in data["combos"]) == frames
    held = truth["keys"].sum(axis=0)
    assert list(data["key_frames"].values()) == held.tolist()
    assert data["key_fraction"]["W"] == pytest.approx(held[0] / frames)
    assert held[0] > 0  # the recordings walk forward: the W numbers are not trivially zero


def test_coverage_per_split_matches_the_clips_and_is_drawn(report) -> None:
    shards, _, page, data, truth = report
    coverage = data["coverage"]
    manifest = truth["manifest"]
    assert set(coverage) == {*manifest["split"].unique(), "all"}
    assert coverage["all"]["frames"] == data["frames"]
    held = truth["keys"].sum(axis=0)
    assert coverage["all"]["counts"]["keys"]["w"] == held[0]
    for split in set(coverage) - {"all"}:
        frames = int(manifest.loc[manifest["split"] == split, "frames"].sum())
        assert coverage[split]["frames"] == frames
        assert (shards / "report" / f"coverage-{split}.png").stat().st_size > 10_000
    dataset = json.loads((shards / "dataset.json").read_text())["action_coverage"]
    for split in set(coverage) - {"all"}:  # the shard writer and the report count alike
        assert dataset[split]["counts"] == coverage[split]["counts"]
    assert "Action coverage" in page and "goals met" in page.lower()


def test_histogram_counts_outliers_in_the_end_bins() -> None:
    values = np.concatenate([np.linspace(-2, 2, 999), [1e6]])
    hist = histogram(values, symmetric=True)
    assert sum(hist["counts"]) == 1000 and hist["clipped"] == 1 and hist["counts"][-1] >= 1
    assert hist["edges"][0] == -hist["edges"][-1]


def test_speeds_of_a_straight_line_at_constant_speed() -> None:
    positions = np.outer(np.arange(10.0), [0.3, 0.4, 0.0])  # 0.5 m per frame
    assert np.allclose(speeds(positions, fps=30), 15.0)
    assert speeds(positions[:1], fps=30).tolist() == [0.0]


def test_rerun_replaces_the_report_and_leaves_no_temporary_folder(report, tmp_path) -> None:
    shards = report[0]
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")
    index = write_report(shards, out)
    assert index == out / "index.html" and not (out / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


def test_bad_shard_folders_give_clear_errors(recordings, tmp_path) -> None:
    with pytest.raises(ReportError, match="no such shard folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="not a shard folder"):
        write_report(tmp_path / "empty")
    make_shards(tmp_path / "broken", recordings[:1], drop_member="pose.npy")
    with pytest.raises(ReportError, match=r"-000000.tar sample city_0_00000_000000 has no "
                                          r"pose.npy"):
        write_report(tmp_path / "broken")
    assert not (tmp_path / "broken" / "report").exists()
