"""The shard set: deterministic WebDataset tars, the manifest, the rejects and ``dataset.json``.

Layout (part 4 of the data contract)::

    <out>/dataset.json        format "worldforge.shards/1", action space, clip length, size, fps,
                              counts per split, the action coverage per split (the counts and
                              goals of datagen.action_coverage, over the clips of done
                              episodes), the FilterConfig, rejects by kind, and the per-episode
                              bookkeeping that makes re-runs incremental
    <out>/manifest.parquet    one row per clip in a closed shard (key, shard, split, episode,
                              first_frame, frames, scene, backend, fps, stats)
    <out>/rejects.parquet     one row per rejected episode or segment of a finished episode
    <out>/train-000000.tar .. <out>/val-000000.tar ..
    <out>/.lock, <out>/.scratch/   while a run writes: its lock (see datagen.output_lock) and the
                              clips its workers are encoding (removed at the end; what a killed
                              run left, when the folder is opened again)

Tars are written with ``webdataset.TarWriter`` (no encoder: members must already be bytes). Its
source shows it gives everything reproducibility needs once configured: members sorted by
extension within a sample, ``mtime=0``, ``mode=0o644``, ``uname``/``gname`` ``""``, uid/gid 0
(the ``TarInfo`` default), regular files, and the USTAR format (no pax headers, so no times).

Commit unit: a closed shard. A shard is written as ``<name>.tar.tmp``, renamed to ``<name>.tar``
when full, and then the manifest, the rejects and last ``dataset.json`` (the commit record) are
rewritten atomically. An episode is *done* once all of its samples are in closed shards; only
done episodes are recorded as such, with their rejects. A killed run thus leaves closed shards
and a consistent state; reopening deletes ``*.tmp`` leftovers (and a shard renamed just before the
kill but not yet recorded), and a re-run with the same inputs skips done episodes and, of an
episode cut by the kill, the samples already in closed shards: each split then receives the same
sample sequence as an uninterrupted run, so every file ends byte-identical to one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from webdataset import TarWriter

from curation.config import FilterConfig
from curation.segments import Reject
from datagen.action_coverage import count_actions, coverage, merge_counts
from datagen.episode import EPISODE_ID_RE, KEYS
from datagen.output_lock import LOCK_FILE, OutputLock, OutputLocked

FORMAT = "worldforge.shards/1"
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.parquet"
REJECTS_FILE = "rejects.parquet"
SCRATCH_DIR = ".scratch"  # clips being encoded by this run's workers
SPLITS = ("train", "val")
SHARD_PATTERN = "{split}-{index:06d}.tar"
SHARD_RE = re.compile(r"(train|val)-\d{6}\.tar")
SAMPLE_MEMBERS = ("mp4", "keys.npy", "mouse.npy", "pose.npy", "json")

_BLOCK = 512  # tar block; a stream ends with two zero blocks, padded to a 20-block record
_RECORD = 20 * _BLOCK

MANIFEST_SCHEMA = pa.schema(
    [("key", pa.string()), ("shard", pa.string()), ("split", pa.string()),
     ("episode", pa.string()), ("first_frame", pa.int64()), ("frames", pa.int64()),
     ("scene", pa.string()), ("backend", pa.string()), ("fps", pa.float64()),
     ("mean_speed", pa.float64())]  # m/s as played: mean |pos step| * fps
    + [(f"key_{k}_frac", pa.float64()) for k in KEYS]  # share of frames with the key held
    + [("mouse_dx_abs_mean", pa.float64()), ("mouse_dy_abs_mean", pa.float64())])  # degrees
REJECTS_SCHEMA = pa.schema(
    [("source", pa.string()), ("episode", pa.string()), ("first_frame", pa.int64()),
     ("frames", pa.int64()), ("reason", pa.string())])


class ShardSetError(RuntimeError):
    """The shard folder cannot be opened or written as asked (mixed settings, bad samples)."""


def reason_kind(reason: str) -> str:
    """The short kind of a reject reason, for counts: the text before any ``:`` or `` (``."""
    return reason.split(":")[0].split(" (")[0]


def split_of(episode_id: str, val_fraction: float) -> str:
    """``"val"`` when sha256(episode_id) read as a number in [0, 1) is below ``val_fraction``."""
    digest = hashlib.sha256(episode_id.encode("utf-8")).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction else "train"


def tar_member_bytes(sample: dict) -> int:
    """Bytes the sample's members take in a tar (a header block each, data padded to blocks)."""
    return sum(_BLOCK + -(-len(v) // _BLOCK) * _BLOCK
               for k, v in sample.items() if not k.startswith("_"))


def tar_file_bytes(member_bytes: int) -> int:
    """Size of a tar file holding ``member_bytes`` of members, end blocks and padding included."""
    return -(-(member_bytes + 2 * _BLOCK) // _RECORD) * _RECORD


class _OpenShard:
    """A shard being written under its temporary name."""

    def __init__(self, folder: Path, name: str):
        self.name = name
        self.tmp = folder / f"{name}.tmp"
        self.final = folder / name
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.writer = TarWriter(self.file, user="", group="", mode=0o644, mtime=0,
                                encoder=False)
        self.rows: list[dict] = []  # manifest rows, in sample order
        self.member_bytes = 0

    def write(self, sample: dict, row: dict, size: int) -> None:
        self.writer.write(sample)
        self.rows.append(row)
        self.member_bytes += size

    def close(self) -> None:
        self.writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self.writer.close()  # ends the tar stream (else it writes to a closed file when freed)
        self.file.close()


class ShardSet:
    """Adds episodes' samples to the shard folder ``out``; see the module docstring."""

    def __init__(self, out: Path, cfg: FilterConfig, source: str = ""):
        self.out = Path(out)
        self.cfg = cfg
        self.source = source
        self._shards: dict[str, list[str]] = {s: [] for s in SPLITS}  # closed, in order
        self._rows: dict[str, list[dict]] = {}  # closed shard -> its manifest rows
        self._episodes: dict[str, dict] = {}  # done episode -> bookkeeping
        self._rejects: dict[str, list[Reject]] = {}  # done episode -> its rejects
        self._open: dict[str, _OpenShard] = {}  # split -> shard being written
        self._pending: dict[str, tuple[dict, list[Reject], dict]] = {}  # added, not yet done
        self._coverage: dict[str, dict] = {s: merge_counts([]) for s in SPLITS}  # done clips
        self._in_open: Counter = Counter()  # episode -> its samples in open shards
        self._keys: set[str] = set()  # every key written (closed or open shards)
        self._closed = False
        if self.out.exists() and not self.out.is_dir():
            raise ShardSetError(f"{self.out} exists and is not a folder")
        try:
            self._lock = OutputLock(self.out, "curation")
        except (OutputLocked, OSError) as exc:
            raise ShardSetError(str(exc)) from None
        try:
            if (self.out / DATASET_FILE).exists():
                self._reopen()
            else:
                self._create()
            # Scratch space for this run's workers, a folder of its own: what killed runs left
            # is removed (best effort: an orphaned worker may still be finishing a clip there).
            shared = self.out / SCRATCH_DIR
            shared.mkdir(exist_ok=True)
            for leftover in shared.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
            self.scratch = Path(tempfile.mkdtemp(prefix="run-", dir=shared))
        except BaseException:
            self._lock.release()
            raise

    # ---- opening
    def _create(self) -> None:
        # a kill in the first commit leaves the first two; the lock and scratch are this run's
        ours = (MANIFEST_FILE, REJECTS_FILE, LOCK_FILE, SCRATCH_DIR)
        strangers = sorted(p.name for p in self.out.iterdir()
                           if p.name not in ours and not p.name.endswith(".tmp"))
        if strangers:
            raise ShardSetError(
                f"{self.out} is not empty and has no {DATASET_FILE}, so it is not a shard set "
                f"(found {', '.join(strangers[:5])}); choose a new or empty folder")
        self._commit()

    def _reopen(self) -> None:
        try:
            state = json.loads((self.out / DATASET_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ShardSetError(f"cannot read {self.out / DATASET_FILE}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            raise ShardSetError(f"{self.out / DATASET_FILE} is not a {FORMAT} shard set "
                                f"(format {found!r})")
        old, new = state.get("config", {}), self.cfg.to_dict()
        differ = [f"{k}={old.get(k)!r} (this run: {new.get(k)!r})"
                  for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if differ:
            raise ShardSetError(
                f"{self.out} was made with other settings: {'; '.join(differ)}. Shards are "
                f"never mixed: use the same settings or another output folder")
        try:
            self._shards = {s: list(state["shards"].get(s, [])) for s in SPLITS}
            self._episodes = dict(state["episodes"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ShardSetError(f"{self.out / DATASET_FILE} is damaged: {exc!r}") from exc
        committed = {name for names in self._shards.values() for name in names}
        for row in _read_parquet(self.out / MANIFEST_FILE):
            if row["shard"] in committed:  # rows of a shard the commit record lists
                self._rows.setdefault(row["shard"], []).append(row)
                self._keys.add(row["key"])
        for row in _read_parquet(self.out / REJECTS_FILE):
            if row["episode"] in self._episodes:
                self._rejects.setdefault(row["episode"], []).append(Reject(**row))
        if "action_coverage" in state:
            self._coverage = {s: state["action_coverage"][s]["counts"] for s in SPLITS}
        else:  # a shard set from before coverage was kept: count its done clips once
            self._recount()
        for path in self.out.iterdir():
            leftover = path.name.endswith(".tmp")
            uncommitted = SHARD_RE.fullmatch(path.name) and path.name not in committed
            if leftover or uncommitted:
                path.unlink()

    # ---- queries
    def is_done(self, episode_id: str) -> bool:
        """Whether the episode was fully processed before (all its samples in closed shards) or
        was already added in this run."""
        return episode_id in self._episodes or episode_id in self._pending

    def split_of(self, episode_id: str) -> str:
        """``"train"`` or ``"val"``, by hash of the episode id (see :func:`split_of`)."""
        return split_of(episode_id, self.cfg.val_fraction)

    # ---- writing
    def add_episode(self, episode_id: str, samples: Iterable[dict], rejects: Sequence[Reject],
                    info: dict) -> None:
        """Add one episode's samples (to its split's open shard) and rejects. Every sample is
        checked before any is written, so an episode never goes in half."""
        if self._closed:
            raise ShardSetError("the shard set is closed")
        if not EPISODE_ID_RE.fullmatch(episode_id):
            raise ShardSetError(f"bad episode id {episode_id!r}: letters, digits, _ and - only")
        if self.is_done(episode_id):
            raise ShardSetError(f"episode {episode_id} was already added to {self.out}")
        try:
            json.dumps(info)
        except (TypeError, ValueError) as exc:
            raise ShardSetError(f"episode {episode_id}: info is not JSON: {exc}") from exc
        split = self.split_of(episode_id)
        samples = list(samples)
        checked = [(s, *_check_sample(episode_id, split, s, info)) for s in samples]
        repeated = sorted(k for k, n in Counter(s["__key__"] for s in samples).items() if n > 1)
        if repeated:
            raise ShardSetError(f"episode {episode_id}: repeated sample keys {repeated}")
        for sample, row, _ in checked:
            if sample["__key__"] in self._keys:
                continue  # in a closed shard of an interrupted run
            self._write(split, sample, row)
        self._pending[episode_id] = (
            {"split": split, "clips": len(samples), "rejects": len(rejects), "info": info},
            list(rejects), merge_counts([counts for _, _, counts in checked]))
        self._mark_done()  # recorded on disk at the next commit

    def _write(self, split: str, sample: dict, row: dict) -> None:
        size = tar_member_bytes(sample)
        shard = self._open.get(split)
        if shard is not None and (
                len(shard.rows) + 1 > self.cfg.maxcount
                or tar_file_bytes(shard.member_bytes + size) > self.cfg.maxsize):
            self._close_shard(split)
            shard = None
        if shard is None:
            name = SHARD_PATTERN.format(split=split, index=len(self._shards[split]))
            shard = self._open[split] = _OpenShard(self.out, name)
        row["shard"] = shard.name
        shard.write(sample, row, size)
        self._keys.add(row["key"])
        self._in_open[row["episode"]] += 1

    def _close_shard(self, split: str) -> None:
        shard = self._open.pop(split)
        shard.close()
        self._shards[split].append(shard.name)
        self._rows[shard.name] = shard.rows
        for row in shard.rows:
            self._in_open[row["episode"]] -= 1
        self._mark_done()
        self._commit()

    def _mark_done(self) -> None:
        """Move every added episode with no sample left in an open shard to the done ones."""
        for episode in [e for e in self._pending if not self._in_open[e]]:
            self._episodes[episode], self._rejects[episode], counts = self._pending.pop(episode)
            split = self._episodes[episode]["split"]
            self._coverage[split] = merge_counts([self._coverage[split], counts])

    def _recount(self) -> None:
        """The coverage counts of the done episodes' clips, read from the committed tars."""
        done = {row["key"] for rows in self._rows.values() for row in rows
                if row["episode"] in self._episodes}
        per_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for split, names in self._shards.items():
            for name in names:
                labels: dict[str, dict[str, np.ndarray]] = {}
                with tarfile.open(self.out / name) as tar:
                    for member in tar:
                        key, _, ext = member.name.partition(".")
                        if key in done and ext in ("keys.npy", "mouse.npy"):
                            data = tar.extractfile(member).read()
                            labels.setdefault(key, {})[ext] = np.load(io.BytesIO(data))
                per_split[split] += [count_actions(v["keys.npy"], v["mouse.npy"])
                                     for v in labels.values()]
        self._coverage = {s: merge_counts(c) for s, c in per_split.items()}

    def close(self) -> dict:
        """Close the open shards and write the final manifest, rejects and ``dataset.json``;
        returns the counts (as in ``dataset.json``). Closing twice is harmless."""
        if not self._closed:
            try:
                for split in sorted(self._open):
                    self._close_shard(split)
                self._mark_done()
                self._commit()
            except BaseException:
                self.abort()  # the last commit stands; the next run resumes from it
                raise
            self._closed = True
            self._remove_scratch()
            self._lock.release()
        return self.summary()

    def abort(self) -> None:
        """Stop without committing: open shards stay ``.tmp`` (deleted on the next open) and
        their episodes are re-processed by the next run, which then ends byte-identical."""
        for shard in self._open.values():
            shard.abort()
        self._open.clear()
        self._closed = True
        self._remove_scratch()
        self._lock.release()

    def _remove_scratch(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: an orphaned worker's; the next run's
            self.scratch.parent.rmdir()

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ---- state
    def summary(self) -> dict:
        """Counts of the committed state: per split clips, frames, episodes and shards, and
        rejects by kind."""
        counts = {}
        for split in SPLITS:
            rows = [r for name in self._shards[split] for r in self._rows.get(name, [])]
            counts[split] = {"clips": len(rows), "frames": sum(r["frames"] for r in rows),
                             "episodes": len({r["episode"] for r in rows}),
                             "shards": len(self._shards[split])}
        kinds = Counter(reason_kind(r.reason) for rs in self._rejects.values() for r in rs)
        return {"splits": counts, "rejects": dict(sorted(kinds.items())),
                "episodes_done": len(self._episodes)}

    def _commit(self) -> None:
        """Rewrite manifest, rejects and (last, as the commit record) ``dataset.json``."""
        rows = [r for name in sorted(self._rows) for r in self._rows[name]]
        _write_parquet(self.out / MANIFEST_FILE, rows, MANIFEST_SCHEMA)
        rejects = sorted((asdict(r) for rs in self._rejects.values() for r in rs),
                         key=lambda r: (r["episode"], r["first_frame"], r["source"],
                                        r["frames"], r["reason"]))
        _write_parquet(self.out / REJECTS_FILE, rejects, REJECTS_SCHEMA)
        summary = self.summary()
        fps = sorted({r["fps"] for r in rows})
        state = {
            "format": FORMAT,
            "action_space": {"keys": list(KEYS), "mouse": ["mouse_dx", "mouse_dy"],
                             "mouse_units": "degrees"},
            "clip_frames": self.cfg.clip_frames,
            "size": [self.cfg.width, self.cfg.height],
            "fps": self.cfg.fps if self.cfg.fps is not None else (fps[0] if len(fps) == 1
                                                                  else None),
            "counts": summary["splits"],
            "action_coverage": {s: coverage(c) for s, c in self._coverage.items()},
            "rejects": summary["rejects"],
            "config": self.cfg.to_dict(),
            "source": self.source,
            "shards": self._shards,
            "episodes": self._episodes,
        }
        _atomic_write(self.out / DATASET_FILE,
                      (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def _check_sample(episode_id: str, split: str, sample: dict, info: dict) -> tuple[dict, dict]:
    """Check one sample against the contract; its manifest row (shard set later) and its
    action coverage counts."""
    key = sample.get("__key__")
    where = f"episode {episode_id}, sample {key!r}"
    if not isinstance(key, str) or not key.startswith(f"{episode_id}_") or "." in key \
            or "/" in key:
        raise ShardSetError(f"{where}: __key__ must be '{episode_id}_<first_frame>' without "
                            f"dots or slashes")
    longest = max(len(f"{key}.{k}") for k in sample if not k.startswith("_"))
    if longest > 100:  # USTAR's limit for a name without a folder
        raise ShardSetError(f"{where}: member names longer than 100 characters")
    missing = [m for m in SAMPLE_MEMBERS if m not in sample]
    not_bytes = [k for k, v in sample.items()
                 if not k.startswith("_") and not isinstance(v, bytes | bytearray | memoryview)]
    if missing or not_bytes:
        raise ShardSetError(f"{where}: missing members {missing}, members not bytes {not_bytes}")
    try:
        keys = np.load(io.BytesIO(sample["keys.npy"]), allow_pickle=False)
        mouse = np.load(io.BytesIO(sample["mouse.npy"]), allow_pickle=False)
        pose = np.load(io.BytesIO(sample["pose.npy"]), allow_pickle=False)
        meta = json.loads(bytes(sample["json"]))
        source_frames = [int(f) for f in meta["source_frames"]]
        fps = float(meta["fps"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardSetError(f"{where}: unreadable member: {exc}") from exc
    t = len(source_frames)
    shapes = {"keys.npy": (keys.shape, (t, len(KEYS))), "mouse.npy": (mouse.shape, (t, 2)),
              "pose.npy": (pose.shape, (t, 8))}
    bad = [f"{m} {got} (want {want})" for m, (got, want) in shapes.items() if got != want]
    if t == 0 or bad or meta.get("episode") != episode_id:
        raise ShardSetError(f"{where}: inconsistent sample: {t} source frames, "
                            f"json episode {meta.get('episode')!r}, shapes {bad}")
    steps = np.linalg.norm(np.diff(pose[:, :3], axis=0), axis=1)
    row = {"key": key, "shard": "", "split": split, "episode": episode_id,
           "first_frame": int(source_frames[0]), "frames": t,
           "scene": str(info.get("scene", meta.get("scene", ""))),
           "backend": str(info.get("backend", meta.get("backend", ""))), "fps": fps,
           "mean_speed": float(steps.mean() * fps) if len(steps) else 0.0}
    row.update({f"key_{k}_frac": float(keys[:, i].mean()) for i, k in enumerate(KEYS)})
    row["mouse_dx_abs_mean"] = float(np.abs(mouse[:, 0]).mean())
    row["mouse_dy_abs_mean"] = float(np.abs(mouse[:, 1]).mean())
    try:
        counts = count_actions(keys, mouse)
    except ValueError as exc:
        raise ShardSetError(f"{where}: bad labels: {exc}") from exc
    return row, counts


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """Rows to parquet with a fixed schema (no pandas metadata): same rows, same bytes."""
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    _atomic_write(path, buf.getvalue())


def _read_parquet(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ShardSetError(f"cannot read {path}: {exc}") from exc
