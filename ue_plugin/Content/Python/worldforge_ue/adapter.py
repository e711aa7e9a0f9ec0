"""The one module of the plugin that imports ``unreal``: the editor's API as the recorder uses it.

Every ``unreal`` name used here exists in the UE 5.6 Python API with the arguments given
(tests/test_unreal_plugin.py checks them against the ``unreal-stub`` package, the editor's
generated ``unreal.py``), and the tests run this module against a double of that API. Numbers
leave this module in the contract's frame (:mod:`datagen.unreal.convert`), as float64.

- The editor: its world, Play In Editor (PIE) started and stopped, the post-tick callback that
  runs the recorder once per engine tick, keeping the script alive, quitting.
- :class:`Player`: the local player's pawn, read (the final camera view from the player camera
  manager, the pawn's velocity, on the ground or not, crouched or not) and driven through
  Enhanced Input: the ``Input.+key`` / ``Input.-key`` console commands inject keys into the
  player's own mapping context, so the game's movement and look actions respond as to a
  keyboard and mouse (``Mouse2D`` carries the look value each tick).
- :class:`Capture`: a SceneCapture2D placed at the camera's view each tick, rendered into a
  render target and read back as RGB.

:class:`UnrealNavigator` is the behaviour layer's navigator (:mod:`datagen.navigation`) on the
level's own NavMesh: ``find_path`` asks ``NavigationSystemV1.find_path_to_location_synchronously``
and refuses partial paths; ``random_point`` draws points from the run's own generator inside the
NavMeshBoundsVolumes and keeps the first that ``project_point_to_navigation`` puts on the mesh
right below it (rejection sampling: uniform by area, and deterministic for a seed, which Unreal's
``get_random_reachable_point_in_radius`` with its own random stream is not); ``segment_clear``
and ``clamp_step`` (the controller's wall sense) ask ``navigation_raycast`` along the mesh.
Every query is timed; ``stats()`` reports the latencies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import unreal

from datagen.episode import KEYS
from datagen.navigation import Unreachable
from datagen.unreal.convert import location_to_contract, location_to_unreal, rotator_to_contract

# the contract's keys as Unreal's FKey names (InputCoreTypes), in the contract's order
KEY_NAMES = dict(zip(KEYS, ("W", "S", "A", "D", "SpaceBar", "LeftShift", "LeftControl"),
                        strict=True))
LOOK_KEY = "Mouse2D"  # the mouse's 2D axis, what a look action is mapped to
CAPTURE_TAG = "worldforge_capture"

PROJECT_EXTENT_M = (0.05, 0.05, 5.0)  # a drawn point counts when the mesh lies right below it
SNAP_EXTENT_M = (1.0, 1.0, 5.0)  # path ends: the nearest mesh point within a metre


def editor_world() -> unreal.World:
    """The level open in the editor."""
    return unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()


def navmesh_bounds(world: unreal.World) -> np.ndarray:
    """``[2, 3]`` contract-frame corners (min, max) of the union of the level's
    NavMeshBoundsVolumes; RuntimeError when it has none."""
    volumes = unreal.GameplayStatics.get_all_actors_of_class(world, unreal.NavMeshBoundsVolume)
    if not volumes:
        raise RuntimeError("the level has no NavMeshBoundsVolume: add one around the walkable "
                           "area and build paths (Build > Build Paths)")
    corners = []
    for volume in volumes:
        origin, extent = volume.get_actor_bounds(False)
        for sign in (-1.0, 1.0):
            corners.append(location_to_contract(np.array(
                [origin.x + sign * extent.x, origin.y + sign * extent.y,
                 origin.z + sign * extent.z])))
    corners = np.array(corners)
    return np.array([corners.min(axis=0), corners.max(axis=0)])


def project_file() -> str:
    """The open project's ``.uproject``."""
    return unreal.Paths.get_project_file_path()


def saved_dir() -> str:
    """The project's ``Saved`` folder."""
    return unreal.Paths.project_saved_dir()


def level_path() -> str:
    """The open level's package path (``/Game/Maps/City``)."""
    return unreal.SystemLibrary.get_path_name(editor_world()).split(".", 1)[0]


