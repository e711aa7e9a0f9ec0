"""The GTA V recorder end to end, as real as it gets without GTA V.

The plugin's C++ core runs against its simulator (``wfgta_sim_host``): it drives a car through
the built-in city's streets, follows it with the vehicle camera and streams its per-frame
messages to the real collector. The game's window (tests/gta_game_view.py) draws the city from
the plugin's camera on an Xvfb screen, real OBS Studio records that screen, and
``datagen record --backend gta`` runs the session: collector, OBS, synchronisation, episodes.
The episode must pass ``datagen validate`` and ``curation filter``, its rows must equal the
simulator's ground truth for the game frames they name, and each video frame must show the
pose its row gives.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gta_build import build_portable
from real_obs import obs_available, running_obs, running_xvfb

from datagen.builtin.render.panda import Renderer
from datagen.builtin.scenes import build_world
from datagen.episode import find_episodes, read_episode
from datagen.episode_check import validate_episode
from datagen.gta.pose import contract_angles, horizontal_fov
from datagen.video import read_frames

REPO = Path(__file__).resolve().parents[1]
W, H, FPS, SEED = 640, 360, 30, 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(obs_available()) and not os.environ.get("CI"),
                       reason=f"real OBS Studio: {obs_available()}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plugin_ini(path: Path, port: int) -> Path:
    path.write_text(f"""[collector]
host = 127.0.0.1
port = {port}

[environment]
vehicle_density = 0.8
npc_density = 0.5
weather = CLEAR
time_of_day = 14.5

[agent]
mode = drive
drive_speed = 9
seed = {SEED}

[camera]
camera = vehicle
offset_x = 0
offset_y = -7
offset_z = 3
pitch = -10
fov = 50
""")
    return path


def truth_rows(path: Path) -> dict[int, dict[str, float]]:
    with open(path, newline="") as f:
        return {int(r["frame"]): {k: (float(v) if k != "mode" else v) for k, v in r.items()}
                for r in csv.DictReader(f)}


@pytest.mark.parametrize("game_fps", [30, 60, 20])
def test_simulated_gta_session_into_a_valid_episode(tmp_path, game_fps):
    """OBS captures at 30 fps; the game runs at the same rate, twice as fast (every video frame
    accumulates two game frames) or slower (some video frames repeat a game frame)."""
    binaries = build_portable()
    port = free_port()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with running_xvfb(W, H) as display, running_obs(tmp_path / "obs", display, W, H,
                                                     FPS) as obs:
        env["DISPLAY"] = display
        game = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "gta_game_view.py"), "--scene", "city",
             "--seed", str(SEED), "--world", str(tmp_path / "world.json"), "--fps",
             str(game_fps),
             "--size", f"{W}x{H}", "--", str(binaries.sim_host), "--world",
             str(tmp_path / "world.json"), "--config", str(plugin_ini(tmp_path / "p.ini", port)),
             "--fps", str(game_fps), "--truth", str(tmp_path / "truth.csv"), "--lockstep"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            session = subprocess.run(
                [sys.executable, "-m", "datagen.cli", "record", "--backend", "gta",
                 "--duration", "4", "--obs-port", str(obs.port), "--obs-password",
                 obs.password or "", "--collector-port", str(port), "--plugin-timeout", "60",
                 "--out", str(out)], env=env, capture_output=True, text=True, timeout=240)
        finally:
            game.terminate()
            game_log = game.communicate(timeout=30)[0]
    assert session.returncode == 0, session.stdout + session.stderr + game_log
    finished, partial = find_episodes(out)
    assert len(finished) == 1 and not partial, session.stdout
    path = finished[0]
    assert validate_episode(path) == []
    ep = read_episode(path)
    assert ep.meta.backend == "gta" and ep.meta.fps == FPS and ep.meta.frames >= 3 * FPS
    ticks = ep.data["ticks"][1:]
    if game_fps == 60:  # two game frames per video frame, accumulated
        assert np.mean(ticks == 2) > 0.8 and abs(ticks.mean() - 2) < 0.05
    elif game_fps == 20:
        assert 0.2 < np.mean(ticks == 0) < 0.45  # one video frame in three repeats one
    else:
        assert np.mean(ticks == 1) > 0.95
    assert ep.meta.settings["weather"] == "CLEAR" and ep.meta.settings["vehicle_density"] == 0.8

    # rows carry the simulator's ground truth of the game frames they name, exactly
    truth = truth_rows(tmp_path / "truth.csv")
    for k in range(ep.meta.frames):
        t = truth[int(ep.data["game_frame"][k])]
        assert [ep.data[f"pos_{a}"][k] for a in "xyz"] == [t["cam_x"], t["cam_y"], t["cam_z"]]
        yaw, pitch, _ = contract_angles(np.array([t["cam_rx"], t["cam_ry"], t["cam_rz"]]))
        assert ep.data["yaw"][k] == pytest.approx(float(yaw), abs=1e-9)
        assert ep.data["pitch"][k] == pytest.approx(float(pitch), abs=1e-9)
        assert [ep.data[f"vel_{a}"][k] for a in "xyz"] == [t["vel_x"], t["vel_y"], t["vel_z"]]
    # keys inferred from the car's dynamics agree with the simulator's controls
    throttle = np.array([truth[int(f)]["throttle"] for f in ep.data["game_frame"]])
    steering = np.array([truth[int(f)]["steering"] for f in ep.data["game_frame"]])
    assert np.mean(ep.data["key_w"][throttle > 0.3] == 1) > 0.9
    assert np.mean(ep.data["key_w"][throttle < 0.05] == 0) > 0.8 or (throttle < 0.05).sum() < 5
    turning = np.abs(steering) > 0.3
    if turning.sum() >= 5:
        side = np.where(steering[turning] > 0, ep.data["key_a"][turning],
                        ep.data["key_d"][turning])
        assert np.mean(side == 1) > 0.7

    # each video frame shows the game frame its row names, not a neighbour (rows around it may
    # name the same game frame: a duplicate; compare game frames, not rows)
    world = build_world("city", SEED)
    video = list(read_frames(path / "video.mp4"))
    fov = float(horizontal_fov(50.0, W, H))
    assert ep.data["fov"][0] == pytest.approx(fov)
    game_frame = ep.data["game_frame"].astype(np.int64)
    off = []
    with Renderer(world, W, H, fov) as renderer:
        for k in range(5, ep.meta.frames - 5, 7):
            errors = {}
            for j in range(k - 2, k + 3):
                q = np.array([ep.data[c][j] for c in ("qw", "qx", "qy", "qz")])
                pos = np.array([ep.data[f"pos_{a}"][j] for a in "xyz"])
                img = renderer.render(pos, q, world.mover_poses(ep.data["game_ms"][j] / 1000.0))
                errors[game_frame[j]] = np.mean((img.astype(float) - video[k]) ** 2)
            off.append(min(errors, key=errors.get) - game_frame[k])
    off = np.array(off)
    assert np.mean(off == 0) >= 0.9, off
    assert ep.meta.extra["sync"]["marker"] is not None

    # curation accepts it
    shards = tmp_path / "shards"
    cur = subprocess.run([sys.executable, "-m", "curation.cli", "filter", str(out), "--out",
                          str(shards), "--clip-frames", "33"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert cur.returncode == 0, cur.stdout + cur.stderr
    assert list(shards.glob("*.tar"))
