"""Model configurations: the DiT and its action module, and the named presets.

The four ``mg2-*`` presets are the released Matrix-Game 2.0 configurations (Wan2.1-1.3B shape);
a model built from one has exactly the parameter names and shapes of the released checkpoints
(``training inspect PRESET --json``), so those load with ``strict=True``. ``tiny`` runs a
training step in seconds on a CPU (tests); ``small`` can learn in an hour on a CPU (benchmarks).
The field names follow the released ``config.json`` where one exists (noted beside each field).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ActionConfig:
    keyboard_dim: int = 4  # K, keyboard_dim_in: 4 [W,S,A,D]; 2 [W,S] (driving); 7 (Temple Run)
    mouse: bool = True  # enable_mouse: a per-frame [pitch, yaw] branch
    blocks: tuple[int, ...] = ()  # blocks that carry an action module
    heads: int = 16  # heads_num, shared by both branches
    mouse_hidden: int = 1024  # mouse_hidden_dim: width of the mouse MLP and its attention
    keyboard_hidden: int = 1024  # keyboard_hidden_dim: width of the keyboard attention
    keyboard_embed: int = 128  # hidden_size: per-frame keyboard MLP width
    window: int = 3  # windows_size: latent frames of actions each latent sees
    temporal_ratio: int = 4  # vae_time_compression_ratio: video frames per latent frame
    rope_time_dims: int = 8  # rope_dim_list[0]; the spatial parts see position 0 (identity)
    rope_theta: float = 256.0  # rope_theta

    def __post_init__(self) -> None:
        problems = []
        if self.keyboard_dim < 1:
            problems.append(f"keyboard_dim must be at least 1, got {self.keyboard_dim}")
        for name in ("mouse_hidden", "keyboard_hidden"):
            width = getattr(self, name)
            if width % self.heads or (width // self.heads) < self.rope_time_dims \
                    or self.rope_time_dims % 2:
                problems.append(f"{name}={width} must split into {self.heads} heads of at least "
                                f"rope_time_dims={self.rope_time_dims} (even) dims")
        if sorted(set(self.blocks)) != list(self.blocks):
            problems.append(f"blocks must be increasing and unique, got {list(self.blocks)}")
        if problems:
            raise ValueError("action config: " + "; ".join(problems))

    @property
    def frames_per_latent_window(self) -> int:
        """Frame actions each latent frame sees: 12 for the released models."""
        return self.window * self.temporal_ratio


@dataclass(frozen=True)
class DiTConfig:
    dim: int  # model width
    ffn_dim: int  # feed-forward width
    num_heads: int  # self- and cross-attention heads (head dim = dim / num_heads)
    num_layers: int  # transformer blocks
    action: ActionConfig = field(default_factory=ActionConfig)
    space: str = "mg2_universal"  # shards.action_space name that feeds this model
    in_dim: int = 36  # 16 noisy latent + 4 mask + 16 first-frame latent channels
    out_dim: int = 16  # latent channels predicted
    freq_dim: int = 256  # sinusoidal timestep embedding width
    eps: float = 1e-6  # norm epsilon
    patch: tuple[int, int, int] = (1, 2, 2)  # (time, height, width) patch of the latent grid
    rope_theta: float = 10000.0  # 3D RoPE base of self-attention
    image_dim: int = 1280  # width of the image tokens (CLIP ViT-H/14: 1280)
    image_tokens: int = 257  # number of image tokens (CLIP ViT-H/14 at 224: 257)

    def __post_init__(self) -> None:
        problems = []
        if self.dim % self.num_heads:
            problems.append(f"dim {self.dim} is not a multiple of num_heads {self.num_heads}")
        elif (self.dim // self.num_heads) % 2 or self.dim // self.num_heads < 6:
            problems.append(f"head dim {self.dim // self.num_heads} must be even and >= 6")
        if self.action.blocks and self.action.blocks[-1] >= self.num_layers:
            problems.append(f"action blocks {list(self.action.blocks)} exceed "
                            f"num_layers={self.num_layers}")
        if self.patch[0] != 1:
            problems.append(f"patch must be (1, ph, pw): one latent frame per token, got "
                            f"{self.patch}")
        if problems:
            raise ValueError("DiT config: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


def _mg2(keyboard_dim: int, mouse: bool, blocks: range, space: str) -> DiTConfig:
    return DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, space=space,
                     action=ActionConfig(keyboard_dim=keyboard_dim, mouse=mouse,
                                         blocks=tuple(blocks)))


PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(
        dim=64, ffn_dim=128, num_heads=2, num_layers=2, image_dim=192, image_tokens=17,
        action=ActionConfig(blocks=(0, 1), heads=2, mouse_hidden=64, keyboard_hidden=64,
                            keyboard_embed=16)),
    "small": DiTConfig(
        dim=256, ffn_dim=1024, num_heads=4, num_layers=6, image_dim=192, image_tokens=17,
        action=ActionConfig(blocks=tuple(range(6)), heads=4, mouse_hidden=256,
                            keyboard_hidden=256, keyboard_embed=32)),
    # Released Matrix-Game 2.0 configurations: action modules in every block (foundation) or in
    # blocks 0-14 (the distilled models).
    "mg2-foundation": _mg2(4, True, range(30), "mg2_universal"),
    "mg2-universal": _mg2(4, True, range(15), "mg2_universal"),
    "mg2-gta-drive": _mg2(2, True, range(15), "mg2_driving"),
    "mg2-templerun": _mg2(7, False, range(15), "keys7"),
}


def get_preset(name: str) -> DiTConfig:
    """The preset called ``name``; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def with_action_blocks(cfg: DiTConfig, blocks: str) -> DiTConfig:
    """``cfg`` with action modules in ``blocks``: ranges and single blocks, comma-separated
    (``"0-14"``: Matrix-Game 2.0's distilled models, half the blocks of its foundation model);
    ``""`` keeps the preset's."""
    if not blocks.strip():
        return cfg
    chosen: set[int] = set()
    for part in blocks.split(","):
        first, _, last = part.strip().partition("-")
        try:
            span = range(int(first), int(last or first) + 1)
        except ValueError:
            raise ValueError(f"action blocks must be like 0-14 or 0,2,4, got {blocks!r}") from None
        if not span:
            raise ValueError(f"action blocks {blocks!r}: {part.strip()} runs backwards")
        chosen.update(span)
    if not chosen or min(chosen) < 0 or max(chosen) >= cfg.num_layers:
        raise ValueError(f"action blocks {blocks!r} must lie in 0-{cfg.num_layers - 1}")
    return replace(cfg, action=replace(cfg.action, blocks=tuple(sorted(chosen))))


def block_ranges(blocks: tuple[int, ...]) -> str:
    """Sorted block indices written as :func:`with_action_blocks` reads them, runs as ranges:
    ``(0, 1, 2, 4)`` -> ``"0-2,4"``."""
    runs: list[list[int]] = []
    for block in sorted(blocks):
        if runs and block == runs[-1][1] + 1:
            runs[-1][1] = block
        else:
            runs.append([block, block])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def same_but_action_blocks(a: DiTConfig, b: DiTConfig) -> bool:
    """Whether ``a`` and ``b`` differ at most in which blocks carry action modules: a teacher
    and its student, which reads the same inputs and makes the same latents."""
    return replace(a, action=replace(a.action, blocks=())) == \
        replace(b, action=replace(b.action, blocks=()))
