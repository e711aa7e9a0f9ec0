"""A GTA V recording session without GTA V, for the end-to-end test and benchmarks/bench_gta.py.

The plugin's C++ core runs against its simulator (``wfgta_sim_host --lockstep``), which drives a
car through the built-in city; tests/gta_game_view.py shows each frame in a window on an Xvfb
screen; real OBS Studio records that screen; ``datagen record --backend gta`` runs the session.
:func:`shown_offsets` then checks, by rendering, which game frame each video frame shows.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gta_build import build_portable
from real_obs import running_obs, running_xvfb

from datagen.builtin.render.panda import Renderer
from datagen.builtin.scenes import build_world
from datagen.episode import Episode
from datagen.gta.collector import SAMPLES_FILE
from datagen.gta.pose import horizontal_fov
from datagen.gta.sync import MarkerFit, decided, load_samples
from datagen.video import read_frames

REPO = Path(__file__).resolve().parents[1]
SCENE, SEED, VERTICAL_FOV = "city", 3, 50.0


@dataclass
class SimSession:
    out: Path  # datagen record --out
    truth: Path  # the simulator's ground truth, one row per game frame
    log: str  # what datagen record and the game printed
    returncode: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plugin_ini(path: Path, port: int, mode: str = "drive", camera: str = "vehicle") -> Path:
    """The plugin's settings: by default drive the city's streets, the vehicle camera behind
    the car."""
    path.write_text(f"""[collector]
host = 127.0.0.1
port = {port}

[environment]
vehicle_density = 0.8
npc_density = 0.5
weather = CLEAR
time_of_day = 14.5

[agent]
mode = {mode}
drive_speed = 9
seed = {SEED}

[camera]
camera = {camera}
offset_x = 0
offset_y = -7
offset_z = 3
pitch = -10
fov = {VERTICAL_FOV:g}
""")
    return path


def run_session(workdir: Path, game_fps: float, duration_s: float, size=(640, 360),
                obs_fps: int = 30, keep_obs_file: bool = False, mode: str = "drive",
                camera: str = "vehicle") -> SimSession:
    """Record one simulated session of ``duration_s`` seconds into ``workdir/out`` (the agent
    in ``mode``, filmed by ``camera``; on foot unless driving)."""
    binaries = build_portable()
    port = free_port()
    width, height = size
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    world, truth = workdir / "world.json", workdir / "truth.csv"
    with running_xvfb(width, height) as display, running_obs(workdir / "obs", display, width,
                                                             height, obs_fps) as obs:
        env["DISPLAY"] = display
        game = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "gta_game_view.py"), "--scene", SCENE,
             "--seed", str(SEED), "--world", str(world), "--fps", str(game_fps),
             *([] if mode == "drive" else ["--on-foot"]), "--size",
             f"{width}x{height}", "--", str(binaries.sim_host), "--world", str(world),
             "--config", str(plugin_ini(workdir / "plugin.ini", port, mode, camera)), "--fps",
             str(game_fps),
             "--truth", str(truth), "--lockstep"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: os.nice(5))  # OBS first: on 2 cores, rendering the game
        # delayed OBS's captures by more than the marker's precision now and then
        try:
            session = subprocess.run(
                [sys.executable, "-m", "datagen.cli", "record", "--backend", "gta",
                 "--duration", str(duration_s), "--obs-port", str(obs.port), "--obs-password",
                 obs.password or "", "--collector-port", str(port), "--plugin-timeout", "60",
                 "--out", str(workdir / "out"), *(["--keep-obs-file"] if keep_obs_file else [])],
                env=env, capture_output=True, text=True, timeout=240 + 2 * duration_s)
        finally:
            game.terminate()
            game_log = game.communicate(timeout=30)[0]
    return SimSession(workdir / "out", truth, session.stdout + session.stderr + game_log,
                      session.returncode)


def truth_rows(path: Path) -> dict[int, dict[str, float | str]]:
    """The simulator's ground truth by game frame number."""
    with open(path, newline="") as f:
        return {int(r["frame"]): {k: (float(v) if k != "mode" else v) for k, v in r.items()}
                for r in csv.DictReader(f)}


def determined(ep: Episode, out: Path) -> np.ndarray:
    """bool [F]: the video frames of ``ep`` whose game frame the marker decides
    (:func:`datagen.gta.sync.decided` over the session's samples), the video's frame times
    taken as exact multiples of its frame interval (OBS's are rounded to the millisecond, so
    at a rounding's distance from a switch this may differ from the session's own count)."""
    sync = ep.meta.extra["sync"]
    samples, _ = load_samples(out / "gta_sessions" / sync["session"] / SAMPLES_FILE)
    low, high = (v / 1000.0 for v in sync["marker"]["latency_ms"])
    fit = MarkerFit(low, high, tuple(sync["marker"]["video_frames"]), sync["marker"]["agree"],
                    sync["marker"]["seen"])
    first = sync["video_frames"][0]
    times = (first + np.arange(ep.meta.frames)) / ep.meta.fps
    return decided(samples, times, sync["start_wall_s"], fit)


def shown_offsets(ep: Episode, step: int = 2, reach: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """For every ``step``-th video frame of ``ep``: which game frame it shows, found by
    rendering the poses of the rows around it (``reach`` each side) and taking the closest
    image, minus the game frame its row names (0: the row is right). Returns the checked video
    frames and their offsets. Rows around a frame may
    name the same game frame (a duplicate), so game frames are compared, not rows."""
    world = build_world(SCENE, SEED)
    video = list(read_frames(ep.path / "video.mp4"))
    height, width = video[0].shape[:2]
    game_frame = ep.data["game_frame"].astype(np.int64)
    checked, offsets = range(reach, len(video) - reach, step), []
    with Renderer(world, width, height, float(horizontal_fov(VERTICAL_FOV, width,
                                                                 height))) as renderer:
        for k in checked:
            errors = {}
            for j in range(k - reach, k + reach + 1):
                q = np.array([ep.data[c][j] for c in ("qw", "qx", "qy", "qz")])
                pos = np.array([ep.data[f"pos_{a}"][j] for a in "xyz"])
                img = renderer.render(pos, q, world.mover_poses(ep.data["game_ms"][j] / 1000.0))
                errors[game_frame[j]] = np.mean((img.astype(np.float64) - video[k]) ** 2)
            offsets.append(min(errors, key=errors.get) - game_frame[k])
    return np.array(checked), np.array(offsets)
