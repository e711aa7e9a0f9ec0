"""A run folder's config and log, shared by ``training fit``, ``distill`` and ``dmd``.

- The resolved config is saved as ``<out>/config.toml``, flat TOML (``field = value``) written
  by :func:`to_toml` and read back, type-checked against its dataclass, by :func:`read_toml`.
- :func:`check_run_folder`: a run never overwrites another; ``--resume`` continues one only
  with the settings it was trained with, but for the fields its command lets change.
- :func:`truncate_metrics`: a resumed run first drops the log lines written after the
  checkpoint it resumes from, so ``metrics.jsonl`` reads as one uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from pathlib import Path

CONFIG_FILE = "config.toml"
SAMPLES_DIR = "samples"  # <out>/samples/step-N: sample videos
EVAL_DIR = "eval"  # <out>/eval/step-N: training eval reports


def checked(values: dict, source: str, cls: type) -> dict:
    """``values`` with each field's type checked against the dataclass ``cls`` (ints pass for
    floats); an unknown key is an error naming ``source``."""
    types = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; {cls.__name__} fields are "
                         f"{sorted(types)}")
    out = {}
    for key, value in values.items():
        kind = types[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ValueError(f"{source}: {key} must be {kind.__name__}, got {value!r}")
        out[key] = value
    return out


def read_toml(path: str | Path, cls: type) -> dict:
    """The keys of a config TOML file (flat: field = value), type-checked against ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    return checked(values, str(path), cls)


def to_toml(cfg: object) -> str:
    """The config dataclass ``cfg`` as a flat TOML document (what :func:`read_toml` reads
    back)."""
    kind = type(cfg)
    lines = [f"# {kind.__module__}.{kind.__name__}; load with --config"]
    for key, value in dataclasses.asdict(cfg).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)  # a TOML basic string
        else:
            text = repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a ``.partial`` file renamed over it."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_run_folder(cfg: object, resumable: frozenset[str]) -> None:
    """A new run (``cfg.out``) needs a new or empty folder; a resumed one (``cfg.resume``) its
    own config, of the class of ``cfg``, unchanged but for the ``resumable`` fields."""
    out = Path(cfg.out)
    if not cfg.resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"run folder {out} already exists; pass --resume to continue "
                                  f"it, or choose another --out")
        return
    saved_path = out / CONFIG_FILE
    if not saved_path.is_file():
        raise FileNotFoundError(f"--resume: {out} is not a run folder (no {CONFIG_FILE})")
    kind = type(cfg)
    saved = kind(**read_toml(saved_path, kind))
    changed = [f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(cfg, f.name)!r}"
               for f in dataclasses.fields(kind) if f.name not in resumable
               and getattr(saved, f.name) != getattr(cfg, f.name)]
    if changed:
        raise ValueError(f"--resume: {out} was trained with other settings ({'; '.join(changed)})"
                         f"; only {sorted(resumable)} may change")


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop log lines of steps after ``last_step`` (written after the checkpoint resumed)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= last_step]
    write_atomic(path, "".join(line + "\n" for line in kept))
