"""A GTA V session end to end in Python: a plugin double streaming frames, the fake OBS server
recording what the "game" shows, the real collector, synchronisation and episodes.

The game double shows each game frame's number as a barcode; the fake OBS captures it in real
time, so every episode row can be checked against the frame the video really shows. (The full
end to end with the C++ plugin core, real OBS and Xvfb is tests/test_gta_end_to_end.py.)
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from gta_game_view import draw_marker
from obs_server import FakeObs

from datagen.cli import main
from datagen.episode import find_episodes, read_episode
from datagen.episode_check import validate_episode
from datagen.gta.collector import SAMPLES_FILE
from datagen.gta.messages import HEADER, encode
from datagen.gta.session import SESSIONS, GtaConfig, finalise, record
from datagen.video import read_frames

BITS, W, H = 16, 160, 96


def barcode(n: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for b in range(BITS):
        if n >> b & 1:
            img[:, b * W // BITS:(b + 1) * W // BITS] = 255
    return img


def read_barcode(img: np.ndarray) -> int:
    means = [img[:, b * W // BITS + 2:(b + 1) * W // BITS - 2].mean() for b in range(BITS)]
    return sum(1 << b for b, m in enumerate(means) if m > 128)


class GameDouble:
    """Presents game frames at 30 fps and streams one message per presented frame (as the
    plugin does: the message of a frame goes out right after it was presented)."""

    def __init__(self, port: int, fps: float = 30.0, drop: range = range(0)) -> None:
        self.port, self.fps, self.drop = port, fps, drop
        self.shown = 0
        self.shown_code = 0  # the marker code on the frame shown (0: none)
        self.mark_left = self.marked = 0
        self.sent: dict[int, dict] = {}
        self.stopped = threading.Event()
        self.recording = False  # between the collector's start and stop
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        for _ in range(200):
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
                break
            except OSError:
                time.sleep(0.05)
        sock.sendall(encode({"type": "hello", "plugin": "worldforge-gta", "version": "0.1.0",
                             "game_version": 3258,
                             "config": {"weather": "CLEAR", "seed": 11}}))
        sock.settimeout(5)
        seq, frame, start = 0, 100, time.monotonic()
        control = threading.Thread(target=self._control, args=(sock,), daemon=True)
        control.start()
        while not self.stopped.is_set():
            frame += 1
            delay = start + (frame - 100) / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            code = 0
            if self.mark_left > 0:
                code = 1 + self.marked % 14
                self.mark_left -= 1
                self.marked += 1
            self.shown, self.shown_code = frame, code  # presented
            if not self.recording:
                continue
            heading = 0.7 * frame
            msg = {"type": "frame", "seq": seq, "frame": frame, "game_ms": 33 * frame,
                   "wall_ms": time.time() * 1000, "mode": "drive",
                   "cam": {"pos": [frame * 0.25, 5.0, 30.0], "rot": [-3.0, 0.0, heading],
                           "fov": 50.0},
                   "vel": [7.5, 0.0, 0.0], "speed": 7.5,
                   "vehicle": {"speed": 7.5, "throttle": 0.6, "brake": 0.0, "steering": 0.2},
                   "keys": {"w": 1, "a": int(frame % 20 < 10)}, "dropped": 0,
                   "mark": code}
            self.sent[frame] = msg
            if seq not in self.drop:
                sock.sendall(encode(msg))
            seq += 1
        sock.close()

    def _control(self, sock: socket.socket) -> None:
        while not self.stopped.is_set():
            try:
                header = sock.recv(HEADER.size, socket.MSG_WAITALL)
                if not header:
                    return
                (n,) = HEADER.unpack(header)
                msg = json.loads(sock.recv(n, socket.MSG_WAITALL))
            except (OSError, ValueError):
                return
            if msg["type"] == "mark":
                self.mark_left, self.marked = msg["frames"], 0
            elif msg["type"] in ("start", "stop"):  # acks need nothing from a double
                self.recording = msg["type"] == "start"

    def screen(self) -> np.ndarray:
        """What the game shows now (what the fake OBS records)."""
        img = barcode(self.shown)
        return draw_marker(img, self.shown_code) if self.shown_code else img

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("fmt", ["mkv", "mp4"])
def test_session_writes_episodes_whose_rows_match_the_frames_the_video_shows(tmp_path, fmt):
    port = free_port()
    game = GameDouble(port)
    with FakeObs(tmp_path / "obs", width=W, height=H, fps=30, fmt=fmt, finalise_delay=0.8,
                 frames=lambda i: game.screen()) as obs:
        cfg = GtaConfig(out=tmp_path / "out", duration_s=3.0, obs_port=obs.port,
                        collector_port=port, plugin_timeout_s=10, min_frames=10)
        lines: list[str] = []
        result = record(cfg, report=lines.append)
    game.stop()
    assert not result.rejected, result.rejected
    assert len(result.episodes) == 1
    path = result.episodes[0]
    assert validate_episode(path) == []
    ep = read_episode(path)
    assert ep.meta.backend == "gta" and ep.meta.scene == "gta" and ep.meta.seed == 11
    assert ep.meta.engine["version"] == "3258"
    frames = list(read_frames(path / "video.mp4"))
    assert len(frames) == ep.meta.frames >= 60  # about 3 s at 30 fps, from the first key frame
    sync = ep.meta.extra["sync"]  # after the marker
    assert sync["marker"]["video_frames"][1] < sync["video_frames"][0]
    low, high = sync["marker"]["latency_ms"]
    assert low <= sync["offset_ms"] < high
    shown = np.array([read_barcode(f) for f in frames])
    labelled = ep.data["game_frame"].astype(np.int64)
    # the row of each video frame describes the game frame that video frame shows
    exact = np.mean(shown == labelled)
    assert exact >= 0.9, (exact, list(zip(shown, labelled, strict=True))[:20])
    assert np.all(np.abs(shown - labelled) <= 1)
    for k, frame in enumerate(labelled):
        sent = game.sent[int(frame)]
        assert ep.data["pos_x"][k] == sent["cam"]["pos"][0]
        assert ep.data["key_w"][k] == 1
    assert set(ep.data["key_a"]) == {0, 1}
    # the OBS file is gone (moved or remuxed into the episode); the session folder stays
    assert not list((tmp_path / "obs").glob(f"*.{fmt}"))
    session = tmp_path / "out" / SESSIONS / result.session.name
    assert (session / SAMPLES_FILE).exists() and (session / "session.json").exists()
    assert any("recording" in line for line in lines)


def test_dropped_messages_cut_the_session_into_episodes_and_finalise_reruns(tmp_path):
    port = free_port()
    game = GameDouble(port, drop=range(40, 43))  # the plugin's queue overflowed once
    with FakeObs(tmp_path / "obs", width=W, height=H, fps=30, fmt="mkv", finalise_delay=0.3,
                 frames=lambda i: game.screen()) as obs:
        cfg = GtaConfig(out=tmp_path / "out", duration_s=3.0, obs_port=obs.port,
                        collector_port=port, plugin_timeout_s=10, min_frames=10,
                        keep_obs_file=True)
        result = record(cfg, report=lambda line: None)
    game.stop()
    assert len(result.episodes) == 2
    assert any("are in no episode" in r for r in result.rejected)
    for path in result.episodes:
        assert validate_episode(path) == []
        ep = read_episode(path)
        frames = np.array([read_barcode(f) for f in read_frames(path / "video.mp4")])
        assert np.mean(frames == ep.data["game_frame"]) >= 0.85
        assert ep.meta.extra["sync"]["video_frames"][1] > ep.meta.extra["sync"]["video_frames"][0]
    # nothing missing inside an episode: the dropped game frames fall between the two
    first, second = (read_episode(p).data["game_frame"] for p in result.episodes)
    dropped = {f for f, m in game.sent.items() if m["seq"] in range(40, 43)}
    assert max(first) < min(dropped) and min(second) > max(dropped)
    # finalise again: finished episodes are kept, nothing is written twice
    again = finalise(result.session, cfg, report=lambda line: None)
    assert again.episodes == result.episodes
    assert main(["gta-sync", str(result.session)]) == 0
    finished, partial = find_episodes(tmp_path / "out")
    assert len(finished) == 2 and not partial
    # with a minimum longer than both stretches, no episode is new and the command says so
    for path in finished:
        shutil.rmtree(path)
    assert main(["gta-sync", str(result.session), "--min-frames", "500"]) == 1
    assert find_episodes(tmp_path / "out") == ([], [])
    assert main(["gta-sync", str(tmp_path / "out")]) == 2  # not a session: a usage error


def test_no_plugin_fails_clearly(tmp_path):
    with FakeObs(tmp_path / "obs", width=W, height=H) as obs:
        cfg = GtaConfig(out=tmp_path / "out", duration_s=1.0, obs_port=obs.port,
                        collector_port=free_port(), plugin_timeout_s=0.3)
        with pytest.raises(Exception, match="no plugin connected"):
            record(cfg, report=lambda line: None)


def test_obs_dropping_its_connections_mid_session_does_not_end_it(tmp_path):
    port = free_port()
    game = GameDouble(port)
    with FakeObs(tmp_path / "obs", width=W, height=H, fps=30, fmt="mkv", finalise_delay=0.3,
                 frames=lambda i: game.screen()) as obs:
        cfg = GtaConfig(out=tmp_path / "out", duration_s=3.5, obs_port=obs.port,
                        collector_port=port, plugin_timeout_s=10, min_frames=10)
        # OBS restarts its websocket server (or the network blips) 1.5 s in, for 0.5 s
        threading.Timer(1.5, obs.drop_connections, kwargs={"down_for": 0.5}).start()
        result = record(cfg, report=lambda line: None)
        assert obs.connections > 2  # the client reconnected
    game.stop()
    assert len(result.episodes) == 1 and not result.rejected
    path = result.episodes[0]
    assert validate_episode(path) == []
    ep = read_episode(path)
    shown = np.array([read_barcode(f) for f in read_frames(path / "video.mp4")])
    assert np.mean(shown == ep.data["game_frame"]) >= 0.9


def test_record_command_refuses_what_a_live_session_cannot_do(tmp_path, capsys):
    assert main(["record", "--backend", "gta", "--ray", "--out", str(tmp_path)]) == 2
    assert "no --ray" in capsys.readouterr().err
    assert main(["record", "--backend", "gta", "--out", str(tmp_path), "--duration", "1",
                 "--collector-port", str(free_port()), "--plugin-timeout", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "GTA V session failed: no plugin connected" in err and "worldforge_gta.ini" in err
    with pytest.raises(SystemExit):
        main(["record", "--backend", "gta", "--obs-port", "70000"])
