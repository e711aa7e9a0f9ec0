"""training.agreement: PSNR against a reference and the agreement of responses to scripts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.agreement import PSNR_CAP, agreement, psnr, psnr_curve, response_agreement


def rollouts(seed: int, scripts: int = 3, starts: int = 2, t: int = 5) -> np.ndarray:
    """Scripted rollouts ``[S, B, T, H, W, 3]``: one shared scene per first frame plus a
    script-dependent shift, frame 0 the same for every script (the given image)."""
    rng = np.random.default_rng(seed)
    scene = rng.uniform(60, 190, (1, starts, t, 8, 12, 3))
    move = rng.normal(0, 20, (scripts, starts, t, 8, 12, 3))
    move[:, :, 0] = 0
    return scene + move


def test_psnr_of_a_known_error_and_of_identical_frames():
    a = np.full((2, 5, 4, 6, 3), 100, np.uint8)
    b = a.copy()
    b[:, 2] += 10  # frame 2 off by 10 levels everywhere
    curve = psnr_curve(b, a)
    assert curve[2] == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert curve[0] == curve[1] == PSNR_CAP
    # over the frames after the first: mean squared error 100 / 4
    assert psnr(b, a) == pytest.approx(10 * math.log10(255 ** 2 / 25))
    assert psnr(a, a) == PSNR_CAP
    with pytest.raises(ValueError, match="cannot be compared"):
        psnr_curve(a[:, :4], a)


def test_a_response_the_same_way_scores_cosine_one_and_its_size_the_ratio():
    ref = rollouts(0)
    mean = ref.mean(axis=0, keepdims=True)
    half = mean + 0.5 * (ref - mean)  # moves where the reference moves, half as much
    same = response_agreement(half, ref)
    assert same["cosine"] == pytest.approx(1.0) and same["ratio"] == pytest.approx(0.5)
    assert response_agreement(ref, ref) == pytest.approx({"cosine": 1.0, "ratio": 1.0})


def test_swapped_scripts_answer_the_other_way_and_unrelated_ones_near_zero():
    ref = rollouts(0, scripts=2)
    swapped = ref[::-1]  # what the reference does for script 1 the model does for script 0
    assert response_agreement(swapped, ref)["cosine"] == pytest.approx(-1.0)
    unrelated = response_agreement(rollouts(1, scripts=2), ref)
    assert abs(unrelated["cosine"]) < 0.1 and unrelated["ratio"] == pytest.approx(1.0, abs=0.1)


def test_ignoring_the_inputs_has_no_response_even_with_the_reference_mean_frames():
    ref = rollouts(0)
    blind = np.repeat(ref.mean(axis=0, keepdims=True), 3, axis=0)  # the same video per script
    got = response_agreement(blind, ref)
    assert got == {"cosine": 0.0, "ratio": 0.0}
    assert response_agreement(ref, blind) == {"cosine": None, "ratio": None}  # nothing to match
    # while its frames are, on average, closer to the reference's than the reference's own
    # responses are to each other
    assert psnr(blind.round().astype(np.uint8), ref.round().astype(np.uint8)) > psnr(
        ref[::-1].round().astype(np.uint8), ref.round().astype(np.uint8))


def test_agreement_reports_recorded_and_scripted_numbers():
    ref = rollouts(0).round().astype(np.uint8)
    out = agreement(ref[0], ref[0], ref, ref)
    assert out["psnr"] == out["scripts_psnr"] == PSNR_CAP
    assert len(out["psnr_curve"]) == ref.shape[2]
    assert out["response"] == pytest.approx({"cosine": 1.0, "ratio": 1.0})
    assert "response" not in agreement(ref[0], ref[0], ref[:1], ref[:1])
    assert set(agreement(ref[0], ref[0])) == {"psnr", "psnr_curve"}
