"""Training checkpoints: one folder per step, safetensors and JSON only (nothing is unpickled).

```
<run>/checkpoints/
    step-000123/
        model.safetensors        the weights, full (unsharded) float32, by parameter name
        ema.safetensors          their exponential moving average (when the run keeps one)
        optimizer.safetensors    optimizer state tensors, named "<parameter>/<key>"
                                 (AdamW: exp_avg, exp_avg_sq, step)
        optimizer.json           param groups (hyper-parameters, parameter names in order) and
                                 any non-tensor state values
        trainer.json             format, step, world size, the run's config, the VAE identity, ...
        rank-00000.safetensors   per rank: the noise generator, torch CPU (and CUDA) RNG, numpy RNG
                                 key, extra tensors (the error buffer); its metadata holds the
                                 rank's data position (epoch, samples consumed) and python RNG
        rank-00001.safetensors   ...
        critic.safetensors       a companion model trained beside the main one (DMD's critic),
        critic-optimizer.*       with its own optimizer files, named after it
    last -> step-000123          symlink to the newest complete checkpoint, replaced atomically
```

A checkpoint is written into ``step-NNNNNN.partial/`` and renamed when every file is in place,
so a killed run leaves either a complete folder or a ``.partial`` one that is ignored and
cleared by the next save. :func:`save` and :func:`load` are collectives under torchrun: every
rank calls them (FSDP2 gathers and scatters the shards); rank 0 writes the shared files, each
rank its own ``rank-*`` file. Loading reads full tensors from the (shared) run folder on every
rank and lets each keep its shard. :func:`save_weights` writes a step folder of weights alone
(``model.safetensors`` and ``trainer.json``: released weights, ``training import``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from safetensors import safe_open
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from training.distributed import Dist, barrier
from training.ema import EMA

FORMAT = "worldforge.checkpoint/1"
CHECKPOINTS = "checkpoints"
LAST = "last"
STEP_DIR = "step-{step:06d}"
PARTIAL = ".partial"
MODEL_FILE, EMA_FILE = "model.safetensors", "ema.safetensors"
OPTIMIZER_FILE, OPTIMIZER_JSON = "optimizer.safetensors", "optimizer.json"
TRAINER_JSON = "trainer.json"
RANK_FILE = "rank-{rank:05d}.safetensors"

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
_FULL = StateDictOptions(full_state_dict=True)


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or does not fit the run."""


