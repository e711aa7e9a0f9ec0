"""Start real OBS Studio headless (under Xvfb) for tests, with its own throw-away configuration.

Usage (the end-to-end tests do exactly this)::

    from real_obs import obs_available, running_obs, running_xvfb, showing_colours  # tests/

    with running_xvfb(640, 360) as display, running_obs(tmp_path, display) as obs:
        client = Obs(obs.host, obs.port, obs.password)   # datagen.gta.obs
        ...                                              # recordings land in obs.record_dir

What it writes under ``workdir`` (OBS never sees the real ``$HOME``)::

    workdir/home/.config/obs-studio/
        global.ini                          websocket server (port, password), profile and
                                            scene collection names, first-run flags
        basic/profiles/worldforge/basic.ini advanced output: record path, container, x264
        basic/profiles/worldforge/recordEncoder.json   x264 CRF settings
        basic/scenes/worldforge.json        one scene, one ``xshm_input`` source: the X screen
        logs/                               OBS's own log (``ObsHandle.log``)
    workdir/recordings/                     ``ObsHandle.record_dir``
    workdir/obs.out                         OBS's stdout and stderr

Facts this relies on (Debian's OBS Studio 29.0.2 with obs-websocket 5.1.0, Mesa llvmpipe):
the websocket server reads ``[OBSWebSocket]`` in ``global.ini`` (newer obs-websocket versions
read ``plugin_config/obs-websocket/config.json`` instead); ``FirstRun=true`` there skips the
auto-configuration wizard; ``--disable-shutdown-check`` skips the "OBS crashed last time"
dialog after a kill; ``--multi`` lets several instances run at once. There is no window manager
and no D-Bus, which OBS logs as errors and otherwise ignores. Measured on a 2-core machine: the
websocket port opens about 0.5 s after launch; StartRecord -> STARTED takes ~10-50 ms; after
StopRecord (answered in under a millisecond) the MKV stays 0 bytes until the STOPPED event
~0.6 s later, when it is complete. Recordings are MKV with an H.264 (x264, B-frames) and an
AAC track and millisecond timestamps; a recording killed with OBS, or stopped before its
first frame, is a header-only file that never demuxes.

Every process runs in its own process group and is killed (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROFILE = "worldforge"  # profile and scene collection name
OBS_FLAGS = ("--disable-updater", "--disable-shutdown-check", "--multi",
             "--minimize-to-tray")
START_TIMEOUT = 30.0  # seconds for OBS to open its websocket port


def obs_available() -> str:
    """Why real OBS cannot run here ("" when the ``obs`` and ``Xvfb`` binaries are installed)."""
    missing = [name for name in ("obs", "Xvfb") if shutil.which(name) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


def _kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the leader may be gone while children of its group live on
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_xvfb(width: int = 640, height: int = 360, timeout: float = 10.0) -> Iterator[str]:
    """An Xvfb server with one ``width x height x 24`` screen on a free display; yields its
    ``DISPLAY`` string (``":N"``). Xvfb picks the number itself (``-displayfd``)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(read_fd, False)
        while not number.endswith(b"\n"):
            if proc.poll() is not None:
                raise RuntimeError(f"Xvfb exited with code {proc.returncode}: "
                                   f"{proc.stderr.read().decode(errors='replace')[-1000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb did not report a display within {timeout} s")
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(read_fd, 16)
                number += chunk
                if chunk:
                    continue
            time.sleep(0.02)
        yield f":{int(number)}"
    finally:
        os.close(read_fd)
        _kill_group(proc)
        proc.stderr.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ini(sections: dict[str, dict[str, object]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                for key, value in values.items()]
        out.append("")
    return "\n".join(out)


def write_obs_config(
    config_dir: Path, record_dir: Path, width: int, height: int, fps: int, port: int,
    password: str | None, fmt: str, crf: int = 23,
) -> None:
    """Write OBS 29's ``global.ini``, one profile and one scene collection into ``config_dir``
    (``~/.config/obs-studio``)."""
    profile = config_dir / "basic" / "profiles" / PROFILE
    scenes = config_dir / "basic" / "scenes"
    profile.mkdir(parents=True, exist_ok=True)
    scenes.mkdir(parents=True, exist_ok=True)
    (config_dir / "global.ini").write_text(_ini({
        "General": {"FirstRun": True, "Pre19Defaults": False, "Pre21Defaults": False,
                    "Pre23Defaults": False, "Pre24.1Defaults": False,
                    "EnableAutoUpdates": False, "ConfirmOnExit": False},
        "Basic": {"Profile": PROFILE, "ProfileDir": PROFILE, "SceneCollection": PROFILE,
                  "SceneCollectionFile": PROFILE},
        "BasicWindow": {"SysTrayWhenStarted": True, "SysTrayMinimizeToTray": True},
        "OBSWebSocket": {"FirstLoad": False, "ServerEnabled": True, "ServerPort": port,
                         "AlertsEnabled": False, "AuthRequired": password is not None,
                         "ServerPassword": password or ""},
    }))
    (profile / "basic.ini").write_text(_ini({
        "General": {"Name": PROFILE},
        "Video": {"BaseCX": width, "BaseCY": height, "OutputCX": width, "OutputCY": height,
                  "FPSType": 2, "FPSNum": fps, "FPSDen": 1, "ScaleType": "bicubic"},
        "Output": {"Mode": "Advanced"},
        "AdvOut": {"RecType": "Standard", "RecFilePath": str(record_dir), "RecFormat": fmt,
                   "RecEncoder": "obs_x264", "RecUseRescale": False, "RecTracks": 1},
    }))
    (profile / "recordEncoder.json").write_text(json.dumps(
        {"rate_control": "CRF", "crf": crf, "preset": "veryfast", "keyint_sec": 1,
         "profile": "high", "tune": ""}))
    screen = {"id": "xshm_input", "versioned_id": "xshm_input", "name": "Screen",
              "settings": {"screen": 0, "show_cursor": False}}
    scene = {"id": "scene", "versioned_id": "scene", "name": "Scene",
             "settings": {"id_counter": 1, "custom_size": False, "items": [
                 {"name": "Screen", "id": 1, "visible": True, "locked": False,
                  "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "rot": 0.0,
                  "align": 5, "bounds_type": 0, "bounds_align": 0,
                  "bounds": {"x": 0.0, "y": 0.0}}]}}
    (scenes / f"{PROFILE}.json").write_text(json.dumps({
        "name": PROFILE, "current_scene": "Scene", "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}], "sources": [scene, screen], "groups": [],
        "transitions": [], "current_transition": "Fade", "transition_duration": 300}))


@dataclass
class ObsHandle:
    """A running OBS Studio: where its websocket listens and where it records."""

    host: str
    port: int
    password: str | None
    record_dir: Path
    config_dir: Path
    output: Path  # OBS's stdout and stderr
    started_in: float  # seconds from launch until the websocket port accepted connections
    process: subprocess.Popen

    @property
    def log(self) -> Path | None:
        """OBS's newest log file (under ``config_dir/logs``), None before it wrote one."""
        logs = sorted((self.config_dir / "logs").glob("*.txt"), key=lambda p: p.stat().st_mtime)
        return logs[-1] if logs else None

    def log_tail(self, chars: int = 3000) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return text[-chars:]

    def stop(self) -> None:
        """Kill OBS and everything it started (idempotent)."""
        _kill_group(self.process)


@contextlib.contextmanager
def running_obs(
    workdir: str | Path, display: str, width: int = 640, height: int = 360, fps: int = 30,
    password: str | None = None, fmt: str = "mkv", port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> Iterator[ObsHandle]:
    """Start OBS Studio on X ``display`` with a fresh configuration under ``workdir``: base and
    output resolution ``width x height``, ``fps`` frames a second, x264 CRF recordings in
    container ``fmt`` ("mkv", "mp4", ...) into ``workdir/recordings``, the websocket server on
    ``port`` (a free one by default) with ``password`` (None: no authentication), one scene
    capturing the whole X screen. Yields once the websocket port accepts connections; kills
    OBS on exit."""
    workdir = Path(workdir).resolve()
    home = workdir / "home"
    config_dir = home / ".config" / "obs-studio"
    record_dir = workdir / "recordings"
    record_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    write_obs_config(config_dir, record_dir, width, height, fps, port, password, fmt)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XDG_", "WAYLAND", "QT_", "DBUS_"))}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "DISPLAY": display,
            "XDG_RUNTIME_DIR": str(home / "run"), "QT_QPA_PLATFORM": "xcb",
            "LIBGL_ALWAYS_SOFTWARE": "1"}
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    output = workdir / "obs.out"
    t0 = time.monotonic()
    with open(output, "wb") as out:
        proc = subprocess.Popen(["obs", *OBS_FLAGS], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    handle = ObsHandle("127.0.0.1", port, password, record_dir, config_dir, output, 0.0, proc)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"OBS exited with code {proc.returncode} while starting; "
                                   f"its output ({output}) ends:\n{handle.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"OBS did not open its websocket port {port} within "
                                   f"{timeout} s; its output ({output}) ends:\n"
                                   f"{handle.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        handle.started_in = time.monotonic() - t0
        yield handle
    finally:
        handle.stop()


# shows the colours full screen, one after the other, each for PERIOD seconds, then the last
_COLOUR_SCRIPT = """
import sys, tkinter
w, h, period, colours = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry(f"{w}x{h}+0+0")
root.configure(background=colours[0], cursor="none")
def show(i):
    root.configure(background=colours[i])
    if i + 1 < len(colours):
        root.after(int(period * 1000), show, i + 1)
root.after(0, show, 0)
print("shown", flush=True)
root.mainloop()
"""


@contextlib.contextmanager
def showing_colours(
    display: str, width: int, height: int, colours: Sequence[str], period: float,
) -> Iterator[subprocess.Popen]:
    """A borderless Tk window over the whole ``display`` that shows ``colours`` ("#rrggbb"),
    each for ``period`` seconds, then keeps the last; yields once it is mapped."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _COLOUR_SCRIPT, str(width), str(height), str(period), *colours],
        env=os.environ | {"DISPLAY": display}, stdout=subprocess.PIPE, start_new_session=True)
    try:
        if proc.stdout.readline().strip() != b"shown":
            raise RuntimeError(f"the Tk colour window did not start on {display}")
        yield proc
    finally:
        _kill_group(proc, grace=0.5)
        proc.stdout.close()
