"""What an Unreal recording is: the settings that decide its episodes, and the job the editor runs.

:class:`UnrealConfig` is the ``unreal`` backend's config (:mod:`datagen.backend`): the project,
the map and everything that decides an episode's content (the same config and index give the
same plan and inputs), plus how to reach the editor (``editor``, ``engine_dir``, ``attach``,
``timeout_s``, ``bind``, ``port``), which does not decide content and is left out of
:func:`config_differences`.
A :class:`Job` is what the editor-side recorder (``ue_plugin/``) is handed as a JSON file: the
config, the episode indices, the output folder and the events file it reports progress to.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from datagen.backend import settings_differences
from datagen.planner import DEFAULT_PROFILE, PROFILES

MAP_RE = re.compile(r"/[A-Za-z0-9_]+(/[A-Za-z0-9_]+)+")  # a package path: /Game/Maps/City


@dataclass(frozen=True)
class UnrealConfig:
    """Everything that decides an Unreal episode's content, and how to reach the editor."""

    project: str = ""  # the .uproject file
    map: str = ""  # the level's package path, e.g. /Game/Maps/City
    frames: int = 1200  # frames per episode
    fps: int = 30  # the engine's fixed step is 1 / fps
    width: int = 640
    height: int = 360
    seed: int = 0  # run seed; episode ``i`` is generated from (seed, i)
    profile: str = DEFAULT_PROFILE  # behaviour profile (datagen.planner.PROFILES)
    crf: int = 18  # H.264 constant rate factor
    preset: str = "veryfast"  # x264 preset
    encoder_threads: int = 1
    agent_radius: float = 0.35  # metres: the NavMesh agent's radius (RecastNavMesh AgentRadius)
    settle_ticks: int = 30  # ticks between placing the pawn and frame 0 (landing, stopping)
    editor: str | None = field(default=None, compare=False)  # UnrealEditor-Cmd to launch
    engine_dir: str | None = field(default=None, compare=False)  # or the engine it is in
    attach: bool = field(default=False, compare=False)  # record in a running editor instead
    timeout_s: float = field(default=600.0, compare=False)  # editor silent this long: failed
    bind: str = field(default="127.0.0.1", compare=False)  # attach: this machine's address
    port: int = field(default=6766, compare=False)  # attach: the discovery port

    @property
    def scene(self) -> str:
        """The output sub-folder: the map's name (``/Game/Maps/City`` -> ``City``)."""
        return self.map.rstrip("/").rsplit("/", 1)[-1]

    def check(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if not self.project.endswith(".uproject"):
            raise ValueError(f"--project must be a .uproject file, got {self.project!r}")
        if not MAP_RE.fullmatch(self.map):
            raise ValueError(f"--map must be a level's package path such as /Game/Maps/City, "
                             f"got {self.map!r}")
        if self.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {self.frames}")
        if not 1 <= self.fps <= 240:
            raise ValueError(f"--fps must be in 1..240, got {self.fps}")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"--size must be even and at least 16x16 (H.264 yuv420p), got "
                             f"{self.width}x{self.height}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf must be in 0..51, got {self.crf}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown --profile {self.profile!r}; choose from "
                             f"{', '.join(PROFILES)}")
        if not 0.05 <= self.agent_radius <= 5.0:
            raise ValueError(f"--agent-radius must be in 0.05..5 m, got {self.agent_radius}")
        if self.settle_ticks < 1:
            raise ValueError(f"--settle-ticks must be at least 1, got {self.settle_ticks}")
        if self.timeout_s <= 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout_s}")

    def content(self) -> dict:
        """The settings that decide content (what meta.json records)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}


def episode_id(cfg: UnrealConfig, index: int) -> str:
    return f"{cfg.scene}_{cfg.seed}_{index:05d}"


def config_differences(cfg: UnrealConfig, recorded: dict) -> list[str]:
    """Content settings in which an episode's ``engine.record_config`` differs from ``cfg``."""
    return settings_differences(cfg.content(), recorded)


@dataclass(frozen=True)
class Job:
    """What one editor records: ``indices`` of ``config`` under ``out``, reporting to
    ``events`` (JSON lines, see :mod:`worldforge_ue.recorder`); ``quit`` closes the editor
    when done (a headless run)."""

    config: UnrealConfig
    indices: tuple[int, ...]
    out: str
    events: str
    quit: bool = True

    def write(self, path: Path) -> None:
        d = asdict(self)
        d["indices"] = list(self.indices)
        Path(path).write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> Job:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(config=UnrealConfig(**d["config"]), indices=tuple(d["indices"]),
                   out=d["out"], events=d["events"], quit=bool(d["quit"]))
