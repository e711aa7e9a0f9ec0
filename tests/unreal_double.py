"""A test double of the part of Unreal's Python API the recorder plugin uses.

It behaves like the editor where the plugin depends on it: double-precision ``Vector`` and
``Rotator`` in centimetres and degrees in Unreal's own left-handed frame (``Rotator(roll,
pitch, yaw)``), a NavMesh over a polygon world (the built-in navmesh, built directly in Unreal's
X/Y so nothing is mirrored here), paths that are invalid when there is none, point projection
within a query extent (``None`` when nothing is in reach), the NavMeshBoundsVolume's bounds.

:func:`make_editor` adds a game to play: Play In Editor starts on the tick after it is
requested, with the level's actors (a tagged SceneCapture2D included) copied into a game world
and a character pawn at the player start; ``Input.+key`` / ``Input.-key`` console commands feed
a mapping context like the UE5 first-person template's (W/S/A/D to a move action, SpaceBar to
jump, LeftShift to sprint, LeftControl to crouch, Mouse2D to look, scaled by ``look_scale`` per
unit), the character walks with bounded acceleration and collides with the NavMesh's edges,
the camera manager reports the eye's view, and a scene capture renders through the ``render``
function it is given (the built-in engine's renderer in the tests: real frames). :class:`Editor`
ticks it: the game first, then Slate's post-tick callbacks, as the engine loop does.

tests/test_unreal_plugin.py checks that every class, method and property defined here exists in
the real API (the ``unreal-stub`` package), so the double cannot invent what Unreal lacks; the
public attributes of its objects are declared on their classes (:class:`_Declared` refuses
others), so that check covers them too.
"""

from __future__ import annotations

import math
import os
import re
import types
from collections.abc import Callable

import cv2
import numpy as np
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon

from datagen.builtin.navmesh import NavMesh
from datagen.navigation import Unreachable
from datagen.rotation import quat_from_ypr


class _Declared:
    """Public attributes only as declared in the class's annotations (through its bases)."""

    def __setattr__(self, name: str, value: object) -> None:
        if not name.startswith("_") and not any(
                name in getattr(c, "__annotations__", {}) for c in type(self).__mro__):
            raise AttributeError(f"{type(self).__name__}.{name} is not declared")
        object.__setattr__(self, name, value)


class Vector(_Declared):
    x: float
    y: float
    z: float

    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = float(x), float(y), float(z)


class Rotator(_Declared):
    roll: float
    pitch: float
    yaw: float

    def __init__(self, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> None:
        self.roll, self.pitch, self.yaw = float(roll), float(pitch), float(yaw)


class NavigationPath(_Declared):
    path_points: list

    def __init__(self, points: list[Vector], valid: bool) -> None:
        self.path_points = points
        self._valid = valid

    def is_valid(self) -> bool:
        return self._valid

    def is_partial(self) -> bool:
        return False

    def get_path_length(self) -> float:
        return float(sum(math.dist((a.x, a.y, a.z), (b.x, b.y, b.z))
                         for a, b in zip(self.path_points[:-1], self.path_points[1:],
                                         strict=True)))


class Object(_Declared):
    """Editor properties, by name, as ``get_editor_property`` / ``set_editor_property`` see them."""

    def __init__(self, name: str = "object") -> None:
        self._name = name
        self._properties: dict[str, object] = {}

    def get_name(self) -> str:
        return self._name

    def get_editor_property(self, name: str) -> object:
        return self._properties[name]

    def set_editor_property(self, name: str, value: object, notify_mode: object = None) -> None:
        self._properties[name] = value


class World(Object):
    pass


class Actor(Object):
    def __init__(self, name: str = "actor", location: Vector | None = None,
                 rotation: Rotator | None = None) -> None:
        super().__init__(name)
        self._location = location or Vector()
        self._rotation = rotation or Rotator()
        self._velocity = Vector()
        self._properties["tags"] = []

    def get_actor_location(self) -> Vector:
        return Vector(self._location.x, self._location.y, self._location.z)

    def get_actor_rotation(self) -> Rotator:
        return Rotator(self._rotation.roll, self._rotation.pitch, self._rotation.yaw)

    def get_velocity(self) -> Vector:
        return Vector(self._velocity.x, self._velocity.y, self._velocity.z)

    def set_actor_location_and_rotation(self, new_location: Vector, new_rotation: Rotator,
                                        sweep: bool, teleport: bool) -> None:
        self._location = Vector(new_location.x, new_location.y, new_location.z)
        self._rotation = Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw)

    def get_actor_bounds(self, only_colliding_components: bool,
                         include_from_child_actors: bool = False) -> tuple[Vector, Vector]:
        return self._properties["bounds"]


