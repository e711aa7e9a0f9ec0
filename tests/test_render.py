"""Panda3D renderer: camera convention, determinism, movers, fog, backends, lifecycle; meshes."""

from __future__ import annotations

import ctypes.util

import numpy as np
import pytest
from shapely.geometry import box as shapely_box

from datagen.builtin.render import Renderer, RendererError
from datagen.builtin.render.geometry import primitive_meshes
from datagen.builtin.render.textures import MATERIALS, texture_image
from datagen.builtin.scenes import SCENES, build_world
from datagen.builtin.world import Atmosphere, Box, Cone, Cylinder, Mover, Sphere, World
from datagen.rotation import quat_from_ypr

W, H = 160, 90
EYE = np.array([0.0, 0.0, 1.7])
RED, GREEN = (1.0, 0.05, 0.05), (0.05, 1.0, 0.05)


def _atmosphere(fog: float = 0.0) -> Atmosphere:
    return Atmosphere(time_of_day=12.0, sun_direction=(0.3, 0.2, -0.93), sun_color=(0.8,) * 3,
                      ambient_color=(0.5,) * 3, sky_zenith=(0.1, 0.2, 0.9),
                      sky_horizon=(0.6, 0.7, 0.9), fog_color=(0.9, 0.9, 0.9), fog_density=fog)


def _world(prims, movers=(), fog: float = 0.0) -> World:
    return World(scene="test", seed=0, bounds=(-60, -60, 60, 60),
                 walkable=shapely_box(-60, -60, 60, 60), ground_material="concrete",
                 ground_color=(0.3, 0.3, 0.3), atmosphere=_atmosphere(fog),
                 primitives=list(prims), movers=list(movers))


def _mask(img: np.ndarray, channel: int) -> np.ndarray:
    """Pixels where ``channel`` clearly dominates the other two."""
    c = img.astype(int)
    others = [k for k in range(3) if k != channel]
    return (c[..., channel] > 60) & (c[..., channel] > 2 * c[..., others].max(axis=-1))


def _render(world, yaw=0.0, pitch=0.0, t=0.0, eye=EYE, size=(W, H)):
    with Renderer(world, *size, 90.0) as r:
        return r.render(eye, quat_from_ypr(yaw, pitch), world.mover_poses(t))


@pytest.fixture(scope="module")
def two_boxes() -> World:
    return _world([Box((10.0, 0.0, 0.0), (2.0, 2.0, 3.0), "paint", RED),
                   Box((0.0, 10.0, 0.0), (2.0, 2.0, 3.0), "paint", GREEN)])


def test_frame_is_rgb_uint8_row0_top(two_boxes):
    img = _render(two_boxes)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    # sky above, ground below: the top row is bluer than the bottom row
    assert img[0, :, 2].mean() > img[-1, :, 2].mean() + 40


