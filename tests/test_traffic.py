"""Movers that yield: free running when clear, easing to a stop for the agent, never touching it;
the agent refusing to walk into a mover; long city runs; recorded frames never inside a car."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import box

from datagen.builtin.agent import Agent
from datagen.builtin.body import Body
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.record import RecordConfig, episode_seed, record_episode
from datagen.builtin.render import Renderer
from datagen.builtin.scenes import build_world
from datagen.builtin.traffic import DECEL, Traffic
from datagen.builtin.world import Atmosphere, Box, Mover, World
from datagen.planner import PROFILES
from datagen.rotation import quat_from_ypr
from datagen.video import read_frames

FPS = 30
RADIUS = 0.4
ATMOSPHERE = Atmosphere(time_of_day=12.0, sun_direction=(0.3, 0.2, -0.93),
                        sun_color=(0.8, 0.8, 0.8), ambient_color=(0.5, 0.5, 0.5),
                        sky_zenith=(0.1, 0.2, 0.9), sky_horizon=(0.6, 0.7, 0.9),
                        fog_color=(0.9, 0.9, 0.9), fog_density=0.0)
ROAD = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 20.0], [-60.0, 20.0]])  # a long loop


def car(offset: float = 0.0, speed: float = 8.0, route: np.ndarray = ROAD,
        color=(0.1, 0.2, 0.9)) -> Mover:
    return Mover(parts=(Box((0.0, 0.0, 0.0), (4.2, 1.8, 1.5), "paint", color),),
                 route=route, speed=speed, offset=offset)


def world_with(movers, size: float = 70.0) -> World:
    return World("test", 0, (-size, -size, size, size), box(-size, -size, size, size),
                 "concrete", (0.4, 0.4, 0.4), ATMOSPHERE, movers=list(movers))


def front_gap(traffic: Traffic, k: int, xy) -> float:
    return float(traffic.clearance(np.asarray(xy, dtype=np.float64))[k])


def test_movers_run_free_when_the_agent_is_out_of_the_way():
    world = world_with([car(5.0), car(70.0, 6.0)])
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 60.0]))
    for i in range(1, 200):
        traffic.step(np.array([0.0, 60.0]))
        assert np.allclose(traffic.poses(), world.mover_poses(i / FPS), atol=1e-9)


def test_a_car_eases_to_a_stop_before_the_agent_and_resumes_once_clear():
    world = world_with([car(offset=20.0)])  # starts at x = -40 driving towards +x
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 0.0]))
    agent = np.array([0.0, 0.0])
    speeds = [traffic.v[0]]
    for _ in range(300):
        traffic.step(agent)
        speeds.append(traffic.v[0])
    assert speeds[-1] == 0.0
    decel = -np.diff(speeds) * FPS
    assert decel.max() <= DECEL + 1e-6  # a smooth, comfortable stop: it saw the agent in time
    gap = front_gap(traffic, 0, agent)
    assert RADIUS < gap < RADIUS + 3.5
    assert traffic.poses()[0, 0] < 0.0  # still short of the agent
    for _ in range(150):
        traffic.step(np.array([0.0, 8.0]))  # the agent steps off the road
    assert traffic.poses()[0, 0] > 10.0 and traffic.v[0] > 0


def test_a_mover_on_its_way_back_stops_for_the_agent_in_time():
    """A route into a room and out again passes the agent twice: on the way back too the mover
    sees it ahead and eases to a stop short of it (it used to look only at the first stretch of
    route beside the agent, walk on and halt against it at the last moment)."""
    person = Mover(parts=(Box((0.0, 0.0, 0.0), (0.3, 0.46, 1.7), "fabric", (0.3, 0.3, 0.6)),),
                   route=np.array([[-20.0, 0.0], [20.0, 0.0]]), speed=1.2, offset=44.0)
    world = world_with([person])  # on the way back at x = 16, walking towards -x
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 60.0]))
    agent = np.array([10.0, 0.0])
    for _ in range(300):
        traffic.step(agent)
    assert traffic.in_path(0, agent)
    assert traffic.v[0] == 0.0 and traffic.poses()[0, 0] > agent[0]
    assert front_gap(traffic, 0, agent) > RADIUS + 1.5


def test_a_car_halts_rather_than_touch_an_agent_who_steps_right_in_front():
    world = world_with([car(offset=50.0, speed=9.0)])  # x = -10, fast
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 60.0]))
    for _ in range(5):
        traffic.step(np.array([0.0, 60.0]))
    front = traffic.poses()[0, 0] + 2.1
    agent = np.array([front + 0.8, 0.3])  # appears 0.8 m ahead of the bumper
    for _ in range(90):
        traffic.step(agent)
        assert front_gap(traffic, 0, agent) >= RADIUS
    assert traffic.v[0] == 0.0


def test_a_mover_starting_on_the_agent_is_moved_clear_along_its_route():
    world = world_with([car(offset=60.0)])  # centre at the origin
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 0.0]))
    assert front_gap(traffic, 0, [0.0, 0.0]) >= RADIUS
    assert traffic.poses()[0, 0] > 0.0  # pushed ahead, not behind


def test_cars_on_one_route_queue_behind_a_stopped_leader():
    world = world_with([car(offset=40.0), car(offset=25.0, color=(0.9, 0.1, 0.1))])
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 60.0]))
    agent = np.array([0.0, 0.0])
    for _ in range(400):
        traffic.step(agent)
        lead, follow = traffic.poses()[:, 0]
        assert lead - follow >= 4.2  # bumpers never overlap
    assert traffic.v.max() < 1e-6 and lead - follow < 4.2 + 3.0  # a queue, not a gap


def test_the_agent_cannot_walk_into_a_mover_but_its_keys_are_still_logged():
    parked = car(speed=0.0, offset=64.0)  # stands still at (4, 0) facing +x
    world = world_with([parked], size=20.0)
    navmesh = NavMesh.from_world(world)
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([-3.0, 0.0]))
    body = Body(world, navmesh, PROFILES["explore"], np.array([-3.0, 0.0]), 0.0, FPS,
                traffic=traffic)
    for _ in range(120):
        body.apply((1, 0, 0, 0, 0, 0, 0), 0.0, 0.0)  # W held: walk into the car's back
        traffic.step(body.feet[:2])
        assert front_gap(traffic, 0, body.feet[:2]) >= RADIUS
    assert body.feet[0] > 1.0 - RADIUS - 0.2  # it did walk up to the car
    assert np.array_equal(body.velocity, np.zeros(3))  # velocity is the actual motion: none
    body.apply((0, 1, 0, 0, 0, 0, 0), 0.0, 0.0)  # S: stepping away is allowed at once
    body.apply((0, 1, 0, 0, 0, 0, 0), 0.0, 0.0)
    assert body.velocity[0] < 0


def _city_run(seed: int, ticks: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Feet and mover poses of a rendering-free city run, and the smallest clearance seen."""
    world = build_world("city", seed)
    navmesh = NavMesh.from_world(world)
    agent = Agent(world, navmesh, seed=seed, fps=FPS, profile=PROFILES["balanced"])
    ticks_out = [agent.first()] + [agent.step() for _ in range(ticks - 1)]
    feet = np.array([t.position for t in ticks_out])
    poses = np.array([t.movers for t in ticks_out])
    closest = math.inf
    for k, m in enumerate(world.movers):
        x0, x1, y0, y1 = m.extent()
        h = np.radians(poses[:, k, 2])
        d = feet[:, :2] - poses[:, k, :2]
        lx = np.cos(h) * d[:, 0] + np.sin(h) * d[:, 1]
        ly = -np.sin(h) * d[:, 0] + np.cos(h) * d[:, 1]
        ex = np.maximum.reduce([x0 - lx, np.zeros_like(lx), lx - x1])
        ey = np.maximum.reduce([y0 - ly, np.zeros_like(ly), ly - y1])
        closest = min(closest, float(np.hypot(ex, ey).min()))
    return feet, poses, closest


