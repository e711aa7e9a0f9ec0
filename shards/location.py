"""Where a shard set lives: a local folder, or a URL. ``http(s)://`` (a file server or an object
store's web endpoint) needs nothing more; ``file://``, ``s3://``, ``gs://`` and the other fsspec
URLs (what ``curation filter --out URL`` writes to) need fsspec and, for a cloud store, its
``s3fs`` or ``gcsfs``.

Every stage that reads shards names them the same way and goes through here:
:func:`open_shards` lists a split's tars (from the folder, or from the ``shards`` listing of the
URL's ``dataset.json``: an object store or plain HTTP cannot be listed like a folder, and the
listing is the shard set's commit record), :func:`read_dataset` reads ``dataset.json``, and
:func:`open_stream` opens one tar for the WebDataset reader, which reads it as it arrives
(urllib for ``http(s)``, fsspec for the rest): nothing is downloaded ahead or kept, and a
missing tar is an error when it is opened.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from curation.shardwriter import DATASET_FILE, FORMAT

WEB = ("http://", "https://")
SPLIT_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
TIMEOUT_S = 60.0


def is_remote(shards: str | Path) -> bool:
    """Whether ``shards`` is a URL rather than a local folder."""
    return "://" in str(shards)


def _fsspec(url: str):
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"reading {url} needs fsspec (pip install 'worldforge[ray]'), and for "
                          f"s3:// or gs:// its s3fs or gcsfs") from None
    return fsspec


def _open_url(url: str) -> BinaryIO:
    """A URL opened for reading as a stream; a missing file is FileNotFoundError, the rest
    OSError, raised here (HTTP: when the server answers the request), not at a later read."""
    if not url.startswith(WEB):
        return _fsspec(url).open(url, "rb").open()
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FileNotFoundError(f"{url} answers 404") from None
        raise OSError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from None


def open_stream(url: str) -> BinaryIO:
    """One tar of :func:`open_shards`, open for reading as a stream."""
    if is_remote(url):
        return _open_url(url)
    return open(url, "rb")  # noqa: SIM115 (the reader closes it)


def member(shards: str | Path, name: str) -> str:
    """The address of the file ``name`` of a shard set (a folder or a URL), for
    :func:`open_stream`."""
    return str(shards).rstrip("/") + "/" + name


def read_dataset(shards: str | Path) -> dict:
    """The ``dataset.json`` of a shard set (a folder or a URL), parsed."""
    if is_remote(shards):
        where = member(shards, DATASET_FILE)
        try:
            with _open_url(where) as response:
                data = response.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{shards} is not a shard set: {where} does not exist "
                                    f"(give the folder curation filter wrote)") from None
    else:
        path = Path(shards) / DATASET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{shards} is not a shard folder (no {DATASET_FILE})")
        where, data = str(path), path.read_bytes()
    try:
        dataset = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{where} is not JSON: {exc}") from None
    if not isinstance(dataset, dict) or dataset.get("format") != FORMAT:
        raise ValueError(f"{where} is not the {DATASET_FILE} of a {FORMAT} shard set")
    return dataset


def _listed(shards: str, split: str) -> list[str]:
    """The tar URLs of ``split`` that the ``dataset.json`` of a shard set at a URL lists."""
    listing, where = read_dataset(shards).get("shards"), member(shards, DATASET_FILE)
    if not isinstance(listing, dict):
        raise ValueError(f"{where} lists no shards (no 'shards' object); it was not written by "
                         f"curation filter")
    names = listing.get(split) or []
    if not names:
        raise FileNotFoundError(f"no {split} shards listed in {where}"
                                + (f" (splits there: {sorted(listing)})" if listing else ""))
    bad = [n for n in names if not re.fullmatch(rf"{split}-\d+\.tar", str(n))]
    if bad:
        raise ValueError(f"{where} lists {bad[:3]} among the {split} shards: expected names "
                         f"like {split}-000000.tar")
    return [member(shards, name) for name in sorted(names)]


def open_shards(shards: str | Path, split: str = "train") -> list[str]:
    """The sorted tars ``<shards>/<split>-NNNNNN.tar`` of a shard folder, or the URLs of those
    a shard set at a URL lists."""
    if not SPLIT_PATTERN.fullmatch(split):
        raise ValueError(f"split must be a name like 'train' or 'val', got {split!r}")
    if is_remote(shards):
        return _listed(str(shards), split)
    folder = Path(shards)
    if not folder.is_dir():
        raise FileNotFoundError(f"shard folder {folder} does not exist")
    tars = sorted(p for p in folder.glob(f"{split}-*.tar")
                  if re.fullmatch(rf"{split}-\d+\.tar", p.name))
    if not tars:
        found = sorted({p.name.split("-")[0] for p in folder.glob("*.tar")})
        raise FileNotFoundError(f"no {split}-*.tar shards in {folder}"
                                + (f" (splits there: {found})" if found else ""))
    return [str(p) for p in tars]
