"""Where a ``training vae`` run's weights start, besides a fresh VAE: another VAE's weights
(``--init``: a VAE folder or a ``training vae`` checkpoint, checked by :func:`init_source`
before any work and loaded by :func:`load_init`), and, at the switch from the image stage to
video windows, the image model applied frame by frame (:func:`per_frame_start`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample

from training import checkpoint
from training.vae import ARCHS, VaeError, vae_folder


@torch.no_grad()
def per_frame_start(model: AutoencoderKLWan) -> None:
    """Set the temporal layers so that the video model is the image model applied frame by
    frame: latent ``k`` is the encoding of frame ``4k``, and each latent decodes to its four
    frames as copies of one picture.

    The image stage trains only what one frame reaches: a causal kernel's current tap. Its
    earlier taps and the temporal resampling convolutions are still at their random start,
    which mixes other frames into each latent as noise when the video stage begins. Here the
    earlier taps become zero, the encoder's temporal downsampling keeps the later frame of each
    pair, and the decoder's temporal upsampling repeats its input (the inflation of an image
    model into a video model). The video stage then starts from latents that follow the
    picture and learns the temporal layers from there.
    """
    resamplers = [m for m in model.modules() if isinstance(m, WanResample)
                  and m.mode in ("downsample3d", "upsample3d")]
    passing = {id(m.time_conv) for m in resamplers}
    for conv in model.modules():
        if isinstance(conv, WanCausalConv3d) and id(conv) not in passing:
            conv.weight[:, :, :-1].zero_()
    for resampler in resamplers:
        conv = resampler.time_conv  # [copies * C, C, 3, 1, 1]: copies output frames per input
        channels = conv.weight.shape[1]
        conv.weight.zero_()
        conv.bias.zero_()
        for copy in range(conv.weight.shape[0] // channels):
            conv.weight[copy * channels:(copy + 1) * channels, :, -1, 0, 0] = torch.eye(channels)


@dataclass(frozen=True)
class InitSource:
    """What ``init`` names: a checkpoint's weights, or a VAE folder's."""

    path: Path  # the step folder or the VAE folder
    step: int | None  # the checkpoint's step; None for a VAE folder
    video: bool  # whether its temporal layers trained on video windows (not inside an image
    #              stage, whose temporal layers never saw a window)

    def describe(self) -> str:
        what = "a VAE folder" if self.step is None else f"a checkpoint at step {self.step}"
        return f"{self.path} ({what}{'' if self.video else ', image stage only'})"


def init_source(init: str, arch: str) -> InitSource:
    """Check that ``init`` names a VAE of ``arch``'s architecture (before any work)."""
    path = Path(init)
    if not path.exists():
        raise FileNotFoundError(f"init {path} does not exist")
    try:
        step_dir = checkpoint.step_folder(path)
    except FileNotFoundError:  # not a checkpoint: a VAE folder
        step_dir = None
    if step_dir is not None:
        trainer = checkpoint.read_trainer(step_dir)
        config = trainer.get("config") or {}
        if "kl_weight" not in config:
            raise VaeError(f"init {step_dir} is not a training vae checkpoint (a world model's?)")
        if config.get("arch") != arch:
            raise VaeError(f"init {step_dir} is a {config.get('arch')!r} VAE; pass --arch "
                           f"{config.get('arch')}")
        return InitSource(step_dir, int(trainer["step"]),
                          int(trainer["step"]) > int(config.get("image_steps", 0)))
    folder = vae_folder(path)
    found = json.loads((folder / "config.json").read_text())
    shape = {k: found.get(k) for k in ARCHS[arch]}
    if shape != ARCHS[arch]:
        named = [name for name, want in ARCHS.items()
                 if all(found.get(k) == v for k, v in want.items())]
        hint = f"pass --arch {named[0]}" if named else f"no architecture in {sorted(ARCHS)} is it"
        raise VaeError(f"init {folder} is a VAE of {shape}, not the {arch!r} architecture "
                       f"({ARCHS[arch]}): {hint}")
    return InitSource(folder, None, True)


def load_init(model: AutoencoderKLWan, source: InitSource) -> None:
    """Copy ``source``'s weights into ``model`` (every tensor, names and shapes checked)."""
    if source.step is not None:
        weights = checkpoint.load_weights(source.path)
    else:
        weights = AutoencoderKLWan.from_pretrained(source.path, local_files_only=True,
                                                   use_safetensors=True,
                                                   low_cpu_mem_usage=False).state_dict()
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise VaeError(f"init {source.path} does not fit the {type(model).__name__}: {exc}"
                       ) from None
