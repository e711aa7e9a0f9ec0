"""The contract's rotation convention, as every recorder and reader relies on it."""

import numpy as np
import pytest

from datagen.rotation import (
    compose_turn,
    intrinsics,
    opencv_rotation,
    quat_from_ypr,
    quat_to_matrix,
    wrap_deg,
    ypr_from_quat,
)


def test_viewing_direction_matches_the_contract():
    rng = np.random.default_rng(0)
    for yaw, pitch in zip(rng.uniform(-180, 180, 50), rng.uniform(-89, 89, 50), strict=True):
        forward = quat_to_matrix(quat_from_ypr(yaw, pitch)) @ np.array([1.0, 0.0, 0.0])
        y, p = np.radians(yaw), np.radians(pitch)
        expected = [np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)]
        np.testing.assert_allclose(forward, expected, atol=1e-15)


def test_left_turn_increases_yaw_and_body_y_points_left():
    m = quat_to_matrix(quat_from_ypr(90.0, 0.0))
    np.testing.assert_allclose(m @ [1, 0, 0], [0, 1, 0], atol=1e-15)  # now facing +Y
    np.testing.assert_allclose(quat_to_matrix(quat_from_ypr(0, 0)) @ [0, 1, 0], [0, 1, 0])


def test_angles_round_trip_through_the_quaternion():
    rng = np.random.default_rng(1)
    yaw, pitch, roll = rng.uniform(-179, 179, 200), rng.uniform(-89, 89, 200), rng.uniform(
        -179, 179, 200)
    q = quat_from_ypr(yaw, pitch, roll)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-15)
    back = ypr_from_quat(q)
    for got, want in zip(back, (yaw, pitch, roll), strict=True):
        np.testing.assert_allclose(wrap_deg(got - want), 0.0, atol=1e-10)


def test_per_tick_composition_equals_the_summed_angles():
    rng = np.random.default_rng(2)
    dyaw, dpitch = rng.normal(0, 2, 5000), rng.normal(0, 0.2, 5000)
    q = quat_from_ypr(0.0, 0.0)
    for dy, dp in zip(dyaw, dpitch, strict=True):
        q = compose_turn(q, dy, dp)
    assert q.dtype == np.float64
    yaw, pitch, roll = ypr_from_quat(q)
    assert wrap_deg(yaw - dyaw.sum()) == pytest.approx(0.0, abs=1e-9)
    assert pitch == pytest.approx(dpitch.sum(), abs=1e-9)
    assert roll == pytest.approx(0.0, abs=1e-9)


def test_wrap_is_half_open_at_minus_180():
    assert wrap_deg(180.0) == 180.0
    assert wrap_deg(-180.0) == 180.0
    np.testing.assert_allclose(wrap_deg(np.array([190.0, -190.0, 540.0, 0.5])),
                               [-170.0, 170.0, 180.0, 0.5])


def test_opencv_camera_axes_and_intrinsics():
    r = opencv_rotation(quat_from_ypr(0.0, 0.0))
    np.testing.assert_allclose(r[:, 2], [1, 0, 0])  # OpenCV z = forward = world +X
    np.testing.assert_allclose(r[:, 0], [0, -1, 0])  # x right = -Y (body +Y is left)
    np.testing.assert_allclose(r[:, 1], [0, 0, -1])  # y down
    fx, fy, cx, cy = intrinsics(90.0, 640, 360)
    assert (fx, fy, cx, cy) == pytest.approx((320.0, 320.0, 320.0, 180.0))
