"""The Wan2.1 video VAE (``diffusers.AutoencoderKLWan``): video <-> normalised latents.

3D causal, 16 latent channels, 8x8 spatial and 4x temporal compression: a video
``[B, 3, T, H, W]`` in [-1, 1] with ``T = 4k + 1`` and ``H, W`` multiples of 8 becomes latents
``[B, 16, k + 1, H/8, W/8]`` (the first frame is a latent of its own). Encoding is
deterministic (the posterior mean). Latents are normalised per channel,
``(z - latents_mean) / latents_std``, with the values in the VAE's ``config.json``: Wan2.1's by
default, the measured ones for a VAE trained by ``training vae``.

A VAE is a local folder, never a download: either a diffusers ``AutoencoderKLWan`` folder
(``config.json`` + ``*.safetensors``, what ``save_pretrained`` writes) or a folder with one in
``vae/`` (a Wan2.1 diffusers repo, or a ``training vae`` run). Its :attr:`WanVAE.identity`
(name, sha256 of the weights, z_dim, normalisation) is what shards and checkpoints record, so
latents made with one VAE are never read as another's (:func:`check_identity`).

:class:`StreamingDecoder` decodes one latent frame at a time, keeping the decoder's causal
feature cache between calls (what ``AutoencoderKLWan.decode`` does inside one call): frames
come out as latents are generated, the same frames a whole decode gives.
:class:`StreamingEncoder` does the same for encoding (first one frame, then four per latent),
e.g. the condition video of a session of unknown length.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
from torch import Tensor

CONFIG_FILE = "config.json"
WEIGHTS_GLOB = "*.safetensors"
SUBFOLDER = "vae"
CLASS_NAME = "AutoencoderKLWan"

# Architectures ``training vae`` can build (keyword arguments of AutoencoderKLWan). All keep 8x
# spatial (three downsamples) and 4x temporal compression and 16 latent channels; "tiny" (0.8 M
# parameters) learns in minutes on two CPU cores at 64x32, "wan2.1" is the released shape
# (127 M parameters).
ARCHS: dict[str, dict] = {
    "tiny": {"base_dim": 16, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 1, "z_dim": 16},
    "wan2.1": {"base_dim": 96, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "z_dim": 16},
}


class VaeError(ValueError):
    """A VAE folder cannot be used, or a tensor does not fit the VAE."""


def build_vae(arch: str) -> AutoencoderKLWan:
    """A freshly initialised VAE of a named architecture (see :data:`ARCHS`)."""
    if arch not in ARCHS:
        raise VaeError(f"unknown VAE architecture {arch!r}; choose one of {sorted(ARCHS)}")
    return AutoencoderKLWan(**ARCHS[arch])


def vae_folder(path: str | Path) -> Path:
    """The folder holding the ``AutoencoderKLWan`` config and weights: ``path`` or ``path/vae``."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"VAE folder {root} does not exist")
    for folder in (root, root / SUBFOLDER):
        config = folder / CONFIG_FILE
        if not config.is_file():
            continue
        try:
            name = json.loads(config.read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError) as exc:
            raise VaeError(f"cannot read {config}: {exc}") from exc
        if name != CLASS_NAME:
            continue  # e.g. the model_index.json-less root of a pipeline folder
        if not any(folder.glob(WEIGHTS_GLOB)):
            raise VaeError(f"{folder} has a {CLASS_NAME} config but no {WEIGHTS_GLOB} weights "
                           f"(only safetensors are read)")
        return folder
    raise VaeError(f"{root} is not a VAE folder: expected {CONFIG_FILE} with _class_name "
                   f"{CLASS_NAME!r} and {WEIGHTS_GLOB} weights in it or in {root / SUBFOLDER} "
                   f"(diffusers save_pretrained layout, a Wan2.1 diffusers repo, or a "
                   f"'training vae' run)")


