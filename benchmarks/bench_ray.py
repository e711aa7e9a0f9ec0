"""``--ray``: its overhead on one machine, and how recording and curation scale with nodes.

Every run is a whole command (``datagen record`` / ``curation filter``) timed from start to
exit, the same work each time, each into a fresh folder:

  overhead  the plain run (one stream; curation with two workers) against ``--ray local`` (a
            private cluster of this machine; a recording task asks for 2 CPUs, as one stream
            keeps two busy, so both do one episode at a time; curation tasks ask for one)
  scaling   a cluster of 1, then 2 nodes of one CPU each, each node pinned to a core of its own
            with ``taskset`` (the nodes a 2-core machine can simulate), tasks asking for one
            CPU: throughput with 2 nodes over throughput with 1

With ``--address HOST:PORT`` it runs unchanged on a real cluster instead: the same recording
and curation once on it (``--task-cpus`` per recording task), printing frames/s, the nodes and
CPUs it had, and the frames/s per CPU; run it on clusters of different sizes and compare.

    python benchmarks/bench_ray.py [--episodes 6] [--frames 1200] [--overhead-frames 3600]
    python benchmarks/bench_ray.py --address 10.0.0.1:6379 --episodes 64 --out /shared/bench
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


DRIVER_CPU: list[float] = []  # CPU seconds of each timed command's own process tree


def timed(argv: list[str], env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    DRIVER_CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def record(out: Path, args, extra: list[str], env: dict, frames: int | None = None) -> float:
    return timed([sys.executable, "-m", "datagen.cli", "record", "--scene", "city",
                  "--episodes", str(args.episodes), "--frames", str(frames or args.frames),
                  "--size", args.size, "--no-progress", "--out", str(out), *extra], env)


def curate(raw: Path, out: Path, args, extra: list[str], env: dict) -> float:
    return timed([sys.executable, "-m", "curation.cli", "filter", str(raw), "--out", str(out),
                  "--clip-frames", "57", "--size", args.size, "--no-progress", *extra], env)


class Node:
    """``ray start --block`` pinned to ``cores``, in a process group of its own."""

    def __init__(self, argv: list[str], cores: str, env: dict) -> None:
        self.proc = subprocess.Popen(["taskset", "-c", cores, str(RAY), "start", "--block",
                                      "--num-cpus", "1", "--disable-usage-stats", *argv],
                                     env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        for _ in range(150):
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def wait_nodes(address: str, n: int, env: dict) -> None:
    probe = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(sum(x['Alive'] for x in ray.nodes()))")
    for _ in range(120):
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True)
        if done.returncode == 0 and done.stdout.split()[-1:] == [str(n)]:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the cluster did not reach {n} node(s)")


def local_runs(args, work: Path) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    frames = args.episodes * args.frames
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; city at {args.size}")
    if not args.scaling_only:
        overhead(args, work, env)
    scaling(args, work, env, frames)


def overhead(args, work: Path, env: dict) -> None:
    long = args.overhead_frames
    plain = record(work / "plain", args, ["--streams", "1"], env, long)
    ray = record(work / "ray", args, ["--ray", "local", "--task-cpus", "2"], env, long)
    cplain = curate(work / "plain", work / "plain-shards", args, ["--workers", "2"], env)
    cray = curate(work / "plain", work / "ray-shards", args, ["--ray", "local"], env)
    shutil.rmtree(work / "ray")
    print(f"\noverhead: {args.episodes} x {long} frames\n")
    print("| job | plain (s) | --ray local (s) | overhead |\n|---|---|---|---|")
    print(f"| record | {plain:.1f} | {ray:.1f} | {100 * (ray / plain - 1):+.1f} % |")
    print(f"| curation filter | {cplain:.1f} | {cray:.1f} | {100 * (cray / cplain - 1):+.1f} % |")


def scaling(args, work: Path, env: dict, frames: int) -> None:
    start = len(DRIVER_CPU)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="wfbench", dir="/tmp")
    nodes = [Node(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                   "--include-dashboard", "false", "--temp-dir", temp], "0", env)]
    try:
        wait_nodes(address, 1, env)
        one = record(work / "one", args, ["--ray", address, "--task-cpus", "1"], env)
        cone = curate(work / "one", work / "one-shards", args, ["--ray", address], env)
        nodes.append(Node(["--address", address], "1", env))
        wait_nodes(address, 2, env)
        two = record(work / "two", args, ["--ray", address, "--task-cpus", "1"], env)
        ctwo = curate(work / "one", work / "two-shards", args, ["--ray", address], env)
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(temp, ignore_errors=True)
    cpu = DRIVER_CPU[start:]  # one, cone, two, ctwo
    print(f"\nscaling: {args.episodes} x {args.frames} frames; the driver's own CPU seconds "
          "in brackets (it is not pinned: with 2 nodes it shares their 2 cores)\n")
    print("| job | 1 node (frames/s) | 2 nodes (frames/s) | ratio |\n|---|---|---|---|")
    print(f"| record | {frames / one:.1f} [{cpu[0]:.1f}] | {frames / two:.1f} [{cpu[2]:.1f}] | "
          f"{one / two:.2f}x |")
    print(f"| curation filter | {frames / cone:.1f} [{cpu[1]:.1f}] | {frames / ctwo:.1f} "
          f"[{cpu[3]:.1f}] | {cone / ctwo:.2f}x |")


def cluster_run(args, work: Path) -> None:
    frames = args.episodes * args.frames
    env = dict(os.environ)
    rec = record(work / "raw", args, ["--ray", args.address, "--task-cpus",
                                      str(args.task_cpus)], env)
    cur = curate(work / "raw", work / "shards", args, ["--ray", args.address], env)
    probe = (f"import ray; ray.init(address={args.address!r}, log_to_driver=False); "
             "n = [x for x in ray.nodes() if x['Alive']]; "
             "print(len(n), int(sum(x['Resources'].get('CPU', 0) for x in n)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    nodes, cpus = (int(v) for v in done.stdout.split()[-2:])
    print(f"cluster {args.address}: {nodes} nodes, {cpus} CPUs; city, {args.episodes} x "
          f"{args.frames} frames at {args.size}")
    print("| job | seconds | frames/s | frames/s per CPU |\n|---|---|---|---|")
    for name, seconds in (("record", rec), ("curation filter", cur)):
        print(f"| {name} | {seconds:.1f} | {frames / seconds:.1f} | "
              f"{frames / seconds / cpus:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=6)
    p.add_argument("--frames", type=int, default=1200)
    p.add_argument("--size", default="640x360")
    p.add_argument("--overhead-frames", type=int, default=3600,
                   help="frames per episode for the overhead runs (jobs of minutes)")
    p.add_argument("--scaling-only", action="store_true", help="skip the overhead runs")
    p.add_argument("--address", help="a running cluster's HOST:PORT: measure it instead")
    p.add_argument("--task-cpus", type=float, default=2.0, help="with --address")
    p.add_argument("--out", type=Path, help="with --address: a folder every node shares")
    args = p.parse_args()
    if args.address:
        if args.out is None:
            p.error("--address needs --out: a folder every node of the cluster shares")
        work = args.out / f"bench-{int(time.time())}"
        work.mkdir(parents=True)
        cluster_run(args, work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local_runs(args, Path(tmp))


if __name__ == "__main__":
    main()
