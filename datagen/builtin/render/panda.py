"""Draw a :class:`~datagen.builtin.world.World` offscreen with Panda3D, one RGB frame per pose.

No ShowBase: each :class:`Renderer` owns its GraphicsEngine, pipe and offscreen buffer, so one
process can open and close many. Backends: ``"tiny"`` (Panda's software rasteriser
p3tinydisplay, pip-only, deterministic) and ``"gl"`` (p3headlessgl over EGL: Mesa or a GPU).

Static geometry is merged into one Geom per material; movers are nodes placed every frame at the
poses the caller passes (``datagen.builtin.traffic`` simulates them; ``World.mover_poses``
free-runs).
Lighting (ambient + the sun + a fill light) is evaluated per vertex by the renderer itself and
written into the vertex colours, which the texture then modulates: once for static geometry, every
frame for movers in view as they turn (movers outside the view frustum, tested with a
conservative bounding sphere, are not drawn, so their colours wait until they are in view again).
p3tinydisplay has no fog and only a 16-bit depth buffer, so fog is
per-vertex too, the same on both backends: each frame every vertex colour is blended towards
``fog_color / mean(texture)`` by ``1 - exp(-density * distance)``, so a fully fogged surface shows
the fog colour on average (dark textures such as asphalt cannot get brighter than their texel).
"""

from __future__ import annotations

import ctypes.util
import math

import numpy as np
from panda3d.core import Camera as PandaCamera
from panda3d.core import (
    FrameBufferProperties,
    Geom,
    GeomNode,
    GeomTriangles,
    GeomVertexArrayFormat,
    GeomVertexData,
    GeomVertexFormat,
    GraphicsEngine,
    GraphicsOutput,
    GraphicsPipe,
    GraphicsPipeSelection,
    InternalName,
    LColor,
    LMatrix4f,
    NodePath,
    PandaSystem,
    PerspectiveLens,
    SamplerState,
    Texture,
    WindowProperties,
    load_prc_file_data,
)

from datagen.builtin.render import geometry
from datagen.builtin.render.geometry import Mesh
from datagen.builtin.render.textures import material, texture_image
from datagen.builtin.world import World
from datagen.rotation import quat_to_matrix

load_prc_file_data("worldforge", "\n".join([
    "notify-level warning",
    "notify-level-display error",  # "could not open X display", EGL probing chatter
    "notify-level-egldisplay error",
    "notify-level-tinydisplay error",
    "notify-level-device error",  # /dev/input scanning
    "audio-library-name null",
    "sync-video false",
]))

BACKENDS = {"tiny": ("TinyOffscreenGraphicsPipe", "p3tinydisplay"),
            "gl": ("eglGraphicsPipe", "p3headlessgl")}
NEAR, FAR = 0.15, 900.0
SKY_RADIUS = 700.0
FOG_STEP = 0.5  # metres: static fog is evaluated from the centre of the eye's cell
# Panda's camera looks along its +Y with +X right; the contract's body frame is +X forward, +Y
# left. Columns: body coordinates of Panda's camera axes (x right = -Y body, y = +X, z = +Z).
BODY_FROM_PANDA = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


class RendererError(RuntimeError):
    """The requested backend cannot render on this machine (missing libraries, no device)."""


def _format() -> GeomVertexFormat:
    surface = GeomVertexArrayFormat()
    surface.add_column(InternalName.get_vertex(), 3, Geom.NT_float32, Geom.C_point)
    surface.add_column(InternalName.get_texcoord(), 2, Geom.NT_float32, Geom.C_texcoord)
    colour = GeomVertexArrayFormat()
    colour.add_column(InternalName.get_color(), 4, Geom.NT_uint8, Geom.C_color)
    fmt = GeomVertexFormat()
    fmt.add_array(surface)
    fmt.add_array(colour)
    return GeomVertexFormat.register_format(fmt)


_FORMAT = _format()


def _write_colours(node: GeomNode, rgba: bytes) -> None:
    vdata = node.modify_geom(0).modify_vertex_data()
    memoryview(vdata.modify_array(1)).cast("B")[:] = rgba


