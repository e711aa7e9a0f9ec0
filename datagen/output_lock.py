"""One run per output folder: an advisory lock that a second run on the same folder reports.

Recording and curation clean up after a crash when they start (a stale ``.partial`` episode, a
``.tmp`` shard), which would destroy the files of another run still writing there. Each run
therefore holds ``flock`` on ``<folder>/.lock`` while it writes; a second run fails at once
with a message naming the holder. The kernel drops the lock when its process dies, even by
SIGKILL, so a crash never leaves the folder locked; the file itself stays, empty after a clean
run (deleting it would let two runs lock two different files).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = ".lock"


class OutputLocked(RuntimeError):
    """Another run is writing to the output folder."""


class OutputLock:
    """Hold the lock of ``folder`` (created if missing) until :meth:`release`; ``what`` names
    the kind of run in messages ("recording", "curation")."""

    def __init__(self, folder: str | Path, what: str) -> None:
        self.path = Path(folder) / LOCK_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._held = False
        except OSError as exc:
            raise OSError(f"cannot lock {self.path.parent}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise OutputLocked(
                f"{self.path.parent} is being written by another run ({holder}); wait for it "
                f"to end or choose another output folder") from None
        except BaseException:
            self.release()
            raise
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{what}, pid {os.getpid()} on {socket.gethostname()}\n".encode(),
                      0)
        except BaseException:  # disk full, say: never keep a lock nobody can use
            self.release()
            raise
        self._held = True

    def release(self) -> None:
        """Give the lock up (closing the file releases it); releasing twice is harmless."""
        if self._fd is not None:
            if self._held:  # an empty file after a clean run: same folders, same bytes
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
