"""Unreal Engine poses in the episode contract's frame, in float64 from end to end.

Unreal: left-handed, +X forward, +Y right, +Z up, centimetres. ``FRotator`` angles in degrees:
yaw about Z (growing turns right, towards +Y), pitch about Y (growing looks up), roll about X
(growing lowers the right side); its rotation matrix has the forward axis
``(cos p cos y, cos p sin y, sin p)``, the right axis ``(sin r sin p cos y - cos r sin y,
sin r sin p sin y + cos r cos y, -sin r cos p)`` and the up axis ``(-(cos r sin p cos y + sin r
sin y), cos y sin r - cos r sin p sin y, cos r cos p)``. ``FQuat`` is ``(x, y, z, w)``. UE5
stores all of these as doubles (large world coordinates), which is why nothing here is float32.

Contract (:mod:`datagen.rotation`): right-handed, +Z up, metres; camera body +X forward, +Y left,
+Z up; yaw grows turning left, pitch grows looking up, quaternions ``(w, x, y, z)``.

The contract's frame is Unreal's mirrored in Y: a point maps to ``(X, -Y, Z) / 100``, and a
rotation ``R`` to ``M R M`` with ``M = diag(1, -1, 1)``, which for a quaternion is ``(w, x, y, z)
-> (w, -x, y, -z)``. Mirroring the body frame the same way turns Unreal's (forward, right, up)
into the contract's (forward, left, up), so the camera's angles map to ``yaw = -Yaw``,
``pitch = Pitch``, ``roll = Roll`` (a right side going down is a left side going up: the same
roll in the contract's right-handed sense about the forward axis).
"""

from __future__ import annotations

import numpy as np

from datagen.rotation import quat_normalize, wrap_deg

CM_PER_M = 100.0


def location_to_contract(location_cm: np.ndarray) -> np.ndarray:
    """float64 ``[..., 3]`` metres in the contract's frame from Unreal ``(X, Y, Z)`` centimetres."""
    p = np.asarray(location_cm, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"a location has 3 coordinates, got shape {p.shape}")
    return p * np.array([1.0, -1.0, 1.0]) / CM_PER_M


def location_to_unreal(location_m: np.ndarray) -> np.ndarray:
    """float64 ``[..., 3]`` Unreal centimetres from contract metres (the inverse of
    :func:`location_to_contract`)."""
    p = np.asarray(location_m, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"a location has 3 coordinates, got shape {p.shape}")
    return p * np.array([1.0, -1.0, 1.0]) * CM_PER_M


def quat_to_contract(quat_xyzw: np.ndarray) -> np.ndarray:
    """Contract quaternion ``(w, x, y, z)``, unit, ``w >= 0``, from an Unreal ``FQuat``
    ``(x, y, z, w)`` (camera-to-world in both)."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f"a quaternion has 4 components, got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1)
    if not np.all(np.isfinite(norm)) or np.any(norm < 1e-9):
        raise ValueError("a quaternion must be finite and non-zero")
    x, y, z, w = np.moveaxis(q, -1, 0)
    return quat_normalize(np.stack([w, -x, y, -z], axis=-1))


def rotator_to_contract(pitch: np.ndarray | float, yaw: np.ndarray | float,
                        roll: np.ndarray | float) -> tuple:
    """Contract ``(yaw, pitch, roll)`` in degrees, wrapped into (-180, 180], from an Unreal
    ``FRotator``'s pitch, yaw and roll."""
    return wrap_deg(-np.asarray(yaw, dtype=np.float64)), wrap_deg(
        np.asarray(pitch, dtype=np.float64)), wrap_deg(np.asarray(roll, dtype=np.float64))
