"""Worker processes that die with their parent, so a killed run leaves no orphan writing on.

A recording stream or a curation worker whose parent is killed (even by SIGKILL, which no
handler sees) would otherwise finish its episode on its own, writing into an output folder
that the next run already owns. :func:`die_with_parent` starts a daemon thread that SIGKILLs
this process the moment its parent is gone, exactly as if it had been killed with it.
"""

from __future__ import annotations

import os
import signal
import threading
import time

POLL_S = 0.25


def die_with_parent() -> None:
    """Call first thing in a child process (a ``Process`` target, a ``Pool`` initializer)."""
    threading.Thread(target=_watch, args=(os.getppid(),), name="die-with-parent",
                     daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGKILL)
