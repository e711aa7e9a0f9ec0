"""Running per-episode work as Ray tasks (``--ray [ADDRESS]``): connect, submit, gather in order.

Imported only when a command is given ``--ray``; Ray itself is the optional extra
``pip install worldforge[ray]``. :func:`connect` joins a cluster (``auto``: the one this
machine belongs to, as ``ray start`` set it up; ``HOST:PORT``: that head; ``local``: a private
cluster of this machine, gone with the run). :func:`ordered_map` runs a top-level function over
a list of arguments as Ray tasks with the resources each one needs, retrying tasks whose worker
died (Ray's task retries: the functions given here must be safe to run again), and yields the
results **in submission order** while a progress bar counts the tasks finished anywhere in the
cluster. At most ``in_flight`` tasks are queued or running at a time (twice the cluster's CPUs
by default), and at most ``waiting`` finished results wait for an earlier one to be collected
(eight times the CPUs), so the object store stays bounded while a slow task at the head of
the order does not leave the other nodes idle.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

TASK_RETRIES = 3  # runs of a task whose worker process died, after the first


def ray_module():
    """Ray, or an ImportError that says how to get it."""
    try:
        import ray
    except ImportError:
        raise ImportError("--ray needs Ray: pip install 'worldforge[ray]'") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at ``address`` (``auto``, ``local`` or ``HOST:PORT``); returns ``ray``.
    A cluster that cannot be reached is a RuntimeError naming the address."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if address not in ("auto", "local"):
        _check_listening(address)
    kwargs = {"log_to_driver": False, "configure_logging": False}
    try:
        if address == "local":
            ray.init(include_dashboard=False, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    return ray


def _check_listening(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at ``HOST:PORT`` (Ray itself keeps retrying for
    minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(f"--ray {address!r}: give auto, local or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RuntimeError(f"cannot reach a Ray cluster at {address!r}: nothing answers there "
                           f"({exc.strerror or exc})") from None


def cluster_cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 1))


def ordered_map(fn: Callable, args: Sequence[tuple], resources: dict, desc: str,
                progress: bool = True, in_flight: int | None = None,
                waiting: int | None = None) -> Iterator[Any]:
    """``fn(*a)`` for each ``a`` in ``args`` as Ray tasks asking for ``resources`` (Ray's
    ``num_cpus``, ``num_gpus``, ``memory``), yielded in the order of ``args``. An exception a
    task raised is re-raised here when its turn comes (not retried: it would raise again)."""
    ray = ray_module()
    remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False, **resources)(fn)
    cpus = cluster_cpus(ray)
    cap = in_flight or max(2, 2 * cpus)
    held = waiting or max(8, 8 * cpus)
    todo = deque(enumerate(args))
    pending: dict[Any, int] = {}  # ref -> index
    done: dict[int, Any] = {}  # index -> finished ref, waiting for its turn
    turn = 0
    with tqdm(total=len(args), desc=desc, unit="task", disable=not progress,
              dynamic_ncols=True) as bar:
        while turn < len(args):
            while todo and len(pending) < cap and len(done) < held:
                index, a = todo.popleft()
                pending[remote.remote(*a)] = index
            if turn not in done:  # then it is pending: tasks are submitted in order
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    done[pending.pop(ref)] = ref
                    bar.update(1)
            while turn in done:
                yield ray.get(done.pop(turn))
                turn += 1
