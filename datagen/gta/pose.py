"""GTA V camera values in the episode contract's frame, in float64.

GTA V's world is already right-handed, Z up, in metres, so positions pass through. Its camera
rotation (``GET_FINAL_RENDERED_CAM_ROT`` with rotation order 2) is ``(rx, ry, rz)`` in degrees:
``rx`` pitch (up positive), ``ry`` roll about the viewing axis, ``rz`` heading, 0 looking north
(+Y) and growing counter-clockwise. The contract's yaw is counted from +X, so ``yaw = rz + 90``;
pitch and roll keep their values, and the composition (heading, then pitch about the camera's
lateral axis, then roll about its viewing axis) is the contract's ``Rz(yaw) Ry(-pitch)
Rx(roll)``. GTA's field of view is vertical; the contract's is horizontal, so it is converted
with the video's aspect ratio.
"""

from __future__ import annotations

import numpy as np

from datagen.rotation import quat_from_ypr, wrap_deg


def horizontal_fov(vertical_deg: np.ndarray | float, width: int, height: int) -> np.ndarray:
    """Horizontal field of view (degrees) of a ``width x height`` image with ``vertical_deg``."""
    half = np.radians(np.asarray(vertical_deg, dtype=np.float64)) / 2.0
    return np.degrees(2.0 * np.arctan(np.tan(half) * (width / height)))


def contract_angles(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(yaw, pitch, roll)`` in the contract's convention from GTA ``rot [..., 3]``."""
    rot = np.asarray(rot, dtype=np.float64)
    return wrap_deg(rot[..., 2] + 90.0), rot[..., 0], rot[..., 1]


def contract_quat(rot: np.ndarray) -> np.ndarray:
    """Camera-to-world quaternions ``(w, x, y, z) [..., 4]`` from GTA ``rot [..., 3]``."""
    return quat_from_ypr(*contract_angles(rot))
