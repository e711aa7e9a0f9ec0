"""OBS Studio control for a recording session, over obs-websocket v5 (through ``obsws-python``).

Usage::

    with Obs("127.0.0.1", 4455, password="...") as obs:
        video = obs.video_settings()           # check fps and size before recording
        t_start = obs.start_recording()        # time.time() when OBS reported STARTED
        ...                                    # play; obs.record_events() has the transitions
        path = obs.stop_recording()            # the file OBS wrote (StopRecord's outputPath)
        obs.wait_finalised(path)               # OBS answers before the file is readable

Two websocket connections: one for requests (obsws-python's ``ReqClient``, no events, so the
next message on it is always the answer to the last request) and one for output events
(``EventClient`` subscribed to bit 64, ``Outputs``). obsws-python does not match answers to
request ids, so requests are sent one at a time and, after a timeout or any connection error,
that connection is thrown away and a new one made: a late answer can never be read as the
answer to a later request.

Reconnects: a request that finds its connection dead reconnects (backoff from 0.1 s doubling
to 2 s, for up to ``reconnect_timeout`` seconds) and is sent again; StartRecord and StopRecord,
which must not run twice, first ask GetRecordStatus whether the first try took effect. A
watchdog thread notices a dead event connection, reconnects and re-subscribes, and then asks
GetRecordStatus: when the recording state changed while no events could arrive, it appends a
:class:`RecordEvent` with ``resync=True`` (its time estimated from the status's duration for a
start, the time of the check for a stop) so the session's view stays consistent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import obsws_python
import websocket
from obsws_python.error import OBSSDKError, OBSSDKRequestError, OBSSDKTimeoutError

log = logging.getLogger(__name__)
# obsws-python logs every failure with a traceback through its own loggers; we raise clearer
# errors, so keep them out of the "last resort" stderr handler unless the application
# configures logging itself
logging.getLogger("obsws_python").addHandler(logging.NullHandler())

DEFAULT_PORT = 4455
OUTPUT_EVENTS = int(obsws_python.Subs.OUTPUTS)  # event subscription bit 64
STATE_PREFIX = "OBS_WEBSOCKET_OUTPUT_"
# obs-websocket request status codes the session meets
OUTPUT_RUNNING, OUTPUT_NOT_RUNNING = 500, 501
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0  # seconds between reconnect attempts
# what a dropped or confused request connection raises inside obsws-python / websocket-client
# (a close frame makes recv() return "", which json.loads turns into a ValueError)
_DROPPED = (websocket.WebSocketException, OSError, ValueError, KeyError, TypeError,
            OBSSDKTimeoutError)


class ObsError(RuntimeError):
    """OBS refused a request, is unreachable, or a recording file is not usable; ``code`` is
    obs-websocket's request status code when OBS answered."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ObsConnectionError(ObsError):
    """No websocket connection to OBS (refused, timed out, dropped and not back in time)."""


class ObsAuthError(ObsConnectionError):
    """OBS refused the password (obs-websocket close code 4009) or wants one."""


class _OutcomeUnknown(Exception):
    """The connection died after a non-idempotent request was sent: it may have run."""


@dataclass(frozen=True)
class RecordEvent:
    """One recording-state transition, stamped with the local wall clock when it arrived."""

    state: str  # STARTING, STARTED, STOPPING, STOPPED, PAUSED, RESUMED
    active: bool
    path: str | None  # the output file (OBS names it in STARTED and STOPPED)
    t: float  # time.time() when the event arrived
    resync: bool = False  # not an OBS event: inferred from GetRecordStatus after a reconnect


@dataclass(frozen=True)
class VideoSettings:
    """OBS's canvas (``base``) and output size and its constant frame rate."""

    fps_numerator: int
    fps_denominator: int
    base_width: int
    base_height: int
    width: int  # output (scaled) size: the size of recorded frames
    height: int

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_numerator, self.fps_denominator)


@dataclass(frozen=True)
class RecordStatus:
    active: bool
    paused: bool
    timecode: str  # "HH:MM:SS.mmm"
    duration_ms: int
    bytes: int


