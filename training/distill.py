"""``training distill``: a bidirectional teacher to a few-step, block-causal streaming student.

Stage 1, ODE initialisation (this module): ``training odepairs`` has stored the teacher's ODE
trajectories at the student's denoising timesteps (:mod:`training.ode_pairs`); the student, the
teacher's own architecture and weights with block-causal attention (:mod:`training.causal`), is
regressed onto each trajectory's clean end from a stored point drawn per block. This is
``training fit`` with ``objective = "ode"``: the same config, checkpoints, exact resume, EMA,
gradient accumulation, torchrun, progress and TensorBoard. :func:`distill_config` starts from
the teacher's settings (preset, VAE, image encoder, action space), the pairs' clip length and
the student defaults below; a TOML file and the flags override them. A student may carry
action modules in fewer blocks than its teacher (``action_blocks``, or a preset that differs
from the teacher's only there): the released Matrix-Game 2.0 students have them in blocks 0-14
of 30, which is what a ``mg2-foundation`` teacher's student gets (preset ``mg2-universal``).

With ``--eval-every`` the student's rollouts are also compared with the teacher's
(``eval_reference``, :mod:`training.agreement`): whether it comes to play as the teacher does.

The checkpoints record the student's streaming settings (block, window, sink and the
timesteps it was regressed at), so ``training play`` runs it as it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from training import checkpoint
from training.fit import FitConfig, load_config
from training.run_folder import read_toml

# What a student run changes from the teacher's config unless told otherwise.
STUDENT_DEFAULTS = {
    "objective": "ode",
    "causal_block": 3,  # Matrix-Game 2.0: 3 latents per block, a window of 6, no sink
    "causal_local": 6,
    "causal_sink": 0,
    "action_dropout": 0.0,  # the student bakes the teacher's guidance in; no CFG needed
    "image_dropout": 0.0,
    "history_noise": 0.0,
    "error_buffer": 0,
    "per_frame_timesteps": True,
    "sample_every": 0,
    "eval_every": 0,
}
# Presets whose released streaming model attends to another window than the default 6 latents
LOCAL_WINDOW = {"mg2-gta-drive": 4}  # Matrix-Game 2.0's GTA driving model
# Teachers whose released students carry action modules in fewer blocks: the student's preset
STUDENT_PRESET = {"mg2-foundation": "mg2-universal"}  # blocks 0-14 of 30
TEACHER_FIELDS = ("preset", "vae", "image_encoder", "action_space", "shift")


def distill_config(teacher: str | Path, pairs: str | Path, out: str | Path,
                   file: str | Path | None = None, flags: dict | None = None) -> FitConfig:
    """The ``FitConfig`` of a stage-1 student: the teacher's model settings, the pairs, the
    student defaults, then the TOML ``file`` and the ``flags``."""
    saved = checkpoint.read_trainer(checkpoint.step_folder(teacher))["config"]
    dataset = Path(pairs) / "dataset.json"
    if not dataset.is_file():
        raise FileNotFoundError(f"{pairs} is not a shard folder (no dataset.json)")
    info = json.loads(dataset.read_text())
    if "ode" not in info:
        raise ValueError(f"{pairs} holds no ODE pairs; make them with training odepairs")
    teacher_preset = saved["preset"]
    window = {"causal_local": LOCAL_WINDOW[teacher_preset]} if teacher_preset in LOCAL_WINDOW \
        else {}
    teacher_blocks = saved.get("action_blocks", "")
    layout = ({"preset": STUDENT_PRESET[teacher_preset]}
              if teacher_preset in STUDENT_PRESET and not teacher_blocks
              else {"action_blocks": teacher_blocks})
    base = {**{k: saved[k] for k in TEACHER_FIELDS}, **layout, **STUDENT_DEFAULTS, **window,
            "frames": int(info["clip_frames"]), "shards": str(pairs), "init_run": str(teacher),
            "eval_reference": str(teacher), "out": str(out)}
    given = read_toml(file, FitConfig) if file else {}
    return load_config(None, {**base, **given, **(flags or {})})
