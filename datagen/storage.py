"""Where outputs go when they are not a local folder: URLs through fsspec.

``--out`` may be a folder (local, or shared by every node of a cluster: written in place, the
episode writer's ``.partial`` folder renamed when finished) or, with ``--ray``, a URL
(``file://``, ``s3://``, ``gs://``; the last two need fsspec's ``s3fs`` / ``gcsfs``). An
episode for a URL is recorded into a node-local folder and then published
(:func:`publish`) so that nothing unfinished ever looks finished:

- on a file system (``file://``) it is copied to ``<id>.partial`` and renamed, as locally;
- on an object store, where a rename is a copy, its files are uploaded to ``<id>/`` and the
  marker ``<id>/_COMMITTED`` is written last; an episode counts as finished only with it.

:func:`finished_meta` reads an episode's ``meta.json`` back when it is finished, for the
re-run that skips what exists. A folder written locally (curation's shard set, staged on the
driver) goes up with :func:`upload_tree`, its commit record last, each file whole (a PUT on
an object store, a rename on a file system), and comes back down with :func:`download_tree`.
"""

from __future__ import annotations

import json
from pathlib import Path

COMMITTED = "_COMMITTED"
RENAMING = ("file", "local")  # protocols whose rename is atomic


def is_url(out: str | Path) -> bool:
    return "://" in str(out)


def _fs(url: str):
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def _renames(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return any(p in RENAMING for p in protocols)


def publish(local: Path, url: str, scene: str) -> str:
    """Put the finished episode folder ``local`` at ``url/<scene>/<its name>`` atomically (see
    the module docstring); returns where it went. An episode already there is left as it is
    (a retried task whose first run got as far as publishing)."""
    fs, root = _fs(url)
    final = f"{root}/{scene}/{local.name}"
    if _finished(fs, final):
        return final
    files = sorted(p for p in local.iterdir() if p.is_file())
    if _renames(fs):
        partial = final + ".partial"
        if fs.exists(partial):
            fs.rm(partial, recursive=True)
        fs.makedirs(partial, exist_ok=True)
        for f in files:
            fs.put_file(str(f), f"{partial}/{f.name}")
        fs.mv(partial, final, recursive=True)
    else:
        for f in files:
            fs.put_file(str(f), f"{final}/{f.name}")
        fs.pipe_file(f"{final}/{COMMITTED}", b"")
    return final


def _finished(fs, final: str) -> bool:
    if _renames(fs):
        return fs.isdir(final) and fs.exists(f"{final}/meta.json")
    return fs.exists(f"{final}/{COMMITTED}")


def finished_meta(url: str, scene: str, episode_id: str) -> dict | None:
    """The ``meta.json`` of the finished episode ``url/<scene>/<episode_id>``, or ``None``."""
    fs, root = _fs(url)
    final = f"{root}/{scene}/{episode_id}"
    if not _finished(fs, final):
        return None
    return json.loads(fs.cat_file(f"{final}/meta.json"))


def _skipped(rel: str) -> bool:
    """Working files a folder keeps for itself: its lock, scratch space, half-written files."""
    parts = rel.split("/")
    return parts[0] in (".lock", ".scratch") or rel.endswith((".tmp", ".partial"))


def upload_tree(local: Path, url: str, last: str) -> int:
    """Make ``url`` hold ``local``'s files: each file that is missing there or of another size
    goes up whole, and ``last`` (the commit record, e.g. ``dataset.json``) after all the
    others, so a reader of ``url`` never sees it name a file that is not there yet. Returns
    the number of files sent."""
    fs, root = _fs(url)
    files = sorted(str(p.relative_to(local)).replace("\\", "/") for p in local.rglob("*")
                   if p.is_file())
    files = [f for f in files if not _skipped(f)]
    ordered = [f for f in files if f != last] + [f for f in files if f == last]
    sent = 0
    for rel in ordered:
        src, dst = local / rel, f"{root}/{rel}"
        if rel != last and fs.exists(dst) and fs.size(dst) == src.stat().st_size:
            continue
        fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
        if _renames(fs):
            fs.put_file(str(src), dst + ".tmp")
            fs.mv(dst + ".tmp", dst)
        else:
            fs.put_file(str(src), dst)
        sent += 1
    return sent


def download_tree(url: str, local: Path) -> int:
    """Copy the files at ``url`` into ``local`` (a run that lost its staging folder takes up
    where the URL is); returns how many."""
    fs, root = _fs(url)
    if not fs.exists(root):
        return 0
    count = 0
    for path in sorted(fs.find(root)):
        rel = path[len(root):].lstrip("/")
        if _skipped(rel) or rel.endswith(f"/{COMMITTED}"):
            continue
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(target))
        count += 1
    return count
