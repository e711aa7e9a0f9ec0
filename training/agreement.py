"""How closely a model plays like a reference model (``training eval --reference RUN``).

A distilled student should play as its teacher does; the probe cannot say so while neither
model's video is sharp enough to read. This compares rollouts of two models made from the same
first frames under the same actions, pixel against pixel:

- **psnr**: the model's frames against the reference's, per frame (frame 0, the given image,
  left out) and over all frames, in dB; identical frames score :data:`PSNR_CAP`.
- **response** (designed scripts only, two or more): what a rollout owes to its script is the
  rollout minus the mean of all scripts' rollouts from the same first frame. ``cosine``
  compares the model's responses with the reference's (1: it moves where the reference moves;
  0: unrelated; below 0: the other way), ``ratio`` their sizes (1: as much), both over all
  first frames together. A student can
  match its teacher's frames on average while ignoring its inputs; the response cannot.

Sampling is random, so two rollouts of the *reference itself* at different noise seeds do not
agree perfectly either: :func:`agreement` is reported for the model and for the reference at
another seed, the level a model that played exactly like the reference would reach.
"""

from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0  # dB, for identical frames


def psnr_curve(video: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 ``video [..., T, H, W, 3]`` against ``reference`` (same shape) per
    frame ``T``, the squared error averaged over every other axis."""
    if video.shape != reference.shape:
        raise ValueError(f"videos of shapes {video.shape} and {reference.shape} cannot be "
                         "compared")
    err = (video.astype(np.float64) - reference.astype(np.float64)) ** 2
    axes = tuple(i for i in range(err.ndim) if i != err.ndim - 4)
    return _decibels(err.mean(axis=axes))


def psnr(video: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB over all frames after the first (the given image)."""
    err = (video[..., 1:, :, :, :].astype(np.float64)
           - reference[..., 1:, :, :, :].astype(np.float64)) ** 2
    return float(_decibels(err.mean()))


def _decibels(mse: np.ndarray | float) -> np.ndarray:
    return np.minimum(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-30)), PSNR_CAP)


def responses(videos: np.ndarray) -> np.ndarray:
    """What each script's rollout owes to its script: uint8 ``videos [S, B, T, H, W, 3]`` (S
    scripts from B first frames) minus their mean over the scripts, frame 0 left out; float
    ``[S, B, T-1, H, W, 3]``."""
    if videos.ndim != 6 or videos.shape[0] < 2:
        raise ValueError(f"responses need rollouts [S >= 2, B, T, H, W, 3], got {videos.shape}")
    v = videos[:, :, 1:].astype(np.float64)
    return v - v.mean(axis=0, keepdims=True)


def response_agreement(videos: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """``cosine`` and size ``ratio`` of the model's responses to the scripts against the
    reference's (both ``[S, B, T, H, W, 3]``), over all first frames; both None where the
    reference does not respond to its scripts at all (nothing to agree with)."""
    if videos.shape != reference.shape:
        raise ValueError(f"rollouts of shapes {videos.shape} and {reference.shape} cannot be "
                         "compared")
    x, y = responses(videos).ravel(), responses(reference).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if ny == 0:
        return {"cosine": None, "ratio": None}
    return {"cosine": float(x @ y) / (nx * ny) if nx > 0 else 0.0, "ratio": nx / ny}


def agreement(recorded: np.ndarray, reference_recorded: np.ndarray,
              scripts: np.ndarray | None = None,
              reference_scripts: np.ndarray | None = None) -> dict:
    """The numbers of one model against the reference: ``recorded`` rollouts ``[B, T, H, W, 3]``
    under recorded actions and, where given, ``scripts`` rollouts ``[S, B, T, H, W, 3]``."""
    out: dict = {"psnr": psnr(recorded, reference_recorded),
                 "psnr_curve": psnr_curve(recorded, reference_recorded).tolist()}
    if scripts is not None and reference_scripts is not None:
        out["scripts_psnr"] = psnr(scripts, reference_scripts)
        if scripts.shape[0] >= 2:
            out["response"] = response_agreement(scripts, reference_scripts)
    return out
