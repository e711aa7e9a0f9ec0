"""Distillation stage 1: designed actions, the teacher's ODE pairs, and the ODE regression."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fit_support import REPO, shard_set, subprocess_env, write_config
from safetensors.torch import load_file

from curation.report import tar_samples
from datagen.episode import KEYS
from datagen.video import probe
from shards.action_space import to_space
from shards.location import open_shards
from shards.reader import clip_dataset
from training import checkpoint
from training.action_design import ActionDesign, sample_actions
from training.agreement import PSNR_CAP
from training.cli import main as training
from training.conditioning import condition_video
from training.data import Batch
from training.distill import distill_config
from training.dmd import (
    DmdConfig,
    dmd_loss,
    real_score,
    score_noise,
    train_dmd,
)
from training.evaluate import held_out_clips
from training.fit import FitConfig, fit
from training.flow import ode_grid, to_x0
from training.losses import ode_loss, velocity_loss
from training.ode_pairs import PairsConfig, make_pairs
from training.sample import SamplerConfig, denoise, load_run

COL = {k: i for i, k in enumerate(KEYS)}


def test_designed_actions_hold_keys_like_a_person_and_cover_every_move():
    rng = np.random.default_rng(0)
    keys, mouse = sample_actions(30 * 600, 30.0, rng)
    assert np.array_equal(keys[0], keys[1]) and np.array_equal(mouse[0], mouse[1])
    moves = keys[:, [COL[k] for k in "wsad"]]
    change = np.flatnonzero(np.any(np.diff(moves, axis=0) != 0, axis=1)) + 1
    holds = np.diff(np.concatenate([[1], change, [len(keys)]]))
    assert holds[:-1].min() >= 12  # every combination is held for at least 0.4 s at 30 fps
    combos = {tuple(np.flatnonzero(r)) for r in moves}
    assert {(0,), (1,), (2,), (3,), (0, 2), (0, 3), (1, 2), (1, 3), ()} <= combos
    assert keys[:, COL["w"]].mean() > keys[:, COL["s"]].mean()  # forward is the common case
    assert (mouse[:, 0] > 0).any() and (mouse[:, 0] < 0).any() and (mouse[:, 1] != 0).any()
    assert np.abs(mouse[:, 0]).max() <= 90 / 30 + 1e-9
    assert keys[:, COL["space"]].any() and keys[:, COL["shift"]].any()
    again = sample_actions(30 * 600, 30.0, np.random.default_rng(0))
    assert np.array_equal(again[0], keys) and np.array_equal(again[1], mouse)
    with pytest.raises(ValueError, match="idle must be in"):
        ActionDesign(idle=1.5)


def test_the_teacher_grid_passes_through_the_student_timesteps():
    sigmas, marks = ode_grid((1000.0, 666.0, 333.0), 16, 5.0)
    assert len(sigmas) == 49 and marks == [0, 16, 32] and sigmas[-1] == 0
    assert np.allclose((1000 * sigmas[marks]).tolist(), [1000.0, 908.84, 713.98], atol=0.01)
    assert torch.all(sigmas[1:] < sigmas[:-1])
    late, marks = ode_grid((750.0, 250.0), 2, 1.0)
    assert late.tolist() == [1.0, 0.875, 0.75, 0.5, 0.25, 0.125, 0.0] and marks == [2, 4]
    with pytest.raises(ValueError, match="decreasing"):
        ode_grid((333.0, 666.0), 4, 5.0)
    seen = []
    denoise(lambda x, t, *a: torch.zeros_like(x), torch.zeros(1, 16, 2, 2, 2),
            torch.zeros(1, 17, 192), torch.zeros(1, 5, 4), None, SamplerConfig(guidance=1.0),
            torch.Generator().manual_seed(0), sigmas=late,
            visit=lambda i, x: seen.append(i))
    assert seen == list(range(7))  # every point, the clean end too


class Capture(torch.nn.Module):
    """Records its inputs; predicts the velocity of a fixed ``target`` x0."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target, self.calls = target, []
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, cond, image, keyboard, mouse, frame_mask=None):
        self.calls.append((x.clone(), t.clone()))
        sigma = (t / 1000).clamp_min(1e-6)[:, None, :, None, None]
        return (x - self.target) / sigma + self.w


