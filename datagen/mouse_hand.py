"""A hand on a mouse: moves the camera towards an aim (yaw, pitch) as a person would.

The hand moves along the straight line to the aim, both axes together, as people move a mouse
to a target (a look up and to the left is a diagonal stroke, not a turn followed by a nod): the
velocity it wants is ``turn_gain * error`` (easing in near the aim), at most ``max_turn_rate``
in magnitude, and the velocity it has changes by at most ``turn_accel`` per second. Jitter
whose size grows with the wanted speed rides on the stroke, pointing anywhere; a large new yaw
aim is sometimes overshot, then corrected. Once the aim is within a small dead band and the
hand is slow, it rests and the mouse reads exactly zero; a resting hand starts again only when
the aim is ``rest_slack_deg`` away (people correct their heading now and then, in strokes, not
continuously).
"""

from __future__ import annotations

import math

import numpy as np

from datagen.planner import BehaviourProfile

DEADBAND_DEG = 0.3  # the hand rests once the aim is this close and the turn slow
REST_RATE = 20.0  # deg/s: below this a hand inside the dead band stops
NOISE_TAU_S = 0.15  # correlation time of the hand's jitter
NOISE_FULL_RATE = 30.0  # deg/s: the jitter grows with the wanted speed up to this
OVERSHOOT_FROM_DEG = 30.0  # yaw aims that jump further than this may be overshot


class MouseHand:
    """Moves the camera towards an aim; see the module docstring."""

    def __init__(self, profile: BehaviourProfile, rng: np.random.Generator, fps: int) -> None:
        self.profile = profile
        self.rng = rng
        self.dt = 1.0 / fps
        self.rate = np.zeros(2)  # yaw, pitch in deg/s
        self.noise = np.zeros(2)
        self.aim = np.zeros(2)  # yaw (unwrapped), pitch
        self.overshoot = 0.0
        self._decay = math.exp(-self.dt / NOISE_TAU_S)

    def set_aim(self, yaw: float, pitch: float) -> None:
        """Aim at unwrapped ``yaw`` and ``pitch`` (clipped inside the pitch limit)."""
        p = self.profile
        jump = yaw - self.aim[0]
        if abs(jump) > OVERSHOOT_FROM_DEG and self.rng.random() < p.p_overshoot:
            self.overshoot = p.overshoot_frac * jump
        self.aim = np.array([yaw, float(np.clip(pitch, -p.pitch_limit + 1, p.pitch_limit - 1))])

    def resting(self) -> bool:
        return not self.rate.any()

    def move(self, yaw: float, pitch: float) -> tuple[float, float]:
        """This tick's ``(dyaw, dpitch)`` in degrees from unwrapped ``yaw`` and ``pitch``."""
        p, dt = self.profile, self.dt
        error = self.aim - np.array([yaw, pitch])
        if self.overshoot and abs(error[0] + self.overshoot) < 1.5:
            self.overshoot = 0.0
        error[0] += self.overshoot
        off = math.hypot(*error)
        if self.resting() and off < max(p.rest_slack_deg, DEADBAND_DEG) or \
                off < DEADBAND_DEG and math.hypot(*self.rate) < REST_RATE:
            self.rate[:] = self.noise[:] = 0.0
            return 0.0, 0.0
        desired = p.turn_gain * error
        speed = math.hypot(*desired)
        if speed > p.max_turn_rate:
            desired *= p.max_turn_rate / speed
            speed = p.max_turn_rate
        change = desired - self.rate
        step, size = p.turn_accel * dt, math.hypot(*change)
        self.rate += change if size <= step else change * (step / size)
        sigma = p.mouse_noise * min(1.0, speed / NOISE_FULL_RATE)
        self.noise = (self._decay * self.noise
                      + math.sqrt(1 - self._decay**2) * sigma * self.rng.normal(size=2))
        dyaw, dpitch = (self.rate + self.noise) * dt
        limit = p.pitch_limit
        dpitch = float(np.clip(pitch + dpitch, -limit, limit) - pitch)
        return float(dyaw), dpitch
