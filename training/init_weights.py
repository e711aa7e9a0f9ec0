"""``--init``: start a world model from a Wan2.1 / SkyReels-V2 (I2V or T2V) DiT checkpoint.

Matrix-Game 2.0 began from a Wan2.1-class 1.3B image-to-video model, dropped its text branch
and added fresh action modules. This does the same from local safetensors (a file or a folder
of shards), in the original Wan names (``blocks.0.self_attn.q.weight``: Matrix-Game's too) or
diffusers' (``blocks.0.attn1.to_q.weight``):

- the text branch is dropped (``text_embedding.*``; in an I2V model also the text keys and
  values of cross-attention, whose image keys and values ``k_img``/``v_img``/``norm_k_img``
  become the model's ``k``/``v``/``norm_k``: cross-attention attends to image tokens only);
- every other tensor whose name and shape match is loaded; the action modules (and anything
  else missing or of another shape) keep their fresh initialisation.

Nothing is unpickled: only safetensors are read. The returned :class:`InitReport` says what was
loaded, dropped and left fresh, and the command line prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from training.config import DiTConfig
from training.params import build_meta

WRAPPER_PREFIX = "model."  # released Matrix-Game 2.0 names: its inference wrapper's `model`

# diffusers WanTransformer3DModel names -> original Wan names, applied in order.
DIFFUSERS_TO_WAN = (
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.image_embedder\.norm1\.", "img_emb.proj.0."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.0\.proj\.", "img_emb.proj.1."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.2\.", "img_emb.proj.3."),
    (r"^condition_embedder\.image_embedder\.norm2\.", "img_emb.proj.4."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.attn1\.to_out\.0\.", ".self_attn.o."),
    (r"\.attn1\.to_([qkv])\.", r".self_attn.\1."),
    (r"\.attn1\.norm_", ".self_attn.norm_"),
    (r"\.attn2\.to_out\.0\.", ".cross_attn.o."),
    (r"\.attn2\.to_([qkv])\.", r".cross_attn.\1."),
    (r"\.attn2\.add_k_proj\.", ".cross_attn.k_img."),
    (r"\.attn2\.add_v_proj\.", ".cross_attn.v_img."),
    (r"\.attn2\.norm_added_k\.", ".cross_attn.norm_k_img."),
    (r"\.attn2\.norm_", ".cross_attn.norm_"),
    (r"\.norm2\.", ".norm3."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
)
IMAGE_KV = {"k_img": "k", "v_img": "v", "norm_k_img": "norm_k"}


@dataclass
class InitReport:
    loaded: list[str] = field(default_factory=list)  # our names filled from the checkpoint
    dropped: list[str] = field(default_factory=list)  # checkpoint names not used (text branch)
    fresh: list[str] = field(default_factory=list)  # our names left as initialised (actions)
    mismatched: list[str] = field(default_factory=list)  # "name: ours [..] vs theirs [..]"

    def summary(self) -> str:
        def groups(names: list[str]) -> str:
            kinds = sorted({re.sub(r"^blocks\.\d+\.", "blocks.*.", n).rsplit(".", 1)[0]
                            for n in names})
            return ", ".join(kinds) if kinds else "none"

        lines = [f"loaded {len(self.loaded)} tensors",
                 f"dropped {len(self.dropped)}: {groups(self.dropped)}",
                 f"fresh {len(self.fresh)}: {groups(self.fresh)}"]
        lines += [f"shape mismatch (left fresh): {m}" for m in self.mismatched]
        return "\n".join(lines)


def _files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise FileNotFoundError(f"no .safetensors checkpoint at {path}")
    return files


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a ``.safetensors`` file, or of all such files in a folder."""
    state: dict[str, Tensor] = {}
    for f in _files(Path(path)):
        state.update(load_file(f))
    return state


def check_init(path: str | Path, cfg: DiTConfig) -> None:
    """Refuse, from its names and shapes alone (no tensor is read), a checkpoint of which
    nothing would fill a model of ``cfg``, or that is a model of another size (more tensors of
    its names in other shapes than in the model's)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in _files(Path(path)):
        with safe_open(str(f), framework="pt") as opened:
            for name in opened.keys():  # noqa: SIM118 (safe_open has no iteration)
                shapes[name] = tuple(opened.get_slice(name).get_shape())
    mapped, _ = without_text(to_wan_names(shapes))
    ours = {n: tuple(t.shape) for n, t in build_meta(cfg).state_dict().items()}
    fit = sum(1 for n, shape in mapped.items() if ours.get(n) == shape)
    other = sum(1 for n, shape in mapped.items() if n in ours and ours[n] != shape)
    if not fit:
        hint = ("; released Matrix-Game 2.0 weights (names prefixed model.) become a run with "
                "training import, to start from with init_run"
                if all(n.startswith(WRAPPER_PREFIX) for n in shapes) else "")
        raise ValueError(f"no tensor of {path} fits the model (names like "
                         f"{sorted(shapes)[:2]}){hint}")
    if other > fit:
        raise ValueError(f"{path} is a model of another size: {other} of its tensors have the "
                         f"model's names in other shapes, {fit} fit")


def to_wan_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A diffusers-named state dict in original Wan names (others pass unchanged)."""
    if not any(k.startswith("condition_embedder.") or ".attn1." in k for k in state):
        return dict(state)
    out = {}
    for name, value in state.items():
        for pattern, repl in DIFFUSERS_TO_WAN:
            name = re.sub(pattern, repl, name)
        out[name] = value
    return out


def without_text(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Drop the text branch; an I2V model's image keys/values become cross-attention's own."""
    has_image_kv = any(".cross_attn.k_img." in k for k in state)
    kept, dropped = {}, []
    for name, value in state.items():
        parts = name.split(".")
        text_kv = has_image_kv and len(parts) > 3 and parts[2] == "cross_attn" \
            and parts[3] in ("k", "v", "norm_k")
        if name.startswith("text_embedding.") or text_kv:
            dropped.append(name)
        elif len(parts) > 3 and parts[2] == "cross_attn" and parts[3] in IMAGE_KV:
            kept[".".join([*parts[:3], IMAGE_KV[parts[3]], *parts[4:]])] = value
        else:
            kept[name] = value
    return kept, dropped


@torch.no_grad()
def init_from_wan(model: torch.nn.Module, path: str | Path) -> InitReport:
    """Fill ``model`` from the Wan checkpoint at ``path`` (see the module docstring)."""
    state, dropped = without_text(to_wan_names(read_safetensors(path)))
    report = InitReport(dropped=sorted(dropped))
    ours = model.state_dict()
    for name, value in state.items():
        if name not in ours:
            report.dropped.append(name)
        elif ours[name].shape != value.shape:
            report.mismatched.append(f"{name}: ours {list(ours[name].shape)} vs theirs "
                                     f"{list(value.shape)}")
        else:
            ours[name].copy_(value.to(ours[name].dtype))
            report.loaded.append(name)
    used = set(report.loaded)
    report.fresh = [n for n in ours if n not in used]
    return report
