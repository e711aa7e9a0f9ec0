"""The recorder inside the editor: a job's episodes, one engine tick at a time.

:class:`Recorder` runs in Slate's post-tick callback, so each call comes after the engine has
ticked the game world once by the fixed step ``1 / fps`` (checked every tick). Frame ``i`` of an
episode is tick ``i``: after the tick the camera's view is read, captured and written with the
keys that were held *during* that tick, and the mouse's ``mouse_dx``/``mouse_dy`` are the yaw and
pitch the camera actually turned in it, so the contract's identities hold exactly. Then the
shared controller (:mod:`datagen.controller`, the built-in engine's hand) decides the next
tick's keys and look, and they are injected before the next tick starts.

A run goes through these steps, each taking as many ticks as it needs:

1. start Play In Editor and wait for the player's pawn;
2. calibrate the look axis: hold ``Mouse2D`` at X=1, then Y=1, for a tick each and measure the
   degrees the camera turns (the project's look scale and sign, whatever its mapping context);
3. per episode: place the pawn on a NavMesh point drawn from the episode's seed, facing a drawn
   way, let it settle, then record ``frames`` frames into the shared episode writer;
4. stop Play In Editor, report, and close the editor when the job says so.

Progress goes to the job's events file, one JSON object a line: ``started``, ``frames`` (every
second of video), ``finished`` / ``failed`` per episode, then ``done``, ``stopped`` (on
request: :meth:`Recorder.request_stop`) or ``error`` (a problem that stops the run, such as a
missing NavMesh, an engine that is not on a fixed step, or Play In Editor ended from outside).
An episode cut short stays in its ``.partial`` folder, never looking finished.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path

import numpy as np

from datagen import __version__
from datagen.action_coverage import count_actions, coverage
from datagen.backend import episode_seed
from datagen.controller import Controller
from datagen.episode import KEYS, EpisodeMeta
from datagen.episode_writer import EpisodeWriter
from datagen.planner import PROFILES, Planner
from datagen.rotation import quat_from_ypr, wrap_deg
from datagen.tick import Tick
from datagen.unreal.config import Job, episode_id
from worldforge_ue import adapter

STEP_TOLERANCE = 1e-3  # relative: a tick's delta this far from 1 / fps is not a fixed step
WAIT_TICKS = 600  # for PIE to start and the pawn to appear
CALIBRATION_TICKS = 4  # per axis, for the look to show up in the camera
MIN_GAIN = 1e-3  # degrees per unit of look below which the look axis moves nothing


class PawnBody:
    """The :class:`datagen.controller.Body` of an Unreal pawn: read back after every tick.

    The engine's character movement does the colliding, so there are no movers to meet
    (``traffic`` is ``None``, ``bumped`` is ``-1``) and a jump is never refused for headroom:
    the character's own collision stops it at a ceiling."""

    def __init__(self, navmesh: adapter.UnrealNavigator) -> None:
        self.navmesh = navmesh
        self.traffic = None
        self.bumped = -1
        self.feet = np.zeros(3)
        self.velocity = np.zeros(3)
        self.yaw = self.pitch = 0.0
        self.on_ground, self._crouched = True, False

    @property
    def crouched(self) -> bool:
        return self._crouched

    def read(self, player: adapter.Player, yaw: float, pitch: float) -> None:
        self.feet = player.location()
        self.velocity = player.velocity()
        self.yaw, self.pitch = yaw, pitch
        self.on_ground, self._crouched = player.on_ground(), player.crouched()

    def room_to_jump(self, points: np.ndarray) -> bool:
        return True


class _Episode:
    """One episode being recorded."""

    def __init__(self, index: int, seed: int) -> None:
        self.index, self.seed = index, seed
        self.writer: EpisodeWriter | None = None
        self.controller: Controller | None = None
        self.settle = 0
        self.frame = 0
        self.held = (0,) * len(KEYS)  # keys held during the tick being finished
        self.last = (0.0, 0.0)  # the previous frame's yaw and pitch
        self.keys: list[tuple[int, ...]] = []
        self.mouse: list[tuple[float, float]] = []
        self.start: list[float] = []
        self.planner_rng: np.random.Generator | None = None  # drawn when it is placed
        self.hand_rng: np.random.Generator | None = None


