"""OBS control (datagen/gta/obs.py) against the fake obs-websocket server, remux_to_mp4, and one
end-to-end recording with real OBS Studio under Xvfb (slow)."""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from obs_server import FakeObs
from real_obs import obs_available, running_obs, running_xvfb, showing_colours

from datagen.gta.obs import (
    Obs,
    ObsAuthError,
    ObsConnectionError,
    ObsError,
    RecordEvent,
    wait_finalised,
)
from datagen.video import VideoError, decode_frames, probe, read_frames, remux_to_mp4


@pytest.fixture
def server(tmp_path):
    with FakeObs(tmp_path / "rec", password="pw", finalise_delay=0.3) as s:
        yield s


@pytest.fixture
def obs(server):
    with Obs(server.host, server.port, "pw", timeout=3, reconnect_timeout=5) as o:
        yield o


def _packets(path: Path) -> list[tuple[bytes, int | None]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), p.pts * p.time_base) for p in c.demux(s) if p.size]


def test_connect_reads_video_settings_and_record_directory(server, obs):
    video = obs.video_settings()
    assert (video.width, video.height, video.fps) == (server.width, server.height, 30)
    assert obs.record_directory() == str(server.record_dir)
    assert obs.version()["obsWebSocketVersion"] == "5.1.0"
    assert obs.record_status().active is False and obs.recording is False
    assert sorted(server.identified) == [0, 64]  # requests: no events; events: outputs only


def test_wrong_or_missing_password_says_authentication_failed(server):
    with pytest.raises(ObsAuthError, match="authentication failed.*password was refused"):
        Obs(server.host, server.port, "wrong", timeout=2).connect()
    with pytest.raises(ObsAuthError, match="requires a password"):
        Obs(server.host, server.port, None, timeout=2).connect()


def test_refused_connection_names_host_and_port(server):
    port = server.port
    server.stop()
    with pytest.raises(ObsConnectionError, match=f"127.0.0.1:{port}: connection refused"):
        Obs("127.0.0.1", port, "pw", timeout=2).connect()


def test_start_twice_is_refused_with_500_and_stop_when_idle_with_501(server, obs):
    obs.start_recording()
    with pytest.raises(ObsError, match="already recording") as err:
        obs.start_recording()
    assert err.value.code == 500
    obs.stop_recording()
    server.fail("StartRecord", 500)  # started by someone else between the check and the start
    with pytest.raises(ObsError, match="StartRecord answered 500") as err:
        obs.start_recording()
    assert err.value.code == 500
    with pytest.raises(ObsError, match="not recording: StopRecord answered 501") as err:
        obs.stop_recording()
    assert err.value.code == 501


def test_restart_stops_the_running_recording_first(obs):
    obs.start_recording()
    first = obs.record_events()[-1].path
    obs.start_recording(restart=True)
    events = obs.record_events()
    assert [e.state for e in events] == ["STARTING", "STARTED", "STOPPING", "STOPPED",
                                         "STARTING", "STARTED"]
    assert events[3].path == first != events[5].path
    obs.stop_recording()


def test_record_state_events_carry_local_arrival_times(server):
    seen: list[RecordEvent] = []
    with Obs(server.host, server.port, "pw", on_event=seen.append) as obs:
        before = time.time()
        t_start = obs.start_recording()
        assert before <= t_start <= time.time()
        time.sleep(0.3)
        path = obs.stop_recording()
    assert [e.state for e in seen] == ["STARTING", "STARTED", "STOPPING", "STOPPED"]
    assert [e.active for e in seen] == [False, True, False, False]
    assert seen[1].t == t_start and seen[1].path == seen[3].path == str(path)
    assert all(a.t <= b.t for a, b in zip(seen, seen[1:], strict=False))
    assert not any(e.resync for e in seen)


def test_wait_finalised_waits_for_a_slowly_finalised_file(tmp_path):
    # OBS says STOPPED 50 ms after StopRecord but needs 1.5 s to finish the file
    with FakeObs(tmp_path, finalise_delay=1.5, stopped_delay=0.05) as server, \
            Obs(server.host, server.port) as obs:
        obs.start_recording()
        time.sleep(0.5)
        path = obs.stop_recording()
        with pytest.raises(VideoError):
            probe(path)  # right after StopRecord the file is not readable
        packets = obs.wait_finalised(path, timeout=10, poll=0.1)
        assert server.finalised == [path]
    info = probe(path)
    assert info.frames == packets and 10 <= packets <= 25  # ~0.5 s at 30 fps


def test_wait_finalised_times_out_with_the_reason(tmp_path):
    empty = tmp_path / "never.mkv"
    empty.touch()
    with pytest.raises(ObsError, match="not finalised within 0.3 s: it is empty"):
        wait_finalised(empty, timeout=0.3, poll=0.1)


