"""Camera rotations in the episode contract's convention, in float64 end to end.

World frame: right-handed, Z up. Camera body frame: +X forward, +Y left, +Z up.
``R(q) = Rz(yaw) @ Ry(-pitch) @ Rx(roll)`` maps body vectors to world vectors, so the viewing
direction is ``(cos p cos y, cos p sin y, sin p)``: yaw turns left when it grows, pitch looks up.
Quaternions are ``(w, x, y, z)`` arrays; every function works on a single quaternion ``[4]`` or a
batch ``[..., 4]`` and keeps the input dtype (the rotation-precision benchmark runs it in float32
too).
"""

from __future__ import annotations

import numpy as np


def wrap_deg(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap degrees into (-180, 180]."""
    wrapped = -((-np.asarray(angle) + 180.0) % 360.0 - 180.0)
    return wrapped if np.ndim(angle) else float(wrapped)


def _axis_quat(angle_deg: np.ndarray | float, axis: int, dtype: np.dtype) -> np.ndarray:
    half = np.radians(np.asarray(angle_deg, dtype=dtype)) / dtype.type(2)
    q = np.zeros(np.shape(half) + (4,), dtype=dtype)
    q[..., 0] = np.cos(half)
    q[..., 1 + axis] = np.sin(half)
    return q


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion with non-negative ``w`` (the sign is fixed so logs are comparable)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_from_ypr(
    yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float = 0.0,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Quaternion of ``Rz(yaw) Ry(-pitch) Rx(roll)``; angles in degrees."""
    dt = np.dtype(dtype)
    qz = _axis_quat(yaw, 2, dt)
    qy = _axis_quat(-np.asarray(pitch, dtype=dt), 1, dt)
    qx = _axis_quat(roll, 0, dt)
    return quat_normalize(quat_mul(quat_mul(qz, qy), qx))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[..., 3, 3]`` (camera body to world) of unit quaternions."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def ypr_from_quat(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(yaw, pitch, roll)`` in degrees of unit quaternions (inverse of :func:`quat_from_ypr`)."""
    m = quat_to_matrix(np.asarray(q))
    yaw = np.degrees(np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    pitch = np.degrees(np.arctan2(m[..., 2, 0], np.hypot(m[..., 2, 1], m[..., 2, 2])))
    roll = np.degrees(np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    return yaw, pitch, roll


def compose_turn(q: np.ndarray, dyaw: float, dpitch: float) -> np.ndarray:
    """Apply one tick of mouse rotation to ``q``: yaw about world Z, pitch about the body Y axis.

    ``Rz(y + dy) Ry(-(p + dp)) = Rz(dy) [Rz(y) Ry(-p)] Ry(-dp)``, so the yaw step multiplies on the
    left and the pitch step on the right; the product is renormalised every tick.
    """
    dt = q.dtype
    step_yaw = _axis_quat(dyaw, 2, dt)
    step_pitch = _axis_quat(-np.asarray(dpitch, dtype=dt), 1, dt)
    return quat_normalize(quat_mul(quat_mul(step_yaw, q), step_pitch))


def opencv_rotation(q: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation of the OpenCV camera (x right, y down, z forward)."""
    body_from_cv = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return quat_to_matrix(q) @ body_from_cv


def intrinsics(fov_deg: float, width: int, height: int) -> tuple[float, float, float, float]:
    """Pinhole ``(fx, fy, cx, cy)`` of the contract from the horizontal field of view."""
    f = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    return float(f), float(f), width / 2.0, height / 2.0
