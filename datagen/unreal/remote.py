"""Unreal Engine's Python remote execution protocol: find running editors, run Python in them.

Our own client for the protocol the editor's Python Editor Script Plugin speaks (with "Enable
Remote Execution" on in the project's Python settings). Every message is a JSON object
``{"version": 1, "magic": "ue_py", "type": ..., "source": <node id>, "dest": <node id>,
"data": {...}}``; each side names itself with a random node id.

- **Discovery** on UDP multicast (group 239.0.0.1, port 6766, TTL 0: this machine only): the
  client sends ``ping``; every editor answers ``pong`` with ``engine_root, engine_version,
  machine, project_name, project_root, user``. Since UE 5.3 editors bind the multicast socket to
  127.0.0.1 by default, so an editor on another machine answers only once its "Multicast Bind
  Address" setting is changed (the usual cause of "no editor found").
- **Commands**: the client listens on a TCP port (127.0.0.1:6776 by default) and sends
  ``open_connection {command_ip, command_port}`` to one editor, which connects back. Then each
  ``command {command, unattended, exec_mode}`` (``ExecuteFile``, ``ExecuteStatement`` or
  ``EvaluateStatement``) is answered by ``command_result {success, command, result, output:
  [{type, output}]}`` on that connection. TCP has no message boundaries and a big result spans
  many reads, so a reply is read until it is one whole JSON object. ``close_connection`` ends.

Every failure is a :class:`RemoteError` that says what happened and what to check.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from dataclasses import dataclass, field

MAGIC = "ue_py"
VERSION = 1
GROUP = "239.0.0.1"
PORT = 6766
BIND = "127.0.0.1"  # the editor's default multicast bind address since UE 5.3
COMMAND_ENDPOINT = ("127.0.0.1", 6776)
EXEC_MODES = ("ExecuteFile", "ExecuteStatement", "EvaluateStatement")
RECEIVE_BYTES = 4096
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RemoteError(RuntimeError):
    """Something went wrong talking to an editor; the message says what."""


@dataclass(frozen=True)
class Editor:
    """A running editor that answered a ping."""

    node: str
    engine_version: str
    project_name: str
    project_root: str
    machine: str
    user: str
    engine_root: str


@dataclass(frozen=True)
class Result:
    """What one command gave: ``success``, the evaluated ``result`` (a string) and what it
    logged, as ``(type, text)`` pairs (``Info``, ``Warning``, ``Error``)."""

    success: bool
    result: str
    output: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything it printed, one line per output entry."""
        return "".join(text if text.endswith("\n") else text + "\n" for _, text in self.output)


def message(kind: str, source: str, dest: str | None = None, data: dict | None = None) -> bytes:
    """One protocol message as bytes."""
    body: dict = {"version": VERSION, "magic": MAGIC, "type": kind, "source": source}
    if dest is not None:
        body["dest"] = dest
    if data is not None:
        body["data"] = data
    return json.dumps(body).encode("utf-8")


