"""The GTA V plugin (``gta_scripthook/``): its C++ unit tests, the sim host against a loopback
collector speaking docs/gta.md, and the Windows ``.asi`` cross-compiled with MinGW-w64.

The sim host runs the plugin's real script against its simulator, so the frame messages it
streams can be checked against the simulator's ground truth (``--truth``) exactly.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from gta_build import build_portable, build_windows, mingw_available

from datagen.gta.messages import CHECKS

# The street grid of the end-to-end test's city (tests/gta_game_view.py street_grid).
WORLD = {"half": 50.0, "roads_x": [-16.826699119217082, 19.482731588919005],
         "roads_y": [-16.94131436861629, 14.73723934875438], "road_width": 8.0, "seed": 3,
         "peds": 8, "vehicles": 5}
TRUTH_COLUMNS = ["frame", "game_ms", "mode", "cam_x", "cam_y", "cam_z", "cam_rx", "cam_ry",
                 "cam_rz", "fov", "vel_x", "vel_y", "vel_z", "throttle", "brake", "steering",
                 "in_vehicle", "mark"]
# The synchronisation marker (gta_scripthook/src/core/marker.h): four DRAW_RECT cells (x, y, w,
# h) in bit order, magenta for a 1 bit and green for a 0 bit; the i-th marked frame of a mark
# shows code 1 + i % 14.
MARKER_CELLS = [(0.0625, 0.0625, 0.125, 0.125), (0.1875, 0.0625, 0.125, 0.125),
                (0.0625, 0.1875, 0.125, 0.125), (0.1875, 0.1875, 0.125, 0.125)]
MAGENTA, GREEN = (255, 0, 255, 255), (0, 255, 0, 255)
MARK_ERROR = 'mark needs "frames", an integer in [1, 120]'


def marker_code(rects: list[tuple]) -> int:
    """The code four R lines' colours encode (bit k: the k-th cell is magenta)."""
    assert [r[:4] for r in rects] == MARKER_CELLS, rects
    assert all(r[4:] in (MAGENTA, GREEN) for r in rects), rects
    return sum(1 << k for k, r in enumerate(rects) if r[4:] == MAGENTA)



class Collector:
    """A minimal collector: one plugin connection, 4-byte little-endian length + JSON. It acks
    the frames it received (``{"type": "ack", "seq": N}``) every ``ack_every`` seconds
    (``None``: never), as the real collector does once they are on disk."""

    def __init__(self, port: int = 0, ack_every: float | None = 0.2) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.buf = b""
        self.ack_every = ack_every
        self.acked_at = 0.0

    def accept(self, timeout: float = 15.0) -> None:
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self.conn.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.conn.recv(1 << 20)
            if not chunk:
                raise ConnectionError("plugin closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout: float = 10.0) -> dict:
        """The next message, checked with the real collector's message checks."""
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack("<I", self._read(4, deadline))
        assert n <= 65536, n
        msg = json.loads(self._read(n, deadline).decode("utf-8"))
        CHECKS[msg["type"]](msg)
        if (msg["type"] == "frame" and self.ack_every is not None
                and time.monotonic() - self.acked_at >= self.ack_every):
            self.acked_at = time.monotonic()
            self.send({"type": "ack", "seq": msg["seq"]})
        return msg

    def send(self, msg: dict) -> None:
        data = json.dumps(msg).encode()
        self.conn.sendall(struct.pack("<I", len(data)) + data)

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.server.close()


def write_inputs(tmp_path: Path, port: int, mode: str = "drive", extra: str = "") -> tuple:
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))
    ini = tmp_path / "plugin.ini"
    ini.write_text(f"[collector]\nport = {port}\n[environment]\nvehicle_density = 0.7\n"
                   f"weather = CLOUDS\ntime_of_day = 9.5\n[agent]\nmode = {mode}\n"
                   f"drive_speed = 9\nseed = 3\n[camera]\ncamera = vehicle\nfov = 50\n{extra}")
    return world, ini