def step_dir(run: str | Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / STEP_DIR.format(step=step)


def latest(run: str | Path) -> Path | None:
    """The step folder ``<run>/checkpoints/last`` points to, or None when there is none."""
    link = Path(run) / CHECKPOINTS / LAST
    if not link.is_symlink() and not link.exists():
        return None
    target = link.resolve()
    if not (target / TRAINER_JSON).is_file():
        raise CheckpointError(f"{link} points to {target}, which is not a complete checkpoint")
    return target


def step_folder(path: str | Path) -> Path:
    """``path`` itself when it is a step folder, else the newest checkpoint of the run there."""
    path = Path(path)
    found = path if (path / TRAINER_JSON).is_file() else latest(path)
    if found is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint folder nor a run with one")
    return found


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def _save_tensors(path: Path, tensors: dict[str, Tensor], meta: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"json": json.dumps(meta)} if meta is not None else None
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def _load_tensors(path: Path) -> tuple[dict[str, Tensor], dict | None]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    return tensors, json.loads(meta["json"]) if "json" in meta else None


def flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    """An optimizer state dict keyed by parameter name (``get_optimizer_state_dict``) to
    ``{"<param>/<key>": tensor}`` plus a JSON-able rest (param groups, non-tensor values)."""
    tensors: dict[str, Tensor] = {}
    values: dict[str, dict] = {}
    for name, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{name}/{key}"] = value
            else:
                values.setdefault(name, {})[key] = value
    groups = []
    for group in state["param_groups"]:
        groups.append({k: list(v) if isinstance(v, tuple) else v for k, v in group.items()})
        groups[-1]["tuples"] = sorted(k for k, v in group.items() if isinstance(v, tuple))
    return tensors, {"param_groups": groups, "values": values}


def unflatten_optimizer(tensors: dict[str, Tensor], rest: dict) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[str, dict] = {}
    for flat, tensor in tensors.items():
        name, key = flat.rsplit("/", 1)
        state.setdefault(name, {})[key] = tensor
    for name, entries in rest["values"].items():
        state.setdefault(name, {}).update(entries)
    groups = []
    for group in rest["param_groups"]:
        tuples = set(group["tuples"])
        groups.append({k: tuple(v) if k in tuples else v for k, v in group.items()
                       if k != "tuples"})
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, Tensor], dict]:
    """The process-wide generators: torch CPU (and CUDA) as uint8 tensors, numpy's key as a
    tensor with the rest in JSON, python's in JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["torch_cuda"] = torch.cuda.get_rng_state()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_key"] = torch.from_numpy(key.astype(np.int64))
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, Tensor], meta: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_key"].numpy().astype(np.uint32), pos, has_gauss,
                         cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save(run: str | Path, step: int, d: Dist, *, model: nn.Module,
         optimizer: torch.optim.Optimizer, ema: EMA | None, trainer: dict,
         rank_tensors: dict[str, Tensor], rank_meta: dict, keep: int = 0,
         companions: dict[str, tuple[nn.Module, torch.optim.Optimizer]] | None = None) -> Path:
    """Write the checkpoint of ``step`` (every rank calls this) and point ``last`` at it.

    ``model`` is the unwrapped module (FSDP2-sharded or not), ``trainer`` the JSON-able run
    state (rank 0's is written), ``rank_tensors``/``rank_meta`` this rank's own state (data
    position, noise generator, ...). ``keep > 0`` deletes all but the newest ``keep`` step
    folders; ``companions`` (name -> model, optimizer) are saved beside the model as
    ``<name>.safetensors`` and ``<name>-optimizer.*``. Returns the step folder.
    """
    final = step_dir(run, step)
    partial = final.with_name(final.name + PARTIAL)
    if d.master:
        for stale in final.parent.glob(f"*{PARTIAL}"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        partial.mkdir(parents=True)
    barrier(d)
    rng_tensors, rng_meta = rng_state()
    overlap = sorted(set(rng_tensors) & set(rank_tensors))
    if overlap:
        raise ValueError(f"rank tensors {overlap} clash with the RNG entries")
    _save_tensors(partial / RANK_FILE.format(rank=d.rank), {**rng_tensors, **rank_tensors},
                  {"rank": d.rank, "rng": rng_meta, **rank_meta})
    for name, (module, opt) in {"": (model, optimizer), **(companions or {})}.items():
        weights = get_model_state_dict(module, options=_GATHER)  # collective under FSDP2
        opt_state = get_optimizer_state_dict(module, opt, options=_GATHER)  # rank 0's is full
        if d.master:
            files = _files(name)
            opt_tensors, opt_rest = flatten_optimizer(opt_state)
            _save_tensors(partial / files[0], weights)
            _save_tensors(partial / files[1], opt_tensors)
            _write_json(partial / files[2], opt_rest)
    averages = ema.state_dict() if ema is not None else None
    if d.master:
        if averages is not None:
            _save_tensors(partial / EMA_FILE, averages)
        _write_json(partial / TRAINER_JSON, {"format": FORMAT, "step": step,
                                             "world_size": d.world, **trainer})
    barrier(d)
    if d.master:
        _publish(partial, final, keep)
    barrier(d)
    return final


def _publish(partial: Path, final: Path, keep: int = 0) -> None:
    """Rename a complete ``partial`` step folder to ``final``, point ``last`` at it, and keep
    only the newest ``keep`` step folders (``keep > 0``)."""
    if final.exists():  # left by a run killed after the rename, before moving `last`
        shutil.rmtree(final)
    os.replace(partial, final)
    link = final.parent / LAST
    tmp = final.parent / (LAST + PARTIAL)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(final.name, tmp)
    os.replace(tmp, link)
    if keep > 0:
        steps = sorted(p for p in final.parent.glob("step-*") if p.is_dir()
                       and not p.name.endswith(PARTIAL))
        for old in steps[:-keep]:
            if old != final:
                shutil.rmtree(old)


def save_weights(run: str | Path, step: int, weights: dict[str, Tensor], trainer: dict) -> Path:
    """A step folder holding weights alone (``model.safetensors`` and ``trainer.json``, no
    optimizer or RNG state: it can be played, sampled, evaluated and trained from with
    ``init_run``, not resumed), written as :func:`save` writes one. Returns the folder."""
    final = step_dir(run, step)
    partial = final.with_name(final.name + PARTIAL)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    _save_tensors(partial / MODEL_FILE, weights)
    _write_json(partial / TRAINER_JSON, {"format": FORMAT, "step": step, "world_size": 1,
                                         **trainer})
    _publish(partial, final)
    return final


def read_trainer(path: str | Path) -> dict:
    """The ``trainer.json`` of a step folder (step, world size, config, VAE identity, ...)."""
    file = Path(path) / TRAINER_JSON
    if not file.is_file():
        raise CheckpointError(f"{path} is not a checkpoint folder (no {TRAINER_JSON})")
    trainer = json.loads(file.read_text())
    if trainer.get("format") != FORMAT:
        raise CheckpointError(f"{file}: format {trainer.get('format')!r}, expected {FORMAT!r}")
    return trainer


def load_weights(path: str | Path, ema: bool = False) -> dict[str, Tensor]:
    """The full weights (or with ``ema=True`` their average) of a step folder, on the CPU."""
    return _load_tensors(Path(path) / (EMA_FILE if ema else MODEL_FILE))[0]


def load_into(model: nn.Module, weights: dict[str, Tensor]) -> list[str]:
    """Fill every tensor of ``model`` from ``weights`` (a run's, possibly of a model with more
    action modules: a teacher's for its student) and return the names of those left out.
    A tensor of the model that ``weights`` lacks, or holds in another shape, is an error."""
    ours = model.state_dict()
    missing = [n for n in ours if n not in weights]
    shapes = [n for n in ours if n in weights and weights[n].shape != ours[n].shape]
    if missing or shapes:
        raise CheckpointError(f"the weights do not fit the model: {len(missing)} missing "
                              f"{missing[:3]}, {len(shapes)} of another shape {shapes[:3]}")
    model.load_state_dict({n: weights[n] for n in ours}, strict=True)
    return sorted(n for n in weights if n not in ours)


def _files(name: str) -> tuple[str, str, str]:
    """Weights, optimizer tensors and optimizer JSON of the main model ("") or a companion."""
    if not name:
        return MODEL_FILE, OPTIMIZER_FILE, OPTIMIZER_JSON
    return f"{name}.safetensors", f"{name}-{OPTIMIZER_FILE}", f"{name}-{OPTIMIZER_JSON}"


def _load_pair(path: Path, name: str, model: nn.Module,
               optimizer: torch.optim.Optimizer) -> None:
    weights_file, opt_file, opt_json = _files(name)
    weights, _ = _load_tensors(path / weights_file)
    try:
        set_model_state_dict(model, weights, options=_FULL)
    except RuntimeError as exc:
        raise CheckpointError(f"{path / weights_file} does not fit the model: {exc}") from None
    opt_tensors, _ = _load_tensors(path / opt_file)
    opt_rest = json.loads((path / opt_json).read_text())
    set_optimizer_state_dict(model, optimizer, unflatten_optimizer(opt_tensors, opt_rest),
                             options=_FULL)
    for group, saved in zip(optimizer.param_groups, opt_rest["param_groups"], strict=True):
        for key in saved["tuples"]:  # set_optimizer_state_dict hands tuples back as lists
            group[key] = tuple(group[key])


def load(path: str | Path, d: Dist, *, model: nn.Module, optimizer: torch.optim.Optimizer,
         ema: EMA | None,
         companions: dict[str, tuple[nn.Module, torch.optim.Optimizer]] | None = None
         ) -> tuple[dict, dict[str, Tensor], dict]:
    """Restore a step folder into ``model`` (unwrapped, sharded or not), ``optimizer``, ``ema``,
    the ``companions`` :func:`save` was given, and the process RNG (every rank calls this).
    Returns ``trainer`` (the JSON) and this rank's extra tensors and metadata as :func:`save`
    got them."""
    path = Path(path)
    trainer = read_trainer(path)
    if trainer["world_size"] != d.world:
        raise CheckpointError(f"{path} was written by {trainer['world_size']} rank(s); this run "
                              f"has {d.world}: resume with the same number of processes")
    for name, (module, opt) in {"": (model, optimizer), **(companions or {})}.items():
        _load_pair(path, name, module, opt)
    if ema is not None:
        ema.load_state_dict(load_weights(path, ema=True))
    tensors, meta = _load_tensors(path / RANK_FILE.format(rank=d.rank))
    set_rng_state(tensors, meta.pop("rng"))
    own = {k: v for k, v in tensors.items()
           if k not in ("torch_cpu", "torch_cuda", "numpy_key")}
    return trainer, own, meta
