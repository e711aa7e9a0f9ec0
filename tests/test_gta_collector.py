"""The GTA V collector: protocol checks, bad messages skipped, control messages, restarts."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from datagen.gta.collector import LOG_FILE, SAMPLES_FILE, Collector, CollectorError
from datagen.gta.messages import MAX_MESSAGE, MessageError, check_message, encode


def frame_message(seq: int, frame: int | None = None, **changes) -> dict:
    msg = {"type": "frame", "seq": seq, "frame": 1000 + seq if frame is None else frame,
           "game_ms": 50000 + 33 * seq, "wall_ms": 1.7e12 + 33.3 * seq, "mode": "drive",
           "cam": {"pos": [1.0, 2.0, 3.0], "rot": [-5.0, 0.0, 90.0], "fov": 50.0},
           "vel": [0.0, 8.0, 0.0], "speed": 8.0,
           "vehicle": {"speed": 8.0, "throttle": 0.5, "brake": 0.0, "steering": 0.0},
           "keys": {"w": 1}, "dropped": 0}
    msg.update(changes)
    return msg


HELLO = {"type": "hello", "plugin": "worldforge-gta", "version": "0.1.0", "game_version": 3258,
         "config": {"weather": "CLEAR", "vehicle_density": 1.0}}


class Plugin:
    """The plugin's side of the wire, for tests."""

    def __init__(self, address) -> None:
        self.sock = socket.create_connection(address, timeout=5)

    def send(self, message: dict) -> None:
        self.sock.sendall(encode(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> dict:
        (n,) = struct.unpack("<I", self._exact(4))
        return json.loads(self._exact(n))

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "collector closed the connection"
            data += chunk
        return data

    def close(self) -> None:
        """End the connection as a plugin does: FIN first (a close with unread acks would
        reset it instead)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.5)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def samples(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / SAMPLES_FILE).read_text().splitlines()]


def events(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_check_message_names_what_is_wrong():
    check_message(json.dumps(frame_message(0)).encode())
    cases = {
        b"not json": "not JSON",
        b"\xff\xfe": "not UTF-8",
        b"[1, 2]": "JSON object",
        json.dumps({"type": "nonsense"}).encode(): "unknown message type",
        json.dumps(frame_message(-1)).encode(): "seq must be an integer >= 0",
        json.dumps(frame_message(0, speed="fast")).encode(): "speed must be a number",
        json.dumps(frame_message(0, mode="fly")).encode(): "mode must be one of",
        json.dumps(frame_message(0, keys={"q": 1})).encode(): "unknown key 'q'",
        json.dumps(frame_message(0, keys={"w": 2})).encode(): "keys.w must be 0 or 1",
        json.dumps(frame_message(0, vel=[1, 2])).encode(): "vel must be a list of 3",
        json.dumps(frame_message(0, cam={"pos": [0, 0, 0], "rot": [0, 0, 0], "fov": 0})
                   ).encode(): "cam.fov must be in (0, 180)",
        json.dumps(frame_message(0)).replace('"speed": 8.0', '"speed": NaN').encode():
            "non-finite",
    }
    for body, reason in cases.items():
        with pytest.raises(MessageError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            check_message(body)
    with pytest.raises(MessageError, match="exceeds"):
        encode({"type": "status", "error": "x" * MAX_MESSAGE})


def test_frames_written_as_they_arrive_and_start_stop_reach_the_plugin(tmp_path):
    with Collector(tmp_path, port=0) as collector:
        plugin = Plugin(collector.address)
        plugin.send(HELLO)
        assert collector.wait_hello(5)["game_version"] == 3258
        collector.start("s1")
        assert plugin.receive() == {"type": "start", "session": "s1"}
        for seq in range(5):
            plugin.send(frame_message(seq))
        assert collector.wait_frames(5, 5)
        # on disk before the collector closes: nothing is lost if it dies now
        got = samples(tmp_path)
        assert [s["seq"] for s in got] == list(range(5))
        assert all(s["recv_ms"] > 1e12 for s in got)
        assert got[0]["cam"] == frame_message(0)["cam"]
        collector.stop()
        assert receive_until(plugin, "stop") == {"type": "stop"}
        plugin.close()


def test_bad_messages_are_logged_and_skipped_without_dropping_the_connection(tmp_path):
    with Collector(tmp_path, port=0) as collector:
        plugin = Plugin(collector.address)
        plugin.send(HELLO)
        plugin.send(frame_message(0))
        body = b"{not json"
        plugin.send_raw(struct.pack("<I", len(body)) + body)
        big = json.dumps({**frame_message(1), "pad": "x" * (MAX_MESSAGE + 10)}).encode()
        plugin.send_raw(struct.pack("<I", len(big)) + big)  # oversized: read and skipped
        plugin.send({**frame_message(2), "speed": "inf"})
        plugin.send(frame_message(3))
        assert collector.wait_frames(2, 5)
        plugin.send_raw(struct.pack("<I", 100) + b'{"type": ')  # cut off by a crash
        plugin.close()
        wait_until(lambda: collector.counts["bad"] == 4)
    assert [s["seq"] for s in samples(tmp_path)] == [0, 3]
    kinds = [e["kind"] for e in events(tmp_path) if e["event"] == "bad_message"]
    assert sorted(kinds) == ["invalid", "invalid", "oversized", "truncated"]
    reasons = " ".join(e["reason"] for e in events(tmp_path) if e["event"] == "bad_message")
    assert "not JSON" in reasons and "speed must be a number" in reasons
    assert "cut at 9 of 100 bytes" in reasons


def test_garbage_length_closes_only_that_connection(tmp_path):
    with Collector(tmp_path, port=0) as collector:
        plugin = Plugin(collector.address)
        plugin.send_raw(b"GET / HTTP/1.1\r\n\r\n")  # not our protocol: length ~ 1.2 GB
        wait_until(lambda: collector.counts["garbage"] == 1)
        plugin.close()
        plugin = Plugin(collector.address)
        plugin.send(HELLO)
        plugin.send(frame_message(0))
        assert collector.wait_frames(1, 5)
        plugin.close()


def test_gaps_are_counted_and_repeats_skipped(tmp_path):
    with Collector(tmp_path, port=0) as collector:
        plugin = Plugin(collector.address)
        plugin.send(HELLO)
        for seq in (0, 1, 4, 3, 5):  # 2 and 3 dropped by the plugin; 3 arriving late repeats
            plugin.send(frame_message(seq, dropped=2 if seq >= 4 else 0))
        assert collector.wait_frames(4, 5)
        wait_until(lambda: collector.counts["repeated"] == 1)
        plugin.close()
    assert [s["seq"] for s in samples(tmp_path)] == [0, 1, 4, 5]
    assert collector.counts["gaps"] == 1 and collector.counts["missing"] == 2
    gap = next(e for e in events(tmp_path) if e["event"] == "gap")
    assert (gap["after"], gap["seq"], gap["plugin_dropped"]) == (1, 4, 2)


def receive_until(plugin: Plugin, kind: str) -> dict:
    while (msg := plugin.receive())["type"] != kind:
        pass
    return msg


def test_acks_tell_the_plugin_what_is_written_and_resent_frames_are_not_written_twice(tmp_path):
    hello = {**HELLO, "run": "a1b2c3d4e5f60718"}
    collector = Collector(tmp_path, port=0)
    port = collector.address[1]
    plugin = Plugin(collector.address)
    plugin.send(hello)
    for seq in range(10):
        plugin.send(frame_message(seq))
        time.sleep(0.05)
    ack = receive_until(plugin, "ack")  # a few times a second
    assert 0 <= ack["seq"] <= 9
    collector.close()  # dies; the plugin still holds frames 5.. (not acknowledged, say)
    plugin.close()
    with Collector(tmp_path, port=port) as again:  # learns run and seq from samples.jsonl
        plugin = Plugin(again.address)
        plugin.send(hello)  # the same run reconnects: told what is on disk, resends the rest
        assert receive_until(plugin, "ack") == {"type": "ack", "seq": 9}
        for seq in range(5, 14):
            plugin.send(frame_message(seq))
        assert again.wait_frames(4, 5)
        wait_until(lambda: again.counts["repeated"] == 5)
        plugin.send({**hello, "run": "ffffffffffffffff"})  # the game restarted: seq from 0
        plugin.send(frame_message(0, frame=50))
        assert again.wait_frames(5, 5)
        plugin.close()
    got = samples(tmp_path)
    assert [s["seq"] for s in got] == [*range(14), 0]
    assert {s["run"] for s in got} == {"a1b2c3d4e5f60718", "ffffffffffffffff"}
    assert again.counts["gaps"] == 0


def test_restarted_collector_appends_and_a_reconnecting_plugin_is_told_to_start(tmp_path):
    collector = Collector(tmp_path, port=0)
    port = collector.address[1]
    plugin = Plugin(collector.address)
    plugin.send(HELLO)
    collector.wait_hello(5)
    collector.start("s1")
    assert plugin.receive()["type"] == "start"
    for seq in range(3):
        plugin.send(frame_message(seq))
    assert collector.wait_frames(3, 5)
    collector.close()  # the collector dies mid-session
    plugin.close()
    with Collector(tmp_path, port=port) as again:
        again.start("s1")  # the session goes on: the plugin has not reconnected yet
        plugin = Plugin(again.address)
        plugin.send(HELLO)  # reconnecting: hello first, and it is told to start again
        assert plugin.receive() == {"type": "start", "session": "s1"}
        for seq in range(3, 6):
            plugin.send(frame_message(seq))
        assert again.wait_frames(3, 5)
        plugin.close()
    assert [s["seq"] for s in samples(tmp_path)] == list(range(6))


def test_port_in_use_is_a_clear_error(tmp_path):
    with Collector(tmp_path / "a", port=0) as first, \
            pytest.raises(CollectorError, match="cannot listen on 127.0.0.1"):
        Collector(tmp_path / "b", port=first.address[1])


def test_no_plugin_is_a_clear_error(tmp_path):
    with Collector(tmp_path, port=0) as collector, \
            pytest.raises(CollectorError, match="no plugin connected"):
        collector.wait_hello(0.2)