class NavMeshBoundsVolume(Actor):
    def __init__(self, origin: Vector, extent: Vector) -> None:
        super().__init__("NavMeshBoundsVolume", origin)
        self._properties["bounds"] = (origin, extent)


class DirectionalLight(Actor):
    pass


class TextureRenderTarget2D(Object):
    def __init__(self, width: int, height: int) -> None:
        super().__init__("render_target")
        self._size = (width, height)
        self._pixels: np.ndarray | None = None


class SceneCaptureComponent2D(Object):
    def __init__(self, owner: Actor, render: Callable) -> None:
        super().__init__("capture_component2d")
        self._owner, self._render = owner, render
        self._properties |= {"fov_angle": 90.0, "texture_target": None,
                             "capture_every_frame": True, "capture_on_movement": True,
                             "capture_source": None}

    def capture_scene(self) -> None:
        target = self._properties["texture_target"]
        if target is None:
            return
        target._pixels = self._render(self._owner.get_actor_location(),
                                      self._owner.get_actor_rotation(),
                                      self._properties["fov_angle"], *target._size)


class SceneCapture2D(Actor):
    def __init__(self, location: Vector, render: Callable) -> None:
        super().__init__("SceneCapture2D", location)
        self._render = render
        self._properties["capture_component2d"] = SceneCaptureComponent2D(self, render)


class CharacterMovementComponent(Object):
    def __init__(self, pawn: Character) -> None:
        super().__init__("CharMoveComp")
        self._pawn = pawn

    def is_moving_on_ground(self) -> bool:
        return not self._pawn._falling

    def is_crouching(self) -> bool:
        return self._pawn._crouched


class Character(Actor):
    def __init__(self, location: Vector) -> None:
        super().__init__("Character", location)
        self._movement = CharacterMovementComponent(self)
        self._falling, self._crouched, self._vz = False, False, 0.0

    def get_movement_component(self) -> CharacterMovementComponent:
        return self._movement


class PlayerController(Actor):
    def __init__(self) -> None:
        super().__init__("PlayerController")
        self._control = Rotator()

    def get_control_rotation(self) -> Rotator:
        return Rotator(self._control.roll, self._control.pitch, self._control.yaw)

    def set_control_rotation(self, new_rotation: Rotator) -> None:
        self._control = Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw)


class PlayerCameraManager(Actor):
    def __init__(self, game: _Game) -> None:
        super().__init__("PlayerCameraManager")
        self._game = game

    def get_camera_location(self) -> Vector:
        return self._game.eye()

    def get_camera_rotation(self) -> Rotator:
        c = self._game.controller._control
        return Rotator(0.0, c.pitch, c.yaw)

    def get_fov_angle(self) -> float:
        return self._game.fov