def test_ode_regression_draws_one_stored_point_per_block_and_targets_the_clean_end():
    g = torch.Generator().manual_seed(0)
    b, k, f = 4, 3, 7
    trajectory = torch.randn(b, k, 16, f, 2, 2, generator=g)
    x0 = torch.randn(b, 16, f, 2, 2, generator=g)
    batch = Batch(keys=["a"] * b, latents=x0, cond=torch.zeros(b, 20, f, 2, 2),
                  image=torch.zeros(b, 17, 192), keyboard=torch.zeros(b, 25, 4), mouse=None,
                  ode=trajectory)
    sigmas = torch.tensor([1.0, 0.9, 0.7])
    model = Capture(x0)
    cfg = FitConfig(objective="ode", causal_block=3, shards="x")
    loss, _ = ode_loss(model, batch, cfg, torch.Generator().manual_seed(1), sigmas=sigmas)
    assert loss.item() < 1e-10  # a model that knows the clean end has nothing to learn
    x_t, t = model.calls[0]
    assert (t[:, 0] == 0).all() and torch.equal(x_t[:, :, 0], x0[:, :, 0])  # the image
    for i in range(b):
        for block in ((1, 2), (3, 4, 5), (6,)):
            levels = {round(t[i, j].item(), 3) for j in block}
            assert len(levels) == 1  # one stored point per block ...
            point = [round(1000 * s, 3) for s in sigmas.tolist()].index(levels.pop())
            for j in block:  # ... and its latents are that point's
                assert torch.equal(x_t[i, :, j], trajectory[i, point, :, j])
    wrong = Capture(torch.zeros_like(x0))
    bad, _ = ode_loss(wrong, batch, cfg, torch.Generator().manual_seed(1), sigmas=sigmas)
    bad.backward()
    assert bad.item() > 0.5 and torch.isfinite(wrong.w.grad)
    with pytest.raises(ValueError, match="needs ODE pairs"):
        ode_loss(model, Batch(**{**batch.__dict__, "ode": None}), cfg,
                 torch.Generator(), sigmas=sigmas)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    data = shard_set(tmp_path_factory)
    run = tmp_path_factory.mktemp("teacher") / "run"
    torch.set_num_threads(1)
    fit(FitConfig(out=str(run), shards=str(data["shards"]), vae=str(data["vae"]), frames=9,
                  batch_size=2, steps=150, lr=5e-3, warmup=2, ema_decay=0.9, val_every=0,
                  checkpoint_every=0,
                  num_workers=0, progress=False))
    return {**data, "teacher": run}


@pytest.mark.slow
def test_odepairs_are_the_teachers_trajectories_as_shards_byte_for_byte(teacher, tmp_path):
    cfg = PairsConfig(teacher=teacher["teacher"], shards=teacher["shards"], out=tmp_path / "a",
                      count=3, val_count=1, substeps=2, batch_size=2, maxcount=2, progress=False)
    make_pairs(cfg)
    make_pairs(PairsConfig(**{**cfg.__dict__, "out": tmp_path / "b"}))
    tars = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert tars == ["train-000000.tar", "train-000001.tar", "val-000000.tar"]
    for name in tars:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    info = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert info["counts"]["train"]["clips"] == 3 and info["ode"]["step"] == 150
    assert np.allclose(info["ode"]["sigmas"], [1.0, 0.908843, 0.713979], atol=1e-5)
    samples = list(clip_dataset(open_shards(tmp_path / "a", "train"), space="mg2_universal"))
    assert len(samples) == 3
    s = samples[0]
    assert s["ode"].shape == (3, 16, 3, 4, 8) and s["latents"].shape == (2, 16, 3, 4, 8)
    assert s["video"].shape == (9, 32, 64, 3) and s["pose"][:, :3].abs().max() == 0
    # the stored points are the teacher's own Euler trajectory through the student's steps:
    # sample the first batch (two pairs, seed 0) again and compare
    run = load_run(teacher["teacher"])
    clips = held_out_clips(teacher["shards"], "train", 2)
    first = torch.from_numpy(np.stack([c.frames[0] for c in clips])).permute(0, 3, 1, 2)
    first = first.float() / 127.5 - 1
    raw = [m for _, m in tar_samples(tmp_path / "a" / "train-000000.tar")]
    mapped = [to_space(np.load(io.BytesIO(m["keys.npy"])),
                       np.load(io.BytesIO(m["mouse.npy"])).astype(np.float64), run.space)
              for m in raw]
    grid, marks = ode_grid((1000.0, 666.0, 333.0), 2, 5.0)
    kept = {}
    x0 = denoise(run.model, run.vae.encode(condition_video(first, 9)), run.images(first),
                 torch.from_numpy(np.stack([k for k, _ in mapped])),
                 torch.from_numpy(np.stack([m for _, m in mapped])),
                 SamplerConfig(steps=6, shift=5.0, guidance=3.0), torch.Generator().manual_seed(0),
                 sigmas=grid, visit=lambda i, x: kept.update({i: x.clone()}))
    for j in range(2):
        # the image condition is the source frame the teacher saw, not the re-encoded video's
        assert torch.equal(samples[j]["first"], torch.from_numpy(clips[j].frames[0]))
        assert torch.allclose(samples[j]["latents"][0].float(), x0[j], atol=2e-2)
        for point, mark in enumerate(marks):
            assert torch.allclose(samples[j]["ode"][point].float(), kept[mark][j], atol=2e-2)
    assert samples[0]["ode"][0, :, 1:].std() > 0.8  # sigma 1: noise
    assert training(["odepairs", "--teacher", str(teacher["teacher"]), "--shards",
                     str(teacher["shards"]), "--out", str(tmp_path / "a")]) == 2