def add_menu_entry(menu: str, name: str, label: str, tool_tip: str, python: str) -> None:
    """An entry called ``label`` in the editor menu ``menu`` that runs ``python``."""
    menus = unreal.ToolMenus.get()
    entry = unreal.ToolMenuEntry(name=name, type=unreal.MultiBlockType.MENU_ENTRY)
    entry.set_label(label)
    entry.set_tool_tip(tool_tip)
    entry.set_string_command(unreal.ToolMenuStringCommandType.PYTHON, "", python)
    menus.extend_menu(menu).add_menu_entry("worldforge", entry)
    menus.refresh_all_widgets()


def editor_version() -> str:
    """The engine's version string."""
    return unreal.SystemLibrary.get_engine_version()


def begin_play() -> None:
    """Ask the editor to start Play In Editor (it starts on a later tick)."""
    unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).editor_request_begin_play()


def end_play() -> None:
    """Ask the editor to stop Play In Editor."""
    unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).editor_request_end_play()


def game_world() -> unreal.World | None:
    """The PIE world while playing, else ``None``."""
    if not unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).is_in_play_in_editor():
        return None
    return unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_game_world()


def delta_seconds(world: unreal.World) -> float:
    """The game time the last tick advanced ``world`` by."""
    return float(unreal.GameplayStatics.get_world_delta_seconds(world))


def on_every_tick(callback: Callable[[float], None]) -> object:
    """Run ``callback(delta_seconds)`` after every engine tick (Slate's post-tick), keeping the
    script alive meanwhile; returns the handle :func:`stop_ticking` takes."""
    unreal.EditorPythonScripting.set_keep_python_script_alive(True)
    return unreal.register_slate_post_tick_callback(callback)


def stop_ticking(handle: object) -> None:
    """Undo :func:`on_every_tick`."""
    unreal.unregister_slate_post_tick_callback(handle)
    unreal.EditorPythonScripting.set_keep_python_script_alive(False)


def quit_editor() -> None:
    """Close the editor (the end of a headless run)."""
    unreal.SystemLibrary.quit_editor()


def sun(world: unreal.World) -> dict | None:
    """The first DirectionalLight's direction (contract yaw and pitch, degrees): the time of day
    as the level sets it, or ``None`` when it has no such light."""
    lights = unreal.GameplayStatics.get_all_actors_of_class(world, unreal.DirectionalLight)
    if not lights:
        return None
    r = lights[0].get_actor_rotation()
    yaw, pitch, _ = rotator_to_contract(r.pitch, r.yaw, r.roll)
    return {"light": lights[0].get_name(), "yaw": float(yaw), "pitch": float(pitch)}


def _rotator(yaw: float, pitch: float) -> unreal.Rotator:
    """Unreal's rotator for contract ``yaw`` and ``pitch`` (no roll)."""
    return unreal.Rotator(roll=0.0, pitch=float(pitch), yaw=float(-yaw))


class Player:
    """Player 0 of ``world``: its pawn read and driven (see the module docstring)."""

    def __init__(self, world: unreal.World) -> None:
        self.world = world
        self.pawn = unreal.GameplayStatics.get_player_pawn(world, 0)
        if self.pawn is None:
            raise RuntimeError("the game has no pawn for player 0: the map's GameMode must spawn "
                               "a pawn (Default Pawn Class) at a PlayerStart")
        self.controller = unreal.GameplayStatics.get_player_controller(world, 0)
        self.camera = unreal.GameplayStatics.get_player_camera_manager(world, 0)
        self.movement = self.pawn.get_movement_component()
        self._held: set[str] = set()
        self._look = (0.0, 0.0)

    def view(self) -> tuple[np.ndarray, float, float, float, float]:
        """The rendered camera: contract position (m), yaw, pitch, roll and horizontal fov
        (degrees)."""
        loc, rot = self.camera.get_camera_location(), self.camera.get_camera_rotation()
        yaw, pitch, roll = rotator_to_contract(rot.pitch, rot.yaw, rot.roll)
        return (_point(loc), float(yaw), float(pitch), float(roll),
                float(self.camera.get_fov_angle()))

    def location(self) -> np.ndarray:
        """The pawn's location (its capsule's centre), contract metres."""
        return _point(self.pawn.get_actor_location())

    def velocity(self) -> np.ndarray:
        """The pawn's velocity, contract m/s."""
        return _point(self.pawn.get_velocity())

    def on_ground(self) -> bool:
        return bool(self.movement.is_moving_on_ground())

    def crouched(self) -> bool:
        return bool(self.movement.is_crouching())

    def place(self, position: np.ndarray, yaw: float) -> None:
        """Teleport the pawn to contract ``position`` (its capsule's centre) facing ``yaw``,
        level."""
        self.pawn.set_actor_location_and_rotation(_vector(position), _rotator(yaw, 0.0), False,
                                                  True)
        self.controller.set_control_rotation(_rotator(yaw, 0.0))

    def press(self, keys: Sequence[int], look: tuple[float, float]) -> None:
        """Hold ``keys`` (0/1 in the contract's order) and the look axis at ``look`` from the
        next tick on; only changes are sent."""
        held = {KEY_NAMES[k] for k, v in zip(KEYS, keys, strict=True) if v}
        for name in sorted(held - self._held):
            self._command(f"Input.+key {name}")
        for name in sorted(self._held - held):
            self._command(f"Input.-key {name}")
        self._held = held
        x, y = (float(v) for v in look)
        if (x, y) != self._look:
            self._command(f"Input.+key {LOOK_KEY} X={x!r} Y={y!r}" if (x, y) != (0.0, 0.0)
                          else f"Input.-key {LOOK_KEY}")
            self._look = (x, y)

    def release(self) -> None:
        """Let go of every key and the mouse."""
        self.press((0,) * len(KEYS), (0.0, 0.0))

    def _command(self, command: str) -> None:
        unreal.SystemLibrary.execute_console_command(self.world, command, self.controller)