def weights_sha256(path: Path) -> str:
    """sha256 of the weights in ``path``, a safetensors file or a folder of them: of the file
    when there is one (what ``sha256sum`` prints), else of the lines ``<name> <sha256>`` of the
    sorted files."""
    files = [path] if path.is_file() else sorted(path.glob(WEIGHTS_GLOB))
    digests = []
    for file in files:
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        digests.append(h.hexdigest())
    if len(files) == 1:
        return digests[0]
    lines = "".join(f"{f.name} {d}\n" for f, d in zip(files, digests, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_identity(found: dict, expected: dict, where: str) -> None:
    """Raise :class:`VaeError` unless two identities are the same VAE (weights, channels and
    normalisation; the name may differ). ``where`` says what ``found`` belongs to."""
    fields = ("sha256", "z_dim", "latents_mean", "latents_std")
    differ = [k for k in fields if found.get(k) != expected.get(k)]
    if differ:
        raise VaeError(f"{where} was made with VAE {found.get('name')!r} (sha256 "
                       f"{str(found.get('sha256'))[:12]}), not with {expected.get('name')!r} "
                       f"(sha256 {str(expected.get('sha256'))[:12]}): {', '.join(differ)} "
                       f"differ")


class WanVAE:
    """A loaded Wan VAE in evaluation mode: :meth:`encode` and :meth:`decode` run without
    gradients and take and give float32 tensors on the VAE's device."""

    def __init__(self, model: AutoencoderKLWan, identity: dict):
        self.model = model.eval().requires_grad_(False)
        self.identity = identity
        cfg = model.config
        self.z_dim = int(cfg.z_dim)
        self.temporal = int(cfg.scale_factor_temporal)
        self.spatial = int(cfg.scale_factor_spatial)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        shape = (1, self.z_dim, 1, 1, 1)
        self._mean = torch.tensor(cfg.latents_mean, dtype=torch.float32,
                                  device=self.device).view(shape)
        self._std = torch.tensor(cfg.latents_std, dtype=torch.float32,
                                 device=self.device).view(shape)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> WanVAE:
        """Load from a local folder (see the module docstring); never downloads."""
        folder = vae_folder(path)
        model = AutoencoderKLWan.from_pretrained(folder, local_files_only=True,
                                                 use_safetensors=True, torch_dtype=dtype,
                                                 low_cpu_mem_usage=False)
        cfg = model.config
        if len(cfg.latents_mean) != cfg.z_dim or len(cfg.latents_std) != cfg.z_dim:
            raise VaeError(f"{folder / CONFIG_FILE}: latents_mean and latents_std need {cfg.z_dim} "
                           f"values each, got {len(cfg.latents_mean)} and {len(cfg.latents_std)}")
        name = (folder.parent if folder.name == SUBFOLDER else folder).resolve().name
        identity = {"name": name, "sha256": weights_sha256(folder), "z_dim": int(cfg.z_dim),
                    "latents_mean": [float(v) for v in cfg.latents_mean],
                    "latents_std": [float(v) for v in cfg.latents_std]}
        return cls(model.to(device), identity)

    def check_video(self, video: Tensor) -> None:
        """Raise :class:`VaeError` unless ``video`` is ``[B, 3, 4k+1, H, W]`` float, H and W
        multiples of 8, values in [-1, 1]."""
        shape = list(video.shape)
        if video.ndim != 5 or shape[1] != 3:
            raise VaeError(f"video must be [B, 3, T, H, W], got {shape}")
        t, h, w = shape[2:]
        if (t - 1) % self.temporal:
            raise VaeError(f"video has {t} frames; the VAE needs {self.temporal}k+1 (1, 5, 9, "
                           f"..., e.g. {(t - 1) // self.temporal * self.temporal + 1})")
        if h % self.spatial or w % self.spatial:
            raise VaeError(f"video is {w}x{h}; width and height must be multiples of "
                           f"{self.spatial} (curation filter --size, e.g. 640x352)")
        if not video.is_floating_point():
            raise VaeError(f"video must be float in [-1, 1], got {video.dtype}")
        lo, hi = video.aminmax()
        if lo < -1.001 or hi > 1.001:
            raise VaeError(f"video values must be in [-1, 1], got [{lo:.3g}, {hi:.3g}]")

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] -> normalised latents ``[B, 16, (T-1)/4+1, H/8, W/8]``."""
        self.check_video(video)
        z = self.model.encode(video.to(self.device, self.dtype)).latent_dist.mode()
        return (z.float() - self._mean) / self._std

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents ``[B, 16, F, h, w]`` -> video ``[B, 3, 4(F-1)+1, 8h, 8w]`` in
        [-1, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.z_dim:
            raise VaeError(f"latents must be [B, {self.z_dim}, F, h, w], got "
                           f"{list(latents.shape)}")
        z = latents.to(self.device, torch.float32) * self._std + self._mean
        return self.model.decode(z.to(self.dtype)).sample.float()


class _Streaming:
    """The causal feature cache of one half of the VAE (``part``: its encoder or decoder),
    kept from call to call for one video."""

    def __init__(self, vae: WanVAE, part: torch.nn.Module) -> None:
        if vae.model.config.patch_size is not None:
            raise VaeError("streaming needs a VAE without patchify (Wan2.1's)")
        self.vae = vae
        self._convs = sum(isinstance(m, WanCausalConv3d) for m in part.modules())
        self.reset()

    def reset(self) -> None:
        """Start a new video."""
        self._cache: list = [None] * self._convs
        self.latents = 0


class StreamingEncoder(_Streaming):
    """Encode one video a latent frame at a time: first its first frame, then ``temporal`` (4)
    frames per call, each giving the normalised latent a whole encode would."""

    def __init__(self, vae: WanVAE) -> None:
        super().__init__(vae, vae.model.encoder)

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> Tensor:
        """``[B, 3, 1 (first call) or 4, H, W]`` in [-1, 1] -> ``[B, 16, 1, H/8, W/8]``."""
        vae = self.vae
        want = 1 if self.latents == 0 else vae.temporal
        if frames.ndim != 5 or frames.shape[1] != 3 or frames.shape[2] != want:
            raise VaeError(f"streaming encode takes [B, 3, {want}, H, W] now, got "
                           f"{list(frames.shape)}")
        out = vae.model.encoder(frames.to(vae.device, vae.dtype), feat_cache=self._cache,
                                feat_idx=[0])
        self.latents += 1
        z = vae.model.quant_conv(out)[:, :vae.z_dim]  # the posterior mean
        return (z.float() - vae._mean) / vae._std


class StreamingDecoder(_Streaming):
    """Decode normalised latents of one video one latent frame at a time: the first gives one
    frame, each later one ``temporal`` (4). :meth:`reset` starts a new video."""

    def __init__(self, vae: WanVAE) -> None:
        super().__init__(vae, vae.model.decoder)

    @torch.no_grad()
    def __call__(self, latent: Tensor) -> Tensor:
        """Normalised ``[B, 16, 1, h, w]`` -> frames ``[B, 3, 1 or 4, 8h, 8w]`` in [-1, 1]."""
        vae = self.vae
        if latent.ndim != 5 or latent.shape[1] != vae.z_dim or latent.shape[2] != 1:
            raise VaeError(f"one latent frame [B, {vae.z_dim}, 1, h, w] at a time, got "
                           f"{list(latent.shape)}")
        z = latent.to(vae.device, torch.float32) * vae._std + vae._mean
        x = vae.model.post_quant_conv(z.to(vae.dtype))
        out = vae.model.decoder(x, feat_cache=self._cache, feat_idx=[0],
                                first_chunk=self.latents == 0)
        self.latents += 1
        return out.float().clamp(-1.0, 1.0)
