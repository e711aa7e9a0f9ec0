"""The Wan VAE wrapper, PSNR/SSIM, and `training vae` on real built-in recordings: learning,
determinism, the schedule, and exact resume (also after kill -9)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import record_builtin
from diffusers import AutoencoderKLWan
from fit_support import REPO, subprocess_env
from scipy.ndimage import gaussian_filter

from curation.cli import main as curation
from training import checkpoint
from training.metrics import follows_picture, frame_change, motion_kept, motion_steps, psnr, ssim
from training.run_log import RunLog
from training.schedule import learning_rate
from training.vae import VaeError, WanVAE, build_vae, check_identity
from training.vae_start import per_frame_start
from training.vae_train import VaeConfig, load_config, motion_error, train_vae


def save_tiny(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    build_vae("tiny").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("vae") / "tiny")


@pytest.fixture(scope="module")
def vae(tiny_folder) -> WanVAE:
    return WanVAE.load(tiny_folder)


def video(frames: int, height: int = 16, width: int = 24, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(frames)
    return torch.rand(batch, 3, frames, height, width, generator=g) * 2 - 1


@pytest.mark.parametrize("frames", [1, 5, 9, 13])
def test_encode_decode_round_trip_shapes_for_4k_plus_1_frames(vae, frames):
    latents = vae.encode(video(frames, batch=2))
    assert latents.shape == (2, 16, (frames - 1) // 4 + 1, 2, 3)
    assert latents.dtype == torch.float32 and torch.isfinite(latents).all()
    out = vae.decode(latents)
    assert out.shape == (2, 3, frames, 16, 24)
    assert out.min() >= -1 and out.max() <= 1


def test_encoding_is_deterministic_and_normalised_with_the_config(vae):
    x = video(5)
    assert torch.equal(vae.encode(x), vae.encode(x))
    raw = vae.model.encode(x).latent_dist.mode()
    mean = torch.tensor(vae.model.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.model.config.latents_std).view(1, 16, 1, 1, 1)
    assert torch.allclose(vae.encode(x), (raw - mean) / std, atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (video(4), "4 frames; the VAE needs 4k\\+1"),
    (video(5, height=12), "24x12; width and height must be multiples of 8"),
    (video(5)[0], "must be \\[B, 3, T, H, W\\]"),
    (video(5) * 127.5 + 127.5, "values must be in \\[-1, 1\\]"),
    (torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8), "must be float"),
])
def test_bad_videos_are_clear_errors(vae, bad, message):
    with pytest.raises(VaeError, match=message):
        vae.encode(bad)


def test_bad_latents_are_a_clear_error(vae):
    with pytest.raises(VaeError, match="latents must be \\[B, 16, F, h, w\\]"):
        vae.decode(torch.zeros(1, 4, 2, 2, 2))


def test_load_names_a_missing_or_wrong_folder(tmp_path, tiny_folder):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        WanVAE.load(tmp_path / "nowhere")
    with pytest.raises(VaeError, match=f"{tmp_path} is not a VAE folder"):
        WanVAE.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(VaeError, match="is not a VAE folder"):
        WanVAE.load(tmp_path)
    unweighted = tmp_path / "unweighted"
    unweighted.mkdir()
    (unweighted / "config.json").write_bytes((tiny_folder / "config.json").read_bytes())
    with pytest.raises(VaeError, match="no \\*.safetensors weights"):
        WanVAE.load(unweighted)


def test_load_round_trip_keeps_the_identity_and_a_weight_change_changes_it(
        tmp_path, tiny_folder, vae):
    weights = tiny_folder / "diffusion_pytorch_model.safetensors"
    identity = vae.identity
    assert identity["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert identity["z_dim"] == 16 and identity["name"] == "tiny"
    assert identity["latents_std"] == list(vae.model.config.latents_std)  # Wan2.1's by default

    vae.model.save_pretrained(tmp_path / "run" / "vae")  # a run folder, VAE in vae/
    again = WanVAE.load(tmp_path / "run")
    assert again.identity == {**identity, "name": "run"}
    check_identity(again.identity, identity, "these latents")  # same VAE, other name
    assert torch.equal(again.encode(video(5)), vae.encode(video(5)))

    other = WanVAE.load(save_tiny(tmp_path / "other", seed=1))
    assert other.identity["sha256"] != identity["sha256"]
    with pytest.raises(VaeError, match="'other'.*not with 'tiny'.*sha256 differ"):
        check_identity(other.identity, identity, "these latents")


def test_latent_motion_pairs_each_latent_step_with_the_pixels_change_over_its_frames():
    video = torch.zeros(3, 17, 8, 8)
    video[:, 9:] = 1.0  # the picture changes between frames 8 and 9: latent step 2 -> 3
    latents = torch.zeros(16, 5, 1, 1)
    latents[:, 3:] = 2.0
    steps = motion_steps(latents, video)
    assert steps.tolist() == [[0.0, 0.0], [2.0, 1.0], [0.0, 0.0]]  # k = 1, 2, 3
    assert follows_picture(steps) == pytest.approx(1.0)
    assert follows_picture(steps * torch.tensor([-1.0, 1.0])) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="5 latents need 17 frames, got 9"):
        motion_steps(latents, video[:, :9])


def test_motion_kept_tells_steps_inside_latents_from_steps_across_them():
    video = torch.zeros(2, 3, 9, 4, 4)
    for f in range(9):
        video[:, :, f] = f / 8  # the picture brightens by 1/8 every frame
    assert frame_change(video).tolist() == [[0.125] * 8] * 2
    assert motion_kept(frame_change(video), frame_change(video)) == {"within": 1.0,
                                                                     "across": 1.0}
    stairs = video[:, :, [0, 4, 4, 4, 4, 8, 8, 8, 8]]  # each latent's frames repeat its last
    kept = motion_kept(frame_change(video), frame_change(stairs))
    assert kept == {"within": 0.0, "across": pytest.approx(4.0)}  # 4 frames' change at once
    assert math.isnan(motion_kept(frame_change(video[:, :, :1].expand(-1, -1, 9, -1, -1)),
                                  frame_change(video))["within"])  # a still original
    with pytest.raises(ValueError, match="must both be"):
        motion_kept(frame_change(video), frame_change(video[:, :, :5]))


def test_psnr_is_infinite_for_identical_videos_and_exact_for_a_known_error():
    x = torch.rand(2, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(psnr(x, x)).all()
    sign = torch.ones_like(x)
    sign[..., ::2] = -1
    y = x + 0.1 * sign  # every pixel off by 0.1: MSE 0.01
    assert torch.allclose(psnr(x, y), torch.tensor(20.0, dtype=torch.float64))
    assert torch.allclose(psnr(255 * x, 255 * y, data_range=255.0), psnr(x, y))
    half = y.clone()
    half[1] = x[1] + 0.05 * sign[1]  # MSE 0.0025: 26.02 dB
    assert psnr(x, half)[1].item() == pytest.approx(10 * math.log10(1 / 0.0025))


def reference_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Wang et al.'s SSIM of two grey images with scipy (11-tap Gaussian, valid region)."""
    def blur(v):
        return gaussian_filter(v, 1.5, truncate=3.5)[5:-5, 5:-5]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ma, mb = blur(a), blur(b)
    va, vb, cab = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    return float((((2 * ma * mb + c1) * (2 * cab + c2))
                  / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean())


def test_ssim_matches_known_values_and_a_reference_implementation():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, 2, 24, 20)))
    assert ssim(x, x).item() == pytest.approx(1.0)
    a, b = 0.3, 0.7  # constant frames: only the luminance term is left
    c1 = (0.01) ** 2
    flat = ssim(torch.full((1, 3, 1, 16, 16), a), torch.full((1, 3, 1, 16, 16), b))
    assert flat.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))
    y = (x + 0.2 * torch.from_numpy(rng.standard_normal(x.shape))).clamp(0, 1)
    expected = np.mean([reference_ssim(x[0, c, t].numpy(), y[0, c, t].numpy(), 1.0)
                        for c in range(3) for t in range(2)])
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-9)
    assert ssim(255 * x, 255 * y, data_range=255.0).item() == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[..., :10, :], y[..., :10, :])


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """64x32 shards of 9-frame clips: a city episode (val split) and a park one (train)."""
    root = tmp_path_factory.mktemp("vae_data")
    record_builtin(root / "raw", 90, "city")
    record_builtin(root / "raw", 90, "park")
    out = root / "shards"
    assert curation(["filter", str(root / "raw"), "--out", str(out), "--size", "64x32",
                     "--clip-frames", "9", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_training_vae_lowers_the_reconstruction_error(shards, tmp_path):
    cfg = VaeConfig(shards=shards, out=tmp_path / "run", steps=100, batch_size=2,
                    eval_clips=4, stats_clips=4, progress=False)
    run = train_vae(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_split"] == "val" and metrics["eval_clips"] == 4
    assert metrics["end"]["psnr"] > metrics["start"]["psnr"] + 1.0  # dB, on unseen episodes
    assert metrics["end"]["ssim"] > metrics["start"]["ssim"]
    assert all(0 <= metrics["end"][k] < 10 for k in ("motion_within", "motion_across"))
    motion = metrics["latent_motion"]  # 9-frame clips: one step between 4-frame latents each
    assert motion["frames"] == 9 and motion["steps"] >= 4 and -1 <= motion["corr"] <= 1
    probe = metrics["probe"]  # the probe on the held-out clips, then on them through the VAE
    assert probe["frames"] == 9 and probe["clips"] >= 4
    truth, through = probe["ground_truth"], probe["autoencoded"]
    assert truth["unknown"] < 0.5 and 0 < truth["mouse"] <= 1 and 0 < truth["keyboard"] <= 1
    assert 0 <= through["keyboard"] <= 1 and 0 <= through["unknown"] <= 1
    vae = WanVAE.load(run)
    assert vae.identity["name"] == "run" and not (run / "vae.partial").exists()
    std = vae.identity["latents_std"]
    assert std != list(build_vae("tiny").config.latents_std) and min(std) > 0  # measured
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass --resume"):
        train_vae(cfg)


def test_training_vae_is_deterministic_for_a_seed(shards, tmp_path):
    def weights(name: str) -> str:
        cfg = VaeConfig(shards=shards, out=tmp_path / name, steps=3, batch_size=2,
                        eval_clips=1, stats_clips=2, progress=False)
        return WanVAE.load(train_vae(cfg)).identity["sha256"]

    assert weights("a") == weights("b")
    assert {r["lr"] for r in step_log(tmp_path / "a")} == {5e-4}  # constant by default


def test_an_image_vae_writes_strict_json_with_no_motion_to_measure(shards, tmp_path):
    run = train_vae(VaeConfig(shards=shards, out=tmp_path / "run", frames=1, steps=2,
                              batch_size=2, eval_clips=1, stats_clips=2, motion_clips=0,
                              probe_clips=0, progress=False))

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    metrics = json.loads((run / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["end"]["motion_within"] is None and metrics["end"]["motion_across"] is None
    assert metrics["latent_motion"] is None and metrics["probe"] is None


def test_the_image_stage_trains_on_single_frames_then_windows(shards, tmp_path, monkeypatch):
    seen = []
    encode = AutoencoderKLWan.encode

    def spy(model, x, *args, **kwargs):
        if torch.is_grad_enabled():  # a training step, not evaluation or latent statistics
            seen.append(x.shape[2])
        return encode(model, x, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKLWan, "encode", spy)
    run = train_vae(VaeConfig(shards=shards, out=tmp_path / "run", steps=4, image_steps=2,
                              batch_size=2, eval_clips=1, stats_clips=2, progress=False))
    assert seen == [1, 1, 9, 9]
    assert json.loads((run / "metrics.json").read_text())["image_steps"] == 2
    with pytest.raises(ValueError, match="image_steps must be in 0..steps-1"):
        VaeConfig(shards=shards, out=tmp_path / "r", steps=4, image_steps=4)
    with pytest.raises(ValueError, match="adv_start must be in image_steps..steps-1 \\(2..3\\)"):
        VaeConfig(shards=shards, out=tmp_path / "r", steps=4, image_steps=2, adv_weight=0.1,
                  adv_start=1)


def test_the_motion_loss_pays_for_held_pictures_not_for_shared_errors(shards, tmp_path):
    video = torch.rand(2, 3, 9, 8, 8)
    held = video[:, :, :1].expand_as(video)  # one picture for all frames
    assert motion_error(held, video) == video.diff(dim=2).abs().mean() > 0.1
    assert motion_error(video + 0.3, video) < 1e-6  # a shift all frames share: the L1's job
    run = train_vae(VaeConfig(shards=shards, out=tmp_path / "run", steps=3, image_steps=1,
                              batch_size=2, motion_weight=2.0, eval_clips=1, stats_clips=2,
                              motion_clips=0, probe_clips=0, progress=False))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "motion_l1" not in rows[0]  # single frames have no motion
    for row in rows[1:]:
        assert row["loss"] == pytest.approx(row["l1"] + 1e-6 * row["kl"] + 2 * row["motion_l1"])
    with pytest.raises(ValueError, match="motion_weight must not be negative"):
        VaeConfig(shards=shards, out=tmp_path / "r", motion_weight=-1)


@torch.no_grad()
def test_the_video_stage_starts_as_the_image_model_applied_frame_by_frame():
    torch.manual_seed(0)
    model = build_vae("tiny").eval()
    video = torch.rand(1, 3, 9, 32, 64) * 2 - 1
    image = [model.encode(video[:, :, [f]]).latent_dist.mode() for f in (0, 4, 8)]
    assert not torch.allclose(model.encode(video).latent_dist.mode(), torch.cat(image, 2))
    per_frame_start(model)
    # latent k is frame 4k's image latent (a single frame reaches only the current taps, which
    # per_frame_start keeps)
    latents = model.encode(video).latent_dist.mode()
    assert torch.allclose(latents, torch.cat(image, 2), atol=1e-5)
    # and each latent decodes to its 4 frames as copies of the one picture it holds
    frames = model.decode(latents).sample
    assert motion_kept(frame_change(video), frame_change(frames))["within"] < 1e-5
    for k in (1, 2):
        picture = model.decode(latents[:, :, [k]]).sample[:, :, 0]
        for f in range(4 * k - 3, 4 * k + 1):
            assert torch.allclose(frames[:, :, f], picture, atol=1e-5)


def test_training_vae_refuses_bad_shards_before_any_work(shards, tmp_path):
    with pytest.raises(ValueError, match="frames must be 4k\\+1"):
        VaeConfig(shards=shards, out=tmp_path / "r", frames=8)
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda, got 'gpu'"):
        VaeConfig(shards=shards, out=tmp_path / "r", device="gpu")
    with pytest.raises(ValueError, match="9-frame clips, shorter than the 13 frames"):
        train_vae(VaeConfig(shards=shards, out=tmp_path / "r", frames=13))
    with pytest.raises(FileNotFoundError, match="no test-\\*.tar shards.*eval_split"):
        train_vae(VaeConfig(shards=shards, out=tmp_path / "r", eval_split="test"))
    assert not (tmp_path / "r").exists()


# 12 steps of 2 windows over the 10 train clips: 2.4 epochs, checkpoints at steps 3, 6, 9, 12;
# posterior samples, so the noise generator has to be restored too; single frames up to step 7,
# then windows with the adversary, so a run stopped after step 7 resumes from the image stage
# into the video one, and one stopped after step 10 with a discriminator trained for 2 steps.
RESUME_RUN = dict(steps=12, image_steps=7, batch_size=2, lr=1e-3, warmup=2, min_lr=1e-4,
                  checkpoint_every=3, sample_posterior=True, eval_clips=1, stats_clips=2,
                  adv_weight=0.5, adv_start=7, motion_weight=1.0, probe_clips=2, progress=False)


@pytest.fixture(scope="module")
def whole_run(shards, tmp_path_factory) -> Path:
    """The uninterrupted run the resumed ones must equal."""
    return train_vae(VaeConfig(shards=shards, out=tmp_path_factory.mktemp("whole") / "run",
                               **RESUME_RUN))


def step_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def trace(run: Path) -> list[tuple]:
    return [(r["step"], r["loss"], r["l1"], r["kl"], r["lr"], r["grad_norm"], r.get("g_loss"),
             r.get("d_loss"), r.get("adv_factor")) for r in step_log(run)]


def assert_same_run(run: Path, whole: Path) -> None:
    assert trace(run) == trace(whole)
    name = "vae/diffusion_pytorch_model.safetensors"
    assert (run / name).read_bytes() == (whole / name).read_bytes()
    assert (run / "vae/config.json").read_text() == (whole / "vae/config.json").read_text()
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (run, whole))
    assert (a["start"], a["end"], a["final_l1"]) == (b["start"], b["end"], b["final_l1"])
    assert a["probe"] == b["probe"]


def test_training_vae_logs_every_step_on_the_warmup_cosine_schedule(whole_run):
    rows = step_log(whole_run)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [r["lr"] for r in rows] == [learning_rate(s, lr=1e-3, warmup=2, total=12,
                                                     min_lr=1e-4) for s in range(12)]
    assert rows[0]["lr"] < rows[2]["lr"] == 1e-3 > rows[-1]["lr"] > 1e-4
    # the motion loss and the adversary from step 8 (index 7) on: their losses in the total,
    # the discriminator's beside
    assert [r["step"] for r in rows if "d_loss" in r] == list(range(8, 13))
    assert [r["step"] for r in rows if "motion_l1" in r] == list(range(8, 13))
    for r in rows[7:]:
        assert r["loss"] != pytest.approx(r["l1"] + 1e-6 * r["kl"] + r["motion_l1"])
        assert r["loss"] == pytest.approx(r["l1"] + 1e-6 * r["kl"] + r["motion_l1"]
                                          + r["adv_factor"] * r["g_loss"], rel=1e-5)
        assert r["adv_factor"] > 0 and r["d_loss"] >= 0
    assert sorted(p.name for p in (whole_run / "checkpoints").iterdir()) == \
        ["last", "step-000012"]  # keep_checkpoints=1: only the newest is needed to resume
    assert (whole_run / "checkpoints/last/discriminator.safetensors").is_file()
    assert WanVAE.load(whole_run).identity["name"] == "run"


def test_an_existing_vae_run_needs_resume_and_its_own_settings(shards, whole_run, tmp_path):
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass --resume"):
        train_vae(VaeConfig(shards=shards, out=whole_run, **RESUME_RUN))
    other = VaeConfig(shards=shards, out=whole_run, resume=True, **{**RESUME_RUN, "lr": 2e-3})
    with pytest.raises(ValueError, match="other settings \\(lr: 0.001 -> 0.002\\); only"):
        train_vae(other)
    with pytest.raises(FileNotFoundError, match="is not a training vae run"):
        train_vae(VaeConfig(shards=shards, out=tmp_path, resume=True))
    saved = load_config({"shards": shards, "out": whole_run, "resume": True})
    assert saved == VaeConfig(shards=shards, out=whole_run, resume=True, **RESUME_RUN)


@pytest.mark.parametrize("stop", [7, 10])
def test_training_vae_stopped_after_a_checkpoint_resumes_exactly(shards, whole_run, tmp_path,
                                                                 monkeypatch, stop):
    cfg = VaeConfig(shards=shards, out=tmp_path / "run", **RESUME_RUN)
    emit = RunLog.emit

    def stop_after(log: RunLog, record: dict) -> None:  # past the checkpoint before `stop`
        emit(log, record)
        if record["step"] == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunLog, "emit", stop_after)
    with pytest.raises(KeyboardInterrupt):
        train_vae(cfg)
    monkeypatch.undo()
    assert [r["step"] for r in step_log(cfg.out)] == list(range(1, stop + 1))
    saved = stop // 3 * 3
    assert checkpoint.latest(cfg.out).name == f"step-{saved:06d}"
    assert not (cfg.out / "vae").exists()
    train_vae(dataclasses.replace(cfg, resume=True))  # drops the lines after the checkpoint
    assert_same_run(cfg.out, whole_run)
    train_vae(dataclasses.replace(cfg, resume=True))  # a finished run: the same VAE again
    assert_same_run(cfg.out, whole_run)


@pytest.mark.slow
def test_training_vae_resumes_after_sigkill_like_an_uninterrupted_run(shards, whole_run,
                                                                      tmp_path):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "training.cli", "vae", str(shards), "--out", str(run)]
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in RESUME_RUN.items()]
    proc = subprocess.Popen(command + flags, env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log, deadline = run / "metrics.jsonl", time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and checkpoint.latest(run) is not None \
                and '"step": 4,' in log.read_text():
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 4 <= step_log(run)[-1]["step"] < 12 and not (run / "vae").exists()
    resumed = subprocess.run(command + ["--resume", "true"], env=subprocess_env(), cwd=REPO,
                             capture_output=True, text=True, timeout=600)  # the rest: saved
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(run, whole_run)


QUICK = dict(batch_size=2, eval_clips=1, stats_clips=2, motion_clips=0, probe_clips=0,
             progress=False)


def test_init_starts_from_a_finished_vae_folder_or_a_run_checkpoint(shards, whole_run, tmp_path):
    """Fine-tuning: a run started from another run's VAE folder, or from its checkpoint,
    reconstructs the held-out clips at its step 0 exactly as that run did at its end."""
    end = json.loads((whole_run / "metrics.json").read_text())["end"]
    for name, init, step in (("folder", whole_run / "vae", None), ("run", whole_run, 12)):
        run = train_vae(VaeConfig(shards=shards, out=tmp_path / name, init=str(init), steps=1,
                                  **QUICK))
        metrics = json.loads((run / "metrics.json").read_text())
        assert (metrics["start"]["psnr"], metrics["start"]["ssim"]) == \
            pytest.approx((end["psnr"], end["ssim"]), rel=1e-6)
        assert metrics["init"]["step"] == step and metrics["init"]["video"] is True
    fresh = json.loads((train_vae(VaeConfig(shards=shards, out=tmp_path / "fresh", steps=1,
                                            **QUICK)) / "metrics.json").read_text())
    assert fresh["init"] is None and fresh["start"]["psnr"] < end["psnr"] - 1.0


def test_init_from_inside_an_image_stage_starts_its_windows_frame_by_frame(shards, tmp_path,
                                                                        monkeypatch):
    from training import vae_train

    image = train_vae(VaeConfig(shards=shards, out=tmp_path / "image", steps=3, image_steps=2,
                                checkpoint_every=1, keep_checkpoints=0, **QUICK))
    starts = []
    real = vae_train.per_frame_start
    monkeypatch.setattr(vae_train, "per_frame_start", lambda model: starts.append(model) or
                        real(model))
    for step, video in ((2, False), (3, True)):  # step 3 trained one window
        run = train_vae(VaeConfig(shards=shards, out=tmp_path / f"from-{step}", steps=1,
                                  init=str(checkpoint.step_dir(image, step)), **QUICK))
        init = json.loads((run / "metrics.json").read_text())["init"]
        assert (init["step"], init["video"]) == (step, video)
        assert len(starts) == (0 if video else 1)
        starts.clear()


def test_init_is_checked_before_any_work(shards, whole_run, tmp_path):
    def refused(init: str, error: type, message: str, **kw) -> None:
        with pytest.raises(error, match=message):
            train_vae(VaeConfig(shards=shards, out=tmp_path / "run", init=init, steps=1,
                                **QUICK, **kw))
        assert not (tmp_path / "run").exists()

    refused(str(tmp_path / "nothing"), FileNotFoundError, "init .*nothing does not exist")
    refused(str(whole_run), VaeError, "is a 'tiny' VAE; pass --arch tiny", arch="wan2.1")
    wider = tmp_path / "wider"
    AutoencoderKLWan(base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1).save_pretrained(wider)
    refused(str(wider), VaeError, "not the 'tiny' architecture .*no architecture in")
    refused(str(wider), VaeError, "not the 'wan2.1' architecture .*no architecture in",
            arch="wan2.1")
    world = tmp_path / "world" / "step-000001"  # a world model's checkpoint
    world.mkdir(parents=True)
    (world / "trainer.json").write_text(json.dumps({"format": checkpoint.FORMAT, "step": 1,
                                                    "config": {"preset": "tiny"}}))
    refused(str(world), VaeError, "is not a training vae checkpoint")
    refused(str(tmp_path), VaeError, "is not a VAE folder")