def _geom_node(name: str, mesh: Mesh) -> GeomNode:
    """A GeomNode holding ``mesh``: array 0 = position + uv, array 1 = RGBA8 colour."""
    vdata = GeomVertexData(name, _FORMAT, Geom.UH_static)
    vdata.unclean_set_num_rows(len(mesh.positions))
    surface = np.ascontiguousarray(np.concatenate([mesh.positions, mesh.uvs], axis=1),
                                   dtype=np.float32)
    memoryview(vdata.modify_array(0)).cast("B")[:] = surface.tobytes()
    rgba = np.clip(np.rint(mesh.colors * 255.0), 0, 255).astype(np.uint8)
    memoryview(vdata.modify_array(1)).cast("B")[:] = rgba.tobytes()
    tris = GeomTriangles(Geom.UH_static)
    tris.set_index_type(Geom.NT_uint32)
    index = tris.modify_vertices()
    index.unclean_set_num_rows(mesh.triangles.size)
    memoryview(index).cast("B")[:] = mesh.triangles.astype(np.uint32).tobytes()
    geom = Geom(vdata)
    geom.add_primitive(tris)
    node = GeomNode(name)
    node.add_geom(geom)
    return node


def _texture(name: str, img: np.ndarray) -> Texture:
    tex = Texture(name)
    tex.setup_2d_texture(img.shape[1], img.shape[0], Texture.T_unsigned_byte, Texture.F_rgb8)
    tex.set_ram_image_as(img.tobytes(), "RGB")
    tex.set_minfilter(SamplerState.FT_linear_mipmap_linear)
    tex.set_magfilter(SamplerState.FT_linear)
    return tex


def _missing_gl_libraries() -> list[str]:
    wanted = {"EGL": "libEGL.so.1", "GL": "libGL.so.1 (or libOpenGL.so.0)"}
    missing = [lib for key, lib in wanted.items() if ctypes.util.find_library(key) is None
               and not (key == "GL" and ctypes.util.find_library("OpenGL"))]
    return missing


def _make_pipe(backend: str) -> GraphicsPipe:
    if backend not in BACKENDS:
        raise ValueError(f"unknown renderer backend {backend!r}; choose from {', '.join(BACKENDS)}")
    pipe_type, module = BACKENDS[backend]
    pipe = GraphicsPipeSelection.get_global_ptr().make_pipe(pipe_type, module)
    if pipe is None or not pipe.is_valid():
        if backend == "gl":
            missing = _missing_gl_libraries()
            what = (f"missing system libraries: {', '.join(missing)}" if missing
                    else "EGL found no usable display or device")
            raise RendererError(
                f"the 'gl' renderer (Panda3D p3headlessgl over EGL) is unavailable: {what}. "
                "Install Mesa's EGL/OpenGL (e.g. apt-get install libegl1 libgl1 "
                "libgl1-mesa-dri) or a GPU driver, or use backend 'tiny'.")
        raise RendererError(f"Panda3D could not load its {module} module ({pipe_type})")
    return pipe


class _Shaded:
    """Geoms whose vertex colours the renderer computes, held as one set of vertex arrays.

    ``owner`` says which mover (or 0 for static geometry) each vertex belongs to; ``nodes``
    map each GeomNode to its rows and owner.
    """

    def __init__(self) -> None:
        self.nodes: list[tuple[GeomNode, slice, int]] = []
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, node: GeomNode, mesh: Mesh, emissive: bool, fog_target: np.ndarray,
            owner: int) -> None:
        start = sum(len(p[0]) for p in self.parts)
        n = len(mesh.positions)
        self.nodes.append((node, slice(start, start + n), owner))
        self.parts.append((mesh.positions, mesh.normals, mesh.colors[:, :3],
                           np.full(n, emissive), np.tile(fog_target, (n, 1)), np.full(n, owner)))

    def freeze(self) -> None:
        """Concatenate the registered rows (once, after the last :meth:`add`)."""
        empty = (np.zeros((0, 3)),) * 3 + (np.zeros(0, bool), np.zeros((0, 3)), np.zeros(0, int))
        (self.positions, self.normals, self.base, self.emissive, self.fog_target,
         self.owner) = (np.concatenate(c) for c in zip(empty, *self.parts, strict=True))

    def write(self, rgb: np.ndarray, owners: np.ndarray | None = None) -> None:
        """Set the vertex colours from ``rgb`` (one row per vertex); with ``owners`` (a boolean
        mask over owners), only the nodes of those owners."""
        data = np.full((len(rgb), 4), 255, dtype=np.uint8)
        data[:, :3] = np.clip(rgb * 255.0 + 0.5, 0, 255)
        for node, rows, owner in self.nodes:
            if owners is None or owners[owner]:
                _write_colours(node, data[rows].tobytes())


