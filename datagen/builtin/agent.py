"""The built-in agent behind ``first()`` / ``step()``: planner, controller and kinematics.

:class:`Agent` is the facade the recorder uses: it spawns the agent (:mod:`datagen.builtin.spawn`),
builds its body, planner and controller from one seed, and ``first()`` and ``step()`` return one
:class:`~datagen.tick.Tick` (one ``actions.csv`` row and the movers' poses) per frame;
``describe()`` is what goes into meta.json. It steps the world's
:class:`~datagen.builtin.traffic.Traffic` after itself. :func:`blocked_frames` finds the frames
where keys push against something.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from datagen.action_coverage import runs
from datagen.builtin.body import Body
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.spawn import spawn
from datagen.builtin.traffic import Traffic
from datagen.builtin.world import World
from datagen.controller import Controller
from datagen.keyboard import Keys
from datagen.planner import DEFAULT_PROFILE, PROFILES, BehaviourProfile, Planner
from datagen.tick import Tick


class Agent:
    """The built-in agent: planner, controller and kinematics behind ``first()`` / ``step()``."""

    def __init__(self, world: World, navmesh: NavMesh, seed: int, fps: int, fov: float = 90.0,
                 profile: BehaviourProfile = PROFILES[DEFAULT_PROFILE]) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(fps, (int, np.integer)) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if not 0.0 < fov < 180.0:
            raise ValueError(f"fov must lie in (0, 180) degrees, got {fov}")
        self.world, self.navmesh, self.seed, self.fps = world, navmesh, int(seed), int(fps)
        self.fov, self.profile = float(fov), profile
        start_rng, plan_rng, hand_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(3))
        self.start_xy, self.start_yaw = spawn(world, navmesh, start_rng)
        self.traffic = Traffic(world, self.fps, navmesh.agent_radius, self.start_xy)
        self.body = Body(world, navmesh, profile, self.start_xy, self.start_yaw, self.fps,
                         traffic=self.traffic)
        planner = Planner(navmesh, plan_rng, profile, allow_jump=world.allow_jump)
        self.controller = Controller(self.body, planner, profile, hand_rng, self.fps)
        self.frames = 0

    def first(self) -> Tick:
        """Frame 0: no inputs, the initial pose (random reachable start, open heading)."""
        if self.frames:
            raise RuntimeError("first() must come before any step()")
        return self._tick((0,) * 7, 0.0, 0.0)

    def step(self) -> Tick:
        """Advance one tick (``1 / fps`` seconds) and return the new frame's row."""
        keys, dx, dy = self.controller.inputs()
        self.body.apply(keys, dx, dy)
        self.traffic.step(self.body.feet[:2])
        self.frames += 1
        return self._tick(keys, dx, dy)

    def describe(self) -> dict:
        """What meta.json's ``engine.agent`` records: profile, body, speeds, start, counters."""
        return {
            "profile": self.profile.name,
            "profile_values": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in asdict(self.profile).items()},
            "agent_radius": self.navmesh.agent_radius,
            "eye_height": float(self.world.eye_height),
            "crouch_eye_height": float(self.world.eye_height * self.profile.crouch_eye_ratio),
            "max_speeds": {"walk": self.profile.walk_speed, "sprint": self.profile.sprint_speed,
                           "crouch": self.profile.crouch_speed},
            "allow_jump": bool(self.world.allow_jump),
            "fps": self.fps, "fov": self.fov, "seed": self.seed,
            "start": [float(v) for v in self.start_xy], "start_yaw": self.start_yaw,
            "replans": self.controller.replans,
            "give_ways": self.controller.give_ways, "reroutes": self.controller.reroutes,
            "activities": dict(sorted(self.controller.counts.items())),
        }

    def _tick(self, keys: Keys, dx: float, dy: float) -> Tick:
        b = self.body
        return Tick(keys=tuple(int(k) for k in keys), mouse_dx=float(dx), mouse_dy=float(dy),
                    position=b.camera_position, quat=b.quat.copy(), yaw=b.yaw, pitch=b.pitch,
                    roll=b.roll, velocity=b.velocity.copy(), fov=self.fov,
                    movers=self.traffic.poses())


BLOCKED_STEP_M = 1e-3  # a frame that moves the agent less than this has not moved it


def blocked_frames(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``bool [N]``: frames where a movement key (W/S/A/D) is held while the horizontal
    position has not changed (by ``BLOCKED_STEP_M``) this frame nor the one before: the agent
    pressing against something (a wall's collision may still slide it by a hair).
    ``keys`` ``[N, 7]`` in the contract's order, ``positions`` ``[N, 2+]``."""
    keys, xy = np.asarray(keys), np.asarray(positions, dtype=np.float64)[:, :2]
    still = np.hypot(*np.diff(xy, axis=0).T) < BLOCKED_STEP_M
    out = np.zeros(len(xy), dtype=bool)
    out[2:] = still[1:] & still[:-1]
    return out & keys[:, :4].any(axis=1).astype(bool)


def longest_stretch(mask: np.ndarray) -> int:
    """Length of the longest run of ``True`` in ``mask``."""
    _, lengths = runs(mask)
    return int(lengths.max()) if lengths.size else 0
