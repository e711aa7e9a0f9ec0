"""Builds the GTA V plugin's C++ code (``gta_scripthook/``) for the tests, once per session.

``build_portable()`` configures and builds the portable targets (Release, ``-j2``) and returns
the paths of ``wfgta_sim_host`` (the plugin script against its simulator) and ``wfgta_tests``
(the CTest suite)::

    from gta_build import build_portable
    binaries = build_portable()
    subprocess.run([binaries.sim_host, "--world", ..., "--config", ..., "--truth", ...])

``build_windows()`` cross-compiles ``worldforge_gta.asi`` with the MinGW-w64 toolchain file and
returns its path (``None`` when ``x86_64-w64-mingw32-g++`` is not installed).

The build folders live under ``$WORLDFORGE_GTA_BUILD`` when set, else under the system temp
folder, keyed by the source path, so later sessions rebuild incrementally; a file lock keeps
parallel test workers from building the same folder at once. Within one process each build
runs at most once.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "gta_scripthook"
TOOLCHAIN = SOURCE / "cmake" / "mingw-w64.cmake"
MINGW_CXX = "x86_64-w64-mingw32-g++"
JOBS = "2"


@dataclass(frozen=True)
class GtaBinaries:
    build_dir: Path
    sim_host: Path  # wfgta_sim_host
    tests: Path  # wfgta_tests (one CTest entry per suite)


def build_root() -> Path:
    """Where build folders go: ``$WORLDFORGE_GTA_BUILD`` or ``<tmp>/worldforge-gta-<key>``."""
    env = os.environ.get("WORLDFORGE_GTA_BUILD")
    if env:
        return Path(env)
    key = hashlib.sha1(str(SOURCE).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"worldforge-gta-{key}"


def _cmake(build_dir: Path, configure_args: list[str], targets: list[str]) -> None:
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        steps = [
            ["cmake", "-S", str(SOURCE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
             *configure_args],
            ["cmake", "--build", str(build_dir), "-j", JOBS, "--target", *targets],
        ]
        for cmd in steps:
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({run.returncode}):\n"
                                   f"{run.stdout[-6000:]}\n{run.stderr[-6000:]}")


@functools.cache
def build_portable() -> GtaBinaries:
    """Builds ``wfgta_sim_host`` and ``wfgta_tests`` (Linux, Release) and returns their paths."""
    build_dir = build_root() / "portable"
    _cmake(build_dir, [], ["wfgta_sim_host", "wfgta_tests"])
    return GtaBinaries(build_dir, build_dir / "wfgta_sim_host", build_dir / "wfgta_tests")


def mingw_available() -> bool:
    return shutil.which(MINGW_CXX) is not None


@functools.cache
def build_windows() -> Path | None:
    """Cross-compiles ``worldforge_gta.asi``; ``None`` without the MinGW-w64 compiler."""
    if not mingw_available():
        return None
    build_dir = build_root() / "mingw"
    _cmake(build_dir, [f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}"], ["worldforge_gta"])
    return build_dir / "worldforge_gta.asi"