@pytest.mark.slow
def test_distill_stage_one_moves_the_student_to_the_teacher_resumes_exactly_and_plays(
        teacher, tmp_path, capsys):
    pairs = tmp_path / "pairs"
    make_pairs(PairsConfig(teacher=teacher["teacher"], shards=teacher["shards"], out=pairs,
                           count=8, val_count=2, substeps=2, batch_size=4, progress=False))
    common = ["--teacher", str(teacher["teacher"]), "--pairs", str(pairs), "--batch-size", "2",
              "--lr", "2e-3", "--warmup", "1", "--val-every", "20", "--val-batches", "1",
              "--num-workers", "0", "--progress", "false", "--shuffle", "4", "--decay-steps", "40"]
    # a toy student from scratch (not the teacher's weights) learns the teacher's clean ends
    toy = distill_config(teacher["teacher"], pairs, tmp_path / "toy", flags={
        "init_run": "", "batch_size": 2, "lr": 5e-3, "warmup": 1, "steps": 60, "val_every": 30,
        "val_batches": 1, "num_workers": 0, "progress": False, "checkpoint_every": 0})
    summary = fit(toy)
    assert np.isfinite(summary.val_loss) and summary.val_loss < 0.5 * summary.first_val_loss

    whole = tmp_path / "whole"
    assert training(["distill", *common, "--out", str(whole), "--steps", "40",
                     "--checkpoint-every", "20", "--eval-every", "40", "--eval-clips", "1",
                     "--eval-scripts", "w,turn-left", "--sample-every", "40"]) == 0
    assert "play it with training play" in capsys.readouterr().out
    rows = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert "eval_ground_truth_mouse" in rows[-1]  # evaluated block by block, as it will play
    report = json.loads((whole / "eval" / "step-000040" / "eval.json").read_text())
    assert list(report["per_script"]) == ["w", "turn-left"] and report["script_frames"] == 25
    # and against the teacher, the reference a distilled student is compared with by default
    assert report["reference"]["scripts"] == ["w", "turn-left"]
    assert rows[-1]["eval_reference_psnr"] < PSNR_CAP  # a student is not its teacher
    assert "eval_reference_self_psnr" in rows[-1]
    trainer = checkpoint.read_trainer(checkpoint.latest(whole))
    assert trainer["stream"] == {"block": 3, "local": 6, "sink": 0,
                                 "timesteps": [1000.0, 666.0, 333.0], "shift": 5.0}
    assert trainer["config"]["objective"] == "ode" and trainer["config"]["causal_block"] == 3
    # sample videos played block by block beside the held-out pairs' clips, two panels wide
    videos = sorted((whole / "samples" / "step-000040").glob("*.mp4"))
    assert len(videos) == 2 and probe(videos[0]).frames == 9
    assert probe(videos[0]).width == 2 * (2 * probe(videos[0]).height)  # two 2:1 panels

    part = tmp_path / "part"
    assert training(["distill", *common, "--out", str(part), "--steps", "20",
                     "--checkpoint-every", "20"]) == 0
    assert training(["distill", *common, "--out", str(part), "--steps", "40",
                     "--checkpoint-every", "20", "--resume", "true"]) == 0
    resumed = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("loss"), r.get("val_loss")) for r in resumed] == \
        [(r["step"], r.get("loss"), r.get("val_loss")) for r in rows]

    episode = sorted((teacher["raw"].parent / "episodes").glob("*/*/actions.csv"))[0].parent
    capsys.readouterr()
    assert training(["play", "--ckpt", str(whole), "--image", str(episode / "video.mp4"),
                     "--actions", str(episode), "--frames", "21",
                     "--out", str(tmp_path / "play.mp4")]) == 0
    assert "block 2: 12 frames" in capsys.readouterr().out


