"""The data collector: a TCP server the Script Hook V plugin streams its per-frame messages to.

Every message is checked (:mod:`datagen.gta.messages`); a bad one is logged with its reason and
skipped, and the connection goes on. Frame messages are appended to ``samples.jsonl`` as they
arrive (one line each, with the collector's receive time ``recv_ms``), line-buffered and fsynced
twice a second, so a crash loses at most the last half second and a restarted collector appends
to the same file. Everything else that happens (connections, hellos, status, bad messages,
gaps in ``seq``) goes to ``collector.jsonl``. The collector sends ``start``/``stop`` back to the
plugin, and again to a plugin that reconnects while a session is running.

Delivery is acknowledged: a few times a second the collector tells the plugin the last ``seq``
it has written (``ack``), and the plugin resends what was not acknowledged when it reconnects,
so a collector that dies loses nothing the plugin still holds. Repeats of a frame already
written (same plugin ``run``, ``seq`` not after the last one) are skipped; a restarted collector
learns the last ``run`` and ``seq`` from the end of ``samples.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, BinaryIO

from datagen.gta.messages import (
    HEADER,
    MAX_MESSAGE,
    MAX_TRUSTED,
    MessageError,
    check_message,
    encode,
)

DEFAULT_PORT = 52420
SAMPLES_FILE, LOG_FILE = "samples.jsonl", "collector.jsonl"
FSYNC_EVERY_S = 0.5
ACK_EVERY_S = 0.2


class CollectorError(RuntimeError):
    """The collector cannot do what it was asked (bind, reach the plugin)."""


class _Journal:
    """An append-only JSON-lines file, flushed per line and fsynced at most every 0.5 s."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115
        self._lock = threading.Lock()
        self._synced = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if time.monotonic() - self._synced > FSYNC_EVERY_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _last_written(path: Path) -> tuple[str | None, int | None]:
    """The plugin ``run`` and ``seq`` of the last frame in a samples file (a collector that
    restarts goes on from there), or ``(None, None)``."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().splitlines()
    except OSError:
        return None, None
    for line in reversed(lines):
        try:
            last = json.loads(line)
            return last.get("run"), int(last["seq"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    return None, None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes, or fewer when the peer closed the connection first."""
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class Collector:
    """Receive the plugin's messages into ``folder`` (``samples.jsonl``, ``collector.jsonl``).

    ``port=0`` picks a free port (see :attr:`address`). Use as a context manager or call
    :meth:`close`. Thread-safe: one thread accepts, one per connection reads.
    """

    def __init__(self, folder: str | Path, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.counts: Counter[str] = Counter()  # frames, bad, oversized, truncated, gaps, ...
        self.hello: dict[str, Any] | None = None
        self.plugin_status: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._session: str | None = None
        self._current: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._send_lock = threading.Lock()
        self._run, self._last_seq = _last_written(self.folder / SAMPLES_FILE)
        self._acked = 0.0  # time.monotonic() of the last ack
        self._recent: deque[float] = deque(maxlen=61)  # wall_ms of the latest frames
        self._closed = False
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._server.bind((host, port))
        except OSError as exc:
            self._server.close()
            raise CollectorError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is "
                                 "another collector running? choose --collector-port)") from None
        self._server.listen(4)
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self.samples = _Journal(self.folder / SAMPLES_FILE)
        self.log = _Journal(self.folder / LOG_FILE)
        self._event("listening", host=self.address[0], port=self.address[1])
        self._threads = [threading.Thread(target=self._accept, daemon=True, name="collector")]
        self._threads[0].start()

    # --- the session's side ---------------------------------------------------------------

    def wait_hello(self, timeout: float) -> dict[str, Any]:
        """The plugin's ``hello`` (waits for a plugin to connect)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.hello is not None, timeout):
                raise CollectorError(
                    f"no plugin connected to {self.address[0]}:{self.address[1]} within "
                    f"{timeout:g} s (is GTA V running with worldforge_gta.asi, and its "
                    "worldforge_gta.ini pointing here?)")
            return dict(self.hello)

    def start(self, session: str) -> None:
        """Tell the plugin to stream frames (again after every reconnect, until :meth:`stop`)."""
        with self._cond:
            self._session = session
        self._send({"type": "start", "session": session})

    def stop(self) -> None:
        """Tell the plugin to stop streaming frames."""
        with self._cond:
            self._session = None
        self._send({"type": "stop"})

    def game_fps(self) -> float | None:
        """The game's frame rate over its latest 60 frames (None before two have arrived)."""
        with self._cond:
            recent = list(self._recent)
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        return (len(recent) - 1) * 1000.0 / (recent[-1] - recent[0])

    def mark(self, frames: int) -> None:
        """Tell the plugin to draw the synchronisation marker on its next ``frames`` frames."""
        self._send({"type": "mark", "frames": frames})

    def wait_frames(self, count: int, timeout: float) -> bool:
        """Whether ``count`` frames in all have arrived within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.counts["frames"] >= count, timeout)

    def close(self) -> None:
        """Stop listening, drop the connections and close the files."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._cond:
            self._current = None
            live = list(self._open)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=5)
        self._event("closed", **self.counts)
        self.samples.close()
        self.log.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connections ----------------------------------------------------------------------

    def _event(self, event: str, **fields: Any) -> None:
        self.log.write({"event": event, "time_ms": time.time() * 1000.0, **fields})

    def _send(self, message: dict[str, Any]) -> bool:
        with self._cond:
            sock = self._current
        if sock is None:
            return False  # sent on the plugin's next hello
        try:
            with self._send_lock:
                sock.sendall(encode(message))
        except OSError as exc:
            self._event("send_failed", message=message, error=str(exc))
            return False
        return True

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._server.accept()
            except OSError:
                return  # closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.counts["connections"] += 1
            self._event("connected", peer=f"{peer[0]}:{peer[1]}")
            with self._cond:
                if self._closed:
                    sock.close()
                    return
                self._current = sock  # a reconnecting plugin replaces its old connection
                self._open.add(sock)
            t = threading.Thread(target=self._read, args=(sock, peer), daemon=True,
                                 name=f"collector-{peer[1]}")
            self._threads.append(t)
            t.start()

    def _read(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        where = f"{peer[0]}:{peer[1]}"
        try:
            while not self._closed:
                header = _recv_exact(sock, HEADER.size)
                if len(header) < HEADER.size:
                    if header:
                        self._bad("truncated", where, f"length prefix cut after {len(header)} "
                                                      "bytes")
                    break
                (length,) = HEADER.unpack(header)
                if length > MAX_TRUSTED:
                    self._bad("garbage", where, f"length {length} is over {MAX_TRUSTED}: not our "
                                                "protocol; closing the connection")
                    break
                body = _recv_exact(sock, length)
                if len(body) < length:
                    self._bad("truncated", where, f"message cut at {len(body)} of {length} bytes")
                    break
                if length > MAX_MESSAGE:
                    self._bad("oversized", where, f"{length} bytes, over {MAX_MESSAGE}; skipped")
                    continue
                self._handle(body, where)
        except OSError as exc:
            self._event("connection_error", peer=where, error=str(exc))
        finally:
            with self._cond:
                if self._current is sock:
                    self._current = None
                self._open.discard(sock)
            sock.close()
            self._event("disconnected", peer=where)

    def _bad(self, kind: str, where: str, reason: str) -> None:
        self.counts[kind] += 1
        self.counts["bad"] += 1
        self._event("bad_message", kind=kind, peer=where, reason=reason)

    def _handle(self, body: bytes, where: str) -> None:
        try:
            message = check_message(body)
        except MessageError as exc:
            self._bad("invalid", where, str(exc))
            return
        kind = message["type"]
        if kind == "frame":
            self._frame(message, where)
        elif kind == "hello":
            self._event("hello", peer=where, hello=message)
            with self._cond:
                self.hello = message
                session = self._session
                run = message.get("run")
                if run is None or run != self._run:  # a new plugin counts from 0 again
                    self._run, self._last_seq = run, None
                last = self._last_seq
                self._cond.notify_all()
            if last is not None:  # what is on disk already: the plugin need not resend it
                self._send({"type": "ack", "seq": last})
            if session is not None:
                self._send({"type": "start", "session": session})
        else:
            self._event("status", peer=where, status=message)
            with self._cond:
                self.plugin_status = message
                self._cond.notify_all()

    def _frame(self, message: dict[str, Any], where: str) -> None:
        seq = message["seq"]
        with self._cond:
            last, run = self._last_seq, self._run
            repeat = last is not None and seq <= last
            if not repeat:
                self._last_seq = seq
        if repeat:  # resent after a reconnect, or sent twice: written already
            self.counts["repeated"] += 1
            return
        if last is not None and seq > last + 1:
            self.counts["gaps"] += 1
            self.counts["missing"] += seq - last - 1
            self._event("gap", peer=where, after=last, seq=seq, missing=seq - last - 1,
                        plugin_dropped=message["dropped"])
        record = {**message, "recv_ms": time.time() * 1000.0}
        if run is not None:
            record["run"] = run
        self.samples.write(record)
        with self._cond:
            self.counts["frames"] += 1
            self._recent.append(message["wall_ms"])
            self._cond.notify_all()
        if time.monotonic() - self._acked >= ACK_EVERY_S:
            self._acked = time.monotonic()
            self._send({"type": "ack", "seq": seq})
