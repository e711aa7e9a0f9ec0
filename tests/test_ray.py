"""``--ray``: recording and curation as Ray tasks on a real two-node cluster on this machine.

The cluster is a head and a second node, one CPU each, started with ``ray start --block`` in
their own process groups and stopped by signalling those groups (nothing else on the machine
is touched), with a token of its own (Ray's token authentication: the cluster, this process
and the drivers the tests start share it through ``RAY_AUTH_TOKEN``). The same work run
locally and on the cluster must give the same bytes, also when a worker is killed in the middle
of a task.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from curation.cli import main as curation  # noqa: E402
from datagen.cli import main as datagen  # noqa: E402
from datagen.storage import COMMITTED, finished_meta, publish  # noqa: E402

RECORD = ["--scene", "rooms", "--frames", "45", "--size", "64x36", "--no-progress"]
FILTER = ["--clip-frames", "17", "--size", "64x36", "--val-fraction", "0", "--no-progress"]
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A head and a worker node, one CPU each, in process groups of their own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="wfray", dir="/tmp")  # short: socket paths
        ray_bin = Path(sys.executable).parent / "ray"
        common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
        self.procs: list[subprocess.Popen] = []
        try:
            self._start([str(ray_bin), "start", "--head", "--port", str(self.port),
                         "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                         "--temp-dir", self.temp, *common])
            self._wait(1)
            self._start([str(ray_bin), "start", "--address", self.address, *common])
            self._wait(2)
        except BaseException:
            self.stop()
            raise

    def _start(self, argv: list[str]) -> None:
        self.procs.append(subprocess.Popen(argv, start_new_session=True, cwd=REPO,
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def _wait(self, nodes: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            script = (f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
                      "print(sum(n['Alive'] for n in ray.nodes()))")
            probe = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                   text=True, cwd=REPO)
            if probe.returncode == 0 and probe.stdout.strip().splitlines()[-1:] == [str(nodes)]:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster did not come up with {nodes} node(s)")

    def stop(self) -> None:
        """SIGTERM each node's process group, SIGKILL what is left of it after 5 s (some of
        Ray's own processes outlive a SIGTERM: waiting longer only delays the suite)."""
        for proc in reversed(self.procs):
            group = proc.pid  # start_new_session: the group is the ray start process's
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    try:
        c = Cluster()
        yield c
        if ray.is_initialized():
            ray.shutdown()
        c.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """Episodes and shards from a plain local run: what the cluster must reproduce."""
    root = tmp_path_factory.mktemp("local")
    assert datagen(["record", *RECORD, "--episodes", "3", "--streams", "1", "--out",
                    str(root / "raw")]) == 0
    assert curation(["filter", str(root / "raw"), "--out", str(root / "shards"), *FILTER]) == 0
    return root


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` as a driver of its own (the cluster's token in its
    environment: Ray reads it when it is imported)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def episode_bytes(root: Path) -> dict[str, bytes]:
    """Every episode's video and actions, by path relative to ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.name in ("video.mp4", "actions.csv")}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".lock" not in p.name}


def test_recording_on_two_nodes_gives_the_local_episodes(cluster, local, tmp_path):
    out = tmp_path / "raw"
    args = ["record", *RECORD, "--episodes", "3", "--out", str(out), "--ray", cluster.address,
            "--task-cpus", "1"]
    done = cli("datagen.cli", *args)
    assert done.returncode == 0, done.stderr
    assert "on Ray (127.0.0.1:" in done.stdout and "3 finished, 0 failed" in done.stdout
    assert episode_bytes(out) == episode_bytes(local / "raw") and len(episode_bytes(out)) == 6
    done = cli("datagen.cli", *args)
    assert done.returncode == 0 and "3 episode(s) already recorded" in done.stdout


def test_curation_on_two_nodes_gives_byte_identical_shards(cluster, local, tmp_path):
    out = tmp_path / "shards"
    done = cli("curation.cli", "filter", str(local / "raw"), "--out", str(out), *FILTER,
               "--ray", cluster.address)
    assert done.returncode == 0, done.stderr
    assert tree_bytes(out) == tree_bytes(local / "shards")


def test_output_to_a_file_url_goes_through_the_storage_layer(cluster, local, tmp_path, capsys):
    url = f"file://{tmp_path}/bucket/raw"
    args = ["record", *RECORD, "--episodes", "3", "--out", url]
    assert datagen(args) == 2 and "needs --ray" in capsys.readouterr().err
    done = cli("datagen.cli", *args, "--ray", cluster.address, "--task-cpus", "1")
    assert done.returncode == 0, done.stderr
    assert episode_bytes(tmp_path / "bucket" / "raw") == episode_bytes(local / "raw")
    assert not list((tmp_path / "bucket").rglob("*.partial"))
    done = cli("datagen.cli", *args, "--ray", cluster.address, "--task-cpus", "1")
    assert done.returncode == 0 and "3 episode(s) already recorded" in done.stdout


def _kill_one_worker_running(task: str, proc: subprocess.Popen, timeout: float = 120) -> int:
    """SIGKILL the first Ray worker process seen running ``task`` (its process title is
    ``ray::<task>``); returns its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if title.startswith(f"ray::{task}"):
                os.kill(int(entry.name), signal.SIGKILL)
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no worker ran {task}")


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_and_the_bytes_do_not_change(cluster, local,
                                                                         tmp_path):
    out = tmp_path / "raw"
    driver = subprocess.Popen(
        [sys.executable, "-m", "datagen.cli", "record", *RECORD, "--episodes", "3", "--out",
         str(out), "--ray", cluster.address, "--task-cpus", "1"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = _kill_one_worker_running("_record_task", driver)
    printed = driver.communicate(timeout=300)[0].decode()
    assert driver.returncode == 0, printed
    assert "3 finished, 0 failed" in printed and killed > 0
    assert episode_bytes(out) == episode_bytes(local / "raw")
    assert not list(out.rglob("*.partial"))

    shards = tmp_path / "shards"
    driver = subprocess.Popen(
        [sys.executable, "-m", "curation.cli", "filter", str(local / "raw"), "--out",
         str(shards), *FILTER, "--ray", cluster.address], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _kill_one_worker_running("_work", driver)
    printed = driver.communicate(timeout=300)[0].decode()
    assert driver.returncode == 0, printed
    assert tree_bytes(shards) == tree_bytes(local / "shards")


@pytest.mark.slow
def test_a_rerun_after_the_driver_died_finishes_the_job(cluster, local, tmp_path):
    out = tmp_path / "raw"
    args = [sys.executable, "-m", "datagen.cli", "record", *RECORD, "--episodes", "3", "--out",
            str(out), "--ray", cluster.address, "--task-cpus", "1"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(out.glob("rooms/rooms_0_*[0-9]")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first episode is finished
    driver.kill()  # SIGKILL: the driver dies, its tasks with it
    driver.wait()
    done = cli("datagen.cli", *args[3:])
    assert done.returncode == 0, done.stderr
    assert "already recorded" in done.stdout  # what was finished was kept
    assert episode_bytes(out) == episode_bytes(local / "raw")
    assert not list(out.rglob("*.partial"))


def test_an_unreachable_cluster_is_named(tmp_path, capsys):
    code = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "record", *RECORD, "--out", str(tmp_path),
         "--ray", f"127.0.0.1:{free_port()}"], cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert code.returncode == 2 and "cannot reach a Ray cluster at '127.0.0.1:" in code.stderr


def test_without_ray_nothing_imports_it(tmp_path):
    code = ("import sys; from datagen.cli import main; "
            f"assert main(['record', '--scene', 'rooms', '--frames', '10', '--size', '32x18', "
            f"'--no-progress', '--streams', '1', '--out', {str(tmp_path)!r}]) == 0; "
            "from curation.cli import main as c; "
            f"assert c(['filter', {str(tmp_path)!r}, '--out', {str(tmp_path / 's')!r}, "
            "'--clip-frames', '5', '--size', '32x18', '--no-progress']) == 0; "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_object_store_episodes_count_only_once_committed(tmp_path):
    """On a store without an atomic rename (fsspec's in-memory one here), the files go up first
    and the marker last: before it, the episode is not finished."""
    import fsspec

    episode = tmp_path / "rooms_0_00000"
    episode.mkdir()
    (episode / "meta.json").write_text(json.dumps({"engine": {}}))
    (episode / "video.mp4").write_bytes(b"\0" * 100)
    fs = fsspec.filesystem("memory")
    url = "memory://bucket/raw"
    assert finished_meta(url, "rooms", episode.name) is None
    fs.pipe_file("/bucket/raw/rooms/rooms_0_00000/meta.json", b"{}")  # a half upload
    assert finished_meta(url, "rooms", episode.name) is None
    where = publish(episode, url, "rooms")
    assert fs.exists(f"{where}/{COMMITTED}") and fs.cat_file(f"{where}/video.mp4") == b"\0" * 100
    assert finished_meta(url, "rooms", episode.name) == {"engine": {}}
    fs.rm("/bucket", recursive=True)