# --- stage 2: DMD self-forcing --------------------------------------------------------------


def test_the_dmd_gradient_is_fake_minus_real_scaled_and_vanishes_when_they_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 4, 2, 2, generator=g).requires_grad_()
    real = torch.randn(2, 16, 4, 2, 2, generator=g)
    dmd_loss(x, real.clone(), real).backward()
    assert x.grad.abs().max() == 0  # the critic agrees with the teacher: nothing to learn
    x.grad = None
    fake = real + 0.5
    dmd_loss(x, fake, real).backward()
    scale = (x.detach() - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    expected = (fake - real) / scale / x[:, :, 1:].numel()
    assert torch.allclose(x.grad[:, :, 1:], expected[:, :, 1:], rtol=1e-4)
    assert x.grad[:, :, 0].abs().max() == 0  # the image latent is given, not generated


def test_students_of_released_configurations_stream_as_the_released_ones(tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "dataset.json").write_text(json.dumps({"ode": {}, "clip_frames": 9}))
    for preset, window in (("mg2-gta-drive", 4), ("mg2-universal", 6)):
        step = tmp_path / preset / "step-000001"
        step.mkdir(parents=True)
        config = dataclasses.asdict(FitConfig(preset=preset, shards="s"))
        (step / checkpoint.TRAINER_JSON).write_text(json.dumps(
            {"format": checkpoint.FORMAT, "config": config}))
        cfg = distill_config(step, pairs, tmp_path / "student")
        assert (cfg.causal_block, cfg.causal_local) == (3, window)
        assert distill_config(step, pairs, tmp_path / "s", flags={"causal_local": 5}) \
            .causal_local == 5
    # the foundation model's student has action modules in blocks 0-14, as the released ones
    step = tmp_path / "mg2-foundation" / "step-000001"
    step.mkdir(parents=True)
    (step / checkpoint.TRAINER_JSON).write_text(json.dumps({"format": checkpoint.FORMAT, "config":
        dataclasses.asdict(FitConfig(preset="mg2-foundation", shards="s"))}))
    assert distill_config(step, pairs, tmp_path / "student").preset == "mg2-universal"
    # unless the teacher chose its own action blocks: the student keeps them
    (step / checkpoint.TRAINER_JSON).write_text(json.dumps({"format": checkpoint.FORMAT, "config":
        dataclasses.asdict(FitConfig(preset="mg2-foundation", shards="s", action_blocks="0-9"))}))
    student = distill_config(step, pairs, tmp_path / "student")
    assert (student.preset, student.action_blocks) == ("mg2-foundation", "0-9")


class Toy(torch.nn.Module):
    """A teacher whose velocity is 1 plus the number of keys held (its actions' effect)."""

    def forward(self, x, t, cond, image, keyboard, mouse):
        return torch.ones_like(x) + keyboard.sum(dim=(1, 2)).view(-1, 1, 1, 1, 1)


def test_the_real_score_guides_the_teacher_on_the_actions():
    x_t = torch.zeros(2, 16, 3, 1, 1)
    sigma = torch.full((2, 3), 0.5)
    batch = Batch(keys=["a", "b"], latents=x_t, cond=x_t, image=torch.zeros(2, 1, 4),
                  keyboard=torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]]), mouse=None)
    for guidance in (1.0, 3.0):
        r = real_score(Toy(), x_t, sigma, batch, guidance)
        # v = v0 + g (va - v0): 1 + g for a clip with one key held, 1 for one with none
        assert torch.allclose(r[0], torch.full_like(r[0], -0.5 * (1 + guidance)))
        assert torch.allclose(r[1], torch.full_like(r[1], -0.5))


