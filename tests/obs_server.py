"""A small obs-websocket v5 server for tests: what real OBS cannot be made to do on demand.

It speaks the protocol as obs-websocket 5.1 does (JSON text messages ``{op, d}``):

- op 0 Hello on connect, with an ``authentication`` challenge and salt when a password is set;
  op 1 Identify checks ``base64(sha256(base64(sha256(password + salt)) + challenge))`` and
  closes with 4009 on a mismatch, 4010 on an rpcVersion other than 1; op 2 Identified;
  op 3 Reidentify changes the event subscriptions; a request before Identify closes with 4007,
  an unknown op with 4006.
- op 5 events go only to clients subscribed to their category (RecordStateChanged: bit 64,
  Outputs): STARTING, STARTED (with ``outputPath``), STOPPING, STOPPED (with ``outputPath``),
  PAUSED, RESUMED.
- op 6 requests are answered with op 7 and ``requestStatus {result, code, comment}``:
  GetVersion, GetVideoSettings, GetRecordDirectory, GetRecordStatus, StartRecord (500 while
  recording), StopRecord (501 when not; answers ``outputPath`` at once), PauseRecord,
  ResumeRecord; anything else 204. Batches (ops 8/9) are not supported.

While "recording" it writes a real H.264 video at a constant frame rate, in real time (frames
from ``frames(index) -> uint8 RGB [H, W, 3]`` or a synthetic pattern, encoded by
:class:`datagen.video.H264Writer`), as MP4 or MKV. As with OBS, the output file exists but is
empty until it is finalised, ``finalise_delay`` seconds after StopRecord; the STOPPED event
comes with the finished file (as OBS 29 on Linux does), or after ``stopped_delay`` seconds if
set (earlier: a slow disk, where OBS says "stopped" before the file is complete).

Faults: :meth:`FakeObs.drop_connections` (now, optionally refusing connections for a while),
:meth:`FakeObs.drop_after` (after N more requests, optionally running the last one first),
:meth:`FakeObs.fail` (answer a request type with an error code).

Usage::

    with FakeObs(tmp_path, password="pw") as server:
        obs = Obs(server.host, server.port, "pw")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from datagen.video import H264Writer

OUTPUTS = 64  # event subscription bit of RecordStateChanged
ALL_LOW_VOLUME = 0x7FF  # obs-websocket's default subscription when Identify names none
STATE = "OBS_WEBSOCKET_OUTPUT_"
# close codes (WebSocketCloseCode) and request status codes (RequestStatus)
UNKNOWN_OP, NOT_IDENTIFIED, AUTH_FAILED, UNSUPPORTED_RPC = 4006, 4007, 4009, 4010
SUCCESS, UNKNOWN_REQUEST = 100, 204
OUTPUT_RUNNING, OUTPUT_NOT_RUNNING, OUTPUT_PAUSED, OUTPUT_NOT_PAUSED = 500, 501, 502, 503


def auth_string(password: str, salt: str, challenge: str) -> str:
    """The Identify ``authentication`` value obs-websocket expects."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A synthetic frame: a colour that changes every frame and a bar that moves."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = ((index * 7) % 256, (index * 13 + 80) % 256, (index * 29 + 160) % 256)
    x = (index * 4) % width
    frame[:, x:x + 4] = 255
    return frame


@dataclass(eq=False)  # kept in a set, by identity
class _Client:
    ws: ServerConnection
    identified: bool = False
    subscriptions: int = 0


@dataclass
class _Recording:
    path: Path  # what OBS names; empty until finalised
    partial: Path  # what the encoder writes
    started: float  # time.monotonic()
    writer: H264Writer
    stop: threading.Event = field(default_factory=threading.Event)
    paused: bool = False
    thread: threading.Thread | None = None


