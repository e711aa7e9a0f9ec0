"""Unreal Engine poses to the contract's frame, checked against hand-computed UE transforms.

The Unreal side is computed here the way the engine does it (``FRotationMatrix`` and
``FRotator::Quaternion``, in float64), independently of the module under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from datagen.rotation import quat_from_ypr, quat_to_matrix, wrap_deg, ypr_from_quat
from datagen.unreal.convert import (
    location_to_contract,
    location_to_unreal,
    quat_to_contract,
    rotator_to_contract,
)

MIRROR = np.diag([1.0, -1.0, 1.0])


def ue_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Unreal's FRotationMatrix: columns are the forward (X), right (Y) and up (Z) axes."""
    sp, cp = math.sin(math.radians(pitch)), math.cos(math.radians(pitch))
    sy, cy = math.sin(math.radians(yaw)), math.cos(math.radians(yaw))
    sr, cr = math.sin(math.radians(roll)), math.cos(math.radians(roll))
    forward = [cp * cy, cp * sy, sp]
    right = [sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp]
    up = [-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp]
    return np.array([forward, right, up]).T


def ue_quat(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Unreal's FRotator::Quaternion, ``(x, y, z, w)``."""
    sp, cp = math.sin(math.radians(pitch) / 2), math.cos(math.radians(pitch) / 2)
    sy, cy = math.sin(math.radians(yaw) / 2), math.cos(math.radians(yaw) / 2)
    sr, cr = math.sin(math.radians(roll) / 2), math.cos(math.radians(roll) / 2)
    return np.array([cr * sp * sy - sr * cp * cy, -cr * sp * cy - sr * cp * sy,
                     cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy])


def xyzw_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return quat_to_matrix(np.array([w, x, y, z]))


ROTATORS = [(0.0, 0.0, 0.0), (0.0, 90.0, 0.0), (30.0, 0.0, 0.0), (0.0, 0.0, 25.0),
            (-20.0, 135.0, 10.0), (45.0, -170.0, -35.0), (89.0, 12.5, 3.0),
            (-60.0, 250.0, 179.0)]


@pytest.mark.parametrize("pitch, yaw, roll", ROTATORS)
def test_unreal_rotations_map_to_the_contracts_angles_and_quaternion(pitch, yaw, roll):
    ue = ue_matrix(pitch, yaw, roll)
    assert np.allclose(xyzw_matrix(ue_quat(pitch, yaw, roll)), ue, atol=1e-12)  # UE agrees
    contract = MIRROR @ ue @ MIRROR  # world mirrored in Y; body (fwd, right, up) -> (fwd, left, up)
    y, p, r = rotator_to_contract(pitch, yaw, roll)
    assert np.allclose(quat_to_matrix(quat_from_ypr(y, p, r)), contract, atol=1e-12)
    q = quat_to_contract(ue_quat(pitch, yaw, roll))
    assert np.allclose(quat_to_matrix(q), contract, atol=1e-12)
    assert q[0] >= 0.0 and abs(np.linalg.norm(q) - 1.0) < 1e-15
    if abs(pitch) < 89.0:  # away from the pole the angles read back exactly
        read = ypr_from_quat(q)
        assert np.allclose([wrap_deg(read[0] - y), read[1] - p, wrap_deg(read[2] - r)], 0.0,
                           atol=1e-9)


def test_looking_along_unreal_axes():
    """Unreal +X forward is the contract's +X; Unreal +Y (right) is the contract's -Y."""
    forward = quat_to_matrix(quat_to_contract(ue_quat(0.0, 90.0, 0.0)))[:, 0]  # yaw right
    assert np.allclose(forward, [0.0, -1.0, 0.0], atol=1e-15)
    assert rotator_to_contract(0.0, 90.0, 0.0)[0] == -90.0
    up = quat_to_matrix(quat_to_contract(ue_quat(30.0, 0.0, 0.0)))[:, 0]
    assert up[2] == pytest.approx(0.5) and rotator_to_contract(30.0, 0.0, 0.0)[1] == 30.0


def test_turning_right_in_unreal_is_a_positive_mouse_dx():
    """The contract's identities hold on converted angles: ``mouse_dx = -(yaw[i] - yaw[i-1])``
    is Unreal's yaw step (turning right), ``mouse_dy`` its pitch step, across the wrap."""
    ue_yaw = np.array([170.0, 175.5, 179.0, -178.0, -170.0])  # right, through 180
    ue_pitch = np.array([0.0, 2.0, 5.0, 4.0, -1.0])
    yaw, pitch, _ = rotator_to_contract(ue_pitch, ue_yaw, np.zeros(5))
    mouse_dx = -wrap_deg(np.diff(yaw))
    assert np.allclose(mouse_dx, [5.5, 3.5, 3.0, 8.0]) and np.allclose(np.diff(pitch),
                                                                       np.diff(ue_pitch))


def test_large_world_locations_keep_their_centimetres():
    """Kilometres from the origin float32 cannot hold a centimetre; the conversion is float64."""
    ue = np.array([[1.2e7 + 0.37, -3.4e7 + 0.01, 1523.25],  # 120 km, 340 km away
                   [0.0, 100.0, 0.0]])
    m = location_to_contract(ue)
    assert m[0].tolist() == [(1.2e7 + 0.37) / 100, (3.4e7 - 0.01) / 100, 15.2325]
    assert m[1].tolist() == [0.0, -1.0, 0.0]
    lost = np.abs(ue[0].astype(np.float32).astype(np.float64) - ue[0]).max()
    assert lost > 0.3  # what a float32 pipeline would have dropped, in centimetres
    assert np.abs(m[0] * np.array([100, -100, 100]) - ue[0]).max() < 1e-6
    assert np.abs(location_to_unreal(m) - ue).max() < 1e-6  # and back


@pytest.mark.parametrize("bad, message", [
    (np.zeros(3), "4 components"), (np.zeros(4), "non-zero"),
    (np.array([0.0, np.nan, 0.0, 1.0]), "finite")])
def test_bad_quaternions_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        quat_to_contract(bad)
    with pytest.raises(ValueError, match="3 coordinates"):
        location_to_contract(np.zeros(2))
