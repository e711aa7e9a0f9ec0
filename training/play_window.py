"""The window of ``training play --interactive`` when a display exists (Tk, from the standard
library).

Frames are shown enlarged by a whole factor (:func:`zoom_for`) above a status line: the block,
its latency and frames/s, the held keys. A key pressed in the window becomes the bytes a
terminal would send for it (:func:`training.terminal_input.key_bytes`), so the window and the
terminal share one key map; closing the window types ``q``. While a block is generated (on
another thread) the window stays live: it is redrawn and takes keys, which count, with those
typed while the block then plays, for the block after it.

:func:`open_window` gives the window, or ``None`` and why there is none: no ``$DISPLAY``, a
Python built without Tk, or a display Tk cannot open.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from curation.preview import MIN_HEIGHT
from training.terminal_input import key_bytes

try:
    import tkinter
except ImportError:  # a Python built without Tk (Debian's python3 without python3-tk)
    tkinter = None

POLL = 0.01  # seconds between looks at the window's events while a block plays


def zoom_for(height: int) -> int:
    """The whole factor that shows a frame ``height`` rows high at least MIN_HEIGHT rows high."""
    return max(1, -(-MIN_HEIGHT // height))


def _ppm(frame: np.ndarray) -> bytes:
    """An RGB ``[H, W, 3]`` uint8 frame, enlarged by :func:`zoom_for`, as a binary PPM."""
    zoom = zoom_for(frame.shape[0])
    big = frame.repeat(zoom, axis=0).repeat(zoom, axis=1)
    return b"P6 %d %d 255\n" % (big.shape[1], big.shape[0]) + big.tobytes()


class PlayWindow:
    """Frames and a status line in a Tk window; the keys pressed in it are kept as terminal
    bytes until :meth:`play` returns them."""

    def __init__(self, root: tkinter.Tk) -> None:
        self.root = root
        self._typed = b""
        self._photo = tkinter.PhotoImage(master=root)
        tkinter.Label(root, image=self._photo, bd=0, highlightthickness=0).pack()
        self._status = tkinter.Label(root, anchor="w", font="TkFixedFont")
        self._status.pack(fill="x")
        root.bind("<KeyPress>", self._key)
        root.protocol("WM_DELETE_WINDOW", self._closed)

    def _key(self, event: tkinter.Event) -> None:
        self._typed += key_bytes(event.keysym, event.char)

    def _closed(self) -> None:
        self._typed += b"q"
        self.root.withdraw()

    def show(self, frame: np.ndarray, status: str) -> None:
        """Show ``frame`` (RGB ``[H, W, 3]`` uint8) and ``status`` now."""
        self._photo.configure(data=_ppm(frame), format="ppm")
        self._status.configure(text=status)
        self.root.update()

    def wait(self, job: Future, status: str, read: Callable[[float], bytes]) -> bytes:
        """Keep the window live (redrawn, taking keys) while ``job`` (a block being generated
        on another thread) runs, ``status`` shown; return what the terminal gave meanwhile."""
        self._status.configure(text=status)
        data = b""
        while not job.done():
            data += read(POLL)
            self.root.update()
        return data

    def play(self, frames: Sequence[np.ndarray], until: float, status: str,
             read: Callable[[float], bytes]) -> bytes:
        """Show ``frames`` spread evenly until ``until`` (a ``time.perf_counter()``; one after
        another when it has passed) and return what was typed meanwhile: in the window, and
        what ``read(timeout)`` (the terminal) gives."""
        start = time.perf_counter()
        span = max(until - start, 0.0)
        data = b""
        for i, frame in enumerate(frames):
            self.show(frame, status)
            due = start + (i + 1) * span / len(frames)
            while (now := time.perf_counter()) < due:
                data += read(min(POLL, due - now))
                self.root.update()
        data += read(0.0) + self._typed
        self._typed = b""
        return data

    def close(self) -> None:
        self.root.destroy()


def open_window(title: str) -> tuple[PlayWindow | None, str]:
    """A :class:`PlayWindow` titled ``title``, or ``None`` and why it cannot open."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None, "no display: $DISPLAY is not set"
    if tkinter is None:
        return None, "this Python has no tkinter (Debian and Ubuntu: apt install python3-tk)"
    try:
        root = tkinter.Tk(className="worldforge")
    except tkinter.TclError as exc:
        return None, f"Tk cannot open the display: {exc}"
    root.title(title)
    return PlayWindow(root), ""