class Renderer:
    """Offscreen Panda3D renderer of one World; call :meth:`close` (or use ``with``) when done."""

    def __init__(self, world: World, width: int, height: int, fov: float,
                 backend: str = "tiny") -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
        if not 1.0 <= fov <= 170.0:
            raise ValueError(f"horizontal fov must be in [1, 170] degrees, got {fov}")
        self.world, self.width, self.height, self.backend = world, width, height, backend
        self._pipe = _make_pipe(backend)
        self._engine = GraphicsEngine(self._pipe)
        fbp = FrameBufferProperties()
        fbp.set_rgb_color(True)
        fbp.set_rgba_bits(8, 8, 8, 0)
        fbp.set_depth_bits(24)
        self._buffer = self._engine.make_output(
            self._pipe, "worldforge", 0, fbp, WindowProperties.size(width, height),
            GraphicsPipe.BF_refuse_window, None, None)
        if self._buffer is None:
            self._engine.remove_all_windows()
            missing = _missing_gl_libraries() if backend == "gl" else []
            hint = f"; missing {', '.join(missing)}" if missing else ""
            raise RendererError(f"could not open a {width}x{height} offscreen buffer with "
                                f"backend {backend!r}{hint}")
        self._frame = Texture("frame")
        self._buffer.add_render_texture(self._frame, GraphicsOutput.RTM_copy_ram)
        atm = world.atmosphere
        self._buffer.set_clear_color(LColor(*atm.sky_horizon, 1.0))
        self._root = NodePath("world")
        self._root.set_light_off()
        self._camera = self._make_camera(fov)
        self._buffer.make_display_region().set_camera(self._camera)
        self._lighting()
        self._textures: dict[str, tuple[Texture, np.ndarray]] = {}
        self._draw_order = 0
        self._static, self._moving = _Shaded(), _Shaded()
        try:
            self._sky = self._build_sky()
            self._build_static()
            self._mover_nodes = [self._build_mover(k, m) for k, m in enumerate(world.movers)]
            self._moving.freeze()
            mv = self._moving
            self._mover_radius = np.zeros(len(world.movers))
            np.maximum.at(self._mover_radius, mv.owner, np.linalg.norm(mv.positions, axis=1))
            self._engine.open_windows()
            # The frame layout render(native=True) returns (ffmpeg's names), known once a frame
            # is drawn: p3tinydisplay keeps 32-bit pixels B, G, R, unused (encoded as they
            # are); the GL pipe copies 24-bit B, G, R ones, which ffmpeg converts by a coarser
            # path than RGB.
            self._engine.render_frame()
            self.pix_fmt = "bgr0" if self._frame.get_num_components() == 4 else "rgb24"
        except BaseException:
            self.close()
            raise
        gsg = self._buffer.get_gsg()
        self._renderer_name = ("p3tinydisplay" if backend == "tiny"
                               else gsg.get_driver_renderer() or "OpenGL")

    # --- lighting and fog, per vertex ------------------------------------------------------

    def _lighting(self) -> None:
        atm = self.world.atmosphere
        self._ambient = np.asarray(atm.ambient_color, dtype=np.float64)
        self._to_sun = -np.asarray(atm.sun_direction, dtype=np.float64)
        self._sun = np.asarray(atm.sun_color, dtype=np.float64)
        if self.world.ceiling is None:  # skylight from above
            self._to_fill = np.array([-0.2, -0.1, 1.0]) / np.linalg.norm([0.2, 0.1, 1.0])
            self._fill = 0.25 * np.asarray(atm.sky_zenith, dtype=np.float64)
        else:  # indoors: light bounced off the floor reaches the ceiling
            self._to_fill = np.array([-0.1, -0.2, -1.0]) / np.linalg.norm([0.1, 0.2, 1.0])
            self._fill = 0.45 * self._ambient
        self._fog = float(atm.fog_density)
        self._fog_cell: tuple[int, int, int] | None = None
        self._fog_color = np.asarray(atm.fog_color, dtype=np.float64)

    def _shade(self, normals: np.ndarray, base: np.ndarray, emissive: np.ndarray) -> np.ndarray:
        light = (self._ambient
                 + np.clip(normals @ self._to_sun, 0.0, None)[:, None] * self._sun
                 + np.clip(normals @ self._to_fill, 0.0, None)[:, None] * self._fill)
        return np.clip(np.where(emissive[:, None], base, base * light), 0.0, 1.0)

    def _fogged(self, rgb: np.ndarray, positions: np.ndarray, eye: np.ndarray,
                target: np.ndarray) -> np.ndarray:
        if self._fog <= 0.0:
            return rgb
        f = 1.0 - np.exp(-self._fog * np.linalg.norm(positions - eye, axis=1))
        return rgb + (target - rgb) * f[:, None]

    # --- scene graph ------------------------------------------------------------------------

    def _make_camera(self, fov: float) -> NodePath:
        lens = PerspectiveLens()
        vfov = 2.0 * math.degrees(math.atan(math.tan(math.radians(fov) / 2) * self.height
                                            / self.width))
        lens.set_fov(fov, vfov)
        # inward unit normals of the four side planes of the view frustum, camera axes
        # (x right, y forward, z up): a point is in view when every dot product is >= 0
        th, tv = math.tan(math.radians(fov) / 2), math.tan(math.radians(vfov) / 2)
        self._frustum = np.array([[-1.0, th, 0.0], [1.0, th, 0.0], [0.0, tv, -1.0],
                                  [0.0, tv, 1.0]]) / np.array([[math.hypot(1, th)]] * 2
                                                              + [[math.hypot(1, tv)]] * 2)
        lens.set_near_far(NEAR, FAR)
        cam = PandaCamera("camera")
        cam.set_lens(lens)
        return self._root.attach_new_node(cam)

    def _build_sky(self) -> NodePath:
        atm = self.world.atmosphere
        sky = self._root.attach_new_node("sky")
        dome = sky.attach_new_node(_geom_node("dome", geometry.sky_mesh(atm, SKY_RADIUS)))
        dome.set_bin("background", 0)
        if -atm.sun_direction[2] > -0.05 and self.world.ceiling is None:
            sun = sky.attach_new_node(_geom_node(
                "sun", geometry.sun_mesh(atm, SKY_RADIUS * 0.9, SKY_RADIUS * 0.9 * 0.02)))
            sun.set_bin("background", 1)
        sky.set_depth_write(False)
        sky.set_depth_test(False)
        sky.set_two_sided(True)
        return sky

    def _texture_for(self, name: str) -> tuple[Texture, np.ndarray]:
        if name not in self._textures:
            img = texture_image(name)
            mean = img.reshape(-1, 3).mean(axis=0) / 255.0
            self._textures[name] = (_texture(name, img), mean)
        return self._textures[name]

    def _attach(self, parent: NodePath, pieces: list[tuple[str, Mesh]], shaded: _Shaded,
                owner: int) -> None:
        """One textured node per material under ``parent``, registered in ``shaded``."""
        for name, mesh in geometry.group_by_material(pieces).items():
            node = _geom_node(name, mesh)
            tex, mean = self._texture_for(name)
            path = parent.attach_new_node(node)
            path.set_texture(tex)
            # Panda's default opaque bin sorts by render state, i.e. by object addresses, which
            # differ between processes; coplanar surfaces (paths on lawns, lane marks) then
            # z-fight differently. A fixed bin draws in construction order: same bytes always.
            path.set_bin("fixed", self._draw_order)
            self._draw_order += 1
            target = np.clip(self._fog_color / np.maximum(mean, 1e-3), 0.0, 1.0)
            shaded.add(node, mesh, material(name).emissive, target, owner)

    def _build_static(self) -> None:
        world = self.world
        static = self._root.attach_new_node("static")
        pieces: list[tuple[str, Mesh]] = []
        if world.terrain is not None:
            pieces.append((world.terrain.material, geometry.terrain_mesh(world.terrain)))
        else:
            pieces.append((world.ground_material, geometry.ground_mesh(
                world.bounds, world.ground_material, world.ground_color)))
        for prim in world.primitives:
            pieces.extend(geometry.primitive_meshes(prim))
        self._attach(static, pieces, self._static, 0)
        shaded = self._static
        shaded.freeze()
        self._static_lit = self._shade(shaded.normals, shaded.base, shaded.emissive)
        if self._fog <= 0.0:
            shaded.write(self._static_lit)

    def _build_mover(self, index: int, mover) -> NodePath:
        node = self._root.attach_new_node(f"mover{index}")
        pieces = [piece for part in mover.parts for piece in geometry.primitive_meshes(part)]
        self._attach(node, pieces, self._moving, index)
        return node

    # --- per frame --------------------------------------------------------------------------

    def _place_movers(self, poses: np.ndarray, eye: np.ndarray, axes: np.ndarray) -> None:
        """Move the mover nodes to ``poses`` and re-light those in view of the camera at ``eye``
        (``axes``: its right, forward and up axes as world-frame columns)."""
        if not self._mover_nodes:
            return
        z = np.asarray(self.world.height_at(poses[:, 0], poses[:, 1]), dtype=np.float64)
        for node, (x, y, heading), zk in zip(self._mover_nodes, poses, z, strict=True):
            node.set_pos_hpr(x, y, zk, heading, 0.0, 0.0)
        # bounding sphere (mover origin, radius) against the frustum's side and near planes
        rel = (np.stack([poses[:, 0], poses[:, 1], z], axis=1) - eye) @ axes
        r = self._mover_radius
        in_view = ((rel @ self._frustum.T >= -r[:, None]).all(axis=1)
                   & (rel[:, 1] >= NEAR - r))
        if not in_view.any():
            return
        mv = self._moving
        rows = in_view[mv.owner]
        owner = mv.owner[rows]
        rad = np.radians(poses[owner, 2])
        c, s = np.cos(rad), np.sin(rad)

        def turn(v: np.ndarray) -> np.ndarray:
            return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1], v[:, 2]], 1)
        lit = self._shade(turn(mv.normals[rows]), mv.base[rows], mv.emissive[rows])
        where = turn(mv.positions[rows]) + np.stack([poses[owner, 0], poses[owner, 1],
                                                     z[owner]], 1)
        rgb = np.zeros_like(mv.base)
        rgb[rows] = self._fogged(lit, where, eye, mv.fog_target[rows])
        mv.write(rgb, in_view)

    def _update_static_fog(self, eye: np.ndarray) -> None:
        """Re-fog static geometry when the eye enters a new FOG_STEP cell: the colours are a
        function of that cell alone (deterministic), and unchanged vertex data keeps Panda's
        prepared geometry cached between frames."""
        cell = tuple(int(v) for v in np.floor(eye / FOG_STEP))
        if cell == self._fog_cell:
            return
        self._fog_cell = cell
        centre = (np.asarray(cell, dtype=np.float64) + 0.5) * FOG_STEP
        st = self._static
        st.write(self._fogged(self._static_lit, st.positions, centre, st.fog_target))

    def render(self, position: np.ndarray, quat: np.ndarray,
               movers: np.ndarray | None = None, native: bool = False) -> np.ndarray:
        """RGB frame ``uint8 [H, W, 3]`` (row 0 = top) seen from ``position`` with orientation
        ``quat`` (w, x, y, z; camera-to-world, contract body frame), the world's movers drawn at
        ``movers`` (``[M, 3]``: x, y, heading in degrees; may be omitted when M is 0).

        ``native=True`` returns the frame in the framebuffer's own channel layout
        :attr:`pix_fmt` instead (row 0 = top still), which skips a colour conversion; an
        :class:`~datagen.video.H264Writer` opened with that ``pix_fmt`` encodes it as it is."""
        if self._engine is None:
            raise RuntimeError("render() called on a closed Renderer")
        eye = np.asarray(position, dtype=np.float64)
        q = np.asarray(quat, dtype=np.float64)
        if eye.shape != (3,) or q.shape != (4,):
            raise ValueError(f"position must be [3] and quat [4], got {eye.shape} and {q.shape}")
        if not (np.isfinite(eye).all() and np.isfinite(q).all()) or np.linalg.norm(q) < 1e-9:
            raise ValueError(f"non-finite position/quaternion or zero quaternion: {eye}, {q}")
        count = len(self.world.movers)
        poses = np.zeros((0, 3)) if movers is None else np.asarray(movers, dtype=np.float64)
        if poses.shape != (count, 3) or not np.isfinite(poses).all():
            raise ValueError(f"movers must be finite [{count}, 3] poses (x, y, heading_deg) for "
                             f"the world's {count} movers, got shape {poses.shape}")
        rot = quat_to_matrix(q / np.linalg.norm(q)) @ BODY_FROM_PANDA
        self._camera.set_mat(LMatrix4f(*rot[:, 0], 0.0, *rot[:, 1], 0.0, *rot[:, 2], 0.0,
                                       *eye, 1.0))
        self._sky.set_pos(*eye)
        self._place_movers(poses, eye, rot)
        if self._fog > 0.0:
            self._update_static_fog(eye)
        self._engine.render_frame()
        if native and self.pix_fmt == "bgr0":
            data, channels = self._frame.get_ram_image(), 4
        else:
            data, channels = self._frame.get_ram_image_as("RGB"), 3
        img = np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, channels)
        return np.ascontiguousarray(img[::-1])  # Panda's rows run bottom-up

    def info(self) -> dict:
        return {"name": "panda3d", "version": PandaSystem.get_version_string(),
                "renderer": self._renderer_name}

    def close(self) -> None:
        """Release the buffer and engine; the Renderer cannot render afterwards."""
        if self._engine is not None:
            self._engine.remove_all_windows()
            self._root.remove_node()
            self._engine = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