class FakeObs:
    """The server (see the module docstring); runs its asyncio loop in a daemon thread from
    :meth:`start` (or ``with``) to :meth:`stop`."""

    def __init__(
        self, record_dir: str | Path, password: str | None = None, width: int = 160,
        height: int = 96, fps: int = 30, fmt: str = "mkv", finalise_delay: float = 1.0,
        stopped_delay: float | None = None, frames: Callable[[int], np.ndarray] | None = None,
        host: str = "127.0.0.1", port: int = 0,
    ) -> None:
        self.record_dir = Path(record_dir)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.password, self.width, self.height, self.fps, self.fmt = (
            password, width, height, fps, fmt)
        self.finalise_delay, self.stopped_delay = finalise_delay, stopped_delay
        self.frames = frames or (lambda i: pattern(i, width, height))
        self.host, self.port = host, port
        self.requests: list[str] = []  # request types received, in order
        self.connections = 0  # websocket connections accepted so far
        self.finalised: list[Path] = []  # recordings whose file is complete
        self._clients: set[_Client] = set()
        self._recording: _Recording | None = None
        self._lock = threading.Lock()
        self._faults: dict[str, list[tuple[int, str]]] = {}
        self._drop_after: tuple[int, bool] | None = None
        self._down_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._workers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def identified(self) -> list[int]:
        """The event subscriptions of the clients identified now, one entry each."""
        return [c.subscriptions for c in list(self._clients) if c.identified]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeObs:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-obs", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OBS server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        with self._lock:
            rec = self._recording
        if rec is not None:
            rec.stop.set()
            rec.thread.join()
            rec.writer.kill()
        for worker in self._workers:  # recordings being finalised: their STOPPED still goes out
            worker.join()
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = None

    def __enter__(self) -> FakeObs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await serve(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self._abort_all()  # a client that never closes must not hold up the shutdown
        self._server.close()
        await self._server.wait_closed()

    def _call(self, coroutine: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # -- faults -------------------------------------------------------------------------------

    def drop_connections(self, down_for: float = 0.0) -> None:
        """Cut every connection now (no close handshake: a network failure or a crash), and
        close new connections at once for ``down_for`` seconds (OBS restarting)."""
        self._down_until = time.monotonic() + down_for
        self._call(self._abort_all())

    def drop_after(self, requests: int, execute: bool = False) -> None:
        """Answer ``requests`` more requests, then cut every connection on the next one
        instead of answering it; with ``execute`` that last request runs first (its answer is
        lost, not its effect)."""
        self._drop_after = (requests, execute)

    def fail(self, request_type: str, code: int, comment: str = "", times: int = 1) -> None:
        """Answer the next ``times`` ``request_type`` requests with status ``code``."""
        self._faults.setdefault(request_type, []).extend([(code, comment)] * times)

    def act(self, request_type: str, data: dict | None = None) -> dict | None:
        """Run a request as OBS's own window would (the user clicked Stop Recording): events
        go out, no client gets an answer. Returns the response data."""
        return self._run(request_type, data or {})[1]

    async def _abort_all(self) -> None:
        for client in list(self._clients):
            client.ws.transport.abort()

    # -- protocol -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if time.monotonic() < self._down_until:
            ws.transport.abort()
            return
        self.connections += 1
        client = _Client(ws)
        self._clients.add(client)
        hello = {"obsWebSocketVersion": "5.1.0", "rpcVersion": 1}
        salt, challenge = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        if self.password is not None:
            hello["authentication"] = {"challenge": challenge, "salt": salt}
        try:
            await ws.send(json.dumps({"op": 0, "d": hello}))
            async for text in ws:
                message = json.loads(text)
                op, d = message.get("op"), message.get("d") or {}
                if op == 1 and not client.identified:
                    if d.get("rpcVersion") != 1:
                        await ws.close(UNSUPPORTED_RPC, "Unsupported rpc version.")
                        return
                    if self.password is not None and d.get("authentication") != auth_string(
                            self.password, salt, challenge):
                        await ws.close(AUTH_FAILED, "Authentication failed.")
                        return
                    client.subscriptions = d.get("eventSubscriptions", ALL_LOW_VOLUME)
                    client.identified = True
                    await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
                elif op in (3, 6) and not client.identified:
                    await ws.close(NOT_IDENTIFIED, "You must identify before sending requests.")
                    return
                elif op == 3:
                    client.subscriptions = d.get("eventSubscriptions", client.subscriptions)
                    await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
                elif op == 6:
                    await self._request(ws, d)
                else:
                    await ws.close(UNKNOWN_OP, f"Unknown OpCode: {op}")
                    return
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)

    async def _request(self, ws: ServerConnection, d: dict) -> None:
        kind = d.get("requestType", "")
        self.requests.append(kind)
        if self._drop_after is not None:
            left, execute = self._drop_after
            if left == 0:
                self._drop_after = None
                if execute:
                    await asyncio.to_thread(self._run, kind, d.get("requestData") or {})
                await self._abort_all()
                return
            self._drop_after = (left - 1, execute)
        if self._faults.get(kind):
            code, comment = self._faults[kind].pop(0)
            result, data = (code, comment), None
        else:
            result, data = await asyncio.to_thread(self._run, kind, d.get("requestData") or {})
        code, comment = result
        status = {"result": code == SUCCESS, "code": code}
        if comment:
            status["comment"] = comment
        answer = {"requestType": kind, "requestId": d.get("requestId"), "requestStatus": status}
        if data is not None:
            answer["responseData"] = data
        await ws.send(json.dumps({"op": 7, "d": answer}))

    def _emit(self, state: str, active: bool, path: Path | None) -> None:
        """Send RecordStateChanged to the clients subscribed to output events (any thread)."""
        event = {"eventType": "RecordStateChanged", "eventIntent": OUTPUTS,
                 "eventData": {"outputActive": active, "outputState": STATE + state,
                               "outputPath": str(path) if path else None}}
        text = json.dumps({"op": 5, "d": event})

        async def send() -> None:
            for client in list(self._clients):
                if client.identified and client.subscriptions & OUTPUTS:
                    with contextlib.suppress(ConnectionClosed):
                        await client.ws.send(text)

        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(send(), self._loop)

    # -- requests (run in a worker thread: encoding and files must not block the loop) ------

    def _run(self, kind: str, data: dict) -> tuple[tuple[int, str], dict | None]:
        ok = (SUCCESS, "")
        with self._lock:
            rec = self._recording
            if kind == "GetVersion":
                return ok, {"obsVersion": "29.0.2", "obsWebSocketVersion": "5.1.0",
                            "rpcVersion": 1, "platform": "fake", "platformDescription": "tests",
                            "availableRequests": list(REQUESTS), "supportedImageFormats": []}
            if kind == "GetVideoSettings":
                return ok, {"fpsNumerator": self.fps, "fpsDenominator": 1,
                            "baseWidth": self.width, "baseHeight": self.height,
                            "outputWidth": self.width, "outputHeight": self.height}
            if kind == "GetRecordDirectory":
                return ok, {"recordDirectory": str(self.record_dir)}
            if kind == "GetRecordStatus":
                elapsed = time.monotonic() - rec.started if rec else 0.0
                ms = int(elapsed * 1000)
                size = rec.partial.stat().st_size if rec and rec.partial.exists() else 0
                return ok, {"outputActive": rec is not None,
                            "outputPaused": bool(rec and rec.paused),
                            "outputTimecode": f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:"
                                              f"{ms // 1000 % 60:02d}.{ms % 1000:03d}",
                            "outputDuration": ms, "outputBytes": size}
            if kind == "StartRecord":
                if rec is not None:
                    return (OUTPUT_RUNNING, ""), None
                self._start_recording()
                return ok, None
            if kind == "StopRecord":
                if rec is None:
                    return (OUTPUT_NOT_RUNNING, ""), None
                self._recording = None
                self._emit("STOPPING", False, None)
                self._spawn(self._finalise, rec, time.monotonic())
                return ok, {"outputPath": str(rec.path)}
            if kind in ("PauseRecord", "ResumeRecord"):
                if rec is None:
                    return (OUTPUT_NOT_RUNNING, ""), None
                pause = kind == "PauseRecord"
                if rec.paused == pause:
                    return (OUTPUT_PAUSED if pause else OUTPUT_NOT_PAUSED, ""), None
                rec.paused = pause
                self._emit("PAUSED" if pause else "RESUMED", True, None)
                return ok, None
        return (UNKNOWN_REQUEST, f"Your request type is not valid: {kind}"), None

    def _spawn(self, target: Callable, *args: object) -> None:
        worker = threading.Thread(target=target, args=args, daemon=True)
        self._workers.append(worker)
        worker.start()

    def _start_recording(self) -> None:
        self._emit("STARTING", False, None)
        stamp = time.strftime("%Y-%m-%d %H-%M-%S")
        path = self.record_dir / f"{stamp}.{self.fmt}"
        n = 2
        while path.exists():
            path = self.record_dir / f"{stamp} ({n}).{self.fmt}"
            n += 1
        path.touch()  # OBS creates the file at once and leaves it empty until the end
        partial = self.record_dir / f".{path.stem}.encoding.mp4"
        writer = H264Writer(partial, self.width, self.height, self.fps, preset="ultrafast")
        rec = _Recording(path, partial, time.monotonic(), writer)
        rec.thread = threading.Thread(target=self._encode, args=(rec,), daemon=True)
        rec.thread.start()
        self._recording = rec
        self._emit("STARTED", True, path)

    def _encode(self, rec: _Recording) -> None:
        """Write frames in real time at the constant frame rate until told to stop."""
        index = 0
        while not rec.stop.is_set():
            due = rec.started + index / self.fps
            if rec.stop.wait(max(0.0, due - time.monotonic())):
                break
            if not rec.paused:
                rec.writer.write(self.frames(index))
            index += 1

    def _finalise(self, rec: _Recording, stopped_at: float) -> None:
        rec.stop.set()
        rec.thread.join()
        rec.writer.close()
        done = rec.path.with_name(f".{rec.path.name}.final")
        if self.fmt == "mp4":
            rec.partial.replace(done)
        else:
            _stream_copy(rec.partial, done, self.fmt)
            rec.partial.unlink()
        early = self.stopped_delay is not None and self.stopped_delay < self.finalise_delay
        if early:
            time.sleep(max(0.0, stopped_at + self.stopped_delay - time.monotonic()))
            self._emit("STOPPED", False, rec.path)
        time.sleep(max(0.0, stopped_at + self.finalise_delay - time.monotonic()))
        done.replace(rec.path)
        self.finalised.append(rec.path)
        if not early:
            if self.stopped_delay is not None:
                time.sleep(max(0.0, stopped_at + self.stopped_delay - time.monotonic()))
            self._emit("STOPPED", False, rec.path)


REQUESTS = ("GetVersion", "GetVideoSettings", "GetRecordDirectory", "GetRecordStatus",
            "StartRecord", "StopRecord", "PauseRecord", "ResumeRecord")


def _stream_copy(src: Path, dst: Path, fmt: str) -> None:
    """Copy the video packets of ``src`` into a ``fmt`` container (the recording's format)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format={"mkv": "matroska"}.get(
            fmt, fmt)) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