class _Game:
    """Play In Editor: a game world, its player and the character's movement, tick by tick.

    The character, like UE's CharacterMovementComponent with the first-person template's
    numbers: walk 500 cm/s, sprint 900, crouch 250, acceleration 2048 cm/s^2, braking 2048,
    jump 700 cm/s under 1.75 g, capsule half height 96 cm, eyes 64 cm above the capsule's centre
    (40 crouched); the NavMesh's edges stop it as walls would."""

    WALK, SPRINT, CROUCH, ACCEL, JUMP, GRAVITY = 500.0, 900.0, 250.0, 2048.0, 700.0, 1715.0
    HALF_HEIGHT, EYE, CROUCH_EYE = 96.0, 64.0, 40.0

    def __init__(self, level: _Level, dt: Callable[[int], float]) -> None:
        self.level, self.dt_of = level, dt
        self.world = World("PIE_World")
        self.ticks, self.dt = 0, 0.0
        s = level.player_start
        self.pawn = Character(Vector(s.x, s.y, level.floor_z + self.HALF_HEIGHT))
        self.controller = PlayerController()
        self.camera = PlayerCameraManager(self)
        self.fov = 90.0
        self.actors: list[Actor] = [self.pawn, self.controller, self.camera]
        for actor in level.actors:  # the level's actors, duplicated for PIE
            if isinstance(actor, SceneCapture2D):
                copy = SceneCapture2D(actor.get_actor_location(), actor._render)
                copy.set_editor_property("tags", list(actor.get_editor_property("tags")))
                self.actors.append(copy)
            else:
                self.actors.append(actor)
        self.held: dict[str, tuple[float, float]] = {}
        self._was_space = False

    def eye(self) -> Vector:
        p = self.pawn._location
        return Vector(p.x, p.y, p.z + (self.CROUCH_EYE if self.pawn._crouched else self.EYE))

    def command(self, command: str) -> None:
        """The Enhanced Input console commands; anything else is not a command here."""
        m = re.fullmatch(r"Input\.([+-])key (\w+)((?: [XYZ]=\S+)*)", command)
        if not m:
            return
        if m.group(1) == "-":
            self.held.pop(m.group(2), None)
            return
        values = dict(re.findall(r"([XYZ])=(\S+)", m.group(3)))
        self.held[m.group(2)] = (float(values.get("X", 1.0)), float(values.get("Y", 0.0)))

    def step(self) -> None:
        self.ticks += 1
        dt = self.dt = self.dt_of(self.ticks)
        held, pawn, c = self.held, self.pawn, self.controller._control
        look_x, look_y = held.get("Mouse2D", (0.0, 0.0))  # IA_Look: yaw and pitch input
        c.yaw = (c.yaw + look_x * self.level.look_scale[0] + 180.0) % 360.0 - 180.0
        c.pitch = min(89.0, max(-89.0, c.pitch + look_y * self.level.look_scale[1]))
        pawn._rotation = Rotator(0.0, 0.0, c.yaw)
        down = {k for k in ("W", "S", "A", "D", "SpaceBar", "LeftShift", "LeftControl")
                if k in held}
        pawn._crouched = "LeftControl" in down and not pawn._falling
        forward = ("W" in down) - ("S" in down)
        right = ("D" in down) - ("A" in down)
        yaw = math.radians(c.yaw)
        wish = np.array([forward * math.cos(yaw) - right * math.sin(yaw),
                         forward * math.sin(yaw) + right * math.cos(yaw)])
        if np.hypot(*wish) > 1.0:
            wish /= np.hypot(*wish)
        top = self.CROUCH if pawn._crouched else (
            self.SPRINT if "LeftShift" in down else self.WALK)
        v = np.array([pawn._velocity.x, pawn._velocity.y])
        change = wish * top - v
        limit = self.ACCEL * dt
        if np.hypot(*change) > limit:
            change *= limit / np.hypot(*change)
        v = v + change
        old = pawn._location
        a = np.array([old.x, old.y]) * 0.01
        b = self.level.mesh.clamp_step(a, a + v * dt * 0.01)
        space = "SpaceBar" in down
        if space and not self._was_space and not pawn._falling and not pawn._crouched:
            pawn._falling, pawn._vz = True, self.JUMP
        self._was_space = space
        z = old.z
        if pawn._falling:
            pawn._vz -= self.GRAVITY * dt
            z += pawn._vz * dt
            if z <= self.level.floor_z + self.HALF_HEIGHT:
                z, pawn._vz, pawn._falling = self.level.floor_z + self.HALF_HEIGHT, 0.0, False
        new = Vector(b[0] * 100.0, b[1] * 100.0, z)
        pawn._velocity = Vector((new.x - old.x) / dt, (new.y - old.y) / dt, (new.z - old.z) / dt)
        pawn._location = new