def test_box_on_plus_x_is_in_the_centre_at_yaw_zero(two_boxes):
    red = _mask(_render(two_boxes), 0)
    assert red[H // 2, W // 2]
    cols = np.nonzero(red.any(axis=0))[0]
    assert abs((cols.min() + cols.max()) / 2 - W / 2) < 3


def test_box_on_plus_y_is_in_the_left_half_and_yaw_90_centres_it():
    world = _world([Box((10.0, 6.0, 0.0), (2.0, 2.0, 3.0), "paint", GREEN)])
    green = _mask(_render(world), 1)
    assert green.any() and np.nonzero(green.any(axis=0))[0].max() < W / 2
    two = _world([Box((0.0, 10.0, 0.0), (2.0, 2.0, 3.0), "paint", GREEN)])
    assert _mask(_render(two, yaw=90.0), 1)[H // 2, W // 2]


def test_pitch_up_shows_sky(two_boxes):
    img = _render(two_boxes, pitch=70.0).astype(float)
    zenith = np.array(_atmosphere().sky_zenith) * 255
    horizon = np.array(_atmosphere().sky_horizon) * 255
    top = img[:5].reshape(-1, 3).mean(axis=0)
    assert np.abs(top - zenith).max() < np.abs(top - horizon).max()
    assert np.abs(top - zenith).max() < 60
    level = _render(two_boxes, pitch=0.0).astype(float)
    assert img[:, :, 2].mean() > level[:, :, 2].mean()  # more sky, bluer frame


def test_same_pose_gives_identical_bytes_across_instances():
    world = next(w for w in (build_world("city", s) for s in range(20)) if w.atmosphere.fog_density)
    eye, q = np.array([3.0, -7.0, 1.7]), quat_from_ypr(33.0, -4.0)
    movers = world.mover_poses(1.5)
    with Renderer(world, W, H, 90.0) as a:
        first = a.render(eye, q, movers)
        a.render(eye + 5.0, quat_from_ypr(120.0, 10.0), world.mover_poses(4.0))  # in between
        again = a.render(eye, q, movers)
    with Renderer(world, W, H, 90.0) as b:
        other = b.render(eye, q, movers)
    assert first.tobytes() == again.tobytes() == other.tobytes()


def test_movers_change_the_image_with_the_camera_still():
    car = Mover(parts=(Box((0.0, 0.0, 0.0), (4.0, 1.8, 1.5), "paint", RED),),
                route=np.array([[8.0, -6.0], [8.0, 6.0]]), speed=3.0)
    still = _world([Box((20.0, 0.0, 0.0), (2.0, 8.0, 4.0), "brick", (0.8, 0.8, 0.8))])
    moving = _world(still.primitives, [car])
    assert _render(still, t=0.0).tobytes() == _render(still, t=2.0).tobytes()
    a, b = _render(moving, t=0.0), _render(moving, t=2.0)
    assert (np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 30).mean() > 0.01


def test_native_layout_is_the_rgb_frame_in_framebuffer_order(two_boxes):
    with Renderer(two_boxes, W, H, 90.0) as r:
        rgb = r.render(EYE, quat_from_ypr(20.0, 0.0))
        native = r.render(EYE, quat_from_ypr(20.0, 0.0), native=True)
    assert r.pix_fmt == "bgr0" and native.shape == (H, W, 4) and native.flags.c_contiguous
    assert np.array_equal(native[..., 2::-1], rgb)


def test_movers_out_of_view_look_right_when_they_come_back():
    """Movers outside the view are not re-lit; once in view again they must look exactly as a
    fresh renderer draws them (headings and fog changed meanwhile)."""
    world = next(w for w in (build_world("city", s) for s in range(20))
                 if w.atmosphere.fog_density and len(w.movers) > 3)
    eye, q = np.array([0.0, 0.0, 1.7]), quat_from_ypr(0.0, -5.0)
    with Renderer(world, W, H, 90.0) as r:
        for t in np.arange(0.0, 6.0, 0.5):  # every mover passes through view and out again
            for yaw in (0.0, 90.0, 180.0, 270.0):
                r.render(eye, quat_from_ypr(yaw, -5.0), world.mover_poses(t))
        r.render(eye, quat_from_ypr(180.0, -5.0), world.mover_poses(9.0))  # look away, move on
        back = r.render(eye, q, world.mover_poses(9.5))
    with Renderer(world, W, H, 90.0) as fresh:
        assert fresh.render(eye, q, world.mover_poses(9.5)).tobytes() == back.tobytes()


@pytest.mark.parametrize("fov", [30.0, 90.0, 150.0, 170.0])
def test_skipping_movers_out_of_view_never_changes_a_frame(fov):
    """Against a renderer that re-lights every mover every frame: random poses with roll, steep
    pitch, the eye next to or inside a mover; the cull must never skip a mover that is drawn."""
    world = next(w for w in (build_world("city", s) for s in range(20))
                 if w.atmosphere.fog_density and len(w.movers) > 3)
    rng = np.random.default_rng(int(fov))
    with Renderer(world, 64, 36, fov) as culled, Renderer(world, 64, 36, fov) as every:
        every._mover_radius[:] = np.inf  # every mover counts as in view
        for k in range(40):
            t = float(rng.uniform(0, 30))
            poses = world.mover_poses(t)
            x, y, _ = poses[k % len(poses)]
            eye = np.array([x, y, 0.0]) + rng.uniform([-3, -3, 0.3], [3, 3, 3])
            q = quat_from_ypr(rng.uniform(-180, 180), rng.uniform(-85, 85), rng.uniform(-60, 60))
            assert culled.render(eye, q, poses).tobytes() == every.render(eye, q, poses).tobytes()


def test_movers_are_drawn_at_the_poses_passed_in():
    car = Mover(parts=(Box((0.0, 0.0, 0.0), (4.0, 1.8, 3.0), "paint", RED),),
                route=np.array([[8.0, -30.0], [8.0, 30.0]]), speed=3.0)
    world = _world([], [car])
    with Renderer(world, W, H, 90.0) as r:
        ahead = r.render(EYE, quat_from_ypr(0.0, 0.0), np.array([[8.0, 0.0, 90.0]]))
        left = r.render(EYE, quat_from_ypr(0.0, 0.0), np.array([[8.0, 5.0, 90.0]]))
        with pytest.raises(ValueError, match=r"\[1, 3\]"):
            r.render(EYE, quat_from_ypr(0.0, 0.0))
        with pytest.raises(ValueError, match="finite"):
            r.render(EYE, quat_from_ypr(0.0, 0.0), np.array([[8.0, np.inf, 0.0]]))
    assert _mask(ahead, 0)[H // 2, W // 2] and not _mask(left, 0)[H // 2, W // 2]
    cols = np.nonzero(_mask(left, 0).any(axis=0))[0]
    assert cols.size and cols.max() < W / 2


def test_fog_fades_distant_objects_towards_the_fog_colour():
    far = [Box((60.0, 0.0, 0.0), (2.0, 20.0, 30.0), "paint", (0.1, 0.1, 0.6))]
    clear, foggy = _render(_world(far)), _render(_world(far, fog=0.05))
    centre = (slice(H // 2 - 3, H // 2 + 3), slice(W // 2 - 3, W // 2 + 3))
    fog = np.array(_atmosphere().fog_color) * 255
    d_clear = np.abs(clear[centre].reshape(-1, 3).mean(0) - fog).max()
    d_foggy = np.abs(foggy[centre].reshape(-1, 3).mean(0) - fog).max()
    assert d_foggy < 0.3 * d_clear


@pytest.mark.parametrize("name", list(SCENES))
def test_each_scene_renders_a_varied_image(name):
    world = build_world(name, 3)
    x0, y0, x1, y1 = world.bounds
    x, y = 0.3 * x0 + 0.7 * x1, 0.5 * (y0 + y1) + 1.0
    eye = np.array([x, y, float(world.height_at(x, y)) + world.eye_height])
    img = _render(world, yaw=200.0, eye=eye)
    assert img.reshape(-1, 3).std(axis=0).max() > 12
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100


def test_renderer_can_be_opened_and_closed_repeatedly(two_boxes):
    frames = []
    for _ in range(4):
        r = Renderer(two_boxes, W, H, 90.0)
        frames.append(r.render(EYE, quat_from_ypr(0.0, 0.0)).tobytes())
        assert r.info()["renderer"] == "p3tinydisplay" and r.info()["name"] == "panda3d"
        r.close()
        with pytest.raises(RuntimeError, match="closed"):
            r.render(EYE, quat_from_ypr(0.0, 0.0))
    assert len(set(frames)) == 1


def test_bad_arguments_raise_clear_errors(two_boxes):
    with pytest.raises(ValueError, match="backend"):
        Renderer(two_boxes, W, H, 90.0, backend="vulkan")
    with pytest.raises(ValueError, match="fov"):
        Renderer(two_boxes, W, H, 0.0)
    with Renderer(two_boxes, W, H, 90.0) as r:
        with pytest.raises(ValueError, match=r"\[3\]"):
            r.render(np.zeros(2), quat_from_ypr(0.0, 0.0))
        with pytest.raises(ValueError, match="non-finite"):
            r.render(np.array([0.0, np.nan, 1.0]), quat_from_ypr(0.0, 0.0))
    with pytest.raises(ValueError, match="unknown material 'chrome'"):
        Renderer(_world([Box((5.0, 0.0, 0.0), (1.0, 1.0, 1.0), "chrome", RED)]), W, H, 90.0)


def test_gl_backend_works_or_says_what_is_missing(two_boxes):
    if ctypes.util.find_library("EGL") is None:
        with pytest.raises(RendererError, match="EGL"):
            Renderer(two_boxes, W, H, 90.0, backend="gl")
        return
    try:
        r = Renderer(two_boxes, W, H, 90.0, backend="gl")
    except RendererError as err:  # EGL present but no usable device
        assert "gl" in str(err) and ("EGL" in str(err) or "buffer" in str(err))
        pytest.skip(f"EGL present but unusable here: {err}")
    with r:
        img = r.render(EYE, quat_from_ypr(0.0, 0.0))
        assert r.info()["renderer"] != "p3tinydisplay"
        # its framebuffer is 24-bit: the native layout is RGB, the same frame
        assert r.pix_fmt == "rgb24"
        assert r.render(EYE, quat_from_ypr(0.0, 0.0), native=True).tobytes() == img.tobytes()
    assert _mask(img, 0)[H // 2, W // 2]


@pytest.mark.parametrize("prim", [
    Box((1.0, 2.0, 0.0), (3.0, 2.0, 25.0), "facade_brick", RED, yaw=30.0),
    Box((0.0, 0.0, 2.5), (2.0, 2.0, 0.1), "plaster", RED),
    Cylinder((0.0, 0.0, 0.0), 0.3, 2.0, "bark", RED),
    Cone((0.0, 0.0, 1.0), 1.5, 3.0, "leaves", RED),
    Sphere((0.0, 0.0, 1.0), 1.0, "rock", RED, scale=(1.5, 1.0, 0.6)),
])
def test_meshes_wind_counter_clockwise_seen_from_outside(prim):
    for _, mesh in primitive_meshes(prim):
        p = mesh.positions[mesh.triangles]
        face_normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        big = np.linalg.norm(face_normal, axis=1) > 1e-9
        vertex_normal = mesh.normals[mesh.triangles].mean(axis=1)
        assert (np.einsum("ij,ij->i", face_normal[big], vertex_normal[big]) > 0).all()
        assert np.allclose(np.linalg.norm(mesh.normals, axis=1), 1.0)


def test_textures_are_deterministic_uint8_tiles():
    for name in MATERIALS:
        img = texture_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] == img.shape[1] and img.shape[0] & (img.shape[0] - 1) == 0
        assert np.array_equal(img, texture_image(name))