def test_requests_and_events_survive_a_dropped_connection(server, obs):
    obs.start_recording()
    server.drop_connections(down_for=0.5)  # OBS unreachable for half a second
    assert obs.record_status().active  # reconnects (with backoff), then answers
    deadline = time.monotonic() + 5
    while len(server.identified) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(server.identified) == [0, 64]  # the event connection re-subscribed
    assert obs.reconnects >= 2
    obs.stop_recording()
    states = [e.state for e in obs.record_events()]
    assert states[-2:] == ["STOPPING", "STOPPED"]  # events arrive again
    assert obs.recording is False


def test_a_lost_startrecord_answer_is_not_sent_twice(server, obs):
    server.drop_after(1, execute=True)  # GetRecordStatus answered; StartRecord runs, no answer
    t_start = obs.start_recording()
    assert abs(t_start - time.time()) < 2
    assert server.requests.count("StartRecord") == 1
    assert obs.record_status().active
    obs.stop_recording()


def test_idempotent_requests_are_retried_after_a_drop(server, obs):
    server.drop_after(0)
    assert obs.video_settings().fps == 30
    assert server.requests[-2:] == ["GetVideoSettings", "GetVideoSettings"]


def test_a_request_error_keeps_obs_code_and_comment(server, obs):
    server.fail("GetVideoSettings", 600, "Resource not found")
    with pytest.raises(ObsError, match="refused GetVideoSettings.*600.*Resource not found") as e:
        obs.video_settings()
    assert e.value.code == 600


def test_missed_transitions_are_resynced_after_reconnect(server, obs):
    obs.start_recording()
    server.drop_connections(down_for=0.3)
    server.act("StopRecord")  # stopped (e.g. by the user in OBS) while we were away
    deadline = time.monotonic() + 5
    while obs.recording and time.monotonic() < deadline:
        time.sleep(0.05)
    last = obs.record_events()[-1]
    assert (last.state, last.resync, obs.recording) == ("STOPPED", True, False)


def test_remux_mkv_to_mp4_keeps_every_packet(tmp_path):
    with FakeObs(tmp_path, finalise_delay=0.0, fmt="mkv") as server, \
            Obs(server.host, server.port) as obs:
        obs.start_recording()
        time.sleep(0.7)
        mkv = obs.stop_recording()
        obs.wait_finalised(mkv, poll=0.1)
    mp4 = tmp_path / "out.mp4"
    copied = remux_to_mp4(mkv, mp4)
    src, dst = _packets(mkv), _packets(mp4)
    assert copied == len(src) == len(dst) > 10
    assert src == dst  # same bytes and presentation times: not re-encoded
    info = probe(mp4)
    assert info.frames == len(src) and abs(info.fps - 30) < 0.1
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == ["out.mp4"]
    # MKV keeps milliseconds: on the 30 fps grid again, the same packets read as exactly 30
    grid = tmp_path / "grid.mp4"
    assert remux_to_mp4(mkv, grid, fps=Fraction(30)) == len(src)
    assert probe(grid).fps == 30.0 and probe(grid).frames == len(src)
    assert [data for data, _ in _packets(grid)] == [data for data, _ in src]
    times = [float(f.time) for f in decode_frames(grid)]
    np.testing.assert_allclose(np.diff(times), 1 / 30, atol=1e-9)


def test_remux_refuses_a_video_that_is_not_h264(tmp_path):
    src = tmp_path / "mpeg4.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 50, np.uint8), "rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(VideoError, match="no H.264 video stream.*mpeg4"):
        remux_to_mp4(src, tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out.mp4*"))


COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.mark.slow
def test_real_obs_records_the_x_screen(tmp_path):
    missing = obs_available()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"real OBS test needs obs-studio and xvfb ({missing})")
    width, height, fps = 320, 180, 30
    with running_xvfb(width, height) as display, \
            running_obs(tmp_path, display, width, height, fps, password="secret") as handle, \
            Obs(handle.host, handle.port, handle.password) as obs:
        video = obs.video_settings()
        assert (video.width, video.height, video.fps) == (width, height, fps)
        assert obs.record_directory() == str(handle.record_dir)
        with showing_colours(display, width, height,
                             [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in COLOURS.values()], 0.7):
            t_start = obs.start_recording()
            time.sleep(2.1)
            t_stop = time.time()
            path = obs.stop_recording()
        packets = obs.wait_finalised(path, timeout=15)
    assert path.parent == handle.record_dir and path.suffix == ".mkv"
    mp4 = remux_to_mp4(path, tmp_path / "take.mp4") and tmp_path / "take.mp4"
    frames = list(read_frames(mp4))
    expected = (t_stop - t_start) * fps
    assert len(frames) == packets and abs(len(frames) - expected) <= 0.1 * expected + 3
    means = [f.reshape(-1, 3).mean(0) for f in frames]
    for name, rgb in COLOURS.items():
        assert any(np.abs(m - rgb).max() < 40 for m in means), f"no {name} frame recorded"
