"""Action coverage statistics: counts of known labels, additivity, goals and the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datagen.action_coverage import (
    ACTION_WINDOW,
    DIRECTIONS,
    HOLD_EDGES,
    check_goals,
    count_actions,
    coverage,
    merge_counts,
    summary,
)
from datagen.episode import KEYS

W, S, A, D, SPACE, SHIFT, CTRL = range(7)


def labels(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, len(KEYS)), dtype=np.uint8), np.zeros((n, 2))


def test_counts_keys_pairs_and_combinations():
    keys, mouse = labels(10)
    keys[1:6, W] = 1  # w held 5 frames
    keys[2:4, A] = 1  # w+a on 2 of them
    keys[3, SPACE] = 1  # w+a+space once
    keys[7:9, S] = keys[7:9, CTRL] = 1  # crouching backwards
    counts = count_actions(keys, mouse)
    assert counts["frames"] == 10
    assert counts["keys"] == {"w": 5, "s": 2, "a": 2, "d": 0, "space": 1, "shift": 0, "ctrl": 2}
    assert counts["pairs"]["w+a"] == 2 and counts["pairs"]["w+space"] == 1
    assert counts["pairs"]["moving+ctrl"] == 2 and counts["pairs"]["s+d"] == 0
    assert counts["combos"] == {"none": 3, "w": 3, "w+a": 1, "w+a+space": 1, "s+ctrl": 2}


def test_mouse_directions_follow_the_compass_with_up_positive():
    keys, _ = labels(10)
    mouse = np.array([[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1],
                      [0.01, 0.01], [2, 0.5]], dtype=np.float64)
    counts = count_actions(keys, mouse)
    assert counts["mouse_moving"] == 9  # the 0.014 degree twitch counts as still
    assert counts["directions"] == {"right": 2, "up_right": 1, "up": 1, "up_left": 1,
                                    "left": 1, "down_left": 1, "down": 1, "down_right": 1}
    # magnitudes 1 (x4), sqrt 2 (x4), 2.06: the bins [1, 2) and [2, 5)
    assert sum(counts["magnitudes"]) == 9 and max(counts["magnitudes"]) == 8


def test_holds_measure_press_lengths_and_leave_out_cut_presses():
    keys, mouse = labels(60)
    keys[0:5, W] = 1  # touches the start: cut
    keys[10:13, W] = 1  # 3 frames
    keys[20:35, W] = 1  # 15 frames
    keys[40:52, W] = 1  # 12 frames: one action window
    keys[58:, W] = 1  # touches the end: cut
    counts = count_actions(keys, mouse)
    assert counts["holds"]["w"] == {"lengths": {"3": 1, "12": 1, "15": 1}, "cut": 2}
    holds = coverage(counts)["holds"]["w"]
    assert holds["holds"] == 3 and holds["cut"] == 2
    assert holds["mean_frames"] == 10.0 and holds["median_frames"] == 12.0
    assert holds["within_window"] == pytest.approx(2 / 3)  # 3 and 12 fit a 12-frame window
    assert holds["histogram"][HOLD_EDGES.index(3)] == 1
    assert holds["histogram"][HOLD_EDGES.index(12)] == 2  # 12 and 15 lie in [12, 16)
    keys[20:35, W] = 0  # two presses left: the median is their mean
    assert coverage(count_actions(keys, mouse))["holds"]["w"]["median_frames"] == 7.5


def test_idle_counts_frames_with_no_key_and_a_still_mouse():
    keys, mouse = labels(40)
    keys[:10, D] = 1
    mouse[10:15, 0] = 1.0  # mouse moving, no key: not idle
    counts = count_actions(keys, mouse)
    assert counts["idle"] == 25
    assert counts["idle_windows"] == 25  # one stretch of 25 >= ACTION_WINDOW
    keys[20, W] = 1  # splits the stretch into 5 and 19 frames
    assert count_actions(keys, mouse)["idle_windows"] == 19 >= ACTION_WINDOW


def test_merged_counts_equal_the_counts_of_the_joined_sequence():
    rng = np.random.default_rng(0)
    parts = []
    for n in (50, 80, 30):
        keys = (rng.random((n, len(KEYS))) < 0.3).astype(np.uint8)
        keys[[0, -1]] = 0  # nothing held across the joins (holds and idle stretches stay whole)
        mouse = rng.normal(0.0, 1.0, (n, 2)) * (rng.random((n, 1)) < 0.7)
        mouse[[0, -1]] = 0.0
        parts.append((keys, mouse))
    merged = merge_counts([count_actions(k, m) for k, m in parts])
    whole = count_actions(np.concatenate([k for k, _ in parts]),
                          np.concatenate([m for _, m in parts]))
    assert merged == whole
    assert merge_counts([]) == count_actions(*labels(0))
    assert json.loads(json.dumps(coverage(merged)))["counts"] == merged


def test_goals_name_what_is_missing():
    keys, mouse = labels(100)
    keys[:, W] = 1  # forward only, the mouse turning right only
    mouse[:, 0] = 1.0
    missed = {g.name for g in check_goals(coverage(count_actions(keys, mouse))) if not g.met}
    assert "key w" not in missed and {"key s", "key space", "pair w+a"} <= missed
    assert {f"mouse {d} (x uniform)" for d in DIRECTIONS} <= missed  # right is 8x uniform


def test_uniform_footage_meets_every_goal():
    n = 8 * 100 + 100  # every direction for 100 frames, then 100 idle ones
    keys, mouse = labels(n)
    for k in range(len(KEYS)):  # every key and every listed pair held for stretches
        keys[np.arange(n) % 50 < 10 + 5 * k, k] = 1 if k != SPACE else 0
    keys[np.arange(n) % 40 < 4, SPACE] = 1
    keys[800:] = 0
    angle = np.repeat(np.arange(8) * np.pi / 4, 100)
    mouse[:800, 0], mouse[:800, 1] = np.cos(angle), np.sin(angle)
    cov = coverage(count_actions(keys, mouse))
    assert [g.describe() for g in check_goals(cov) if not g.met] == []
    assert cov["goals_met"] == len(cov["goals"])
    text = summary(cov, fps=30)
    assert "goals  23 of 23 met" in text and len(text.splitlines()) <= 12


@pytest.mark.parametrize("keys, mouse, message", [
    (np.zeros((4, 6)), np.zeros((4, 2)), "keys must have shape"),
    (np.zeros((4, 7)), np.zeros((3, 2)), "mouse must have shape"),
    (np.full((2, 7), 2), np.zeros((2, 2)), "0/1"),
    (np.zeros((2, 7)), np.array([[0.0, np.nan], [0.0, 0.0]]), "finite"),
])
def test_bad_labels_are_refused(keys, mouse, message):
    with pytest.raises(ValueError, match=message):
        count_actions(keys, mouse)
