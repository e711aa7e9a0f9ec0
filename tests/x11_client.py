"""A tiny X client for tests (ctypes over libX11 and libXtst): find a window by its title, give
it the keyboard focus, press keys through the XTEST extension (real key events, delivered by
the server as if typed) and read back what the window shows.

Usage (under ``real_obs.running_xvfb``)::

    with XClient(display) as x:
        window = x.window("training play: session.mp4")
        x.focus(window)
        x.press("Control_L", "d")               # held together, released in reverse
        rgb = x.grab(window, 512, 256)          # [256, 512, 3] uint8 from its top-left corner
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import time

import numpy as np

Z_PIXMAP, REVERT_TO_PARENT, CURRENT_TIME, ALL_PLANES = 2, 2, 0, 0xFFFFFFFF


class _XImage(ctypes.Structure):  # the leading fields of Xlib's XImage
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)),
                ("byte_order", ctypes.c_int), ("bitmap_unit", ctypes.c_int),
                ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
                ("bits_per_pixel", ctypes.c_int)]


def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    x, xtst = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXtst.so.6")
    p, ulong = ctypes.c_void_p, ctypes.c_ulong
    x.XOpenDisplay.argtypes, x.XOpenDisplay.restype = [ctypes.c_char_p], p
    x.XCloseDisplay.argtypes = [p]
    x.XSync.argtypes = [p, ctypes.c_int]
    x.XSetInputFocus.argtypes = [p, ulong, ctypes.c_int, ulong]
    x.XStringToKeysym.argtypes, x.XStringToKeysym.restype = [ctypes.c_char_p], ulong
    x.XKeysymToKeycode.argtypes, x.XKeysymToKeycode.restype = [p, ulong], ctypes.c_ubyte
    x.XGetImage.argtypes = [p, ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                            ctypes.c_uint, ulong, ctypes.c_int]
    x.XGetImage.restype = ctypes.POINTER(_XImage)
    x.XDestroyImage.argtypes = [ctypes.POINTER(_XImage)]
    xtst.XTestFakeKeyEvent.argtypes = [p, ctypes.c_uint, ctypes.c_int, ulong]
    return x, xtst


class XClient:
    """A connection to ``display`` (``":N"``) for the length of a ``with`` block."""

    def __init__(self, display: str) -> None:
        self.name = display
        self._x, self._xtst = _libraries()
        self._display = self._x.XOpenDisplay(display.encode())
        if not self._display:
            raise RuntimeError(f"cannot open X display {display}")

    def __enter__(self) -> XClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._x.XCloseDisplay(self._display)

    def window(self, title: str, timeout: float = 30.0) -> int:
        """The id of the window titled ``title`` (waiting up to ``timeout`` s for it to map)."""
        deadline = time.monotonic() + timeout
        while True:
            info = subprocess.run(["xwininfo", "-display", self.name, "-name", title, "-int"],
                                  capture_output=True, text=True)
            if "IsViewable" in info.stdout:
                return int(re.search(r"Window id: (\d+)", info.stdout).group(1))
            if time.monotonic() > deadline:
                raise TimeoutError(f"no window titled {title!r}: {info.stderr.strip()}")
            time.sleep(0.1)

    def focus(self, window: int) -> None:
        """Give ``window`` the keyboard focus, as a window manager would on a click."""
        self._x.XSetInputFocus(self._display, window, REVERT_TO_PARENT, CURRENT_TIME)
        self._x.XSync(self._display, 0)

    def press(self, *keysyms: str) -> None:
        """Press ``keysyms`` (X names: ``"w"``, ``"Left"``, ``"Control_L"``) in order, then
        release them in reverse: one chord, to whichever window has the focus."""
        codes = [self._x.XKeysymToKeycode(self._display, self._x.XStringToKeysym(k.encode()))
                 for k in keysyms]
        for code in codes:
            self._xtst.XTestFakeKeyEvent(self._display, code, 1, CURRENT_TIME)
        for code in reversed(codes):
            self._xtst.XTestFakeKeyEvent(self._display, code, 0, CURRENT_TIME)
        self._x.XSync(self._display, 0)

    def grab(self, window: int, width: int, height: int) -> np.ndarray:
        """The RGB ``[height, width, 3]`` uint8 pixels ``window`` shows from its top-left
        corner (a 24-bit TrueColor screen, as Xvfb's ``-screen 0 WxHx24``)."""
        image = self._x.XGetImage(self._display, window, 0, 0, width, height, ALL_PLANES,
                                  Z_PIXMAP)
        if not image:
            raise RuntimeError(f"XGetImage failed on window {window}")
        try:
            im = image.contents
            if im.bits_per_pixel != 32 or im.byte_order != 0:
                raise RuntimeError(f"expected 32-bit LSB-first pixels, got {im.bits_per_pixel}"
                                   f" bits, byte order {im.byte_order}")
            rows = np.ctypeslib.as_array(im.data, (im.height * im.bytes_per_line,))
            bgrx = rows.reshape(im.height, im.bytes_per_line)[:, :im.width * 4]
            return bgrx.reshape(im.height, im.width, 4)[..., 2::-1].copy()
        finally:
            self._x.XDestroyImage(image)