@pytest.mark.parametrize("seed", [5, 2, 1])
def test_in_long_city_runs_the_camera_never_comes_within_the_radius_of_a_mover(seed):
    feet, poses, closest = _city_run(seed, 2400)
    assert closest >= RADIUS - 1e-9
    travelled = np.hypot(*(np.diff(poses[:, :, :2], axis=0)).transpose(2, 0, 1)).sum(axis=0)
    assert (travelled > 20.0).all()  # every mover still gets around: nothing freezes
    assert np.hypot(*(feet[-1, :2] - feet[0, :2])) > 1.0


def test_city_runs_with_traffic_are_deterministic():
    a, b = _city_run(5, 600), _city_run(5, 600)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()


def test_a_car_driving_at_a_standing_camera_never_fills_the_frame():
    bus = Mover(parts=(Box((0.0, 0.0, 0.0), (4.0, 3.0, 3.4), "paint", (0.9, 0.2, 0.1)),),
                route=np.array([[-40.0, 0.0], [40.0, 0.0], [40.0, 30.0], [-40.0, 30.0]]),
                speed=6.0, offset=30.0)
    world = world_with([bus])
    eye, view = np.array([0.0, 0.0, 1.7]), quat_from_ypr(180.0, 0.0)  # facing the bus
    traffic = Traffic(world, FPS, RADIUS, clear_of=eye[:2])
    spread = {"yielding": [], "free": []}
    with Renderer(world, 96, 54, 90.0) as r:
        for i in range(120):
            traffic.step(eye[:2])
            free = world.mover_poses(i / FPS)
            for name, poses in (("yielding", traffic.poses()), ("free", free)):
                img = r.render(eye, view, poses)
                spread[name].append(img.reshape(-1, 3).std(axis=0).max())
    assert min(spread["yielding"]) > 10.0
    assert min(spread["free"]) < 3.0  # without yielding the camera ends up against the bus


def test_recorded_city_frames_are_never_flat(tmp_path):
    cfg = RecordConfig(scene="city", seed=5, profile="balanced", frames=450, width=160, height=90)
    folder = record_episode(cfg, 0, tmp_path)
    frames = np.stack(list(read_frames(folder / "video.mp4")))
    assert len(frames) == 450
    assert frames.reshape(450, -1, 3).std(axis=1).max(axis=1).min() > 10.0
    rows = np.genfromtxt(folder / "actions.csv", delimiter=",", names=True)
    seed = episode_seed(cfg, 0)
    world = build_world("city", seed)
    agent = Agent(world, NavMesh.from_world(world), seed=seed, fps=cfg.fps,
                  profile=PROFILES["balanced"])
    ticks = [agent.first()] + [agent.step() for _ in range(449)]
    assert np.array_equal(rows["pos_x"], [t.position[0] for t in ticks])  # same yielding run


def test_bad_input_is_refused_with_clear_messages():
    world = world_with([car()])
    with pytest.raises(ValueError, match="fps"):
        Traffic(world, 0, RADIUS, clear_of=np.zeros(2))
    with pytest.raises(ValueError, match="route"):
        Traffic(world_with([car(route=np.array([[1.0, 1.0], [1.0, 1.0]]))]), FPS, RADIUS,
                clear_of=np.zeros(2))
    traffic = Traffic(world, FPS, RADIUS, clear_of=np.array([0.0, 60.0]))
    with pytest.raises(ValueError, match="agent_xy"):
        traffic.step(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="part"):
        Mover(parts=(), route=ROAD, speed=1.0).extent()