def add_capture(world: unreal.World) -> unreal.Actor:
    """A SceneCapture2D in the editor's level, tagged so that its copy in the PIE world can be
    found (:class:`Capture`); remove it with :func:`remove_actor`."""
    actor = unreal.EditorLevelLibrary.spawn_actor_from_class(
        unreal.SceneCapture2D, unreal.Vector(x=0.0, y=0.0, z=0.0))
    actor.set_editor_property("tags", [CAPTURE_TAG])
    return actor


def remove_actor(actor: unreal.Actor) -> None:
    unreal.EditorLevelLibrary.destroy_actor(actor)


class Capture:
    """The tagged SceneCapture2D in the PIE ``world``, rendering ``width`` x ``height`` final
    (tone-mapped, 8-bit) colour on demand. Each frame is read back through
    ``RenderingLibrary.export_render_target``, which writes an 8-bit target as a PNG in C++
    (lossless), into a folder of its own: turning ``read_render_target``'s array of Color
    structs into pixels in Python costs about 90 ms a frame at 640x360 (benchmarks/
    bench_unreal.py), far more than the encode and decode."""

    def __init__(self, world: unreal.World, width: int, height: int) -> None:
        found = unreal.GameplayStatics.get_all_actors_of_class_with_tag(
            world, unreal.SceneCapture2D, CAPTURE_TAG)
        if not found:
            raise RuntimeError("the capture actor did not reach the PIE world")
        self.world, self.width, self.height = world, width, height
        self.actor = found[0]
        self.target = unreal.RenderingLibrary.create_render_target2d(
            world, width, height, unreal.TextureRenderTargetFormat.RTF_RGBA8)
        self.component = self.actor.get_editor_property("capture_component2d")
        self.component.set_editor_property("texture_target", self.target)
        self.component.set_editor_property("capture_source",
                                           unreal.SceneCaptureSource.SCS_FINAL_COLOR_LDR)
        self.component.set_editor_property("capture_every_frame", False)
        self.component.set_editor_property("capture_on_movement", False)
        self.folder = tempfile.mkdtemp(prefix="worldforge-capture-")

    def grab(self, position: np.ndarray, yaw: float, pitch: float, roll: float,
             fov: float) -> np.ndarray:
        """uint8 RGB ``[H, W, 3]`` seen from the given contract view."""
        rotation = unreal.Rotator(roll=float(roll), pitch=float(pitch), yaw=float(-yaw))
        self.actor.set_actor_location_and_rotation(_vector(position), rotation, False, True)
        self.component.set_editor_property("fov_angle", float(fov))
        self.component.capture_scene()
        path = os.path.join(self.folder, "frame.png")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        unreal.RenderingLibrary.export_render_target(self.world, self.target, self.folder,
                                                     "frame.png")
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (self.height, self.width):
            raise RuntimeError(f"the render target could not be read back from {path}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _vector(p: np.ndarray) -> unreal.Vector:
    x, y, z = location_to_unreal(np.asarray(p, dtype=np.float64))
    return unreal.Vector(x=float(x), y=float(y), z=float(z))


def _extent(metres: tuple[float, float, float]) -> unreal.Vector:
    return unreal.Vector(x=metres[0] * 100.0, y=metres[1] * 100.0, z=metres[2] * 100.0)


def _point(v: unreal.Vector) -> np.ndarray:
    return location_to_contract(np.array([v.x, v.y, v.z], dtype=np.float64))


class UnrealNavigator:
    """:class:`datagen.navigation.Navigator` on Unreal's NavMesh (see the module docstring)."""

    def __init__(self, world: unreal.World, agent_radius: float, bounds: np.ndarray | None = None,
                 tries: int = 200) -> None:
        self.world = world
        self.agent_radius = float(agent_radius)  # metres: the NavMesh agent's, for the controller
        self.bounds = navmesh_bounds(world) if bounds is None else np.asarray(bounds, float)
        self.height = float((self.bounds[0, 2] + self.bounds[1, 2]) / 2)  # z of 2D queries
        self.tries = tries
        self.latencies: list[float] = []  # seconds per NavigationSystemV1 call

    @contextlib.contextmanager
    def _timed(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.latencies.append(time.perf_counter() - start)

    def _project(self, xy: np.ndarray, extent: tuple[float, float, float]) -> np.ndarray | None:
        z = (self.bounds[0, 2] + self.bounds[1, 2]) / 2
        reach = _extent((extent[0], extent[1],
                         extent[2] + (self.bounds[1, 2] - self.bounds[0, 2]) / 2))
        with self._timed():
            hit = unreal.NavigationSystemV1.project_point_to_navigation(
                self.world, _vector([xy[0], xy[1], z]), None, None, query_extent=reach)
        return None if hit is None else _point(hit)

    def find_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Unreal's path ``[K, 2]`` from ``start`` to ``goal`` in contract metres."""
        ends = []
        for what, xy in (("start", start), ("goal", goal)):
            snapped = self._project(np.asarray(xy, dtype=np.float64), SNAP_EXTENT_M)
            if snapped is None:
                raise Unreachable(f"the {what} {np.round(xy, 3).tolist()} is not on the NavMesh")
            ends.append(snapped)
        with self._timed():
            path = unreal.NavigationSystemV1.find_path_to_location_synchronously(
                self.world, _vector(ends[0]), _vector(ends[1]))
        if path is None or not path.is_valid() or path.is_partial():
            raise Unreachable(f"no complete path from {np.round(start, 3).tolist()} to "
                              f"{np.round(goal, 3).tolist()} on the NavMesh")
        points = np.array([_point(v)[:2] for v in path.path_points])
        if len(points) < 2:
            raise Unreachable("the NavMesh returned a path of fewer than two points")
        return points

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point on the NavMesh, uniform by area, deterministic for ``rng``'s state."""
        for _ in range(self.tries):
            xy = rng.uniform(self.bounds[0, :2], self.bounds[1, :2])
            hit = self._project(xy, PROJECT_EXTENT_M)
            if hit is not None:
                return hit[:2]
        raise Unreachable(f"no point on the NavMesh in {self.tries} draws inside its bounds; "
                          "are paths built?")

    def project(self, xy: np.ndarray) -> np.ndarray | None:
        """The NavMesh point within a metre of ``xy`` (contract, 3D), or ``None``."""
        return self._project(np.asarray(xy, dtype=np.float64), SNAP_EXTENT_M)

    def _raycast(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        with self._timed():
            hit = unreal.NavigationSystemV1.navigation_raycast(
                self.world, _vector([a[0], a[1], self.height]),
                _vector([b[0], b[1], self.height]))
        return None if hit is None else _point(hit)[:2]

    def segment_clear(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the straight walk from ``a`` to ``b`` stays on the NavMesh."""
        return self._raycast(a, b) is None

    def clamp_step(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """How far along the straight step from ``a`` towards ``b`` stays on the NavMesh."""
        hit = self._raycast(a, b)
        return np.asarray(b, dtype=np.float64) if hit is None else hit

    def stats(self) -> dict:
        """Query count and latency (milliseconds: median, 95th percentile, max)."""
        ms = np.array(self.latencies) * 1000.0
        if not len(ms):
            return {"queries": 0}
        return {"queries": len(ms), "median_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max())}
