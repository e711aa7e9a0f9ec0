"""The image condition: CLIP ViT-H/14 penultimate tokens from a local model, or the stand-in.

Matrix-Game 2.0 cross-attends to CLIP ViT-H/14 tokens of the first frame (``[B, 257, 1280]``,
the output of the penultimate transformer block, as Wan2.1 I2V uses them). ``--image-encoder
PATH`` loads a CLIP vision tower from a local folder in Hugging Face ``transformers`` format
with safetensors weights (``CLIPVisionModel``; e.g. a ViT-H/14 laion2B export); nothing is
downloaded and nothing is unpickled. The frame is resized to the tower's square input
(bicubic, as Wan does) and normalised with the CLIP mean and std.

Without a path, :func:`training.conditioning.image_tokens` gives a weightless stand-in of the
model's shape. Either way the encoder's :attr:`identity` is saved in checkpoints so a model is
never sampled with the other kind of tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from training.conditioning import image_tokens
from training.config import DiTConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class StandinImageEncoder:
    """The weightless stand-in tokens of :func:`training.conditioning.image_tokens`."""

    def __init__(self, cfg: DiTConfig) -> None:
        self.cfg = cfg
        self.identity = {"kind": "standin", "tokens": cfg.image_tokens, "dim": cfg.image_dim}

    def __call__(self, first: Tensor) -> Tensor:
        return image_tokens(first, self.cfg)


class ClipImageEncoder:
    """Penultimate-block tokens of a local CLIP vision tower, frozen, in evaluation mode."""

    def __init__(self, path: str | Path, cfg: DiTConfig, device: str | torch.device = "cpu"
                 ) -> None:
        try:
            from transformers import CLIPVisionModel
        except ImportError as exc:  # an optional dependency
            raise ImportError("--image-encoder needs transformers: pip install "
                              "'worldforge[clip]'") from exc
        folder = Path(path)
        if not (folder / "config.json").is_file() or not list(folder.glob("*.safetensors")):
            raise FileNotFoundError(f"{folder} is not a CLIP vision model folder (config.json "
                                    f"and *.safetensors expected)")
        self.model = CLIPVisionModel.from_pretrained(folder, local_files_only=True,
                                                     use_safetensors=True).to(device)
        self.model.eval().requires_grad_(False)
        vision = self.model.config
        tokens = (vision.image_size // vision.patch_size) ** 2 + 1
        if (tokens, vision.hidden_size) != (cfg.image_tokens, cfg.image_dim):
            raise ValueError(f"CLIP model at {folder} gives {tokens} tokens of {vision.hidden_size}"
                             f"; the DiT expects {cfg.image_tokens} of {cfg.image_dim}")
        self.size = vision.image_size
        self.device = torch.device(device)
        self.identity = {"kind": "clip", "name": folder.resolve().name, "tokens": tokens,
                         "dim": vision.hidden_size}

    @torch.no_grad()
    def __call__(self, first: Tensor) -> Tensor:
        """``first [B, 3, H, W]`` in [-1, 1] -> tokens ``[B, L, D]`` (float32)."""
        image = F.interpolate(first.float().to(self.device), size=(self.size, self.size),
                              mode="bicubic", align_corners=False)
        image = ((image + 1) / 2).clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        out = self.model(pixel_values=(image - mean) / std, output_hidden_states=True)
        return out.hidden_states[-2].float()


def make_image_encoder(cfg: DiTConfig, path: str | Path | None = None,
                       device: str | torch.device = "cpu"
                       ) -> StandinImageEncoder | ClipImageEncoder:
    """The CLIP encoder at ``path``, or the stand-in when ``path`` is None."""
    return StandinImageEncoder(cfg) if path is None else ClipImageEncoder(path, cfg, device)
