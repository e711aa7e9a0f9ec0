"""A stand-in for a running Unreal editor's remote execution, speaking the real protocol.

It joins the discovery multicast group, answers ``ping`` with ``pong`` (the editor's fields),
connects back to the client's TCP port on ``open_connection``, and answers each ``command``
with ``command_result``, running the Python it is given the way the editor does (statements
executed, expressions evaluated, what they print returned as ``Info`` output). ``fault`` makes
it misbehave: ``"silent"`` never connects back, ``"malformed"`` answers with bytes that are not
JSON, ``"truncated"`` sends half a reply and hangs up, ``"hang"`` never answers a command.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import traceback
import uuid

from datagen.unreal.remote import MAGIC, message, multicast_socket


class EditorPeer:
    def __init__(self, group: str, port: int, project: str = "Game", fault: str = "",
                 bind: str = "127.0.0.1") -> None:
        self.node = str(uuid.uuid4())
        self.group, self.port, self.project, self.fault = group, port, project, fault
        self.udp = multicast_socket(group, port, bind, 0.2)
        self.namespace: dict = {}
        self.commands: list[dict] = []  # what the client sent, for the tests to check
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._tcp: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.udp.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            body = json.loads(raw)
            if body.get("magic") != MAGIC or body.get("source") == self.node:
                continue
            if body["type"] == "ping":
                self.udp.sendto(message("pong", self.node, body["source"], {
                    "engine_root": "/opt/UnrealEngine", "engine_version": "5.6.0",
                    "machine": "render-01", "project_name": self.project,
                    "project_root": f"/projects/{self.project}", "user": "tester"}),
                    (self.group, self.port))
            elif body["type"] == "open_connection" and body.get("dest") == self.node:
                if self.fault != "silent":
                    data = body["data"]
                    self._tcp = socket.create_connection((data["command_ip"],
                                                          data["command_port"]))
                    threading.Thread(target=self._commands, args=(self._tcp, body["source"]),
                                     daemon=True).start()
            elif body["type"] == "close_connection" and body.get("dest") == self.node:
                self.closed.set()

    def _commands(self, conn: socket.socket, client: str) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(1024)  # small reads: a command may span several
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            try:
                body = json.loads(buffer)
            except ValueError:
                continue
            buffer = b""
            self.commands.append(body)
            reply = message("command_result", self.node, client, self._run(body["data"]))
            if self.fault == "malformed":
                conn.sendall(b"<html>not json")
            elif self.fault == "truncated":
                conn.sendall(reply[: len(reply) // 2])
                conn.close()
                return
            elif self.fault != "hang":
                conn.sendall(reply)

    def _run(self, data: dict) -> dict:
        printed = io.StringIO()
        result, success = "None", True
        try:
            with contextlib.redirect_stdout(printed):
                if data["exec_mode"] == "EvaluateStatement":
                    result = repr(eval(data["command"], self.namespace))
                else:
                    exec(data["command"], self.namespace)
        except Exception:
            success = False
            printed.write(traceback.format_exc())
        output = [{"type": "Info" if success else "Error", "output": line}
                  for line in printed.getvalue().splitlines()]
        return {"success": success, "command": data["command"], "result": result,
                "output": output}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.udp.close()
        if self._tcp is not None:
            self._tcp.close()
