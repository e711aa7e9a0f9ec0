"""Record one episode on the built-in engine: scene -> navmesh -> agent -> renderer -> writer.

Rendering, logging and encoding overlap: the calling thread steps the agent and renders (in
the framebuffer's own pixel layout: ffmpeg converts it as cheaply as RGB), a
writer thread takes ``(frame, row)`` pairs from a bounded queue and hands them to the
:class:`~datagen.episode_writer.EpisodeWriter` (CSV row plus a pipe write), and ffmpeg encodes
in its own process. The queue bounds memory (``QUEUE_FRAMES`` frames) and blocks the renderer when
the encoder falls behind.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from datagen import __version__
from datagen.action_coverage import count_actions, coverage
from datagen.backend import episode_seed, settings_differences
from datagen.builtin.agent import Agent
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.render import Renderer
from datagen.builtin.scenes import build_world
from datagen.episode import EpisodeMeta
from datagen.episode_writer import EpisodeWriter
from datagen.planner import DEFAULT_PROFILE, PROFILES

QUEUE_FRAMES = 16


@dataclass(frozen=True)
class RecordConfig:
    """Everything that decides an episode's content: same config and index, same bytes."""

    scene: str = "city"
    frames: int = 1200  # frames per episode
    fps: int = 30
    width: int = 640
    height: int = 360
    seed: int = 0  # run seed; episode ``i`` is generated from (seed, i)
    fov: float = 90.0  # horizontal field of view, degrees
    profile: str = DEFAULT_PROFILE  # behaviour profile (datagen.planner.PROFILES)
    crf: int = 18  # H.264 constant rate factor
    preset: str = "veryfast"  # x264 preset
    encoder_threads: int = 1  # fixed, so the same input gives the same bytes on any machine
    renderer: str = "tiny"  # "tiny" (software, p3tinydisplay) or "gl" (p3headlessgl / EGL)

    def check(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {self.frames}")
        if not 1 <= self.fps <= 240:
            raise ValueError(f"--fps must be in 1..240, got {self.fps}")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"--size must be even and at least 16x16 (H.264 yuv420p), got "
                f"{self.width}x{self.height}")
        if not 10.0 <= self.fov <= 170.0:
            raise ValueError(f"--fov must be in 10..170 degrees, got {self.fov}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf must be in 0..51, got {self.crf}")
        if self.profile not in PROFILES:
            raise ValueError(
                f"unknown --profile {self.profile!r}; choose from {', '.join(PROFILES)}")
        if self.renderer not in ("tiny", "gl"):
            raise ValueError(f"unknown --renderer {self.renderer!r}; choose tiny or gl")


def config_differences(cfg: RecordConfig, recorded: dict) -> list[str]:
    """Settings in which an existing episode's ``engine.record_config`` differs from ``cfg``."""
    return settings_differences(asdict(cfg), recorded)


def episode_id(cfg: RecordConfig, index: int) -> str:
    return f"{cfg.scene}_{cfg.seed}_{index:05d}"


def record_episode(
    cfg: RecordConfig,
    index: int,
    out: Path,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Record episode ``index`` of ``cfg`` under ``out``; returns the finished episode folder.

    ``on_frame(n)`` is called with the number of frames handed to the writer so far. On any
    error the episode stays in its ``.partial`` folder and the error propagates.
    """
    seed = episode_seed(cfg, index)
    world = build_world(cfg.scene, seed)
    navmesh = NavMesh.from_world(world)
    agent = Agent(world, navmesh, seed=seed, fps=cfg.fps, fov=cfg.fov,
                  profile=PROFILES[cfg.profile])
    meta = EpisodeMeta(
        episode_id=episode_id(cfg, index), backend="builtin", scene=cfg.scene, seed=cfg.seed,
        fps=cfg.fps, width=cfg.width, height=cfg.height, tool_version=__version__,
        video={"codec": "h264", "pix_fmt": "yuv420p", "crf": cfg.crf, "preset": cfg.preset},
    )
    renderer = Renderer(world, cfg.width, cfg.height, cfg.fov, backend=cfg.renderer)
    try:
        with EpisodeWriter(out, meta, crf=cfg.crf, preset=cfg.preset,
                           threads=cfg.encoder_threads, pix_fmt=renderer.pix_fmt) as writer:
            keys, mouse = _run_pipeline(cfg, agent, renderer, writer, on_frame)
            writer.meta.engine = {
                "name": "worldforge-builtin", "version": __version__,
                "renderer": renderer.info(), "navmesh": navmesh.stats(),
                "agent": agent.describe(), "episode_index": index, "episode_seed": seed,
                "record_config": asdict(cfg),
            }
            writer.meta.settings = {**world.settings,
                                    "action_coverage": coverage(count_actions(keys, mouse))}
            return writer.finish()
    finally:
        renderer.close()


def _run_pipeline(cfg, agent, renderer, writer, on_frame):
    """Step, render and hand frames to the writer thread; returns the keys and mouse logged."""
    frames: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    failure: list[BaseException] = []

    def drain() -> None:
        written = 0
        while (item := frames.get()) is not None:
            if failure:
                continue  # keep draining so the producer never blocks on a dead consumer
            try:
                writer.add_frame(*item)
            except BaseException as exc:  # reported by the producer below
                failure.append(exc)
                continue
            written += 1
            if on_frame is not None:
                on_frame(written)

    consumer = threading.Thread(target=drain, name="episode-writer", daemon=True)
    consumer.start()
    keys = np.zeros((cfg.frames, 7), dtype=np.uint8)
    mouse = np.zeros((cfg.frames, 2), dtype=np.float64)
    try:
        tick = agent.first()
        for i in range(cfg.frames):
            if i:
                tick = agent.step()
            if failure:
                break
            image = renderer.render(tick.position, tick.quat, tick.movers, native=True)
            keys[i] = tick.keys
            mouse[i] = (tick.mouse_dx, tick.mouse_dy)
            frames.put((image, tick.row()))
    finally:
        frames.put(None)
        consumer.join()
    if failure:
        raise failure[0]
    return keys, mouse