class Obs:
    """One OBS Studio instance, controlled for a recording session (see the module docstring).

    ``timeout`` bounds connecting and each request; ``reconnect_timeout`` how long a dropped
    connection is retried before :class:`ObsConnectionError`; ``on_event`` is called (from the
    event thread; it must be quick) with every :class:`RecordEvent`, which are also kept in
    :meth:`record_events`.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, password: str | None = None,
        timeout: float = 5.0, reconnect_timeout: float = 30.0,
        on_event: Callable[[RecordEvent], None] | None = None,
    ) -> None:
        self.host, self.port, self.password = host, port, password
        self.timeout, self.reconnect_timeout = timeout, reconnect_timeout
        self.on_event = on_event
        self.reconnects = 0  # connections made again after a drop (requests and events)
        self._events: list[RecordEvent] = []
        self._changed = threading.Condition()  # guards _events, _active, _path
        self._active: bool | None = None  # recording, as far as we know
        self._path: str | None = None  # the current or last recording's file
        self._req: obsws_python.ReqClient | None = None
        self._req_lock = threading.Lock()  # one request in flight (answers are not matched)
        self._evc: obsws_python.EventClient | None = None
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connections ------------------------------------------------------------------------

    def connect(self) -> Obs:
        """Connect (requests and events) and learn the recording state; raises
        :class:`ObsConnectionError` / :class:`ObsAuthError` with the address."""
        self._closing.clear()
        with self._req_lock:
            self._req = self._open(obsws_python.ReqClient)
        self._open_events()
        self._resync()
        self._watchdog = threading.Thread(target=self._watch, name=f"obs-watchdog {self.address}",
                                          daemon=True)
        self._watchdog.start()
        return self

    def close(self) -> None:
        """Disconnect both connections and stop the watchdog (idempotent)."""
        self._closing.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        with self._req_lock:
            self._drop_requests()
        self._drop_events()

    def __enter__(self) -> Obs:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, kind: type, **kwargs: object) -> object:
        """A new obsws-python client of ``kind``, with obsws-python's failures turned into
        errors that name the address."""
        try:
            return kind(host=self.host, port=self.port, password=self.password or "",
                        timeout=self.timeout, **kwargs)
        except ConnectionRefusedError:
            raise ObsConnectionError(
                f"cannot connect to OBS at {self.address}: connection refused (is OBS running "
                "with Tools > WebSocket Server Settings > Enable WebSocket server, on this "
                "port?)") from None
        except OBSSDKError as exc:
            if isinstance(exc, OBSSDKTimeoutError):
                raise ObsConnectionError(f"cannot connect to OBS at {self.address}: timed "
                                         f"out ({exc})") from None
            if "no password" in str(exc):
                raise ObsAuthError(f"authentication failed with OBS at {self.address}: it "
                                   "requires a password and none was given") from None
            # obs-websocket closes the connection while identifying only on a bad password
            # (close code 4009); obsws-python reports that as "failed to identify"
            raise ObsAuthError(f"authentication failed with OBS at {self.address}: the "
                               "password was refused (wrong websocket password?)") from None
        except _DROPPED as exc:
            raise ObsConnectionError(f"cannot connect to OBS at {self.address}: "
                                     f"{type(exc).__name__}: {exc}") from None

    def _retrying(self, open_one: Callable[[], object], what: str) -> object:
        """``open_one()`` until it succeeds, with backoff, for up to ``reconnect_timeout``;
        a refused password is not retried."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay = BACKOFF_FIRST
        while True:
            try:
                client = open_one()
            except ObsAuthError:
                raise
            except ObsConnectionError as exc:
                if self._closing.is_set() or time.monotonic() + delay > deadline:
                    raise ObsConnectionError(f"lost the {what} connection to OBS at "
                                             f"{self.address} and could not reconnect within "
                                             f"{self.reconnect_timeout} s: {exc}") from None
                self._closing.wait(delay)
                delay = min(2 * delay, BACKOFF_MAX)
                continue
            self.reconnects += 1
            log.info("reconnected the %s connection to OBS at %s", what, self.address)
            return client

    def _drop_requests(self) -> None:
        if self._req is not None:
            with contextlib.suppress(*_DROPPED):
                self._req.disconnect()
            self._req = None

    def _open_events(self) -> None:
        client = self._open(obsws_python.EventClient, subs=OUTPUT_EVENTS)
        client.callback.register(self.on_record_state_changed)
        self._evc = client

    def _drop_events(self) -> None:
        if self._evc is not None:
            with contextlib.suppress(*_DROPPED):
                self._evc.disconnect()
            self._evc = None

    def _watch(self) -> None:
        """Reconnect and re-subscribe the event connection whenever it dies."""
        while not self._closing.wait(0.1):
            if self._evc is not None and self._evc.worker.is_alive():
                continue
            log.warning("the event connection to OBS at %s dropped; reconnecting", self.address)
            self._drop_events()
            try:
                self._retrying(self._open_events, "event")
                self._resync()
            except ObsError as exc:  # keep trying: the session's requests will report it
                log.warning("%s", exc)

    # -- events and state ---------------------------------------------------------------------

    def on_record_state_changed(self, data: object) -> None:
        """obsws-python's callback for RecordStateChanged (named for its dispatcher)."""
        t = time.time()
        state = str(getattr(data, "output_state", "")).removeprefix(STATE_PREFIX)
        self._add(RecordEvent(state, bool(getattr(data, "output_active", False)),
                              getattr(data, "output_path", None), t))

    def _add(self, event: RecordEvent) -> None:
        with self._changed:
            self._events.append(event)
            if event.state in ("STARTED", "STOPPED"):
                self._active = event.state == "STARTED"
            if event.path:
                self._path = event.path
            self._changed.notify_all()
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # an exception here would end obsws-python's event thread
                log.exception("on_event callback failed for %s", event)

    def record_events(self) -> list[RecordEvent]:
        """Every recording-state transition seen so far, in arrival order (a copy)."""
        with self._changed:
            return list(self._events)

    @property
    def recording(self) -> bool | None:
        """Whether OBS is recording, as far as events and status checks tell (None before
        :meth:`connect`)."""
        return self._active

    def _resync(self) -> None:
        """Align the known recording state with GetRecordStatus; record a missed change."""
        status = self.record_status()
        now = time.time()
        with self._changed:
            known = self._active
            if known is None:
                self._active = status.active
        if known is not None and status.active != known:
            if status.active:
                event = RecordEvent("STARTED", True, None, now - status.duration_ms / 1000, True)
            else:
                event = RecordEvent("STOPPED", False, self._path, now, True)
            log.warning("OBS at %s changed its recording state while disconnected: %s",
                        self.address, event)
            self._add(event)

    def _wait_event(self, mark: int, state: str, timeout: float) -> RecordEvent | None:
        """The first ``state`` event at index ``mark`` or later, within ``timeout``; None on
        timeout. Raises when the recording stopped while waiting for STARTED."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events[mark:]:
                    if event.state == state:
                        return event
                    if state == "STARTED" and event.state == "STOPPED":
                        raise ObsError(f"OBS at {self.address} stopped the recording while "
                                       "starting it (encoder or output path problem? see OBS's "
                                       "log)")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.1))

    # -- requests -----------------------------------------------------------------------------

    def request(self, name: str, data: dict | None = None, idempotent: bool = True) -> dict:
        """Send one obs-websocket request; its ``responseData`` (``{}`` when none).

        A dropped connection is reconnected and an idempotent request sent again; OBS's refusal
        raises :class:`ObsError` with its status code."""
        with self._req_lock:
            for attempt in (1, 2):
                if self._req is None:
                    self._req = self._retrying(lambda: self._open(obsws_python.ReqClient),
                                               "request")
                try:
                    return self._req.send(name, data, raw=True) or {}
                except OBSSDKRequestError as exc:
                    raise ObsError(f"OBS at {self.address} refused {name}: {exc}",
                                   exc.code) from None
                except _DROPPED as exc:
                    # never reuse the connection: an answer still on its way would be taken
                    # for the answer to the next request
                    self._drop_requests()
                    log.warning("request %s to OBS at %s failed (%s: %s); reconnecting", name,
                                self.address, type(exc).__name__, exc)
                    if not idempotent:
                        raise _OutcomeUnknown(name) from exc
                    if attempt == 2:
                        raise ObsConnectionError(f"request {name} to OBS at {self.address} "
                                                 f"failed twice: {exc}") from None
        raise AssertionError("unreachable")

    def version(self) -> dict:
        """GetVersion: ``obsVersion``, ``obsWebSocketVersion``, ``rpcVersion``, ..."""
        return self.request("GetVersion")

    def video_settings(self) -> VideoSettings:
        d = self.request("GetVideoSettings")
        return VideoSettings(d["fpsNumerator"], d["fpsDenominator"], d["baseWidth"],
                             d["baseHeight"], d["outputWidth"], d["outputHeight"])

    def record_directory(self) -> str | None:
        """Where OBS records (GetRecordDirectory); None when this OBS lacks the request."""
        try:
            return self.request("GetRecordDirectory").get("recordDirectory")
        except ObsError as exc:
            if exc.code == 204:  # UnknownRequestType: obs-websocket before 5.0.1
                return None
            raise

    def record_status(self) -> RecordStatus:
        d = self.request("GetRecordStatus")
        return RecordStatus(bool(d["outputActive"]), bool(d.get("outputPaused", False)),
                            d.get("outputTimecode", ""), int(d.get("outputDuration", 0)),
                            int(d.get("outputBytes", 0)))

    def _send_once(self, name: str) -> dict:
        """A request that must not run twice: after a drop, GetRecordStatus says whether it
        took effect (None: it did, answer lost) before it is sent again."""
        want_active = name == "StartRecord"
        for _ in (1, 2):
            try:
                return self.request(name, idempotent=False)
            except _OutcomeUnknown:
                if self.record_status().active == want_active:
                    return {}
        raise ObsConnectionError(f"{name} to OBS at {self.address} lost its connection twice")

    def start_recording(self, restart: bool = False, timeout: float = 10.0) -> float:
        """Start recording; returns ``time.time()`` at the arrival of OBS's STARTED event.

        Refuses (:class:`ObsError`, code 500) when OBS is already recording, unless ``restart``:
        then that recording is stopped first."""
        status = self.record_status()
        if status.active:
            if not restart:
                raise ObsError(f"OBS at {self.address} is already recording (for "
                               f"{status.timecode}); stop that recording first or pass "
                               "restart=True", OUTPUT_RUNNING)
            self.stop_recording(timeout)
        mark = len(self.record_events())
        try:
            self._send_once("StartRecord")
        except ObsError as exc:
            if exc.code == OUTPUT_RUNNING:
                raise ObsError(f"OBS at {self.address} is already recording: StartRecord "
                               "answered 500 (OutputRunning)", OUTPUT_RUNNING) from None
            raise
        event = self._wait_event(mark, "STARTED", timeout)
        if event is not None:
            return event.t
        status = self.record_status()  # events lost (reconnecting?): estimate from the status
        if status.active:
            log.warning("no STARTED event from OBS at %s; start time estimated from "
                        "GetRecordStatus", self.address)
            return time.time() - status.duration_ms / 1000
        raise ObsError(f"OBS at {self.address} did not start recording within {timeout} s")

    def stop_recording(self, timeout: float = 10.0) -> Path:
        """Stop recording; returns the file OBS wrote (StopRecord's ``outputPath``, checked
        against the STOPPED event's). The file may not be readable yet: see
        :meth:`wait_finalised`."""
        mark = len(self.record_events())
        try:
            path = self._send_once("StopRecord").get("outputPath")
        except ObsError as exc:
            if exc.code == OUTPUT_NOT_RUNNING:
                raise ObsError(f"OBS at {self.address} is not recording: StopRecord answered "
                               "501 (OutputNotRunning)", OUTPUT_NOT_RUNNING) from None
            raise
        event = self._wait_event(mark, "STOPPED", timeout)
        if event is None and self.record_status().active:
            raise ObsError(f"OBS at {self.address} did not stop recording within {timeout} s")
        if path and event is not None and event.path and Path(event.path) != Path(path):
            raise ObsError(f"OBS at {self.address} answered StopRecord with {path} but its "
                           f"STOPPED event names {event.path}")
        path = path or (event.path if event else None) or self._path
        if not path:
            raise ObsError(f"OBS at {self.address} stopped recording without naming the file")
        with self._changed:
            self._active = False
        return Path(path)

    def wait_finalised(self, path: str | Path, timeout: float = 30.0, poll: float = 0.25) -> int:
        """See :func:`wait_finalised`."""
        return wait_finalised(path, timeout, poll)


def _count_packets(path: Path) -> int:
    """Demux the whole file; its number of video packets (raises when it cannot be read)."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ObsError(f"{path} has no video stream")
        count = 0
        for packet in container.demux():
            if packet.size and packet.stream.type == "video":
                count += 1
        return count


def wait_finalised(path: str | Path, timeout: float = 30.0, poll: float = 0.25) -> int:
    """Wait until OBS has really finished writing ``path``: its size is the same on two polls
    ``poll`` seconds apart and the whole file opens and demuxes to the end with the same number
    of video packets both times. Returns that number; raises :class:`ObsError` saying what was
    last seen after ``timeout`` seconds (also for a recording stopped before its first frame or
    cut off by an OBS crash: OBS leaves a header-only file that never demuxes)."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            seen, why = None, "it does not exist"
        else:
            if size == 0:
                seen, why = None, "it is empty"
            else:
                try:
                    seen, why = (size, _count_packets(path)), "it is still changing"
                except (av.FFmpegError, ObsError, OSError) as exc:
                    seen, why = None, f"it cannot be demuxed yet ({exc})"
        if seen is not None and seen == last and seen[1] > 0:
            return seen[1]
        last = seen
        if time.monotonic() + poll > deadline:
            raise ObsError(f"{path} was not finalised within {timeout} s: {why}")
        time.sleep(poll)
