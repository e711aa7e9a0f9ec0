"""One run per output folder: the second run is refused with the holder named; a killed holder
leaves the folder free; recording, filtering and annotating all take the lock."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from curation.cli import main as curation
from datagen.cli import main as datagen
from datagen.output_lock import LOCK_FILE, OutputLock, OutputLocked


def test_a_second_lock_on_the_same_folder_is_refused_until_released(tmp_path):
    out = tmp_path / "new" / "folder"
    first = OutputLock(out, "datagen record")
    with pytest.raises(OutputLocked, match=r"being written by another run \(datagen record, pid"):
        OutputLock(out, "curation")
    first.release()
    first.release()  # harmless
    with OutputLock(out, "curation"):
        pass
    assert (out / LOCK_FILE).read_bytes() == b""  # empty after clean runs: folders compare equal


def test_a_holder_killed_with_sigkill_leaves_the_folder_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from datagen.output_lock import OutputLock; "
         f"lock = OutputLock({str(tmp_path)!r}, 'test'); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=f"pid {holder.pid}"):
            OutputLock(tmp_path, "curation")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel releases flock locks when the holder's files close
        try:
            OutputLock(tmp_path, "curation").release()
            break
        except OutputLocked:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_children_of_the_holder_do_not_keep_the_lock(tmp_path):
    """ffmpeg-like subprocesses and spawned workers get no copy of the lock's descriptor, so
    a killed run frees its folder at once even while its children are still alive."""
    script = (
        "import multiprocessing as mp, subprocess, sys, time\n"
        "from datagen.output_lock import OutputLock\n"
        "if __name__ == '__main__':\n"
        f"    lock = OutputLock({str(tmp_path)!r}, 'test')\n"
        "    child = subprocess.Popen(['sleep', '60'])\n"
        "    worker = mp.get_context('spawn').Process(target=time.sleep, args=(60,))\n"
        "    worker.start()\n"
        "    print(child.pid, worker.pid, flush=True)\n"
        "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in holder.stdout.readline().split()]
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        for pid in children:
            os.kill(pid, 0)  # still alive
        OutputLock(tmp_path, "curation").release()
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_record_and_filter_refuse_a_folder_another_run_writes(tmp_path, capsys):
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    with OutputLock(raw, "datagen record"):
        assert datagen(["record", "--out", str(raw), "--frames", "8", "--size", "64x36",
                        "--no-progress"]) == 2
    assert "being written by another run (datagen record" in capsys.readouterr().err
    assert not (raw / "city").exists()  # nothing was touched
    assert datagen(["record", "--out", str(raw), "--frames", "8", "--size", "64x36",
                    "--streams", "1", "--no-progress"]) == 0
    with OutputLock(shards, "curation"):
        assert curation(["filter", str(raw), "--out", str(shards), "--no-progress"]) == 2
    assert "being written by another run (curation" in capsys.readouterr().err
    assert sorted(p.name for p in shards.iterdir()) == [LOCK_FILE]
    with OutputLock(tmp_path / "annotated", "curation annotate"):
        assert curation(["annotate", str(raw), "--out", str(tmp_path / "annotated")]) == 2
    assert "being written by another run (curation annotate" in capsys.readouterr().err