class _Level:
    """The editor's level: its NavMesh, bounds volume, actors and what PIE needs."""

    def __init__(self, mesh: NavMesh, floor_z: float, player_start: Vector,
                 look_scale: tuple[float, float]) -> None:
        self.mesh, self.floor_z, self.player_start = mesh, floor_z, player_start
        self.look_scale = look_scale
        self.world = World("EditorWorld")
        self.actors: list[Actor] = []


class Editor:
    """The double's engine loop: :meth:`tick` runs the game (when playing), then the post-tick
    callbacks, as Unreal does once a frame."""

    def __init__(self, level: _Level, dt: Callable[[int], float]) -> None:
        self.level, self.dt = level, dt
        self.game: _Game | None = None
        self.requested: str | None = None
        self.callbacks: dict[int, Callable[[float], None]] = {}
        self.keep_alive = False
        self.quit = False
        self.commands: list[str] = []  # every console command, in order
        self.menus: dict[str, list] = {}  # menu -> (section, entry) added by scripts
        self.saved_dir = "/projects/Double/Saved"

    def tick(self) -> None:
        if self.requested == "begin" and self.game is None:
            self.game = _Game(self.level, self.dt)
        elif self.requested == "end":
            self.game = None
        self.requested = None
        delta = 1.0 / 60.0
        if self.game is not None:
            self.game.step()
            delta = self.game.dt
        for callback in list(self.callbacks.values()):
            callback(delta)

    def run(self, max_ticks: int) -> int:
        """Tick while a script keeps itself alive with a callback, up to ``max_ticks``;
        returns the ticks run."""
        ticks = 0
        while self.keep_alive and self.callbacks and not self.quit and ticks < max_ticks:
            self.tick()
            ticks += 1
        return ticks


def level_from_world(world, origin_cm: tuple[float, float]) -> tuple:
    """A built-in ``World``'s walkable area and obstacles as an Unreal level's, in centimetres
    with Y mirrored, shifted by ``origin_cm``: ``(walkable_cm, obstacles_cm)``."""
    def ue(geometry):
        g = shapely.affinity.scale(geometry, 100.0, -100.0, origin=(0.0, 0.0))
        return shapely.affinity.translate(g, origin_cm[0], origin_cm[1])

    return ue(world.walkable), [ue(o) for o in world.obstacles()]


def make_unreal(walkable_cm: Polygon | MultiPolygon, obstacles_cm: list[Polygon],
                floor_z_cm: float, bounds: tuple[Vector, Vector] | None) -> types.ModuleType:
    """An ``unreal`` module whose editor world has one level: ``walkable_cm`` minus
    ``obstacles_cm`` (Unreal X/Y centimetres) at height ``floor_z_cm``, and a
    NavMeshBoundsVolume of ``bounds`` ``(origin, extent)`` (none when ``None``)."""
    return make_editor(walkable_cm, obstacles_cm, floor_z_cm, bounds)[0]


