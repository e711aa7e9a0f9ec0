"""The `training` command line: inspect, and record -> curate -> vae -> encode -> fit -> sample."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from fit_support import shard_set

from datagen.episode import find_episodes
from datagen.video import probe, read_frames
from training.cli import main as training
from training.params import param_shapes


def test_inspect_json_prints_the_parameter_table(capsys):
    assert training(["inspect", "mg2-gta-drive", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == param_shapes("mg2-gta-drive")
    assert printed["params"]["blocks.0.action_model.keyboard_embed.0.weight"] == [128, 2]


def test_bad_requests_end_in_one_error_line(capsys, tmp_path):
    assert training(["inspect", "huge"]) == 2
    assert "training: error: unknown preset 'huge'" in capsys.readouterr().err
    assert training(["fit", "--shards", str(tmp_path / "none"), "--out",
                     str(tmp_path / "run")]) == 2
    assert "training: error:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        training(["fit", "--frames", "nine"])
    assert training(["sample", "--ckpt", str(tmp_path), "--image", "x.png", "--actions",
                     "a.csv", "--out", str(tmp_path / "v.mp4")]) == 2
    assert "neither a checkpoint folder nor a run" in capsys.readouterr().err


@pytest.mark.slow
def test_from_shards_to_a_sampled_video_through_the_command_line(tmp_path_factory, tmp_path,
                                                                capsys):
    data = shard_set(tmp_path_factory)
    vae, latents, run = tmp_path / "vae", tmp_path / "latents", tmp_path / "run"
    assert training(["vae", str(data["raw"]), "--out", str(vae), "--steps", "4",
                     "--batch-size", "2", "--eval-clips", "1", "--stats-clips", "2",
                     "--progress", "false"]) == 0
    said = capsys.readouterr().out
    metrics = json.loads((vae / "metrics.json").read_text())
    motion, end = metrics["latent_motion"], metrics["end"]
    assert f"correlation {motion['corr']:.2f} with the pixels' change over " \
        f"{motion['steps']} held-out steps" in said
    assert f"motion kept inside latents {end['motion_within']:.2f}, across latents " \
        f"{end['motion_across']:.2f}" in said
    through = metrics["probe"]["autoencoded"]
    assert f"through the VAE {through['keyboard']:.0%}, {through['mouse']:.0%}" in said
    assert training(["encode", str(data["raw"]), "--vae", str(vae), "--out", str(latents),
                     "--progress", "false"]) == 0
    assert training(["fit", "--shards", str(latents), "--vae", str(vae), "--out", str(run),
                     "--frames", "9", "--steps", "6", "--batch-size", "2", "--val-every", "3",
                     "--val-batches", "1", "--sample-every", "6", "--checkpoint-every", "3",
                     "--num-workers", "0", "--shuffle", "0", "--progress", "false"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(7))
    videos = sorted((run / "samples" / "step-000006").glob("*.mp4"))
    assert videos, "sample_every wrote no validation videos"
    assert probe(videos[0]).frames == 9

    episode = find_episodes(tmp_path_factory.getbasetemp() / "fit-shard-set" / "episodes")[0][0]
    first = next(read_frames(episode / "video.mp4"))
    cv2.imwrite(str(tmp_path / "first.png"), cv2.cvtColor(first, cv2.COLOR_RGB2BGR))
    out = tmp_path / "video.mp4"
    assert training(["sample", "--ckpt", str(run), "--image", str(tmp_path / "first.png"),
                     "--actions", str(episode / "actions.csv"), "--frames", "21",
                     "--out", str(out), "--steps", "2", "--no-progress"]) == 0
    info = probe(out)
    assert (info.frames, info.width, info.height) == (21, 64, 32)  # the training size
    again = tmp_path / "again.mp4"
    assert training(["sample", "--ckpt", str(run), "--image", str(tmp_path / "first.png"),
                     "--actions", str(episode / "actions.csv"), "--frames", "21",
                     "--out", str(again), "--steps", "2", "--no-progress"]) == 0
    a = np.stack(list(read_frames(out)))
    assert np.array_equal(a, np.stack(list(read_frames(again))))  # same seed, same video
    tar = sorted(Path(latents).glob("val-*.tar"))[0]
    overlay = tmp_path / "overlay.mp4"
    assert training(["sample", "--ckpt", str(run / "checkpoints" / "step-000003"), "--image",
                     str(tmp_path / "first.png"), "--actions", str(tar), "--out", str(overlay),
                     "--overlay", "--steps", "1", "--guidance", "1", "--no-progress"]) == 0
    assert probe(overlay).frames == 9 and probe(overlay).height >= 360
    from_video = tmp_path / "from_video.mp4"  # the first frame of an episode's own video
    assert training(["sample", "--ckpt", str(run), "--image", str(episode / "video.mp4"),
                     "--actions", str(episode), "--frames", "21", "--out", str(from_video),
                     "--steps", "2", "--no-progress"]) == 0
    assert np.array_equal(np.stack(list(read_frames(from_video))), a)
    # the run keeps what it needs of its footage: sampled where its shards are not, it makes
    # the same video at the shards' size and frame rate
    dataset = json.loads((latents / "dataset.json").read_text())
    latents.rename(tmp_path / "elsewhere")
    away = tmp_path / "away.mp4"
    assert training(["sample", "--ckpt", str(run), "--image", str(tmp_path / "first.png"),
                     "--actions", str(episode / "actions.csv"), "--frames", "21",
                     "--out", str(away), "--steps", "2", "--no-progress"]) == 0
    assert np.array_equal(np.stack(list(read_frames(away))), a)
    assert probe(away).fps == probe(out).fps == dataset["fps"]


def test_the_shipped_configs_load():
    from training.fit import load_config

    configs = sorted((Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.toml"))
    assert [c.stem for c in configs] == ["small", "tiny"]
    for path in configs:
        cfg = load_config(path, {"shards": "data/latents"})
        assert cfg.preset == path.stem and cfg.shards == "data/latents"
