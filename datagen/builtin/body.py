"""Built-in kinematics: how one tick of keyboard and mouse input moves the agent and its camera.

The camera orientation is the float64 quaternion composed tick by tick with
:func:`datagen.rotation.compose_turn` (yaw about world Z by ``-mouse_dx``, pitch about the body Y
axis by ``mouse_dy``); the logged angles are read back from it, so the contract's identities
``mouse_dx[i] == -(yaw[i] - yaw[i-1])`` and ``mouse_dy[i] == pitch[i] - pitch[i-1]`` hold to
rounding. Movement: W/S/A/D give a desired velocity in the heading frame (diagonals normalised),
limited per gait and by the ground's slope, reached with bounded acceleration; the navmesh's
``clamp_step`` is the collision response (the feet never leave the mesh); with a
:class:`~datagen.builtin.traffic.Traffic`, a step that would bring the agent's radius into a mover's
footprint is refused (the keys stay logged, the agent just does not move; ``Body.bumped`` names
the mover, so the controller can give way); the feet follow the ground, and space starts a
ballistic jump under gravity that ends on landing. The head stays under whatever is overhead
(``World.headroom``: a ceiling, a door's lintel): a jump there is cut short, and in the air the
face of a lintel stops the step as a wall would.
"""

from __future__ import annotations

import math

import numpy as np

from datagen.builtin.navmesh import NavMesh
from datagen.builtin.traffic import Traffic
from datagen.builtin.world import World
from datagen.keyboard import Keys
from datagen.planner import BehaviourProfile
from datagen.rotation import compose_turn, quat_from_ypr, ypr_from_quat

HEAD_CLEARANCE = 0.15  # metres between the eye and the top of the head, for low ceilings



def max_speed(profile: BehaviourProfile, keys: Keys) -> float:
    """Top horizontal speed (m/s, flat ground) that ``keys`` ask for, before the slope factor."""
    w, s, a, d, _, shift, ctrl = keys
    forward, side = w - s, a - d
    if forward == 0 and side == 0:
        return 0.0
    if ctrl:
        speed = profile.crouch_speed
    elif shift and forward > 0:
        speed = profile.sprint_speed
    else:
        speed = profile.walk_speed
    if forward < 0:
        return speed * profile.backward_factor
    if forward == 0:
        return speed * profile.strafe_factor
    return speed