def make_editor(walkable_cm: Polygon | MultiPolygon, obstacles_cm: list[Polygon],
                floor_z_cm: float, bounds: tuple[Vector, Vector] | None,
                player_start: Vector | None = None, render: Callable | None = None,
                look_scale: tuple[float, float] = (2.5, 1.75),
                dt: Callable[[int], float] = lambda tick: 1.0 / 30.0,
                sun: Rotator | None = None) -> tuple[types.ModuleType, Editor]:
    """:func:`make_unreal`'s module and the :class:`Editor` that ticks it. PIE puts the
    character at ``player_start``; ``render(location, rotation, fov, width, height)`` gives a
    scene capture's RGB pixels; ``dt(tick)`` is the game's step (fixed at 1/30 s unless
    given); ``sun`` places a DirectionalLight."""
    scale = 0.01
    mesh = NavMesh.build(_scaled(walkable_cm, scale), [_scaled(o, scale) for o in obstacles_cm],
                         agent_radius=0.35)
    level = _Level(mesh, floor_z_cm, player_start or Vector(), look_scale)
    editor = Editor(level, dt)
    if bounds is not None:
        level.actors.append(NavMeshBoundsVolume(*bounds))
    if sun is not None:
        level.actors.append(DirectionalLight("Sun", Vector(), sun))
    world = level.world

    def in_world(world_context_object: World) -> list[Actor]:
        if editor.game is not None and world_context_object is editor.game.world:
            return editor.game.actors
        return level.actors

    def on_mesh(xy: np.ndarray, extent_x: float, extent_y: float) -> np.ndarray | None:
        if mesh.contains(xy):
            return xy
        near = mesh.nearest_point(xy)
        return near if abs(near[0] - xy[0]) <= extent_x and abs(near[1] - xy[1]) <= extent_y \
            else None

    class GameplayStatics:
        @classmethod
        def get_all_actors_of_class(cls, world_context_object: World, actor_class: type) -> list:
            return [a for a in in_world(world_context_object) if isinstance(a, actor_class)]

        @classmethod
        def get_all_actors_of_class_with_tag(cls, world_context_object: World,
                                             actor_class: type, tag: str) -> list:
            return [a for a in cls.get_all_actors_of_class(world_context_object, actor_class)
                    if tag in a.get_editor_property("tags")]

        @classmethod
        def _game(cls, world_context_object: World) -> _Game | None:
            game = editor.game
            return game if game is not None and world_context_object is game.world else None

        @classmethod
        def get_player_pawn(cls, world_context_object: World, player_index: int) -> Character:
            game = cls._game(world_context_object)
            return None if game is None or player_index else game.pawn

        @classmethod
        def get_player_controller(cls, world_context_object: World,
                                  player_index: int) -> PlayerController:
            game = cls._game(world_context_object)
            return None if game is None or player_index else game.controller

        @classmethod
        def get_player_camera_manager(cls, world_context_object: World,
                                      player_index: int) -> PlayerCameraManager:
            game = cls._game(world_context_object)
            return None if game is None or player_index else game.camera

        @classmethod
        def get_world_delta_seconds(cls, world_context_object: World) -> float:
            game = cls._game(world_context_object)
            return 0.0 if game is None else game.dt

    class NavigationSystemV1:
        @classmethod
        def project_point_to_navigation(cls, world_context_object: World, point: Vector,
                                        nav_data: object, filter_class: object,
                                        query_extent: Vector = None) -> Vector | None:
            extent = query_extent or Vector()
            if abs(point.z - floor_z_cm) > extent.z:
                return None
            hit = on_mesh(np.array([point.x, point.y]) * scale, extent.x * scale,
                          extent.y * scale)
            return None if hit is None else Vector(hit[0] / scale, hit[1] / scale, floor_z_cm)

        @classmethod
        def find_path_to_location_synchronously(
                cls, world_context_object: World, path_start: Vector, path_end: Vector,
                pathfinding_context: object = None, filter_class: object = None
        ) -> NavigationPath:
            try:
                path = mesh.find_path(np.array([path_start.x, path_start.y]) * scale,
                                      np.array([path_end.x, path_end.y]) * scale)
            except Unreachable:
                return NavigationPath([], valid=False)
            return NavigationPath([Vector(x / scale, y / scale, floor_z_cm) for x, y in path],
                                  valid=True)

        @classmethod
        def navigation_raycast(cls, world_context_object: World, ray_start: Vector,
                               ray_end: Vector, filter_class: object = None,
                               querier: object = None) -> Vector | None:
            a = np.array([ray_start.x, ray_start.y]) * scale
            b = np.array([ray_end.x, ray_end.y]) * scale
            if mesh.segment_clear(a, b):
                return None
            hit = mesh.clamp_step(a, b)
            return Vector(hit[0] / scale, hit[1] / scale, floor_z_cm)

    class LevelEditorSubsystem:
        def editor_request_begin_play(self) -> None:
            editor.requested = "begin"

        def editor_request_end_play(self) -> None:
            editor.requested = "end"

        def is_in_play_in_editor(self) -> bool:
            return editor.game is not None

    class UnrealEditorSubsystem:
        def get_editor_world(self) -> World:
            return world

        def get_game_world(self) -> World | None:
            return None if editor.game is None else editor.game.world

    class SystemLibrary:
        @classmethod
        def get_engine_version(cls) -> str:
            return "5.6.0-double+worldforge-tests"

        @classmethod
        def get_path_name(cls, object: Object) -> str:
            return "/Game/Maps/Double.Double" if object is world else object.get_name()

        @classmethod
        def execute_console_command(cls, world_context_object: World, command: str,
                                    specific_player: object = None) -> None:
            editor.commands.append(command)
            if editor.game is not None and world_context_object is editor.game.world:
                editor.game.command(command)

        @classmethod
        def quit_editor(cls) -> None:
            editor.quit = True

    class EditorPythonScripting:
        @classmethod
        def set_keep_python_script_alive(cls, new_keep_alive: bool) -> None:
            editor.keep_alive = bool(new_keep_alive)

    class EditorLevelLibrary:
        @classmethod
        def spawn_actor_from_class(cls, actor_class: type, location: Vector,
                                   rotation: Rotator = None, transient: bool = False) -> Actor:
            if actor_class is not SceneCapture2D:
                raise NotImplementedError(f"the double spawns SceneCapture2D only, not "
                                          f"{actor_class.__name__}")
            actor = SceneCapture2D(location, render or _no_render)
            level.actors.append(actor)
            return actor

        @classmethod
        def destroy_actor(cls, actor_to_destroy: Actor) -> bool:
            if actor_to_destroy in level.actors:
                level.actors.remove(actor_to_destroy)
                return True
            return False

    class RenderingLibrary:
        @classmethod
        def create_render_target2d(cls, world_context_object: World, width: int = 256,
                                   height: int = 256,
                                   format: object = None) -> TextureRenderTarget2D:
            return TextureRenderTarget2D(width, height)

        @classmethod
        def export_render_target(cls, world_context_object: World,
                                 texture_render_target: TextureRenderTarget2D, file_path: str,
                                 file_name: str) -> None:
            """An 8-bit target as a PNG with alpha, as Unreal writes it."""
            pixels = texture_render_target._pixels
            if pixels is not None:
                bgra = np.dstack([pixels[..., ::-1], np.full(pixels.shape[:2], 255, np.uint8)])
                cv2.imwrite(os.path.join(file_path, file_name), bgra)

    class Paths:
        @classmethod
        def get_project_file_path(cls) -> str:
            return "/projects/Double/Double.uproject"

        @classmethod
        def project_saved_dir(cls) -> str:
            return editor.saved_dir

    class TextureRenderTargetFormat:
        RTF_RGBA8 = "RTF_RGBA8"

    class SceneCaptureSource:
        SCS_FINAL_COLOR_LDR = "SCS_FINAL_COLOR_LDR"

    class MultiBlockType:
        MENU_ENTRY = "MENU_ENTRY"

    class ToolMenuStringCommandType:
        PYTHON = "PYTHON"

    class ToolMenuEntry(_Declared):
        def __init__(self, name: str = "None", owner: object = None, type: object = None) -> None:
            self._entry = {"name": name, "type": type}

        def set_label(self, label: str) -> None:
            self._entry["label"] = label

        def set_tool_tip(self, tool_tip: str) -> None:
            self._entry["tool_tip"] = tool_tip

        def set_string_command(self, type: object, custom_type: str, string: str) -> None:
            self._entry["command"] = (type, string)

    class ToolMenu:
        def __init__(self, name: str) -> None:
            self._name = name

        def add_menu_entry(self, section_name: str, args: ToolMenuEntry) -> None:
            editor.menus.setdefault(self._name, []).append((section_name, args._entry))

    class ToolMenus:
        @classmethod
        def get(cls) -> ToolMenus:
            return cls()

        def extend_menu(self, name: str) -> ToolMenu:
            return ToolMenu(name)

        def refresh_all_widgets(self) -> None:
            pass

    subsystems = {LevelEditorSubsystem: LevelEditorSubsystem(),
                  UnrealEditorSubsystem: UnrealEditorSubsystem()}

    def get_editor_subsystem(subsystem: type) -> object:
        return subsystems.get(subsystem)

    handles = iter(range(1, 1 << 30))

    def register_slate_post_tick_callback(callable: Callable[[float], None]) -> object:
        handle = next(handles)
        editor.callbacks[handle] = callable
        return handle

    def unregister_slate_post_tick_callback(handle: object) -> None:
        editor.callbacks.pop(handle, None)

    module = types.ModuleType("unreal")
    for value in (Vector, Rotator, Object, World, Actor, NavigationPath,
                  NavMeshBoundsVolume, DirectionalLight, TextureRenderTarget2D,
                  SceneCaptureComponent2D, SceneCapture2D, CharacterMovementComponent,
                  Character, PlayerController, PlayerCameraManager, GameplayStatics,
                  NavigationSystemV1, LevelEditorSubsystem, UnrealEditorSubsystem,
                  SystemLibrary, EditorPythonScripting, EditorLevelLibrary, RenderingLibrary,
                  Paths, TextureRenderTargetFormat, SceneCaptureSource, MultiBlockType,
                  ToolMenuStringCommandType, ToolMenuEntry, ToolMenu, ToolMenus,
                  get_editor_subsystem, register_slate_post_tick_callback,
                  unregister_slate_post_tick_callback):
        setattr(module, value.__name__, value)
    return module, editor


