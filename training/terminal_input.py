"""Keys typed in a terminal as a player's inputs for the next block (``training play
--interactive``).

A terminal reports key presses, not key releases, so what was typed while a block was being
generated is held for the whole of the next block:

- ``w a s d``: the movement keys; upper case (``W A S D``) adds shift (sprint), and Ctrl with
  the letter (``^W ^A ^S ^D``) adds ctrl (crouch); ``c`` crouches in place (a terminal sends
  nothing for shift or Ctrl pressed alone);
- space: a jump (space held for the block's first ``jump_frames`` frames);
- arrow keys (either cursor mode) or ``j l`` turn left and right, ``i k`` look up and down
  (either case): each press adds
  ``turn_deg_s`` (or ``look_deg_s``) to the block's constant turn, up to ``max_presses`` presses;
- ``q`` (or Ctrl-C) ends the session.

:class:`TerminalInput` puts the terminal in cbreak mode (no echo, no line buffering, Ctrl-S/Q
flow control off) and restores it on exit; :func:`parse` turns typed bytes into a
:class:`Typed` press set, and :func:`block_actions` makes the contract's keys and mouse rows for
a block from it. A key pressed in the play window (:mod:`training.play_window`) becomes the
bytes a terminal would send for it (:func:`key_bytes`), so :func:`parse` is the one key map.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from dataclasses import dataclass, field

import numpy as np

from datagen.episode import KEYS

ARROWS = {b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[C": "right", b"\x1b[D": "left"}
ARROW_KEYSYMS = {name.capitalize(): seq for seq, name in ARROWS.items()}  # Tk's Up, Down, ...
ARROWS |= {b"\x1bO" + seq[2:]: name for seq, name in ARROWS.items()}  # application cursor mode
LETTERS = {"j": "left", "l": "right", "i": "up", "k": "down"}
CTRL = {0x17: "w", 0x01: "a", 0x13: "s", 0x04: "d"}  # ^W ^A ^S ^D


@dataclass
class Typed:
    """What was typed during one block."""

    keys: set[str] = field(default_factory=set)  # of KEYS
    turns: dict[str, int] = field(default_factory=dict)  # left/right/up/down -> presses
    quit: bool = False

    def describe(self) -> str:
        keys = "+".join(k.upper() if len(k) == 1 else k for k in KEYS if k in self.keys)
        turns = " ".join(f"{d}x{n}" for d, n in sorted(self.turns.items()))
        return " ".join(p for p in (keys, turns) if p) or "idle"


def parse(data: bytes) -> Typed:
    """The presses in ``data`` (bytes read from the terminal since the last block)."""
    typed, i = Typed(), 0
    while i < len(data):
        arrow = next((name for seq, name in ARROWS.items() if data.startswith(seq, i)), None)
        if arrow is not None:
            typed.turns[arrow] = typed.turns.get(arrow, 0) + 1
            i += 3
            continue
        byte = data[i]
        char = chr(byte)
        if char in "qQ" or byte == 0x03:
            typed.quit = True
        elif char in "wasd":
            typed.keys.add(char)
        elif char in "WASD":
            typed.keys.update((char.lower(), "shift"))
        elif byte in CTRL:
            typed.keys.update((CTRL[byte], "ctrl"))
        elif char == " ":
            typed.keys.add("space")
        elif char in "cC":
            typed.keys.add("ctrl")
        elif char.lower() in LETTERS:
            turn = LETTERS[char.lower()]
            typed.turns[turn] = typed.turns.get(turn, 0) + 1
        i += 1
    return typed


def key_bytes(keysym: str, char: str) -> bytes:
    """What a terminal sends for the key a window reports as ``keysym`` typing ``char`` (Tk's
    ``%K`` and ``%A``: ``"w", "\\x17"`` for Ctrl-W, ``"Left", ""`` for the left arrow)."""
    return ARROW_KEYSYMS.get(keysym) or char.encode()


def block_actions(typed: Typed, frames: int, fps: float, turn_deg_s: float = 45.0,
                  look_deg_s: float = 20.0, jump_frames: int = 3, max_presses: int = 4
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Contract keys uint8 ``[frames, 7]`` and mouse ``[frames, 2]`` (degrees per frame) that
    hold ``typed`` for a block of ``frames`` frames at ``fps``."""
    keys = np.zeros((frames, len(KEYS)), dtype=np.uint8)
    for k in typed.keys - {"space"}:
        keys[:, KEYS.index(k)] = 1
    if "space" in typed.keys:
        keys[:jump_frames, KEYS.index("space")] = 1

    def presses(name: str) -> int:
        return min(typed.turns.get(name, 0), max_presses)

    mouse = np.zeros((frames, 2))
    mouse[:, 0] = (presses("right") - presses("left")) * turn_deg_s / fps
    mouse[:, 1] = (presses("up") - presses("down")) * look_deg_s / fps
    return keys, mouse


class TerminalInput:
    """The terminal on ``stdin`` in cbreak mode for the duration of a ``with`` block."""

    def __init__(self, stream=None) -> None:
        self.fd = (stream or sys.stdin).fileno()
        if not os.isatty(self.fd):
            raise ValueError("--interactive needs a terminal on stdin (keys are read from it)")

    def __enter__(self) -> TerminalInput:
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[0] &= ~(termios.IXON | termios.IXOFF)  # ^S and ^Q are keys, not flow control
        attrs[3] &= ~termios.ISIG  # ^C arrives as a byte: it ends the session cleanly
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        return self

    def __exit__(self, *exc: object) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float = 0.0) -> bytes:
        """Everything typed so far (waiting up to ``timeout`` seconds for the first byte)."""
        out = b""
        while select.select([self.fd], [], [], timeout)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:
                break
            out += chunk
            timeout = 0.0
        return out
