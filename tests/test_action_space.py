"""Action spaces: the values of each mapping, the sign convention, and exact invertibility."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datagen.episode import KEYS
from shards import SPACES, ActionSpace, from_space, get_space, to_space


def recorded(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, (n, 7)).astype(np.uint8), rng.uniform(-45, 45, (n, 2))


def test_worldforge_space_is_the_identity():
    keys, mouse = recorded()
    keyboard, ms = to_space(keys, mouse, "worldforge")
    assert keyboard.dtype == np.float32 and ms.dtype == np.float32
    assert np.array_equal(keyboard, keys) and np.array_equal(ms, mouse.astype(np.float32))


def test_mg2_universal_columns_and_units():
    keys = np.zeros((4, 7), np.uint8)
    for row, name in enumerate(("w", "s", "a", "d")):
        keys[row, KEYS.index(name)] = 1
    keys[:, KEYS.index("space")] = 1  # not in the space: dropped
    mouse = np.array([[15.0, 0.0], [0.0, 15.0], [-30.0, 7.5], [1.5, -45.0]])  # dx right, dy up
    keyboard, ms = to_space(keys, mouse, "mg2_universal")
    assert np.array_equal(keyboard, np.eye(4, dtype=np.float32))  # [W, S, A, D]
    # [pitch, yaw] in units of 15 degrees: pitch = dy / 15 (up +), yaw = dx / 15 (right +)
    assert np.array_equal(ms, np.float32([[0, 1], [1, 0], [0.5, -2], [-3, 0.1]]))


def test_mg2_driving_keeps_w_s_and_the_mouse():
    keys = np.zeros((3, 7), np.uint8)
    keys[0, KEYS.index("w")] = keys[1, KEYS.index("s")] = keys[2, KEYS.index("a")] = 1
    keyboard, ms = to_space(keys, np.array([[30.0, 0.0]] * 3), "mg2_driving")
    assert np.array_equal(keyboard, np.float32([[1, 0], [0, 1], [0, 0]]))  # [W, S]
    assert np.array_equal(ms, np.float32([[0, 2]] * 3))


def test_flip_flags_reverse_one_axis_each():
    keys, mouse = recorded()
    base = SPACES["mg2_universal"]
    _, plain = to_space(keys, mouse, base)
    _, yaw = to_space(keys, mouse, dataclasses.replace(base, flip_yaw=True))
    _, pitch = to_space(keys, mouse, dataclasses.replace(base, flip_pitch=True))
    assert np.array_equal(yaw, plain * np.float32([1, -1]))
    assert np.array_equal(pitch, plain * np.float32([-1, 1]))


@pytest.mark.parametrize("flip_yaw", [False, True])
@pytest.mark.parametrize("name", sorted(SPACES))
def test_model_actions_round_trip_exactly(name, flip_yaw):
    space = dataclasses.replace(SPACES[name], flip_yaw=flip_yaw)
    rng = np.random.default_rng(1)
    keyboard = rng.integers(0, 2, (50, len(space.keys))).astype(np.float32)
    mouse = rng.uniform(-3, 3, (50, 2)).astype(np.float32) if space.mouse else None
    keys, ours = from_space(keyboard, mouse, space)
    assert keys.dtype == np.uint8 and ours.dtype == np.float64
    back_keyboard, back_mouse = to_space(keys, ours, space)
    assert np.array_equal(back_keyboard, keyboard)
    assert back_mouse is mouse if mouse is None else np.array_equal(back_mouse, mouse)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_recorded_actions_round_trip_on_the_space_keys(name):
    space = SPACES[name]
    keys, mouse = recorded()
    back_keys, back_mouse = from_space(*to_space(keys, mouse, space), space)
    kept = space.key_index
    assert np.array_equal(back_keys[:, kept], keys[:, kept])
    dropped = [i for i in range(7) if i not in kept]
    assert not back_keys[:, dropped].any()
    if not space.mouse:  # a keyboard-only space gives the mouse back as zeros
        assert not back_mouse.any()
        return
    np.testing.assert_allclose(back_mouse, mouse, rtol=1e-6, atol=1e-12)  # float32 in between


def test_space_without_mouse_returns_none_and_inverts_to_zeros():
    space = ActionSpace("keys_only", ("w", "s", "a", "d", "space"), mouse=False)
    keys, mouse = recorded()
    keyboard, ms = to_space(keys, mouse, space)
    assert ms is None and keyboard.shape == (40, 5)
    back_keys, back_mouse = from_space(keyboard, None, space)
    assert np.array_equal(back_keys[:, :5], keys[:, :5]) and not back_mouse.any()
    with pytest.raises(ValueError, match="has no mouse"):
        from_space(keyboard, mouse, space)


def test_bad_input_is_refused_with_a_reason():
    keys, mouse = recorded()
    with pytest.raises(ValueError, match=r"keys must have shape \[T, 7\], got \[40, 4\]"):
        to_space(keys[:, :4], mouse)
    with pytest.raises(ValueError, match="differ in length: 40 vs 39"):
        to_space(keys, mouse[:-1])
    with pytest.raises(ValueError, match="multi-hot"):
        to_space(keys * 2, mouse)
    with pytest.raises(ValueError, match="non-finite"):
        to_space(keys, np.full((40, 2), np.nan))
    with pytest.raises(ValueError, match="must not be None"):
        from_space(np.zeros((3, 4)), None, "mg2_universal")
    with pytest.raises(ValueError, match="unknown action space 'gta'"):
        get_space("gta")
    with pytest.raises(ValueError, match=r"unknown keys \['q'\]"):
        ActionSpace("bad", ("w", "q"), mouse=True)
    with pytest.raises(ValueError, match="mouse_unit_deg must be positive"):
        ActionSpace("bad", ("w",), mouse=True, mouse_unit_deg=0)
    with pytest.raises(ValueError, match="mouse_order"):
        ActionSpace("bad", ("w",), mouse=True, mouse_order=("yaw", "yaw"))
