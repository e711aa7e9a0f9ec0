"""The hand on the keyboard: which of W/A/S/D moves the camera the way it should go, and how
long keys stay held. Engine-agnostic, like :mod:`datagen.mouse_hand`: a backend's controller
decides where to go and which gait; this turns that into the seven keys of a frame.

- :func:`octant_keys`: the W/A/S/D combination (one of 8 octants, diagonals included) nearest
  to a direction of motion relative to the camera heading, sticking to the current one until the
  direction is :data:`OCTANT_HYSTERESIS` degrees beyond its half width (no flicker at a border).
- :class:`KeyHand`: a movement combination, shift and ctrl are held at least ``min_hold_s`` once
  pressed (people do not tap W for one frame); space is tapped for a drawn ``jump_tap_s``.
"""

from __future__ import annotations

import numpy as np

from datagen.planner import BehaviourProfile
from datagen.rotation import wrap_deg

Combo = tuple[int, int, int, int]  # (w, s, a, d)
Keys = tuple[int, int, int, int, int, int, int]  # the contract's order: w s a d space shift ctrl
Want = tuple[Combo, bool, bool]  # what a controller asks for: (w/s/a/d combination, shift, ctrl)
# (w, s, a, d) for a motion direction octant * 45 degrees left of the heading
OCTANT_KEYS: tuple[Combo, ...] = ((1, 0, 0, 0), (1, 0, 1, 0), (0, 0, 1, 0), (0, 1, 1, 0),
                                  (0, 1, 0, 0), (0, 1, 0, 1), (0, 0, 0, 1), (1, 0, 0, 1))
NO_KEYS: Combo = (0, 0, 0, 0)
# camera heading minus direction of motion, per walking mode (strafe_left: motion 90 degrees
# left of where the camera faces)
FACING = {"forward": 0.0, "backward": 180.0, "strafe_left": -90.0, "strafe_right": 90.0,
          "forward_left": -45.0, "forward_right": 45.0, "backward_left": -135.0,
          "backward_right": 135.0}
OCTANT_HYSTERESIS = 15.0  # degrees beyond the octant's half width before the keys change


def nearest_octant(rel_deg: float, current: Combo) -> int:
    """The octant of motion ``rel_deg`` degrees left of the heading; the one ``current`` holds
    while ``rel_deg`` stays within its half width plus :data:`OCTANT_HYSTERESIS`."""
    octant = round(rel_deg / 45.0) % 8
    if current in OCTANT_KEYS:
        held = OCTANT_KEYS.index(current)
        if abs(wrap_deg(rel_deg - 45.0 * held)) < 22.5 + OCTANT_HYSTERESIS:
            return held
    return octant


def octant_keys(rel_deg: float, current: Combo) -> Combo:
    """The W/A/S/D combination for motion ``rel_deg`` degrees left of the heading."""
    return OCTANT_KEYS[nearest_octant(rel_deg, current)]


class KeyHand:
    """Holds keys like a person: see the module docstring."""

    def __init__(self, profile: BehaviourProfile, rng: np.random.Generator, fps: int) -> None:
        self.profile = profile
        self.rng = rng
        self.fps = fps
        self.hold_ticks = max(1, round(profile.min_hold_s * fps))
        self.combo: Combo = NO_KEYS  # the movement keys held last frame
        self._combo_ticks = 0
        self._mods = {"shift": 0, "ctrl": 0}  # ticks held so far (0 = released)
        self._space_left = 0

    def tap_space(self) -> None:
        """Press space from the next frame for a drawn ``jump_tap_s``."""
        self._space_left = max(1, round(float(self.rng.uniform(*self.profile.jump_tap_s))
                                        * self.fps))

    def press(self, combo: Combo, shift: bool, ctrl: bool) -> Keys:
        """This frame's seven keys when ``combo``, shift and ctrl are wanted: a fresh movement
        combination, shift or ctrl stays held for its minimum, space for its tap."""
        if combo != self.combo and self._combo_ticks < self.hold_ticks and self.combo != NO_KEYS:
            combo = self.combo  # keep a fresh combination for its minimum hold
        self._combo_ticks = self._combo_ticks + 1 if combo == self.combo else 1
        self.combo = combo
        held = {}
        for name, want in (("shift", shift), ("ctrl", ctrl)):
            ticks = self._mods[name]
            on = want or 0 < ticks < self.hold_ticks
            self._mods[name] = ticks + 1 if on else 0
            held[name] = int(on)
        space = int(self._space_left > 0)
        self._space_left = max(0, self._space_left - 1)
        return (*combo, space, held["shift"], held["ctrl"])