def read_truth(path: Path, wanted: set[int] | None = None) -> dict[int, dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == TRUTH_COLUMNS
        return {int(r["frame"]): r for r in reader if wanted is None or int(r["frame"]) in wanted}


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ctest_suite_passes():
    binaries = build_portable()
    run = subprocess.run(["ctest", "--output-on-failure", "--timeout", "60"],
                         cwd=binaries.build_dir, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sim_host_streams_frames_that_match_its_truth(tmp_path):
    binaries = build_portable()
    collector = Collector()
    world, ini = write_inputs(tmp_path, unused_port())  # --collector overrides the ini's port
    truth_path = tmp_path / "truth.csv"
    host = subprocess.Popen(
        [binaries.sim_host, "--world", world, "--config", ini, "--collector",
         f"127.0.0.1:{collector.port}", "--fps", "30", "--truth", truth_path,
         "--frames", "3000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        collector.accept()
        hello = collector.recv()
        assert hello["type"] == "hello" and hello["plugin"] == "worldforge-gta"
        assert hello["version"] == "0.1.0" and isinstance(hello["game_version"], int)
        assert len(hello["run"]) == 16 and int(hello["run"], 16) >= 0
        cfg = hello["config"]
        assert cfg["weather"] == "CLOUDS" and cfg["time_of_day"] == 9.5
        assert cfg["vehicle_density"] == 0.7 and cfg["npc_density"] == 1.0
        assert cfg["camera"] == "vehicle" and cfg["mode"] == "drive" and cfg["fov"] == 50
        assert cfg["drive_speed"] == 9 and len(cfg["camera_offset"]) == 3

        collector.send({"type": "start", "session": "pytest"})
        first = collector.recv()  # the answer to start comes before any frame
        assert first == {"type": "status", "dropped": first["dropped"], "recording": True,
                         "session": "pytest"}
        frames: list[dict] = []
        errors: list[str] = []
        deadline = time.monotonic() + 30
        marked = False
        while sum(f["vehicle"] is not None for f in frames) < 3000:
            assert time.monotonic() < deadline, f"only {len(frames)} frames"
            if len(frames) == 200 and not marked:  # the clapperboard, and two it must refuse
                for n in (0, 121, 20):
                    collector.send({"type": "mark", "frames": n})
                marked = True
            msg = collector.recv()
            if msg["type"] == "status":
                errors.append(msg.get("error", msg))
                continue
            assert msg["type"] == "frame", msg
            frames.append(msg)
        collector.send({"type": "stop"})
        # the frames sent before the stop arrived, then its answer; any other status is kept
        # with the errors, which must be the two refusals alone
        while (msg := collector.recv())["type"] != "status" or msg["recording"]:
            if msg["type"] == "frame":
                frames.append(msg)
            else:
                errors.append(msg.get("error", msg))
        with pytest.raises(TimeoutError):  # stop stops them
            collector.recv(timeout=0.5)
    finally:
        host.send_signal(signal.SIGTERM)
        out, err = host.communicate(timeout=20)
        collector.close()
    assert host.returncode == 0, err

    # well formed, seq increasing, gaps are the drops the plugin reports
    seqs = [f["seq"] for f in frames]
    assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False))
    assert all(b > a for a, b in zip([f["frame"] for f in frames],
                                     [f["frame"] for f in frames][1:], strict=False))
    gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert gaps <= frames[-1]["dropped"]
    for f in frames:
        assert set(f) == {"type", "seq", "frame", "game_ms", "wall_ms", "mode", "cam", "vel",
                          "speed", "vehicle", "keys", "dropped", "mark"}
        assert set(f["keys"]) == {"w", "s", "a", "d", "space", "shift", "ctrl"}
        assert f["mode"] in ("drive", "walk", "npc", "enter", "leave")
        assert abs(f["wall_ms"] / 1000 - time.time()) < 300

    # every message carries the simulator's truth of the frame it names, exactly
    truth = read_truth(truth_path, {f["frame"] for f in frames})
    for f in frames:
        t = truth[f["frame"]]
        assert int(t["game_ms"]) == f["game_ms"] and t["mode"] == f["mode"]
        assert [float(t[c]) for c in ("cam_x", "cam_y", "cam_z")] == f["cam"]["pos"]
        assert [float(t[c]) for c in ("cam_rx", "cam_ry", "cam_rz")] == f["cam"]["rot"]
        assert float(t["fov"]) == f["cam"]["fov"] == 50
        assert [float(t[c]) for c in ("vel_x", "vel_y", "vel_z")] == f["vel"]
        assert (t["in_vehicle"] == "1") == (f["vehicle"] is not None)
        assert f["mark"] == int(t["mark"])  # the code the frame the message names showed

    # the marker showed on 20 consecutive frames, codes 1..14 cycling, each named by a message
    # carrying its code
    assert errors == [f"{MARK_ERROR}, got 0", f"{MARK_ERROR}, got 121"]
    codes = {n: int(t["mark"]) for n, t in read_truth(truth_path).items() if t["mark"] != "0"}
    marked = sorted(codes)
    assert marked == list(range(marked[0], marked[0] + 20)), marked
    assert [codes[n] for n in marked] == [1 + i % 14 for i in range(20)]
    assert marked[0] > frames[199]["frame"]
    if gaps == 0:
        assert [(f["frame"], f["mark"]) for f in frames if f["mark"]] == sorted(codes.items())

    # keys inferred from the car's dynamics agree with the simulator's controls
    driving = [f for f in frames if f["vehicle"] is not None]
    throttle = [float(truth[f["frame"]]["throttle"]) for f in driving]
    steering = [float(truth[f["frame"]]["steering"]) for f in driving]
    pushing = [f["keys"]["w"] for f, u in zip(driving, throttle, strict=True) if u > 0.3]
    assert len(pushing) > 50 and sum(pushing) / len(pushing) > 0.9
    turning = [(f["keys"]["a"] if s > 0 else f["keys"]["d"])
               for f, s in zip(driving, steering, strict=True) if abs(s) > 0.3]
    assert len(turning) > 50 and sum(turning) / len(turning) > 0.7


def test_sim_host_lockstep_prints_each_frames_camera(tmp_path):
    binaries = build_portable()
    world, ini = write_inputs(tmp_path, unused_port(), mode="walk")  # no collector listening
    truth_path = tmp_path / "truth.csv"
    host = subprocess.Popen(
        [binaries.sim_host, "--world", world, "--config", ini, "--fps", "30", "--truth",
         truth_path, "--lockstep"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1)
    lines = []
    for _ in range(20):
        lines.append(host.stdout.readline().split())
        host.stdin.write("shown\n")
        host.stdin.flush()
    lines.append(host.stdout.readline().split())
    host.stdin.close()  # EOF ends the run
    assert host.wait(timeout=20) == 0, host.stderr.read()
    truth = read_truth(truth_path)
    assert [int(p[1]) for p in lines] == list(range(1, 22)) == sorted(truth)
    for p in lines:
        t = truth[int(p[1])]
        assert p[0] == "F" and int(p[2]) == int(t["game_ms"]) == int(int(p[1]) * 1000 / 30 + 1e-6)
        assert [float(v) for v in p[3:]] == [float(t[c]) for c in
                                              ("cam_x", "cam_y", "cam_z", "cam_rx", "cam_ry",
                                               "cam_rz", "fov")]
        assert t["mode"] == "walk" and t["in_vehicle"] == "0"
    host.stdout.close()
    host.stderr.close()


def test_sim_host_lockstep_prints_the_marker_before_the_frames_it_shows_on(tmp_path):
    """A mark sent while not recording: R lines come right before the F lines of exactly the
    frames whose truth says they show the marker, four per frame, as the plugin drew them, their
    colours encoding the code the truth names (1..14, cycling)."""
    binaries = build_portable()
    collector = Collector()
    world, ini = write_inputs(tmp_path, unused_port(), mode="walk")
    truth_path = tmp_path / "truth.csv"
    host = subprocess.Popen(
        [binaries.sim_host, "--world", world, "--config", ini, "--collector",
         f"127.0.0.1:{collector.port}", "--fps", "30", "--truth", truth_path, "--lockstep"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        bufsize=1)
    rects: dict[int, list[tuple]] = {}  # frame -> the R lines just before its F line
    pending: list[tuple] = []
    try:
        collector.accept()
        assert collector.recv()["type"] == "hello"
        collector.send({"type": "mark", "frames": 17})
        deadline = time.monotonic() + 15
        after = 0  # frames without the marker since it showed
        while after < 3:
            assert time.monotonic() < deadline, f"no marker in {len(rects)} frames"
            parts = host.stdout.readline().split()
            if parts[0] == "R":
                pending.append((*map(float, parts[1:5]), *map(int, parts[5:])))
                continue
            assert parts[0] == "F", parts
            rects[int(parts[1])], pending = pending, []
            after += any(rects.values()) and not rects[int(parts[1])]
            host.stdin.write("\n")
            host.stdin.flush()
        host.stdin.close()
        assert host.wait(timeout=20) == 0, host.stderr.read()
    finally:
        if host.poll() is None:
            host.kill()
        host.stdout.close()
        host.stderr.close()
        collector.close()
    truth = read_truth(truth_path)
    # (the tick after the last reply presents one more frame before it reads EOF)
    assert sorted(rects) == list(range(1, len(rects) + 1)) == sorted(truth)[:-1]
    marked = [n for n, r in rects.items() if r]
    assert len(marked) == 17 and marked == list(range(marked[0], marked[0] + 17)), marked
    for n, r in rects.items():
        code = marker_code(r) if r else 0
        assert code == int(truth[n]["mark"]), (n, r)
        assert code == (1 + (n - marked[0]) % 14 if n in marked else 0), (n, r)


def test_sim_host_realtime_paces_and_bad_config_is_named(tmp_path):
    binaries = build_portable()
    world, ini = write_inputs(tmp_path, unused_port())
    t0 = time.monotonic()
    run = subprocess.run([binaries.sim_host, "--world", world, "--config", ini, "--fps", "100",
                          "--truth", tmp_path / "t.csv", "--frames", "40", "--realtime"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - t0 >= 0.35
    assert len(read_truth(tmp_path / "t.csv")) == 40

    _, bad = write_inputs(tmp_path, unused_port(), extra="[keys]\nreload_key = F10\n")
    bad.write_text(bad.read_text().replace("vehicle_density = 0.7", "vehicle_density = 2.5"))
    run = subprocess.run([binaries.sim_host, "--world", world, "--config", bad, "--fps", "30",
                          "--truth", tmp_path / "t2.csv", "--frames", "5"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "vehicle_density" in run.stderr and "[0.1, 2]" in run.stderr


@pytest.mark.skipif(not mingw_available() and not os.environ.get("CI"),
                    reason="x86_64-w64-mingw32-g++ not installed")
def test_asi_cross_compiles_without_importing_script_hook():
    asi = build_windows()
    assert asi is not None and asi.is_file(), "x86_64-w64-mingw32-g++ missing in CI"
    objdump = shutil.which("x86_64-w64-mingw32-objdump") or "objdump"
    head = subprocess.run([objdump, "-p", str(asi)], capture_output=True, text=True,
                          check=True).stdout
    assert "pei-x86-64" in head and "PE32+" in head
    characteristics = int(head.split("Characteristics", 1)[1].split()[0], 16)
    assert characteristics & 0x2000, "not a DLL"
    imports = {line.split(":", 1)[1].strip().lower()
               for line in head.splitlines() if "DLL Name:" in line}
    assert "scripthookv.dll" not in imports, imports  # loaded at run time instead
    assert not any(d.startswith(("libstdc++", "libgcc", "libwinpthread")) for d in imports)
    blob = asi.read_bytes()
    assert b"ScriptHookV.dll" in blob and b"?nativeCall@@YAPEA_KXZ" in blob


def test_sim_host_resends_what_a_dead_collector_did_not_ack(tmp_path):
    """A collector acks up to some seq and dies; the next one on the same port gets the same
    run's hello, then every frame after the acked one again, in order, then new ones: no seq is
    missing across the two connections. A restarted sim host is a new run."""
    binaries = build_portable()
    first = Collector(ack_every=None)  # acks only what this test says
    port = first.port
    world, ini = write_inputs(tmp_path, port)
    cmd = [binaries.sim_host, "--world", world, "--config", ini, "--fps", "60", "--truth",
           tmp_path / "t.csv", "--realtime"]
    host = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        first.accept()
        hello1 = first.recv()
        first.send({"type": "start", "session": "acks"})
        seen1 = [m["seq"] for m in (first.recv() for _ in range(40)) if m["type"] == "frame"]
        first.send({"type": "ack", "seq": seen1[9]})
        acked = seen1[9]
        seen1 += [m["seq"] for m in (first.recv() for _ in range(20)) if m["type"] == "frame"]
        first.close()  # dies without acking the rest
        time.sleep(0.3)

        second = Collector(port=port)
        second.accept()
        hello2 = second.recv()
        assert hello2["run"] == hello1["run"]
        seen2 = [m["seq"] for m in (second.recv() for _ in range(len(seen1) + 30))
                 if m["type"] == "frame"]
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=10)
        if second:
            second.close()
    assert seen1 == list(range(seen1[0], seen1[0] + len(seen1)))
    assert seen2[0] == acked + 1  # nothing acked again, everything unacked again
    assert seen2 == list(range(seen2[0], seen2[0] + len(seen2)))
    assert seen2[-1] > seen1[-1]

    third = Collector()
    _, ini3 = write_inputs(tmp_path, third.port)
    host = subprocess.Popen([*cmd[:4], ini3, *cmd[5:]], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        third.accept()
        assert third.recv()["run"] != hello1["run"]  # another process, another run
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=10)
        third.close()


def test_collector_restart_mid_session_loses_nothing(tmp_path):
    """The real collector dies and comes back while the plugin streams: the plugin keeps
    recording, queues, reconnects with the same run, resends what was not acknowledged, and the
    samples file ends up gap-free and without repeats."""
    from datagen.gta.collector import Collector as RealCollector
    from datagen.gta.sync import load_samples

    binaries = build_portable()
    port = unused_port()
    world, ini = write_inputs(tmp_path, port)
    folder = tmp_path / "session"
    collector = RealCollector(folder, port=port)
    host = subprocess.Popen([binaries.sim_host, "--world", world, "--config", ini, "--fps", "60",
                             "--truth", tmp_path / "t.csv", "--realtime"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        collector.wait_hello(15)
        collector.start("s1")
        assert collector.wait_frames(30, 10)
        collector.close()  # dies mid-session; the game goes on for 0.8 s (about 48 frames)
        died = time.time() * 1000
        time.sleep(0.8)
        collector = RealCollector(folder, port=port)
        collector.start("s1")
        assert collector.wait_frames(60, 15)
        assert collector.hello is not None  # the plugin said hello on its new connection
        collector.stop()
        time.sleep(0.2)
    finally:
        collector.close()
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=10)
    samples, skipped = load_samples(folder / "samples.jsonl")
    assert not skipped
    assert samples.follows()[1:].all()  # every game frame from the first to the last
    assert len(set(samples.seq.tolist())) == len(samples)  # and each once
    # what the plugin produced while no collector listened was queued and delivered
    while_down = (samples.wall_ms > died + 100) & (samples.wall_ms < died + 700)
    assert while_down.sum() >= 30
    assert len(samples) >= 90
    truth = read_truth(tmp_path / "t.csv", set(samples.frame.tolist()))
    for k in (0, len(samples) // 2, len(samples) - 1):
        row = truth[int(samples.frame[k])]
        assert float(row["cam_x"]) == samples.cam_pos[k, 0]


def test_shipped_ini_is_read_without_complaint_and_holds_the_defaults(tmp_path):
    """gta_scripthook/worldforge_gta.ini, the file users copy next to the .asi, parses and
    says what the plugin's defaults are (the hello reports the effective settings)."""
    binaries = build_portable()
    collector = Collector()
    shipped = (Path(__file__).resolve().parents[1] / "gta_scripthook" /
               "worldforge_gta.ini").read_text()
    world, ini = write_inputs(tmp_path, collector.port)
    ini.write_text(shipped.replace("port = 52420", f"port = {collector.port}"))
    host = subprocess.Popen([binaries.sim_host, "--world", world, "--config", ini, "--fps", "30",
                             "--truth", tmp_path / "t.csv", "--realtime"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        collector.accept()
        hello = collector.recv()
    finally:
        host.send_signal(signal.SIGTERM)
        stderr = host.communicate(timeout=10)[1]
        collector.close()
    assert hello["type"] == "hello", stderr
    expected = {"weather": "EXTRASUNNY", "time_of_day": 12.0, "vehicle_density": 1.0,
                "npc_density": 1.0, "camera": "vehicle", "mode": "drive", "fov": 60.0,
                "drive_speed": 15.0, "camera_offset": [0.0, -6.0, 2.2], "pitch": -10.0,
                "drive_style": 786603, "pause_clock": True, "seed": 0}
    assert {k: hello["config"][k] for k in expected} == expected
