"""Support for the trainer tests: a small shard set with latents, and a subprocess entry point.

``shard_set(tmp_path_factory)`` records two built-in episodes at 160x90, curates them into
64x32 clips of 9 frames (city_0_00000 lands in the val split, city_0_00001 in several small
train tars), and encodes them with a freshly initialised tiny Wan VAE (``training encode``).
It is built once per test session, whichever test module asks first.

``python tests/fit_support.py [dmd] CONFIG.toml [RECORD_DIR]`` runs ``training.fit`` (or, after
``dmd``, ``training.dmd``) on a config file (under ``torchrun`` too). With ``RECORD_DIR`` every rank
also writes ``[epoch, key]`` of every clip it trained on, in order (``keys-<rank>.json``), and its
final weights (``weights-<rank>.safetensors``; for DMD also the critic's,
``critic-<rank>.safetensors``), observed by wrapping trainer functions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP_FRAMES = 9


def shard_set(tmp_path_factory) -> dict[str, Path]:
    """``{"shards": encoded shard folder, "vae": VAE folder, "raw": plain shard folder}``."""
    import torch

    from curation.cli import main as curation
    from datagen.cli import main as datagen
    from training.encode import EncodeConfig, encode_shards
    from training.vae import build_vae

    root = tmp_path_factory.getbasetemp() / "fit-shard-set"
    paths = {"shards": root / "latents", "vae": root / "vae", "raw": root / "shards"}
    if (root / "done").exists():
        return paths
    root.mkdir(exist_ok=True)
    assert datagen(["record", "--out", str(root / "episodes"), "--scene", "city", "--episodes",
                    "2", "--frames", "120", "--size", "160x90", "--streams", "1", "--profile",
                    "balanced", "--no-progress"]) == 0
    assert curation(["filter", str(root / "episodes"), "--out", str(paths["raw"]),
                     "--clip-frames", str(CLIP_FRAMES), "--size", "64x32", "--maxcount", "3",
                     "--val-fraction", "0.05", "--no-progress"]) == 0
    torch.manual_seed(0)
    vae = build_vae("tiny")
    vae.register_to_config(latents_mean=[0.0] * 16, latents_std=[1.0] * 16)
    vae.save_pretrained(paths["vae"])
    encode_shards(EncodeConfig(shards=paths["raw"], vae=paths["vae"], out=paths["shards"],
                               progress=False))
    (root / "done").touch()
    return paths


def write_config(path: Path, **values) -> Path:
    """A fit TOML file with ``values`` (what training.run_folder.to_toml writes for them)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def subprocess_env() -> dict[str, str]:
    """The environment for a trainer subprocess: the repository importable, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _record(folder: Path):
    """Wrap the trainers so each rank logs its batches' keys and keeps its models; returns the
    function that writes them."""
    import training.checkpoint as checkpoint_module
    import training.fit as fit_module

    rank = int(os.environ.get("RANK", 0))
    keys: list[tuple[int, str]] = []
    models: dict = {}
    next_sample = fit_module.ClipStream._next_sample
    save = checkpoint_module.save

    def recording_next_sample(self):
        sample = next_sample(self)
        keys.append((self.epoch, sample["key"]))
        return sample

    def keeping_save(*args, **kwargs):  # both trainers save their models at the end
        models["weights"] = kwargs["model"]
        for name, (model, _) in (kwargs.get("companions") or {}).items():
            models[name] = model
        return save(*args, **kwargs)

    fit_module.ClipStream._next_sample = recording_next_sample
    checkpoint_module.save = keeping_save

    def dump() -> None:
        import safetensors.torch
        from torch.distributed.tensor import DTensor

        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"keys-{rank}.json").write_text(json.dumps(keys))
        for name, model in models.items():
            state = {k: (v.to_local() if isinstance(v, DTensor) else v).detach().contiguous()
                     for k, v in model.state_dict().items()}
            safetensors.torch.save_file(state, str(folder / f"{name}-{rank}.safetensors"))

    return dump


def main(argv: list[str]) -> int:
    from training.fit import fit, load_config

    if argv[0] == "dmd":
        from training.dmd import DmdConfig, train_dmd
        from training.run_folder import read_toml

        dump = _record(Path(argv[2])) if len(argv) > 2 else None
        summary = train_dmd(DmdConfig(**read_toml(argv[1], DmdConfig)))
        result = {"step": summary.step, "dmd_loss": summary.dmd_loss,
                  "critic_loss": summary.critic_loss}
    else:
        dump = _record(Path(argv[1])) if len(argv) > 1 else None
        summary = fit(load_config(argv[0]))
        result = {"step": summary.step, "loss": summary.loss, "val_loss": summary.val_loss,
                  "samples_per_s": summary.samples_per_s, "data_wait": summary.data_wait}
    if dump is not None:
        dump()
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
