"""``training encode``: a copy of a shard set with VAE latents in every sample.

Each sample of every tar listed in ``dataset.json`` (all splits) gains ``latents.npy``, float16
``[2, 16, F, h, w]`` with ``F = (frames - 1) / 4 + 1``: index 0 the normalised latents of the
clip's first ``frames`` frames, index 1 those of the condition video (the first frame, then
zeros; ``training.conditioning.condition_video``), and ``first.png``: the first frame as
decoded, lossless, for the image condition (decoding it from the MP4 costs a trainer more than a
tiny model's step). Its json gains
``"latents": {"vae": <WanVAE.identity>, "frames": frames}``, and so does ``dataset.json``;
``manifest.parquet`` and ``rejects.parquet`` are copied as they are. Every other member is
copied byte for byte (a ``latents.npy`` or ``first.png`` from an earlier pass is replaced).

Tars are written like ``curation filter`` writes them (``webdataset.TarWriter``: members sorted,
mtime 0, mode 0644, empty owner; samples in their original order), so the same shards and VAE
give byte-identical output. The input, a folder or a URL (shards.location: the tars its
``dataset.json`` lists, streamed), is only read; the output, a local folder, is built in
``<out>.partial`` and renamed to ``<out>`` when complete.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm
from webdataset import TarWriter

from curation.shardwriter import DATASET_FILE, MANIFEST_FILE, REJECTS_FILE, SPLITS
from shards.location import is_remote, member, open_stream, read_dataset
from shards.reader import FIRST, decode_mp4, raw_samples
from training.conditioning import condition_video
from training.vae import VaeError, WanVAE

LATENTS_MEMBER = "latents.npy"


@dataclass(frozen=True)
class EncodeConfig:
    shards: str  # shard folder to read (never modified), or its URL (shards.location)
    vae: Path  # VAE folder (see training.vae: diffusers layout, a Wan2.1 repo or a run)
    out: Path  # new shard folder; must not exist
    frames: int | None = None  # frames encoded per clip, 4k+1; None: the longest that fits
    device: str = "cpu"  # torch device of the VAE
    progress: bool = True  # tqdm bar over samples

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", str(self.shards))  # a Path is taken as its name
        if self.frames is not None and (self.frames < 1 or (self.frames - 1) % 4):
            raise ValueError(f"frames must be 4k+1 (1, 5, 9, 13, ...), got {self.frames}")


def encode_png(image: np.ndarray) -> bytes:
    """A uint8 RGB image ``[H, W, 3]`` as PNG bytes (lossless; the same bytes every time)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise VaeError(f"cannot encode a {list(image.shape)} image as PNG")
    return data.tobytes()


def encode_sample(sample: dict[str, bytes], vae: WanVAE, frames: int, where: str) -> dict:
    """``sample`` with ``latents.npy`` added and the json's ``latents`` set."""
    try:
        video = decode_mp4(sample["mp4"])
        meta = json.loads(sample["json"])
    except (KeyError, ValueError, OSError) as exc:
        raise VaeError(f"{where}: cannot read the clip: {exc!r}") from exc
    if len(video) < frames:
        raise VaeError(f"{where}: {len(video)} frames, fewer than the {frames} to encode")
    clip = torch.from_numpy(video[:frames]).float().div_(127.5).sub_(1.0)  # as the reader does
    clip = clip.permute(3, 0, 1, 2).unsqueeze(0)  # [1, 3, T, H, W]
    both = torch.cat([clip, condition_video(clip[:, :, 0], frames)])
    latents = vae.encode(both).cpu().numpy().astype(np.float16)
    if not np.isfinite(latents).all():
        raise VaeError(f"{where}: latents overflow float16; is the VAE's normalisation right?")
    buf = io.BytesIO()
    np.save(buf, latents, allow_pickle=False)
    meta["latents"] = {"vae": vae.identity, "frames": frames}
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    return {**sample, LATENTS_MEMBER: buf.getvalue(), FIRST: encode_png(video[0]),
            "json": text.encode("utf-8")}


def encode_shards(cfg: EncodeConfig) -> Path:
    """Write the encoded copy of ``cfg.shards`` to ``cfg.out`` (see the module docstring)."""
    dataset = read_dataset(cfg.shards)
    out = Path(cfg.out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; encode into a new folder")
    if not is_remote(cfg.shards) and out.resolve().is_relative_to(Path(cfg.shards).resolve()):
        raise VaeError(f"{out} is inside the input {cfg.shards}, which is never modified")
    clip_frames = int(dataset["clip_frames"])
    frames = cfg.frames if cfg.frames is not None else (clip_frames - 1) // 4 * 4 + 1
    if frames > clip_frames:
        raise VaeError(f"{cfg.shards} holds {clip_frames}-frame clips; cannot encode {frames}")
    width, height = dataset["size"]
    if width % 8 or height % 8:
        raise VaeError(f"{cfg.shards} holds {width}x{height} clips; the VAE needs multiples of "
                       f"8: make shards with curation filter --size, e.g. 640x352")
    names = [name for split in SPLITS for name in dataset.get("shards", {}).get(split, [])]
    missing = [] if is_remote(cfg.shards) else [  # a URL's are found missing when opened
        n for n in names if not (Path(cfg.shards) / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{cfg.shards}: dataset.json lists tars that are not there: "
                                f"{missing[:3]}")
    vae = WanVAE.load(cfg.vae, device=cfg.device)

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    total = sum(dataset.get("counts", {}).get(s, {}).get("clips", 0) for s in SPLITS)
    with tqdm(total=total, desc="encoding", unit="clip", disable=not cfg.progress) as bar:
        for name in names:
            tar = member(cfg.shards, name)
            with open(partial / name, "wb") as f:
                writer = TarWriter(f, user="", group="", mode=0o644, mtime=0, encoder=False)
                for sample in raw_samples([tar]):
                    writer.write(encode_sample(sample, vae, frames,
                                               f"sample {sample['__key__']!r} of {tar}"))
                    bar.update()
                writer.close()
    for name in (MANIFEST_FILE, REJECTS_FILE):
        try:
            with open_stream(member(cfg.shards, name)) as src, open(partial / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except FileNotFoundError:  # an older shard set may lack them
            continue
    dataset["latents"] = {"vae": vae.identity, "frames": frames}
    (partial / DATASET_FILE).write_text(json.dumps(dataset, indent=2, sort_keys=True) + "\n")
    os.replace(partial, out)
    return out