class Recorder:
    """Records ``job`` in the editor (see the module docstring); :meth:`start` and go."""

    def __init__(self, job: Job) -> None:
        self.job, self.cfg = job, job.config
        self.cfg.check()
        self.profile = PROFILES[self.cfg.profile]
        self.events = Path(job.events)
        self.todo = list(job.indices)
        self.handle = None
        self.step = self._wait_for_play
        self.ticks = 0
        self.capture_actor = None
        self.world = self.player = self.capture = self.navigator = self.body = None
        self.gain = [0.0, 0.0]  # degrees of mouse_dx / mouse_dy per unit of look X / Y
        self.episode: _Episode | None = None
        self.finished = False
        self._stop_requested = False

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Put the capture in the level, ask for Play In Editor and hook the tick."""
        self._emit("started", episodes=len(self.todo), engine=adapter.editor_version())
        self.capture_actor = adapter.add_capture(adapter.editor_world())
        adapter.begin_play()
        self.handle = adapter.on_every_tick(self.tick)

    def request_stop(self) -> None:
        """Stop at the next tick: the episode being recorded is left unfinished."""
        self._stop_requested = True

    def tick(self, delta: float) -> None:
        """The post-tick callback: one step of the current stage; errors end the run."""
        if self.finished:
            return
        self.ticks += 1
        if self._stop_requested:
            self._stop("stopped", reason="stopped on request")
            return
        try:
            if self.world is not None and adapter.game_world() is None:
                raise RuntimeError("Play In Editor ended during the recording")
            self.step()
        except Exception as exc:  # reported to the host; the editor must not be left hanging
            self._stop("error", reason=f"{type(exc).__name__}: {exc}",
                       trace=traceback.format_exc(limit=8))

    def _stop(self, event: str, **fields: object) -> None:
        self.finished = True
        if self.episode is not None and self.episode.writer is not None:
            self.episode.writer.abort()
        if self.player is not None:
            self.player.release()
        if self.capture is not None:
            self.capture.close()
        adapter.stop_ticking(self.handle)
        adapter.end_play()
        if self.capture_actor is not None:
            adapter.remove_actor(self.capture_actor)
        self._emit(event, **fields)
        if self.job.quit:
            adapter.quit_editor()

    def _emit(self, event: str, **fields: object) -> None:
        with open(self.events, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")

    # --- stages ----------------------------------------------------------------------------

    def _wait_for_play(self) -> None:
        world = adapter.game_world()
        if world is None:
            if self.ticks > WAIT_TICKS:
                raise RuntimeError(f"Play In Editor did not start within {WAIT_TICKS} ticks")
            return
        self.world = world
        self.player = adapter.Player(world)
        self.navigator = adapter.UnrealNavigator(world, self.cfg.agent_radius)
        self.capture = adapter.Capture(world, self.cfg.width, self.cfg.height)
        self.body = PawnBody(self.navigator)
        self._calibration = self._calibrate()
        self.step = lambda: next(self._calibration)

    def _calibrate(self):
        """Generator stage: measure the look axis's degrees per unit, X then Y."""
        for axis in (0, 1):
            self.player.press((0,) * len(KEYS), (1.0, 0.0) if axis == 0 else (0.0, 1.0))
            before = self._angles()
            yield
            for _ in range(CALIBRATION_TICKS):
                self._check_step()
                yaw, pitch = self._angles()
                turned = -wrap_deg(yaw - before[0]) if axis == 0 else pitch - before[1]
                if abs(turned) > MIN_GAIN:
                    self.gain[axis] = turned
                    break
                yield
            else:
                raise RuntimeError(
                    f"holding the look axis ({adapter.LOOK_KEY} "
                    f"{'X' if axis == 0 else 'Y'}=1) did not turn the camera: the player's "
                    "mapping context needs Mouse XY 2D-Axis mapped to a look action")
            self.player.release()
            yield
        self.step = self._next_episode
        yield  # never resumed: the next tick goes to the first episode

    def _next_episode(self) -> None:
        if not self.todo:
            self._stop("done", navmesh=self.navigator.stats())
            return
        index = self.todo.pop(0)
        ep = self.episode = _Episode(index, episode_seed(self.cfg, index))
        start_rng, plan_rng, hand_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(ep.seed).spawn(3))
        here = self.navigator.project(self.player.location()[:2])
        lift = 0.0 if here is None else float(self.player.location()[2] - here[2])  # capsule
        spot = self.navigator.project(self.navigator.random_point(start_rng))
        yaw = float(start_rng.uniform(-180.0, 180.0))
        self.player.release()
        self.player.place(spot + np.array([0.0, 0.0, lift + 0.02]), yaw)
        ep.start = [float(v) for v in spot] + [yaw]
        ep.planner_rng, ep.hand_rng = plan_rng, hand_rng
        self.step = self._settle

    def _settle(self) -> None:
        self._check_step()
        ep = self.episode
        ep.settle += 1
        if ep.settle < self.cfg.settle_ticks:
            return
        planner = Planner(self.navigator, ep.planner_rng, self.profile, allow_jump=True)
        self._read_body()
        ep.controller = Controller(self.body, planner, self.profile, ep.hand_rng, self.cfg.fps)
        cfg = self.cfg
        meta = EpisodeMeta(
            episode_id=episode_id(cfg, ep.index), backend="unreal", scene=cfg.scene,
            seed=cfg.seed, fps=cfg.fps, width=cfg.width, height=cfg.height,
            tool_version=__version__,
            video={"codec": "h264", "pix_fmt": "yuv420p", "crf": cfg.crf, "preset": cfg.preset})
        try:
            ep.writer = EpisodeWriter(self.job.out, meta, crf=cfg.crf, preset=cfg.preset,
                                      threads=cfg.encoder_threads)
        except Exception as exc:
            self._episode_failed(exc)
            return
        self.step = self._record
        self._record(check=False)  # frame 0 is the view after the last settling tick

    def _record(self, check: bool = True) -> None:
        if check:
            self._check_step()
        ep = self.episode
        position, yaw, pitch, roll, fov = self.player.view()
        self.body.read(self.player, yaw, pitch)
        dx = 0.0 if ep.frame == 0 else -float(wrap_deg(yaw - ep.last[0]))
        dy = 0.0 if ep.frame == 0 else float(wrap_deg(pitch - ep.last[1]))
        image = self.capture.grab(position, yaw, pitch, roll, fov)
        tick = Tick(keys=ep.held, mouse_dx=dx, mouse_dy=dy, position=position,
                    quat=quat_from_ypr(yaw, pitch, roll), yaw=yaw, pitch=pitch, roll=roll,
                    velocity=self.body.velocity, fov=fov)
        try:
            ep.writer.add_frame(image, tick.row())
        except Exception as exc:
            self._episode_failed(exc)
            return
        ep.keys.append(ep.held)
        ep.mouse.append((dx, dy))
        ep.last = (yaw, pitch)
        ep.frame += 1
        if ep.frame % self.cfg.fps == 0:
            self._emit("frames", episode=ep.writer.meta.episode_id, n=ep.frame)
        if ep.frame == self.cfg.frames:
            self._finish_episode()
            return
        self._decide(ep)

    def _decide(self, ep: _Episode) -> None:
        """The keys and look for the next tick, from the shared controller."""
        c = ep.controller
        c.yaw_u += wrap_deg(self.body.yaw - c.yaw_u)  # the camera, not the intent, is the truth
        keys, mouse_dx, mouse_dy = c.inputs()
        look = (mouse_dx / self.gain[0], mouse_dy / self.gain[1])
        self.player.press(keys, look)
        ep.held = tuple(int(k) for k in keys)

    def _finish_episode(self) -> None:
        ep, cfg = self.episode, self.cfg
        self.player.release()
        writer = ep.writer
        writer.meta.engine = {
            "name": "unreal", "version": adapter.editor_version(), "project": cfg.project,
            "map": cfg.map, "navmesh": self.navigator.stats(),
            "agent": {"profile": self.profile.name, "seed": ep.seed, "start": ep.start[:3],
                      "start_yaw": ep.start[3], "look_gain_deg": list(self.gain),
                      "replans": ep.controller.replans,
                      "activities": dict(sorted(ep.controller.counts.items()))},
            "episode_index": ep.index, "episode_seed": ep.seed, "record_config": cfg.content(),
        }
        writer.meta.settings = {
            "map": cfg.map, "nav_agent_radius": cfg.agent_radius, "sun": adapter.sun(self.world),
            "action_coverage": coverage(count_actions(np.array(ep.keys, dtype=np.uint8),
                                                      np.array(ep.mouse))),
        }
        try:
            path = writer.finish()
        except Exception as exc:
            self._episode_failed(exc)
            return
        self._emit("finished", episode=writer.meta.episode_id, path=str(path))
        self.episode = None
        self.step = self._next_episode

    def _episode_failed(self, exc: Exception) -> None:
        ep = self.episode
        if ep.writer is not None:
            ep.writer.abort()
        self.player.release()
        self._emit("failed", episode=episode_id(self.cfg, ep.index),
                   reason=f"{type(exc).__name__}: {exc}")
        self.episode = None
        self.step = self._next_episode

    # --- reading ---------------------------------------------------------------------------

    def _angles(self) -> tuple[float, float]:
        _, yaw, pitch, _, _ = self.player.view()
        return yaw, pitch

    def _read_body(self) -> None:
        self.body.read(self.player, *self._angles())

    def _check_step(self) -> None:
        """Frame ``i`` must be tick ``i``: the engine has to run on a fixed step of 1 / fps."""
        delta, want = adapter.delta_seconds(self.world), 1.0 / self.cfg.fps
        if not math.isclose(delta, want, rel_tol=STEP_TOLERANCE):
            raise RuntimeError(
                f"the engine ticked {delta:.6f} s, not the fixed step {want:.6f} s: start the "
                f"editor with -UseFixedTimeStep -FPS={self.cfg.fps} (datagen record --backend "
                "unreal does), and keep the world's time dilation at 1")
