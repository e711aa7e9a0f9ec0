"""Navigation mesh: paths, reachability, sampling, collision steps, determinism; the plan plot."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from datagen.builtin.navmesh import ARC_SEGMENTS, NavMesh
from datagen.builtin.plan_plot import plot_plan
from datagen.builtin.world import Atmosphere, Box, Cone, Cylinder, Terrain, World
from datagen.navigation import Unreachable

R = 0.4
TOL = 1e-6

ATMOSPHERE = Atmosphere(time_of_day=12.0, sun_direction=(0.0, 0.0, -1.0), sun_color=(1, 1, 1),
                        ambient_color=(0.3, 0.3, 0.3), sky_zenith=(0.2, 0.4, 0.8),
                        sky_horizon=(0.7, 0.8, 0.9), fog_color=(0.8, 0.8, 0.8), fog_density=0.0)


def make_world(size: float, boxes: list[Box], terrain: Terrain | None = None,
               extra: tuple = ()) -> World:
    return World(scene="test", seed=0, bounds=(0.0, 0.0, size, size),
                 walkable=box(0, 0, size, size), ground_material="asphalt",
                 ground_color=(0.4, 0.4, 0.4), atmosphere=ATMOSPHERE,
                 primitives=[*boxes, *extra], terrain=terrain)


def building(x: float, y: float, sx: float, sy: float, yaw: float = 0.0) -> Box:
    return Box(base=(x, y, 0.0), size=(sx, sy, 10.0), material="concrete", color=(0.6, 0.6, 0.6),
               yaw=yaw)


@pytest.fixture(scope="module")
def city() -> World:
    """100 m x 100 m, a 6 x 6 grid of 8 m buildings (every other one turned 20 degrees)."""
    boxes = [building(9 + 15 * i, 9 + 15 * j, 8, 8, yaw=20.0 * ((i + j) % 2))
             for i in range(6) for j in range(6)]
    return make_world(100.0, boxes)


@pytest.fixture(scope="module")
def city_mesh(city: World) -> NavMesh:
    return NavMesh.from_world(city, R)


def length(path: np.ndarray) -> float:
    return float(np.hypot(*np.diff(path[:, :2], axis=0).T).sum())


def assert_valid_path(mesh: NavMesh, obstacles: list[Polygon], path: np.ndarray,
                      start, goal) -> None:
    assert path.dtype == np.float64 and path.ndim == 2 and path.shape[1] == 2
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], goal)
    line = shapely.LineString(path)
    assert shapely.covers(mesh.region.buffer(TOL), line)
    assert line.distance(shapely.unary_union(obstacles)) >= R - TOL


def test_city_paths_are_on_mesh_clear_of_obstacles_and_short(city, city_mesh):
    rng = np.random.default_rng(3)
    obstacles = city.obstacles()
    for _ in range(150):
        a, b = city_mesh.random_point(rng), city_mesh.random_point(rng)
        path = city_mesh.find_path(a, b)
        assert_valid_path(city_mesh, obstacles, path, a, b)
        straight = float(np.hypot(*(b - a)))
        if straight > 30:
            assert length(path) < 1.5 * straight



@pytest.fixture(scope="module")
def clutter_mesh() -> NavMesh:
    """40 m x 40 m of turned, partly overlapping boxes and poles: many sharp reflex corners."""
    rng = np.random.default_rng(4)
    boxes = [building(*rng.uniform(3, 37, 2), *rng.uniform(0.5, 4, 2), yaw=rng.uniform(0, 90))
             for _ in range(30)]
    poles = tuple(Cylinder((*rng.uniform(3, 37, 2), 0.0), float(rng.uniform(0.1, 0.5)), 3.0,
                           "metal", (0.5, 0.5, 0.5)) for _ in range(15))
    return NavMesh.from_world(make_world(40.0, boxes, extra=poles), R)


def near_corner(mesh: NavMesh, rng: np.random.Generator) -> np.ndarray:
    """A navigable point on, or from 1e-13 m to 1 cm off, a boundary vertex of the mesh."""
    corners = shapely.get_coordinates(mesh.region.boundary)
    while True:
        v = corners[rng.integers(len(corners))]
        p = v + rng.normal(0.0, 1.0, 2) * 10.0 ** rng.uniform(-13, -2) * (rng.random() < 0.8)
        if mesh.contains(p):
            return p


def query_points(mesh: NavMesh, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    return [near_corner(mesh, rng) if rng.random() < 0.6 else mesh.random_point(rng)
            for _ in range(count)]


def test_every_leg_of_a_path_passes_segment_clear_and_clamp_step(clutter_mesh):
    mesh = clutter_mesh
    rng = np.random.default_rng(8)
    points = query_points(mesh, rng, 1200)
    legs = 0
    for a, b in zip(points[::2], points[1::2], strict=True):
        try:
            path = mesh.find_path(a, b)
        except Unreachable:
            continue
        np.testing.assert_array_equal(path[0], a)
        np.testing.assert_array_equal(path[-1], b)
        assert (np.diff(path, axis=0) != 0).any(axis=1).all(), f"repeated point in {path}"
        for p, q in zip(path[:-1], path[1:], strict=True):
            assert mesh.segment_clear(p, q), f"leg {p} -> {q} of the path {a} -> {b}"
            np.testing.assert_array_equal(mesh.clamp_step(p, q), q)  # the agent is never stopped
            assert mesh.contains(p + 0.5 * (q - p))
            legs += 1
    assert legs > 1000  # most pairs are connected, and most paths turn at corners


def test_segment_clear_is_exactly_when_clamp_step_moves_all_the_way(clutter_mesh):
    mesh = clutter_mesh
    rng = np.random.default_rng(12)
    clear = 0
    for p in query_points(mesh, rng, 1500):
        q = p + rng.normal(0.0, 1.0, 2)
        r = mesh.clamp_step(p, q)
        assert mesh.contains(r)
        assert mesh.segment_clear(p, q) == bool(np.array_equal(r, q))
        clear += mesh.segment_clear(p, q)
    assert 300 < clear < 1200  # both outcomes are exercised


def test_path_from_a_corner_does_not_repeat_it():
    world = make_world(40.0, [building(20, 20, 4, 4)])
    mesh = NavMesh.from_world(world, R)
    corners = shapely.get_coordinates(mesh.region.interiors[0])[:-1]
    for start in corners:  # from each corner round the box to the far side of it
        goal = 20.0 + 2 * (20.0 - start)
        path = mesh.find_path(start, goal)
        np.testing.assert_array_equal(path[0], start)
        assert len(path) >= 3 and (np.diff(path, axis=0) != 0).any(axis=1).all()
        assert all(mesh.segment_clear(p, q) for p, q in zip(path[:-1], path[1:], strict=True))


def test_start_equal_to_goal_is_a_one_point_path(clutter_mesh):
    mesh = clutter_mesh
    rng = np.random.default_rng(6)
    for p in query_points(mesh, rng, 20):
        path = mesh.find_path(p, p.copy())
        assert path.shape == (1, 2) and path.dtype == np.float64
        np.testing.assert_array_equal(path[0], p)
    with pytest.raises(Unreachable, match="outside the walkable area"):
        mesh.find_path([-5.0, -5.0], [-5.0, -5.0])


def shortest_by_visibility(mesh: NavMesh, a: np.ndarray, b: np.ndarray) -> float:
    """True shortest path length: Dijkstra over the mesh vertices that see each other."""
    pts = [tuple(a), tuple(b), *map(tuple, np.unique(mesh.triangles.reshape(-1, 2), axis=0))]
    region = mesh.region.buffer(1e-7)
    shapely.prepare(region)
    dist = [math.inf] * len(pts)
    dist[0] = 0.0
    heap = [(0.0, 0)]
    while heap:
        d, i = heapq.heappop(heap)
        if i == 1:
            return d
        if d > dist[i]:
            continue
        seen = shapely.covers(region, shapely.linestrings([[pts[i], q] for q in pts]))
        for j in np.flatnonzero(seen):
            nd = d + math.dist(pts[i], pts[j])
            if nd < dist[j]:
                dist[j] = nd
                heapq.heappush(heap, (nd, int(j)))
    raise AssertionError("goal not reached")


def test_paths_are_close_to_the_true_shortest_path():
    world = make_world(40.0, [building(7 + 12 * i, 7 + 12 * j, 6, 6)
                              for i in range(3) for j in range(3)])
    mesh = NavMesh.from_world(world, R)
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(25):
        a, b = mesh.random_point(rng), mesh.random_point(rng)
        ratios.append(length(mesh.find_path(a, b)) / shortest_by_visibility(mesh, a, b))
    assert min(ratios) > 1 - 1e-9  # never shorter than possible: the path is really navigable
    assert np.mean(ratios) < 1.03
    assert max(ratios) < 1.25


def test_path_around_one_box_matches_the_analytic_length():
    world = make_world(40.0, [building(20, 20, 4, 4)])
    mesh = NavMesh.from_world(world, R)
    start, goal = np.array([14.0, 20.0]), np.array([26.0, 20.0])
    path = mesh.find_path(start, goal)
    assert_valid_path(mesh, world.obstacles(), path, start, goal)
    # Tangent from the start to the circle of radius R round the corner (18, 22), the arc to the
    # top of that circle, along the top side, and the mirror image down to the goal.
    d = math.dist(start, (18.0, 22.0))
    to_start = math.atan2(20.0 - 22.0, 14.0 - 18.0) % (2 * math.pi)
    arc = to_start - math.acos(R / d) - math.pi / 2
    analytic = 2 * (math.sqrt(d * d - R * R) + R * arc) + 4.0
    assert length(path) == pytest.approx(analytic, rel=0.02)
    assert length(path) >= analytic - TOL


def test_clear_line_gives_exactly_the_straight_segment(city_mesh):
    start, goal = np.array([2.0, 3.0]), np.array([97.0, 3.5])  # along the bottom street
    path = city_mesh.find_path(start, goal)
    np.testing.assert_array_equal(path, [start, goal])
    assert city_mesh.segment_clear(start, goal)
    assert not city_mesh.segment_clear(start, [9.0, 9.0])  # into a building


def room_with_door(door: bool) -> World:
    """20 m x 10 m room cut at x = 10 by a 0.2 m wall, with a 2 m doorway at y 4..6 if ``door``."""
    if door:
        walls = [Box((10.0, 2.0, 0.0), (0.2, 4.0, 3.0), "plaster", (1, 1, 1)),
                 Box((10.0, 8.0, 0.0), (0.2, 4.0, 3.0), "plaster", (1, 1, 1))]
    else:
        walls = [Box((10.0, 5.0, 0.0), (0.2, 10.0, 3.0), "plaster", (1, 1, 1))]
    world = make_world(20.0, walls)
    world.walkable = box(0, 0, 20, 10)
    return world


def test_path_goes_through_the_doorway():
    world = room_with_door(door=True)
    mesh = NavMesh.from_world(world, R)
    start, goal = np.array([3.0, 1.0]), np.array([17.0, 9.0])
    path = mesh.find_path(start, goal)
    assert_valid_path(mesh, world.obstacles(), path, start, goal)
    crossing = shapely.LineString(path).intersection(shapely.LineString([(10, 0), (10, 10)]))
    assert 4.0 + R - TOL <= crossing.y <= 6.0 - R + TOL
    assert mesh.stats()["components"] == 1


def test_unreachable_goals_name_the_point_and_the_reason():
    world = room_with_door(door=False)
    mesh = NavMesh.from_world(world, R)
    start = np.array([3.0, 5.0])
    with pytest.raises(Unreachable, match=r"goal \(17\.000, 5\.000\).*separate parts"):
        mesh.find_path(start, [17.0, 5.0])
    with pytest.raises(Unreachable, match=r"goal \(10\.000, 5\.000\) is inside an obstacle"):
        mesh.find_path(start, [10.0, 5.0])
    with pytest.raises(Unreachable, match=r"goal \(25\.000, 5\.000\) is outside the walkable"):
        mesh.find_path(start, [25.0, 5.0])
    with pytest.raises(Unreachable, match=r"start \(9\.800, 5\.000\) is within the agent radius"):
        mesh.find_path([9.8, 5.0], start)
    assert mesh.stats()["components"] == 2


def test_random_points_are_uniform_deterministic_and_respect_components():
    mesh = NavMesh.build(box(0, 0, 20, 20), [], R)
    rng1, rng2 = np.random.default_rng(11), np.random.default_rng(11)
    np.testing.assert_array_equal([mesh.random_point(rng1) for _ in range(50)],
                                  [mesh.random_point(rng2) for _ in range(50)])
    rng = np.random.default_rng(5)
    pts = np.array([mesh.random_point(rng) for _ in range(4000)])
    assert all(mesh.contains(p) for p in pts)
    quadrants = np.bincount((pts[:, 0] > 10) * 2 + (pts[:, 1] > 10), minlength=4)
    assert quadrants.min() > 900 and quadrants.max() < 1100  # 1000 each expected, sd ~27

    split = NavMesh.from_world(room_with_door(door=False), R)
    rng = np.random.default_rng(2)
    left = np.array([split.random_point(rng, reachable_from=(3.0, 5.0)) for _ in range(200)])
    assert (left[:, 0] < 10).all()
    for p in left[:20]:
        split.find_path((3.0, 5.0), p)  # reachable by construction: never raises


def test_clamp_step_never_leaves_the_region(city_mesh):
    rng = np.random.default_rng(7)
    region = city_mesh.region.buffer(TOL)
    for _ in range(2000):
        p = city_mesh.random_point(rng)
        q = p + rng.normal(0.0, 1.5, 2)
        r = city_mesh.clamp_step(p, q)
        assert city_mesh.contains(r)
        assert shapely.covers(region, shapely.Point(r))
        if city_mesh.segment_clear(p, q):
            np.testing.assert_array_equal(r, q)
        else:
            assert np.hypot(*(r - p)) <= np.hypot(*(q - p)) + TOL


def test_clamp_step_slides_along_a_wall():
    mesh = NavMesh.build(box(0, 0, 20, 10), [], R)
    r = mesh.clamp_step([19.0, 5.0], [21.0, 6.0])  # diagonally into the right wall
    assert 19.5 < r[0] < 20.0 - R
    assert r[1] == pytest.approx(6.0, abs=1e-6)
    with pytest.raises(ValueError, match="not on the navigation mesh"):
        mesh.clamp_step([30.0, 5.0], [31.0, 5.0])


def test_nearest_point_contains_and_height():
    boxes = [building(10, 10, 4, 4)]
    heights = np.add.outer(np.arange(5.0), np.arange(5.0))  # z = i + j on a 5 m grid
    terrain = Terrain(origin=(0.0, 0.0), cell=5.0, heights=heights, material="grass",
                      color=(0.2, 0.6, 0.2))
    world = make_world(20.0, boxes, terrain)
    mesh = NavMesh.from_world(world, R)
    inside = mesh.nearest_point([10.0, 11.9])  # inside the building, near its top side
    assert mesh.contains(inside)
    assert 12.0 + R - TOL <= inside[1] < 12.0 + R + 0.05
    np.testing.assert_array_equal(mesh.nearest_point([3.0, 4.0]), [3.0, 4.0])
    assert not mesh.contains([10.0, 10.0]) and mesh.contains([3.0, 4.0])
    assert mesh.height([3.0, 4.0]) == pytest.approx(world.height_at(3.0, 4.0))
    assert mesh.height([7.5, 2.5]) == pytest.approx(1.5 + 0.5)
    assert NavMesh.build(box(0, 0, 5, 5), []).height([1.0, 1.0]) == 0.0


def test_only_solid_primitives_block():
    crown = Cone((5.0, 5.0, 3.0), 2.0, 3.0, "leaves", (0, 1, 0))  # Cone is not solid
    mesh = NavMesh.from_world(make_world(10.0, [], extra=(crown,)), R)
    assert mesh.contains([5.0, 5.0])
    stats = mesh.stats()
    assert stats["agent_radius"] == R and stats["components"] == 1
    grow = R / math.cos(math.pi / (4 * ARC_SEGMENTS))  # the walkable square eroded by it
    assert stats["area"] == pytest.approx((10 - 2 * grow) ** 2)


def test_same_input_gives_identical_mesh_and_paths(city):
    one, two = NavMesh.from_world(city, R), NavMesh.from_world(city, R)
    np.testing.assert_array_equal(one.triangles, two.triangles)
    rng1, rng2 = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(20):
        a1, b1 = one.random_point(rng1), one.random_point(rng1)
        a2, b2 = two.random_point(rng2), two.random_point(rng2)
        np.testing.assert_array_equal(one.find_path(a1, b1), two.find_path(a2, b2))


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="walkable must be"):
        NavMesh.build(shapely.Point(0, 0), [])
    with pytest.raises(ValueError, match="agent_radius"):
        NavMesh.build(box(0, 0, 5, 5), [], agent_radius=-1.0)
    with pytest.raises(ValueError, match="nothing is navigable"):
        NavMesh.build(box(0, 0, 5, 5), [box(-1, -1, 6, 6)])
    with pytest.raises(ValueError, match="nothing is navigable"):
        NavMesh.build(box(0, 0, 0.6, 5), [])  # narrower than the agent
    with pytest.raises(ValueError, match="obstacle 0"):
        NavMesh.build(box(0, 0, 5, 5), [shapely.Point(1, 1)])
    with pytest.raises(ValueError, match="expected a point"):
        NavMesh.build(box(0, 0, 5, 5), []).find_path([1.0, 1.0, 1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match=r"point \(nan, 1.0\) is not finite"):
        NavMesh.build(box(0, 0, 5, 5), []).find_path([math.nan, 1.0], [2.0, 2.0])


def test_plot_plan_writes_a_png(tmp_path, city, city_mesh):
    rng = np.random.default_rng(0)
    tracks = [city_mesh.find_path(city_mesh.random_point(rng), city_mesh.random_point(rng))
              for _ in range(3)]
    tracks.append(np.column_stack([tracks[0], np.zeros(len(tracks[0]))]))  # [K, 3] works too
    out = plot_plan(city, city_mesh, tracks, tmp_path / "plans" / "city.png", title="city")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["city.png"]  # no temporary left
    with pytest.raises(ValueError, match="trajectory 0"):
        plot_plan(city, city_mesh, [np.zeros((3, 4))], tmp_path / "bad.png")
