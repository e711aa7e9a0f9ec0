"""``training import``: a run folder from released Matrix-Game 2.0 weights.

Matrix-Game 2.0 released its DiT weights as safetensors in the names of its ``CausalWanModel``,
loaded into the inference code's wrapper, whose ``model`` attribute is the DiT: every name is
then prefixed ``model.`` (reference part B; ``mg2-params.json`` lists the names without it).
The ``mg2-*`` presets have exactly those names and shapes, so a released file fills one with
``strict=True``: :func:`released_weights` takes a file or a folder of shards, drops the
wrapper's prefix when every name carries it, and refuses a file that is not the preset's,
saying what is missing, unexpected or of another shape.

:func:`import_weights` writes them as step 0 of a run folder (``training.checkpoint``:
``model.safetensors`` in float32 and ``trainer.json``, no optimizer state) with what a run
records: the VAE and image encoder identities, the footage (640x352 for the released models)
and, for the distilled models, their streaming settings (reference part B: blocks of 3
latents, a window of 6 latents, 4 for GTA driving, no sink, steps [1000, 666, 333] at shift 5,
Temple Run [1000, 750, 500, 250]). From there everything that takes a run takes it:
``training play`` plays a distilled model, ``training sample`` and ``training eval`` the
foundation model, ``training fit --init-run`` fine-tunes either on your own shards, and the
foundation model is a teacher for ``training odepairs``, ``distill`` and ``dmd``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from datagen.command import parse_size
from training import checkpoint
from training.config import get_preset
from training.fit import FitConfig
from training.generator import StreamConfig
from training.image_encoder import make_image_encoder
from training.init_weights import WRAPPER_PREFIX, read_safetensors
from training.params import build_meta
from training.run_folder import CONFIG_FILE, to_toml
from training.vae import WanVAE, weights_sha256

# the distilled releases' streaming settings (reference part B); mg2-foundation is bidirectional
RELEASED_STREAMS = {
    "mg2-universal": StreamConfig(),
    "mg2-gta-drive": StreamConfig(local=4),
    "mg2-templerun": StreamConfig(timesteps=(1000.0, 750.0, 500.0, 250.0)),
}
PLAY_SETTINGS = ("seed", "precision")  # StreamConfig fields of a session, not of the model
RELEASED_SIZE = "640x352"  # the released models' frames (width x height)
RELEASED_FRAMES = 57  # the foundation model's training clips


@dataclass(frozen=True)
class ImportConfig:
    preset: str = ""  # mg2-foundation, mg2-universal, mg2-gta-drive, mg2-templerun (or another)
    weights: str = ""  # the released DiT: a .safetensors file or a folder of them
    vae: str = ""  # the Wan2.1 VAE folder (diffusers format) the model generates latents of
    image_encoder: str = ""  # CLIP ViT-H/14 vision folder (transformers); "" = stand-in tokens
    out: str = ""  # run folder to write; must not exist (or be empty)
    causal: bool | None = None  # a streaming (block-causal) model; default: as released (all
    #                             but mg2-foundation), else no
    size: str = RELEASED_SIZE  # width x height of the frames it generates
    fps: float = 0.0  # frame rate of its footage, at which action files are resampled
    #                   (0: unknown; action files then play row by row)
    frames: int = RELEASED_FRAMES  # video frames per clip of its training (training sample's
    #                                window)

    def __post_init__(self) -> None:
        for name in ("preset", "weights", "vae", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name.replace('_', '-')} must be given")
        get_preset(self.preset)
        if self.fps < 0:
            raise ValueError(f"fps must not be negative, got {self.fps}")
        if self.frames < 5 or (self.frames - 1) % 4:
            raise ValueError(f"frames must be 4k+1 and at least 5, got {self.frames}")
        self.footage_size()

    def footage_size(self) -> tuple[int, int]:
        w, h = parse_size(self.size)
        if w <= 0 or h <= 0 or w % 16 or h % 16:
            raise ValueError(f"size {self.size}: both sides must be positive multiples of 16 "
                             f"(the VAE's 8 times the 2x2 patch)")
        return w, h

    def stream(self, override: dict) -> StreamConfig | None:
        """The streaming settings to record (``override``: StreamConfig fields given), or None
        for a bidirectional model."""
        causal = self.causal if self.causal is not None else self.preset in RELEASED_STREAMS
        if not causal:
            if override:
                raise ValueError(f"{sorted(override)} are for a streaming model: pass --causal")
            return None
        return dataclasses.replace(RELEASED_STREAMS.get(self.preset, StreamConfig()), **override)


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def released_weights(path: str | Path, preset: str) -> dict[str, Tensor]:
    """The DiT weights in ``path`` (float32, the preset's names in its order), checked name for
    name and shape for shape against ``preset``."""
    state = read_safetensors(path)
    if state and all(name.startswith(WRAPPER_PREFIX) for name in state):
        state = {name[len(WRAPPER_PREFIX):]: value for name, value in state.items()}
    expected = build_meta(get_preset(preset)).state_dict()
    missing = [n for n in expected if n not in state]
    unexpected = sorted(n for n in state if n not in expected)
    shapes = [f"{n} {list(state[n].shape)} (the preset's {list(expected[n].shape)})"
              for n in expected if n in state and state[n].shape != expected[n].shape]
    problems = ([f"{len(missing)} missing: {_few(missing)}"] if missing else []) + \
        ([f"{len(unexpected)} unexpected: {_few(unexpected)}"] if unexpected else []) + \
        ([f"{len(shapes)} of another shape: {_few(shapes)}"] if shapes else [])
    if problems:
        raise ValueError(f"{path} is not a {preset} checkpoint: " + "; ".join(problems)
                         + " (training inspect PRESET lists the names and shapes)")
    return {name: state[name].float() for name in expected}


def import_weights(cfg: ImportConfig, stream_override: dict | None = None) -> Path:
    """Write the run folder ``cfg.out`` (see the module docstring); returns its step folder.
    Everything is checked before anything is written, and the folder is written as
    ``<out>.partial`` and renamed: a failure leaves nothing behind."""
    out = Path(cfg.out).absolute()
    partial = out.with_name(out.name + ".partial")  # renamed to out when complete
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"run folder {out} already exists; choose another --out")
    if partial.exists() and not (partial / CONFIG_FILE).is_file():
        raise FileExistsError(f"{partial} is in the way and is not an unfinished import")
    stream = cfg.stream(stream_override or {})
    causal = {} if stream is None else {"causal_block": stream.block,
                                        "causal_local": stream.local,
                                        "causal_sink": stream.sink}
    run_cfg = FitConfig(out=cfg.out, preset=cfg.preset, vae=cfg.vae,
                        image_encoder=cfg.image_encoder, frames=cfg.frames, **causal)
    model_cfg = get_preset(cfg.preset)
    vae = WanVAE.load(cfg.vae)
    images = make_image_encoder(model_cfg, cfg.image_encoder or None)
    weights = released_weights(cfg.weights, cfg.preset)
    w, h = cfg.footage_size()
    recorded = {} if stream is None else {k: v for k, v in dataclasses.asdict(stream).items()
                                          if k not in PLAY_SETTINGS}
    trainer = {"config": dataclasses.asdict(run_cfg), "vae": vae.identity,
               "image_encoder": images.identity, "preset": cfg.preset,
               "model": dataclasses.asdict(model_cfg), "stream": recorded,
               "footage": {"size": [w, h], "fps": cfg.fps or None},
               "imported": {"weights": str(Path(cfg.weights).resolve()),
                            "sha256": weights_sha256(Path(cfg.weights))}}
    if partial.exists():  # an import that did not finish
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
        (partial / CONFIG_FILE).write_text(to_toml(run_cfg))
        step = checkpoint.save_weights(partial, 0, weights, trainer)
        os.replace(partial, out)  # an empty folder at out is replaced
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out / step.relative_to(partial)
