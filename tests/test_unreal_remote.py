"""Our remote-execution client against a peer speaking Unreal's protocol (tests/unreal_peer.py)."""

from __future__ import annotations

import json
import os

import pytest
from unreal_peer import EditorPeer

from datagen.cli import main
from datagen.unreal.remote import Client, RemoteError, message, parse

GROUP = "239.0.0.1"


@pytest.fixture
def port() -> int:
    """A discovery port of this test's own, away from a real editor's 6766."""
    return 20000 + (os.getpid() * 7 + id(object())) % 20000


def client(port: int, timeout: float = 3.0) -> Client:
    return Client(GROUP, port, "127.0.0.1", ("127.0.0.1", 0), timeout)


def test_ping_finds_every_editor_with_its_project(port):
    peers = [EditorPeer(GROUP, port, "City"), EditorPeer(GROUP, port, "Forest")]
    try:
        with client(port) as c:
            found = c.find(wait=0.5)
        assert sorted(e.project_name for e in found) == ["City", "Forest"]
        assert {e.node for e in found} == {p.node for p in peers}
        assert all(e.engine_version == "5.6.0" and e.machine == "render-01" for e in found)
    finally:
        for p in peers:
            p.stop()


def test_commands_run_in_the_editor_and_come_back_whole(port):
    peer = EditorPeer(GROUP, port, "City")
    try:
        with client(port) as c:
            (editor,) = c.find(wait=0.3)
            c.connect(editor)
            done = c.run("import math\nprint('hello'); x = math.pi")
            assert done.success and done.text == "hello\n" and done.result == "None"
            assert c.run("round(x, 3)", "EvaluateStatement").result == "3.142"
            big = c.run("for i in range(20000): print('line', i, 'x' * 20)")
            assert big.success and len(big.output) == 20000  # about 600 KB: many reads
            assert big.output[-1] == ("Info", "line 19999 " + "x" * 20)
            failed = c.run("1 / 0")
            assert not failed.success and "ZeroDivisionError" in failed.text
            assert failed.output[-1][0] == "Error"
        assert peer.closed.wait(2.0)  # close_connection reached the editor
        sent = peer.commands[0]
        assert sent["type"] == "command" and sent["dest"] == editor.node
        assert sent["data"] == {"command": "import math\nprint('hello'); x = math.pi",
                                "unattended": True, "exec_mode": "ExecuteStatement"}
    finally:
        peer.stop()


@pytest.mark.parametrize("fault, expected", [
    ("silent", "did not connect back"),
    ("malformed", "malformed reply"),
    ("truncated", "closed the connection in the middle of a reply"),
    ("hang", "no reply from the editor within 0.5 s"),
])
def test_misbehaving_editors_give_clear_errors(port, fault, expected):
    peer = EditorPeer(GROUP, port, "City", fault=fault)
    try:
        with client(port, timeout=0.5) as c:
            (editor,) = c.find(wait=0.3)
            with pytest.raises(RemoteError, match=expected):
                c.connect(editor)
                c.run("print(1)")
    finally:
        peer.stop()


def test_messages_are_checked():
    body = parse(message("pong", "a", "b", {"x": 1}))
    assert body == {"version": 1, "magic": "ue_py", "type": "pong", "source": "a", "dest": "b",
                    "data": {"x": 1}}
    with pytest.raises(RemoteError, match="not JSON"):
        parse(b"\xff\xfe")
    with pytest.raises(RemoteError, match="not a ue_py message"):
        parse(json.dumps({"type": "ping"}).encode())
    with pytest.raises(RemoteError, match="protocol version 2"):
        parse(json.dumps({"version": 2, "magic": "ue_py", "type": "ping"}).encode())


def test_the_command_line_finds_and_runs(port, capsys):
    peer = EditorPeer(GROUP, port, "City")
    try:
        common = ["--port", str(port), "--wait", "0.3"]
        assert main(["unreal", "find", *common]) == 0
        assert "City  UE 5.6.0  on render-01" in capsys.readouterr().out
        assert main(["unreal", "exec", "print(6 * 7)", *common]) == 0
        assert capsys.readouterr().out == "42\n"
        assert main(["unreal", "exec", "2 ** 10", "--mode", "evaluate", *common]) == 0
        assert capsys.readouterr().out == "1024\n"
        assert main(["unreal", "exec", "raise SystemError('no')", *common]) == 1
        assert "SystemError: no" in capsys.readouterr().out
        assert main(["unreal", "exec", "pass", "--project", "Forest", *common]) == 2
        assert "no editor has project 'Forest'; answering: City" in capsys.readouterr().err
    finally:
        peer.stop()
    assert main(["unreal", "find", "--port", str(port), "--wait", "0.2"]) == 2
    assert "no Unreal editor answered" in capsys.readouterr().err
