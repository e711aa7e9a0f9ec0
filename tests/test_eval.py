"""training eval: the score, the designed scripts, drift, and the command end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from fit_support import shard_set
from test_probe import FOV, rotation_views

from curation.html_page import read_data
from curation.probe_score import score_actions
from datagen.episode import KEYS
from shards.action_space import get_space
from training.action_scripts import SCRIPTS, fits_space, script_actions, script_names
from training.agreement import PSNR_CAP
from training.cli import main as training
from training.evaluate import (
    EVAL_JSON,
    EvalConfig,
    HeldOutClip,
    Reference,
    drift,
    evaluate,
    given_actions,
    read_video,
    score,
    vae_ceiling,
)
from training.fit import FitConfig, fit
from training.sample import SamplerConfig, load_run
from training.vae import WanVAE, build_vae

W = KEYS.index("w")


# --- the score ---------------------------------------------------------------------------------


def test_scores_count_agreement_and_unknown_mouse_frames_count_as_misses():
    t = 6
    keys = np.zeros((t, 7), np.uint8)
    keys[1:, W] = 1
    mouse = np.zeros((t, 2))
    mouse[1:, 0] = 2.0  # turning right 2 deg a frame
    known = np.ones(t, bool)
    perfect = score_actions(keys, mouse, known, keys, mouse)
    assert perfect["keyboard"] == perfect["key_w"] == perfect["direction"] == 1.0
    assert perfect["mouse_median"] == 0.0 and perfect["moving_frames"] == 5
    assert perfect["pressed_w"] == pytest.approx(5 / 6)

    opposite = score_actions(keys, -mouse, known, keys, mouse)
    assert opposite["direction"] == 0.0 and opposite["mouse_median"] == pytest.approx(4.0)

    blind = known.copy()
    blind[1:3] = False
    partly = score_actions(keys, np.where(blind[:, None], mouse, 0.0), blind, keys, mouse)
    assert partly["direction"] == pytest.approx(3 / 5)  # unknown frames are misses here ...
    assert partly["direction_known"] == 1.0  # ... and left out here
    assert partly["unknown"] == pytest.approx(2 / 6)

    no_w = keys.copy()
    no_w[:, W] = 0
    assert score_actions(no_w, mouse, known, keys, mouse)["keyboard"] == pytest.approx(1 / 6)
    still = score_actions(keys, mouse, known, keys, np.zeros((t, 2)))
    assert math.isnan(still["direction"])  # no moving frame: nothing to score
    with pytest.raises(ValueError, match="must be"):
        score_actions(keys[:3], mouse, known, keys, mouse)
    with pytest.raises(ValueError, match="cannot score keys"):
        score_actions(keys, mouse, known, keys, mouse, scored=("shift",))


# --- the designed scripts ------------------------------------------------------------------------


def test_scripts_hold_their_keys_and_turn_at_their_rate_from_row_one():
    keys, mouse = script_actions("w+turn-right", 31, 30.0, turn_deg_s=45.0)
    assert keys[0].sum() == 0 and mouse[0].tolist() == [0.0, 0.0]  # row 0: the first frame
    assert keys[1:, W].all() and keys[1:].sum() == 30
    assert np.allclose(mouse[1:], [1.5, 0.0])  # +dx turns right, 45 deg/s at 30 fps
    _, left = script_actions("turn-left", 5, 15.0)
    _, up = script_actions("look-up", 5, 15.0)
    assert (left[1:, 0] < 0).all() and (up[1:, 1] > 0).all()
    assert not script_actions("idle", 5, 15.0)[0].any()
    assert script_names("all") == list(SCRIPTS) and script_names("") == []
    with pytest.raises(ValueError, match="unknown action scripts"):
        script_names("w,jump")
    driving = get_space("mg2_driving")
    assert fits_space("w", driving) and not fits_space("a", driving)
    assert not fits_space("turn-left", get_space("keys7"))  # no mouse in that space


def test_given_actions_are_what_the_space_passes_on():
    keys = np.zeros((3, 7), np.uint8)
    keys[:, [W, KEYS.index("space"), KEYS.index("a")]] = 1
    mouse = np.full((3, 2), 0.75)
    k, m = given_actions(keys, mouse, get_space("mg2_driving"))
    assert k[:, W].all() and k.sum() == 3  # A and space are not in the driving space
    assert np.allclose(m, mouse)


# --- drift ----------------------------------------------------------------------------------


def test_drift_is_flat_for_a_still_video_and_falls_for_one_that_blurs_to_grey():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    still = drift(np.stack([frame] * 5))
    assert not still["brightness"].any() and not still["frame_diff"].any()
    assert np.allclose(still["contrast"], 1) and np.allclose(still["sharpness"], 1)
    fading = np.stack([(frame * (1 - a) + 100 * a).astype(np.uint8)
                       for a in np.linspace(0, 1, 5)])
    d = drift(fading)
    assert np.all(np.diff(d["contrast"]) < 0) and d["contrast"][-1] < 0.01
    assert np.all(np.diff(d["sharpness"]) < 0) and d["frame_diff"][1:].min() > 0


# --- the probe tells a video that follows its inputs from one that does not ------------------


def test_the_vae_ceiling_of_clips_that_never_turn_has_no_mouse_score_and_is_strict_json():
    torch.manual_seed(0)
    vae = WanVAE(build_vae("tiny"), {"name": "random"})
    still = HeldOutClip(key="still", frames=np.full((9, 32, 64, 3), 128, np.uint8),
                        keys=np.zeros((9, 7), np.uint8), mouse=np.zeros((9, 2)), fps=15.0,
                        fov=90.0)
    ceiling = vae_ceiling(vae, [still])
    assert ceiling["clips"] == 1 and ceiling["frames"] == 9
    for name in ("ground_truth", "autoencoded"):
        assert ceiling[name]["mouse"] is None  # no given turn to score
        assert ceiling[name]["keyboard"] == 1.0  # idle keys agree with a still picture
    json.dumps(ceiling, allow_nan=False)


def test_a_video_that_follows_its_script_scores_high_and_against_another_script_low():
    keys, mouse = script_actions("turn-right", 30, 30.0)
    views = rotation_views(mouse[:, 0], mouse[:, 1])  # a camera that turns exactly as told
    space = get_space("mg2_universal")
    follows = score([read_video(views, *given_actions(keys, mouse, space), FOV, 30.0)],
                    ("w", "s", "a", "d"))
    assert follows["direction"] >= 0.95 and follows["keyboard"] == 1.0
    assert abs(follows["probed_dx"] - 1.5) < 0.1 and follows["unknown"] == 0.0
    other_keys, other_mouse = script_actions("w+turn-left", 30, 30.0)
    ignores = score([read_video(views, *given_actions(other_keys, other_mouse, space), FOV,
                                30.0)], ("w", "s", "a", "d"))
    assert ignores["direction"] == 0.0 and ignores["keyboard"] < 0.1


# --- end to end on a tiny model --------------------------------------------------------------


@pytest.mark.slow
def test_fit_evaluates_at_intervals_and_training_eval_writes_a_deterministic_report(
        tmp_path_factory, tmp_path, capsys):
    data = shard_set(tmp_path_factory)
    run = tmp_path / "run"
    torch.set_num_threads(1)
    fit(FitConfig(out=str(run), shards=str(data["shards"]), vae=str(data["vae"]), frames=9,
                  batch_size=2, steps=4, warmup=1, val_every=0, checkpoint_every=0,
                  eval_every=2, eval_clips=1, eval_scripts="w,turn-left", num_workers=0,
                  progress=False, tensorboard=True))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in rows if "eval_ground_truth_keyboard" in r]
    assert evaluated == [2, 4]
    assert {"eval_recorded_keyboard", "eval_scripts_keyboard", "eval_drift_sharpness"} \
        <= rows[-1].keys()
    assert (run / "eval" / "step-000004" / "index.html").is_file()

    args = ["eval", "--ckpt", str(run), "--shards", str(data["raw"]), "--clips", "2",
            "--scripts", "w,turn-right,idle", "--script-frames", "13", "--steps", "2",
            "--no-progress"]
    assert training([*args, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "ground truth (ceiling)" in printed and "model, designed scripts" in printed
    assert "ground truth through the VAE" in printed
    assert training([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / EVAL_JSON).read_text())
    assert a == json.loads((tmp_path / "b" / EVAL_JSON).read_text())  # same seed, same numbers
    assert read_data(tmp_path / "a" / "index.html") == a
    assert a["step"] == 4 and a["scored_keys"] == ["w", "s", "a", "d"] and len(a["clips"]) == 2
    assert list(a["per_script"]) == ["w", "turn-right", "idle"] and a["script_frames"] == 13
    assert a["autoencoded"]["frames"] == 2 * 9  # two clips, 9 frames each (4k+1) through the VAE
    for group in ("recorded", "ground_truth", "scripts", "autoencoded"):
        s = a[group]
        assert 0 <= s["unknown"] <= 1 and 0 <= s["keyboard"] <= 1 and s["frame_diff"] >= 0
    assert len(a["curves"]["scripts"]["brightness"]) == 13
    videos = sorted(p.name for p in (tmp_path / "a").glob("*.mp4"))
    assert len(videos) == 2 + 3 and "script-turn-right.mp4" in videos

    # against itself as the reference the model agrees exactly; the reference against itself
    # at another noise seed does not, and the model's own numbers are those of the plain run
    assert training([*args, "--reference", str(run), "--out", str(tmp_path / "r")]) == 0
    assert "against the reference" in capsys.readouterr().out
    r = json.loads((tmp_path / "r" / EVAL_JSON).read_text())
    ref = r.pop("reference")
    assert r == a and ref["step"] == 4 and ref["scripts"] == ["w", "turn-right", "idle"]
    assert ref["model"]["psnr"] == ref["model"]["scripts_psnr"] == PSNR_CAP
    assert ref["model"]["response"] == pytest.approx({"cosine": 1.0, "ratio": 1.0})
    assert ref["reference_self"]["psnr"] < PSNR_CAP
    assert ref["reference_self"]["response"]["cosine"] < 1
    assert len(ref["model"]["psnr_curve"]) == a["frames"]
    assert "Against the reference" in (tmp_path / "r" / "index.html").read_text()
    with pytest.raises(ValueError, match="at 30 fps, but the model learnt on 15 fps footage"):
        evaluate(replace(load_run(run), fps=15.0), data["raw"], tmp_path / "e", EvalConfig())
    assert not (tmp_path / "e").exists()
    other = Reference(replace(load_run(run), space=get_space("keys7")))
    with pytest.raises(ValueError, match="cannot be compared"):
        evaluate(load_run(run), data["raw"], tmp_path / "e", EvalConfig(), reference=other)
    assert not (tmp_path / "e").exists()

    # a reference's rollouts are made once per input: a second evaluation (as --eval-every
    # runs one against the frozen teacher) runs none of its model, and gives the same numbers
    reference = Reference(load_run(run))
    cfg = EvalConfig(clips=1, scripts="w,idle", script_frames=13, videos=False)
    sampler = SamplerConfig(steps=2)
    first = evaluate(load_run(run), data["raw"], tmp_path / "f", cfg, sampler,
                     reference=reference)
    calls = []
    reference.run.model.register_forward_hook(lambda *_: calls.append(1))
    again = evaluate(load_run(run), data["raw"], tmp_path / "g", cfg, sampler,
                     reference=reference)
    assert not calls and again["reference"] == first["reference"]

    # without --steps the command samples as fit's --eval-every does, so their numbers compare
    assert training(["eval", "--ckpt", str(run), "--shards", str(data["raw"]), "--clips", "1",
                     "--scripts", "", "--no-progress", "--out", str(tmp_path / "d")]) == 0
    assert json.loads((tmp_path / "d" / EVAL_JSON).read_text())["sampler"] == \
        json.loads((run / "eval" / "step-000004" / EVAL_JSON).read_text())["sampler"]

    assert training(["eval", "--ckpt", str(run), "--shards", str(data["raw"]), "--split",
                     "test", "--out", str(tmp_path / "c")]) == 2
    assert "no test-*.tar shards" in capsys.readouterr().err
    assert training(["eval", "--ckpt", str(run), "--shards", str(data["raw"]), "--scripts",
                     "moonwalk", "--out", str(tmp_path / "c")]) == 2
    assert "unknown action scripts" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
