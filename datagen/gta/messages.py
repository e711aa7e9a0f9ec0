"""The plugin <-> collector wire format (docs/gta.md): length-prefixed JSON, and the checks
every message from the plugin passes before anything is written.

A frame is a 4-byte little-endian unsigned length, then that many bytes of UTF-8 JSON holding
one object. :func:`check_message` returns the message or raises :class:`MessageError` with the
reason, so the collector can log a bad message and go on.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from datagen.episode import KEYS

MAX_MESSAGE = 65536  # longer frames are read, dropped and counted
MAX_TRUSTED = 16 * 1024 * 1024  # a longer length means the stream is garbage: close it
HEADER = struct.Struct("<I")
MODES = ("drive", "walk", "npc", "enter", "leave", "idle")
CAMERAS = ("first", "third", "vehicle")


class MessageError(ValueError):
    """A message that breaks the protocol; the text says how."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame on the wire: the length prefix and the compact JSON."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_MESSAGE:
        raise MessageError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object in a frame's body; MessageError for anything else."""
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise MessageError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MessageError(f"a message must be a JSON object, got {type(message).__name__}")
    return message


def _refuse_constant(name: str) -> float:
    raise MessageError(f"non-finite number {name}")


def _number(msg: dict, key: str, where: str = "") -> float:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError(f"{where}{key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise MessageError(f"{where}{key} must be finite, got {value!r}")
    return float(value)


def _integer(msg: dict, key: str, minimum: int = 0) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MessageError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _vector(msg: dict, key: str, where: str = "") -> list[float]:
    value = msg.get(key)
    if not isinstance(value, list) or len(value) != 3:
        raise MessageError(f"{where}{key} must be a list of 3 numbers, got {value!r}")
    return [_number({key: v}, key, where) for v in value]


def _check_frame(msg: dict) -> None:
    for key in ("seq", "frame", "game_ms", "dropped"):
        _integer(msg, key)
    _number(msg, "wall_ms")
    if msg.get("mode") not in MODES:
        raise MessageError(f"mode must be one of {', '.join(MODES)}, got {msg.get('mode')!r}")
    cam = msg.get("cam")
    if not isinstance(cam, dict):
        raise MessageError(f"cam must be an object, got {cam!r}")
    _vector(cam, "pos", "cam.")
    _vector(cam, "rot", "cam.")
    fov = _number(cam, "fov", "cam.")
    if not 0 < fov < 180:
        raise MessageError(f"cam.fov must be in (0, 180) degrees, got {fov}")
    _vector(msg, "vel")
    _number(msg, "speed")
    vehicle = msg.get("vehicle")
    if vehicle is not None:
        if not isinstance(vehicle, dict):
            raise MessageError(f"vehicle must be an object or null, got {vehicle!r}")
        for key in ("speed", "throttle", "brake", "steering"):
            _number(vehicle, key, "vehicle.")
    mark = msg.get("mark", 0)
    if isinstance(mark, bool) or not isinstance(mark, int) or not 0 <= mark <= 14:
        raise MessageError(f"mark must be an integer code 0..14 (0: no marker), got {mark!r}")
    keys = msg.get("keys")
    if not isinstance(keys, dict):
        raise MessageError(f"keys must be an object, got {keys!r}")
    for name, value in keys.items():
        if name not in KEYS:
            raise MessageError(f"unknown key {name!r} (known: {', '.join(KEYS)})")
        if value not in (0, 1) or isinstance(value, bool):
            raise MessageError(f"keys.{name} must be 0 or 1, got {value!r}")


def _check_hello(msg: dict) -> None:
    if not isinstance(msg.get("plugin"), str) or not isinstance(msg.get("version"), str):
        raise MessageError("hello needs plugin and version strings")
    run = msg.get("run", "")
    if not isinstance(run, str) or len(run) > 64:
        raise MessageError(f"hello run must be a short string, got {run!r}")
    if not isinstance(msg.get("config", {}), dict):
        raise MessageError(f"hello config must be an object, got {msg.get('config')!r}")


def _check_status(msg: dict) -> None:
    if "dropped" in msg:
        _integer(msg, "dropped")
    if "recording" in msg and not isinstance(msg["recording"], bool):
        raise MessageError(f"status recording must be true or false, got {msg['recording']!r}")


CHECKS = {"frame": _check_frame, "hello": _check_hello, "status": _check_status}


def check_message(body: bytes) -> dict[str, Any]:
    """Decode and check one message from the plugin; MessageError says what is wrong."""
    message = decode(body)
    kind = message.get("type")
    if kind not in CHECKS:
        raise MessageError(f"unknown message type {kind!r} (known: {', '.join(CHECKS)})")
    CHECKS[kind](message)
    return message