def gaussian_x0(x_t: torch.Tensor, sigma: torch.Tensor, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """``E[x0 | x_t]`` for ``x0 ~ N(mean, std^2)`` and ``x_t = (1 - sigma) x0 + sigma eps``: the
    exact denoiser of a Gaussian, a perfect score model of one."""
    s = sigma[:, None, :, None, None]
    gain = (1 - s) * std**2 / ((1 - s) ** 2 * std**2 + s**2)
    return mean + gain * (x_t - (1 - s) * mean)


@pytest.mark.parametrize("start, close", [
    ((2.0, 2.0), lambda a, b: abs(b - 0.5) < 0.25),  # too wide: narrows
    ((2.0, 0.1), lambda a, b: abs(b - 0.5) < 0.1),  # too narrow: widens
    ((-1.0, 0.5), lambda a, b: abs(a - 2.0) < 0.35),  # off by 6 teacher stds: comes over
])
def test_dmd_moves_a_toy_student_to_its_teachers_distribution(start, close):
    # the teacher: latents ~ N(2, 0.5^2); the student: x = a + b z. Its update is DMD's own
    # (score timesteps from score_noise, gradient from dmd_loss); both scores are exact, as a
    # critic that has caught up with the student would give. (While the mean is off, the
    # per-sample normaliser mean|x - r| widens the student: far samples' pulls count less.)
    cfg = DmdConfig(student="s", teacher="t", shards="d", out="o")
    a, b = (torch.tensor(v, requires_grad=True) for v in start)
    optimizer = torch.optim.Adam([a, b], lr=0.02)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        x = a + b * torch.randn(64, 1, 2, 1, 1, generator=g)  # frame 0 is the given image
        x_t, sigma, _ = score_noise(x.detach(), cfg, 5.0, g)
        fake = gaussian_x0(x_t, sigma, a.detach(), b.detach())
        real = gaussian_x0(x_t, sigma, torch.tensor(2.0), torch.tensor(0.5))
        optimizer.zero_grad()
        dmd_loss(x, fake, real).backward()
        optimizer.step()
    assert close(a.item(), b.item()), (a.item(), b.item())


def gaussian_v(x_t: torch.Tensor, sigma: torch.Tensor, mean: torch.Tensor,
               std: torch.Tensor) -> torch.Tensor:
    """The velocity a model of ``N(mean, std^2)`` predicts (kept finite at the clean frame 0,
    which no loss counts)."""
    s = sigma[:, None, :, None, None].clamp_min(1e-6)
    return (x_t - gaussian_x0(x_t, sigma, mean, std)) / s


def two_player_dmd(start: tuple[float, float], critic_updates: int, seed: int = 0
                   ) -> tuple[float, float, float, float]:
    """DMD's two players as ``training dmd`` runs them, on Gaussians: per student update,
    ``critic_updates`` flow-matching updates of the critic on fresh student samples
    (``velocity_loss``), then the student's update from the critic's and the teacher's clean
    latents (``dmd_loss``). The teacher is a perfect model of N(2, 0.5^2); the critic a model
    N(mu, s^2) that starts as the teacher, as the real critic starts as the teacher's copy;
    the student x = a + b z starts at ``start``. Returns the final a, |b|, mu, |s| (signs are
    no matter: z is symmetric)."""
    cfg = DmdConfig(student="s", teacher="t", shards="d", out="o")
    a, b = (torch.tensor(v, requires_grad=True) for v in start)
    mu, s = torch.tensor(2.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    student_opt = torch.optim.Adam([a, b], lr=0.01)
    critic_opt = torch.optim.Adam([mu, s], lr=0.05)
    teacher = torch.tensor(2.0), torch.tensor(0.5)
    g = torch.Generator().manual_seed(seed)
    for _ in range(1000):
        for _ in range(critic_updates):
            x = (a + b * torch.randn(256, 1, 2, 1, 1, generator=g)).detach()
            x_t, sigma, noise = score_noise(x, cfg, 5.0, g)
            critic_opt.zero_grad()
            velocity_loss(gaussian_v(x_t, sigma, mu, s), x, noise).backward()
            critic_opt.step()
        x = a + b * torch.randn(256, 1, 2, 1, 1, generator=g)
        x_t, sigma, _ = score_noise(x.detach(), cfg, 5.0, g)
        with torch.no_grad():
            fake = to_x0(x_t, gaussian_v(x_t, sigma, mu, s), sigma)
            real = to_x0(x_t, gaussian_v(x_t, sigma, *teacher), sigma)
        student_opt.zero_grad()
        dmd_loss(x, fake, real).backward()
        student_opt.step()
    return a.item(), abs(b.item()), mu.item(), abs(s.item())


@pytest.mark.parametrize("start", [(1.0, 0.5), (2.0, 2.0), (2.0, 0.1)])
def test_a_critic_trained_on_the_students_rollouts_leads_it_to_the_teacher(start):
    def distance(mean: float, std: float) -> float:  # 2-Wasserstein, to N(2, 0.5^2)
        return math.hypot(mean - 2.0, std - 0.5)

    a, b, mu, s = two_player_dmd(start, critic_updates=5)
    assert distance(a, b) < 0.4 * distance(*start), (a, b)  # the student nears the teacher
    assert math.hypot(mu - a, s - b) < 0.15, (a, b, mu, s)  # the critic follows the student
    # a critic that is not trained stays the teacher: no gradient, and the student stays put
    assert two_player_dmd(start, critic_updates=0)[:2] == pytest.approx(start)


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory) -> Path:
    """A stage-1 student of the tiny teacher: the DMD tests' generator."""
    root = tmp_path_factory.mktemp("stage-one")
    make_pairs(PairsConfig(teacher=teacher["teacher"], shards=teacher["shards"],
                           out=root / "pairs", count=4, val_count=0, substeps=2, batch_size=4,
                           progress=False))
    fit(distill_config(teacher["teacher"], root / "pairs", root / "student", flags={
        "batch_size": 2, "steps": 4, "val_every": 0, "num_workers": 0, "progress": False,
        "checkpoint_every": 0}))
    return root / "student"


@pytest.mark.slow
def test_a_student_may_carry_action_modules_in_fewer_blocks_than_its_teacher(teacher, student,
                                                                            tmp_path, capsys):
    run = tmp_path / "half"
    common = ["--teacher", str(teacher["teacher"]), "--pairs", str(student.parent / "pairs"),
              "--steps", "1", "--lr", "1e-12", "--batch-size", "2", "--val-every", "0",
              "--num-workers", "0", "--no-progress"]
    assert training(["distill", *common, "--out", str(run), "--action-blocks", "0"]) == 0
    assert "but for the action modules of blocks [1]" in capsys.readouterr().out
    final = checkpoint.latest(run)
    assert checkpoint.read_trainer(final)["model"]["action"]["blocks"] == [0]
    ours = checkpoint.load_weights(final, ema=False)
    start = checkpoint.load_weights(checkpoint.latest(teacher["teacher"]), ema=True)
    assert set(start) - set(ours) == {k for k in start if k.startswith("blocks.1.action_model")}
    assert all(torch.allclose(ours[k], start[k], atol=1e-9) for k in ours)
    # DMD pairs it with its teacher (whose critic keeps every action module), and it plays
    summary = train_dmd(DmdConfig(student=str(run), teacher=str(teacher["teacher"]),
                                  shards=str(teacher["shards"]), out=str(tmp_path / "dmd"),
                                  steps=1, batch_size=1, critic_updates=1, num_workers=0,
                                  progress=False))
    assert np.isfinite(summary.dmd_loss)
    episode = sorted((teacher["raw"].parent / "episodes").glob("*/*/actions.csv"))[0].parent
    assert training(["play", "--ckpt", str(tmp_path / "dmd"), "--image",
                     str(episode / "video.mp4"), "--actions", str(episode), "--frames", "9",
                     "--out", str(tmp_path / "half.mp4"), "--no-progress"]) == 0
    # another model, or action modules the teacher lacks, cannot start from it
    capsys.readouterr()
    assert training(["distill", *common, "--out", str(tmp_path / "x"), "--preset",
                     "small"]) == 2
    assert "needs the same model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def trace(rows: list[dict]) -> list[tuple]:
    return [(r["step"], r["dmd_loss"], r["critic_loss"], r["exit_step"]) for r in rows]


def test_score_timesteps_are_drawn_uniformly_then_shifted_then_clamped():
    x = torch.randn(4000, 16, 3, 1, 1)
    cfg = DmdConfig(student="s", teacher="t", shards="d", out="o")
    _, sigma, _ = score_noise(x, cfg, 5.0, torch.Generator().manual_seed(0))
    t = 1000 * sigma[:, 1].double()
    assert (sigma[:, 0] == 0).all() and (sigma[:, 1:] == sigma[:, 1:2]).all()
    assert t.min() >= 20 - 1e-3 and t.max() <= 980 + 1e-3  # sigma is float32
    # shift 5 sends u above 0.98 / (5 - 4 * 0.98) = 0.907 past 980: about 9 % sit on the clamp
    assert 0.07 < (t > 980 - 1e-3).double().mean() < 0.11
    assert abs((t < 500).double().mean() - 1 / 6) < 0.03  # shifted: P(t < 500) = 0.5 / 3


@pytest.mark.slow
def test_dmd_trains_the_student_on_its_own_rollouts_and_resumes_exactly(teacher, student,
                                                                         tmp_path, capsys):
    common = dict(student=str(student), teacher=str(teacher["teacher"]),
                  shards=str(teacher["shards"]), batch_size=1, critic_updates=2, lr=1e-3,
                  critic_lr=1e-3, num_workers=0, shuffle=4, progress=False,
                  checkpoint_every=2, grad_accum=2)
    whole = train_dmd(DmdConfig(out=str(tmp_path / "whole"), steps=4, sample_every=2,
                                eval_every=4, eval_clips=1, eval_scripts="turn-right",
                                tensorboard=True, **common))
    assert whole.step == 4 and np.isfinite(whole.dmd_loss) and np.isfinite(whole.critic_loss)
    rows = metrics(tmp_path / "whole")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(0 <= r["exit_step"] < 3 and r["grad_norm"] > 0 for r in rows)
    assert (tmp_path / "whole" / "samples" / "step-000002" / "designed.mp4").is_file()
    assert "eval_ground_truth_keyboard" in rows[-1]
    assert rows[-1]["eval_reference_psnr"] < PSNR_CAP  # against the teacher's rollouts
    assert (tmp_path / "whole" / "eval" / "step-000004" / "index.html").is_file()
    final = checkpoint.latest(tmp_path / "whole")
    assert (final / "critic.safetensors").is_file()
    assert checkpoint.read_trainer(final)["stream"]["block"] == 3
    episode = sorted((teacher["raw"].parent / "episodes").glob("*/*/actions.csv"))[0].parent
    assert training(["play", "--ckpt", str(tmp_path / "whole"), "--image",
                     str(episode / "video.mp4"), "--actions", str(episode), "--frames", "21",
                     "--out", str(tmp_path / "dmd.mp4"), "--no-progress"]) == 0
    capsys.readouterr()
    assert training(["eval", "--ckpt", str(tmp_path / "whole"), "--shards", str(teacher["raw"]),
                     "--clips", "1", "--scripts", "w", "--script-frames", "13", "--no-progress",
                     "--out", str(tmp_path / "eval")]) == 0
    assert f"add --reference {teacher['teacher']} to compare" in capsys.readouterr().out
    before = checkpoint.load_weights(checkpoint.step_folder(student))
    after = checkpoint.load_weights(final)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the student moved

    train_dmd(DmdConfig(out=str(tmp_path / "part"), steps=2, **common))
    # continued with the critic's activations recomputed in backward: the same numbers
    train_dmd(DmdConfig(out=str(tmp_path / "part"), steps=4, resume=True,
                        gradient_checkpointing=True, **common))
    assert trace(metrics(tmp_path / "part")) == trace(rows)
    a, b = checkpoint.load_weights(final), checkpoint.load_weights(checkpoint.latest(
        tmp_path / "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def torchrun_dmd(folder: Path, name: str, **values) -> tuple[Path, Path]:
    """Run ``training dmd`` on 2 gloo ranks with ``values``: its run folder and the ranks'
    records (tests/fit_support.py)."""
    run, record = folder / name, folder / f"{name}-record"
    config = write_config(folder / f"{name}.toml", out=str(run), **values)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(REPO / "tests" / "fit_support.py"),
                           "dmd", str(config), str(record)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return run, record


@pytest.fixture(scope="module")
def dmd_settings(teacher, student) -> dict:
    return dict(student=str(student), teacher=str(teacher["teacher"]),
                shards=str(teacher["shards"]), batch_size=1, critic_updates=2, lr=1e-3,
                critic_lr=1e-3, num_workers=0, shuffle=4, progress=False, checkpoint_every=2,
                device="cpu")


@pytest.fixture(scope="module")
def dmd_ddp(dmd_settings, tmp_path_factory) -> tuple[Path, Path]:
    return torchrun_dmd(tmp_path_factory.mktemp("dmd-ddp"), "whole", steps=4, **dmd_settings)


@pytest.mark.slow
def test_dmd_under_torchrun_keeps_ranks_identical_on_disjoint_data_and_resumes_exactly(
        student, dmd_settings, dmd_ddp, tmp_path):
    whole, record = dmd_ddp
    rows = metrics(whole)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # logged once, by rank 0
    assert all(np.isfinite(r["dmd_loss"]) and r["grad_norm"] > 0 for r in rows)
    # both ranks end with the same generator and critic: the gradients were averaged, though
    # each rank rolled out its own clips with its own noise
    for name in ("weights", "critic"):
        a, b = (load_file(str(record / f"{name}-{r}.safetensors")) for r in range(2))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    saved = checkpoint.load_weights(checkpoint.latest(whole))
    mine = load_file(str(record / "weights-0.safetensors"))
    assert all(torch.equal(saved[k], mine[k]) for k in saved)
    start = checkpoint.load_weights(checkpoint.step_folder(student))
    assert any(not torch.equal(start[k], saved[k]) for k in start)
    taken = [json.loads((record / f"keys-{r}.json").read_text()) for r in range(2)]
    per_update = 2 + 1  # two critic rollouts and one generator rollout, one clip each
    assert [len(t) for t in taken] == [4 * per_update] * 2
    assert {e for e, _ in taken[0]} & {e for e, _ in taken[1]} >= {0}
    for epoch in {e for e, _ in taken[0]} & {e for e, _ in taken[1]}:
        mine, theirs = ({k for e, k in t if e == epoch} for t in taken)
        assert not mine & theirs, epoch

    part, _ = torchrun_dmd(tmp_path, "part", steps=2, **dmd_settings)
    torchrun_dmd(tmp_path, "part", steps=4, resume=True, **dmd_settings)
    assert trace(metrics(part)) == trace(rows)
    resumed = checkpoint.load_weights(checkpoint.latest(part))
    assert all(torch.equal(saved[k], resumed[k]) for k in saved)


@pytest.mark.slow
def test_dmd_with_fsdp_trains_like_whole_models_and_saves_full_weights(dmd_settings, dmd_ddp,
                                                                         tmp_path):
    fsdp, record = torchrun_dmd(tmp_path, "fsdp", steps=4, parallel="fsdp", **dmd_settings)
    a, b = metrics(dmd_ddp[0]), metrics(fsdp)
    assert [r["exit_step"] for r in a] == [r["exit_step"] for r in b]
    for x, y in zip(a, b, strict=True):
        for key in ("dmd_loss", "critic_loss", "grad_norm"):
            assert y[key] == pytest.approx(x[key], rel=1e-3, abs=1e-6), (x["step"], key)
    final = {run: checkpoint.latest(run) for run in (dmd_ddp[0], fsdp)}
    for companion in ("", "critic"):
        whole, sharded = (checkpoint.load_weights(final[run]) if not companion else
                          load_file(str(final[run] / f"{companion}.safetensors"))
                          for run in (dmd_ddp[0], fsdp))
        assert whole.keys() == sharded.keys()
        for name, value in whole.items():
            assert torch.allclose(sharded[name], value, rtol=1e-3, atol=1e-5), (companion, name)
    shards = [load_file(str(record / f"weights-{r}.safetensors")) for r in range(2)]
    name = "blocks.0.ffn.0.weight"  # sharded along dim 0 between the ranks
    full = checkpoint.load_weights(final[fsdp])[name]
    assert shards[0][name].shape[0] + shards[1][name].shape[0] == full.shape[0]