class SceneLevel:
    """A built-in scene as an Unreal level for the double: its walkable area mirrored into
    Unreal's frame ``origin_cm`` away, a NavMeshBoundsVolume round it, the player start on its
    mesh, a sun, and captures rendered by the built-in renderer (movers parked out of sight:
    the double has no people)."""

    def __init__(self, scene: str, origin_cm: tuple[float, float], seed: int = 0) -> None:
        from datagen.builtin.scenes import build_world

        self.origin = origin_cm
        self.world = build_world(scene, seed)
        self.walkable, self.obstacles = level_from_world(self.world, origin_cm)
        minx, miny, maxx, maxy = self.walkable.bounds
        self.bounds = (Vector((minx + maxx) / 2, (miny + maxy) / 2, 0.0),
                       Vector((maxx - minx) / 2, (maxy - miny) / 2, 300.0))
        start = NavMesh.from_world(self.world).random_point(np.random.default_rng(seed))
        self.player_start = Vector(start[0] * 100 + origin_cm[0],
                                   -start[1] * 100 + origin_cm[1], 0.0)
        self.away = np.tile([1e5, 1e5, 0.0], (len(self.world.movers), 1))
        self.renderers: dict[tuple[int, int, float], object] = {}

    def render(self, location: Vector, rotation: Rotator, fov: float, width: int,
               height: int) -> np.ndarray:
        return self.renderer(width, height, fov).render(
            *contract_view(location, rotation, self.origin), self.away)

    def renderer(self, width: int, height: int, fov: float):
        from datagen.builtin.render import Renderer

        key = (width, height, fov)
        if key not in self.renderers:
            self.renderers[key] = Renderer(self.world, width, height, fov)
        return self.renderers[key]

    def editor(self, **kwargs) -> tuple[types.ModuleType, Editor]:
        """:func:`make_editor` for this level; ``bounds=None`` leaves the volume out."""
        bounds = kwargs.pop("bounds", self.bounds)
        return make_editor(self.walkable, self.obstacles, 0.0, bounds,
                           player_start=self.player_start, render=self.render,
                           sun=Rotator(0.0, -40.0, 30.0), **kwargs)


def _no_render(location: Vector, rotation: Rotator, fov: float, width: int,
               height: int) -> np.ndarray:
    return np.zeros((height, width, 3), dtype=np.uint8)


def contract_view(location: Vector, rotation: Rotator,
                  origin_cm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A camera's Unreal pose as the built-in world's (the level is that world, mirrored and
    shifted by ``origin_cm``): contract position (m) and quaternion, written out here rather
    than taken from datagen.unreal.convert, so a test compares two derivations."""
    position = np.array([(location.x - origin_cm[0]) / 100.0,
                         -(location.y - origin_cm[1]) / 100.0, location.z / 100.0])
    return position, quat_from_ypr(-rotation.yaw, rotation.pitch, rotation.roll)


def _scaled(geometry: Polygon | MultiPolygon, scale: float) -> Polygon | MultiPolygon:
    return shapely.affinity.scale(geometry, scale, scale, origin=(0.0, 0.0))