class Body:
    """The agent's state (feet, orientation, velocity, eye height) and its integration step.

    ``traffic``, when given, holds the movers the agent cannot walk into; ``bumped`` is the
    index of the mover that refused the last step, ``-1`` when none did.
    """

    def __init__(self, world: World, navmesh: NavMesh, profile: BehaviourProfile, xy: np.ndarray,
                 yaw: float, fps: int, traffic: Traffic | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.world = world
        self.navmesh = navmesh
        self.profile = profile
        self.traffic = traffic
        self.dt = 1.0 / fps
        x, y = (float(v) for v in np.asarray(xy, dtype=np.float64))
        self.feet = np.array([x, y, float(world.height_at(x, y))])
        self.quat = quat_from_ypr(float(yaw), 0.0)
        self.yaw, self.pitch, self.roll = _angles(self.quat)
        self.velocity = np.zeros(3)  # feet displacement over the last tick / dt
        self.eye = float(world.eye_height)
        self.on_ground = True
        self.bumped = -1
        self._vh = np.zeros(2)  # horizontal velocity carried from tick to tick
        self._vz = 0.0

    @property
    def camera_position(self) -> np.ndarray:
        return self.feet + np.array([0.0, 0.0, self.eye])

    def _top(self, xy: np.ndarray) -> float:
        """The highest the feet may be at ``xy`` with the head under what is overhead."""
        room = self.world.headroom(xy, self.navmesh.agent_radius)
        return float(self.world.height_at(xy[0], xy[1])) + room - self.eye - HEAD_CLEARANCE

    @property
    def crouched(self) -> bool:
        return self.eye < self.world.eye_height - 1e-9

    def apply(self, keys: Keys, mouse_dx: float, mouse_dy: float) -> None:
        """Integrate one tick: turn the camera, then move the feet under ``keys``."""
        p, dt = self.profile, self.dt
        self.quat = compose_turn(self.quat, -float(mouse_dx), float(mouse_dy))
        self.yaw, self.pitch, self.roll = _angles(self.quat)
        w, s, a, d, space, _, ctrl = keys
        old = self.feet.copy()
        xy = old[:2]

        # horizontal: desired velocity in the heading frame, bounded acceleration
        h = math.radians(self.yaw)
        heading, left = np.array([math.cos(h), math.sin(h)]), np.array([-math.sin(h), math.cos(h)])
        direction = (w - s) * heading + (a - d) * left
        norm = math.hypot(*direction)
        target = np.zeros(2)
        if norm > 0:
            direction = direction / norm
            target = direction * max_speed(p, keys) * self._slope_factor(xy, direction)
        limit = p.accel if math.hypot(*target) > math.hypot(*self._vh) else p.decel
        limit *= dt * (1.0 if self.on_ground else p.air_control)
        change = target - self._vh
        size = math.hypot(*change)
        self._vh = self._vh + (change if size <= limit else change * (limit / size))
        new_xy = np.asarray(self.navmesh.clamp_step(xy, xy + self._vh * dt), dtype=np.float64)
        self.bumped = self._mover_in_the_way(xy, new_xy)
        if self.bumped >= 0:
            new_xy = xy.copy()
        if not self.on_ground and old[2] > self._top(new_xy) + 1e-9:
            new_xy = xy.copy()  # in the air, the head against a lintel's face
        self._vh = (new_xy - xy) / dt  # what a wall or a mover took away is gone

        # vertical: follow the ground, or fly a jump until landing
        ground = float(self.world.height_at(new_xy[0], new_xy[1]))
        if self.on_ground and space and self.world.allow_jump and not ctrl and not self.crouched:
            self.on_ground = False
            self._vz = p.jump_speed
        if self.on_ground:
            z = ground
        else:
            self._vz -= p.gravity * dt
            z = old[2] + self._vz * dt
            top = self._top(new_xy)
            if z > top:
                z, self._vz = max(top, ground), min(self._vz, 0.0)
            if z <= ground:
                z, self._vz, self.on_ground = ground, 0.0, True

        # eye height: crouching lowers it at a bounded rate, so the camera moves continuously
        eye_target = self.world.eye_height * (p.crouch_eye_ratio if ctrl else 1.0)
        step = p.eye_rate * dt
        self.eye += float(np.clip(eye_target - self.eye, -step, step))

        self.feet = np.array([new_xy[0], new_xy[1], z])
        self.velocity = (self.feet - old) / dt

    def room_to_jump(self, points: np.ndarray) -> bool:
        """Whether a jump's highest head clears everything overhead at ``points`` ``[K, 2]``
        (people do not jump into a door's lintel)."""
        p, radius = self.profile, self.navmesh.agent_radius
        apex = self.world.eye_height + HEAD_CLEARANCE + p.jump_speed**2 / (2 * p.gravity)
        return all(self.world.headroom(q, radius) >= apex for q in points)

    def _mover_in_the_way(self, old: np.ndarray, new: np.ndarray) -> int:
        """The mover whose footprint a step from ``old`` to ``new`` would bring the agent's
        radius into (the closest, if several), or -1: a step that moves away from a mover it
        already touches is allowed."""
        if self.traffic is None or self.traffic.n == 0 or np.array_equal(old, new):
            return -1
        after = self.traffic.clearance(new)
        into = (after < self.navmesh.agent_radius) & (after < self.traffic.clearance(old))
        return int(np.argmin(np.where(into, after, np.inf))) if into.any() else -1

    def _slope_factor(self, xy: np.ndarray, direction: np.ndarray) -> float:
        """Speed factor from the ground's grade along ``direction`` (slower uphill)."""
        if self.world.terrain is None or not self.on_ground:
            return 1.0
        ahead, behind = xy + 0.5 * direction, xy - 0.5 * direction
        grade = float(self.world.height_at(*ahead)) - float(self.world.height_at(*behind))
        lo, hi = self.profile.slope_factor_range
        return float(np.clip(1.0 - self.profile.slope_slowdown * grade, lo, hi))


def _angles(q: np.ndarray) -> tuple[float, float, float]:
    yaw, pitch, roll = ypr_from_quat(q)
    return float(yaw), float(pitch), float(roll)