def parse(raw: bytes) -> dict:
    """A protocol message from bytes; ``RemoteError`` if it is not one."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteError(f"malformed message from the editor (not JSON): {exc}") from None
    if not isinstance(body, dict) or body.get("magic") != MAGIC or "type" not in body:
        raise RemoteError(f"malformed message from the editor (not a {MAGIC} message): "
                          f"{str(body)[:200]}")
    if body.get("version") != VERSION:
        raise RemoteError(f"the editor speaks protocol version {body.get('version')!r}, this "
                          f"client {VERSION}")
    return body


def multicast_socket(group: str, port: int, bind: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(group) + socket.inet_aton(bind))
        sock.bind(("", port))
        sock.settimeout(timeout)
    except OSError as exc:
        sock.close()
        raise RemoteError(f"cannot join multicast group {group}:{port} on {bind}: {exc}") from None
    return sock


class Client:
    """This side of the protocol: ``find()`` editors, ``connect()`` to one, ``run()``."""

    def __init__(self, group: str = GROUP, port: int = PORT, bind: str = BIND,
                 command_endpoint: tuple[str, int] = COMMAND_ENDPOINT,
                 timeout: float = 5.0) -> None:
        self.node = str(uuid.uuid4())
        self.group, self.port, self.bind = group, port, bind
        self.command_endpoint = command_endpoint
        self.timeout = timeout
        self._udp = multicast_socket(group, port, bind, timeout)
        self._tcp: socket.socket | None = None
        self._editor: Editor | None = None

    def find(self, wait: float = 1.0) -> list[Editor]:
        """The editors that answer a ping within ``wait`` seconds, in order of answer."""
        self._udp.sendto(message("ping", self.node), (self.group, self.port))
        found: dict[str, Editor] = {}
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self._udp.settimeout(left)
            try:
                raw, _ = self._udp.recvfrom(65536)
            except TimeoutError:
                break
            try:
                body = parse(raw)
            except RemoteError:
                continue  # not ours: other traffic on the group is ignored
            if body["type"] != "pong" or body.get("dest") != self.node:
                continue
            data = body.get("data") or {}
            found.setdefault(body["source"], Editor(
                node=body["source"], engine_version=str(data.get("engine_version", "")),
                project_name=str(data.get("project_name", "")),
                project_root=str(data.get("project_root", "")),
                machine=str(data.get("machine", "")), user=str(data.get("user", "")),
                engine_root=str(data.get("engine_root", ""))))
        self._udp.settimeout(self.timeout)
        return list(found.values())

    def connect(self, editor: Editor) -> None:
        """Open the command channel to ``editor`` (it connects back to our TCP port)."""
        if self._tcp is not None:
            raise RemoteError("already connected; close() first")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(self.command_endpoint)
            listener.listen(1)
            listener.settimeout(self.timeout)
            host, port = listener.getsockname()
            self._udp.sendto(message("open_connection", self.node, editor.node,
                                     {"command_ip": host, "command_port": port}),
                             (self.group, self.port))
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                raise RemoteError(
                    f"the editor {editor.project_name!r} ({editor.node}) did not connect back to "
                    f"{host}:{port} within {self.timeout:g} s; is that address reachable from "
                    "the editor, and the port free?") from None
        except OSError as exc:
            raise RemoteError(f"cannot listen on {self.command_endpoint}: {exc}") from None
        finally:
            listener.close()
        conn.settimeout(self.timeout)
        self._tcp, self._editor = conn, editor

    def run(self, command: str, exec_mode: str = "ExecuteStatement",
            unattended: bool = True) -> Result:
        """Run ``command`` in the connected editor and return its :class:`Result`."""
        if exec_mode not in EXEC_MODES:
            raise ValueError(f"exec_mode must be one of {', '.join(EXEC_MODES)}, got {exec_mode!r}")
        if self._tcp is None or self._editor is None:
            raise RemoteError("not connected to an editor; connect() first")
        self._tcp.sendall(message("command", self.node, self._editor.node,
                                  {"command": command, "unattended": unattended,
                                   "exec_mode": exec_mode}))
        body = self._receive()
        if body["type"] != "command_result":
            raise RemoteError(f"expected command_result from the editor, got {body['type']!r}")
        data = body.get("data")
        if not isinstance(data, dict) or "success" not in data:
            raise RemoteError(f"command_result without success: {str(body)[:200]}")
        output = [(str(o.get("type", "")), str(o.get("output", "")))
                  for o in data.get("output") or [] if isinstance(o, dict)]
        return Result(bool(data["success"]), str(data.get("result", "")), output)

    def _receive(self) -> dict:
        """One whole message from the command channel, however many reads it takes."""
        buffer = b""
        while True:
            try:
                chunk = self._tcp.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise RemoteError(f"no reply from the editor within {self.timeout:g} s"
                                  + (f" (got {len(buffer)} bytes of it)" if buffer else "")
                                  ) from None
            if not chunk:
                raise RemoteError("the editor closed the connection"
                                  + (f" in the middle of a reply ({len(buffer)} bytes)"
                                     if buffer else ""))
            buffer += chunk
            if len(buffer) > MAX_MESSAGE_BYTES:
                raise RemoteError(f"reply larger than {MAX_MESSAGE_BYTES} bytes")
            try:
                json.loads(buffer.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                if buffer.lstrip()[:1] not in (b"{", b""):
                    raise RemoteError(f"malformed reply from the editor: {buffer[:200]!r}"
                                      ) from None
                continue  # not whole yet
            return parse(buffer)

    def close(self) -> None:
        """Close the command channel (telling the editor) and the discovery socket."""
        if self._tcp is not None and self._editor is not None:
            with contextlib.suppress(OSError):  # closing anyway
                self._udp.sendto(message("close_connection", self.node, self._editor.node),
                                 (self.group, self.port))
            self._tcp.close()
        self._tcp = self._editor = None
        self._udp.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
