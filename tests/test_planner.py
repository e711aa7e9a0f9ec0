"""The behaviour planner on the real navigation mesh, seen only through the Navigator protocol."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from datagen.navigation import Unreachable
from datagen.navmesh import NavMesh
from datagen.planner import (
    GAITS,
    MODES,
    PROFILES,
    BehaviourProfile,
    LookAround,
    Move,
    Pause,
    Planner,
    TurnInPlace,
)
from datagen.world import Atmosphere, Box, World

ATMOSPHERE = Atmosphere(time_of_day=12.0, sun_direction=(0.0, 0.0, -1.0),
                        sun_color=(1.0, 1.0, 1.0), ambient_color=(0.3, 0.3, 0.3),
                        sky_zenith=(0.2, 0.4, 0.8), sky_horizon=(0.7, 0.8, 0.9),
                        fog_color=(0.7, 0.8, 0.9), fog_density=0.0)
WALL = dict(material="brick", color=(0.6, 0.3, 0.2))


class ProtocolOnly:
    """The real navmesh behind nothing but the Navigator protocol (and a log of the calls)."""

    def __init__(self, navmesh: NavMesh) -> None:
        self._navmesh = navmesh
        self.calls: list[str] = []

    def find_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        self.calls.append("find_path")
        return self._navmesh.find_path(start, goal)

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        self.calls.append("random_point")
        return self._navmesh.random_point(rng)


@pytest.fixture(scope="module")
def navmesh() -> NavMesh:
    """A 30 x 20 m yard: a long wall with two gaps, and a few crates."""
    solids = [Box((15.0, 3.0, 0.0), (0.3, 6.0, 2.5), **WALL),
              Box((15.0, 11.0, 0.0), (0.3, 6.0, 2.5), **WALL),
              Box((15.0, 18.5, 0.0), (0.3, 3.0, 2.5), **WALL),
              Box((6.0, 6.0, 0.0), (2.0, 2.0, 1.0), **WALL, yaw=30.0),
              Box((24.0, 14.0, 0.0), (3.0, 1.0, 1.0), **WALL)]
    world = World("yard", 0, (0, 0, 30, 20), box(0, 0, 30, 20), "ground", (0.4, 0.4, 0.4),
                  ATMOSPHERE, primitives=solids)
    return NavMesh.from_world(world)


def on_mesh(navmesh: NavMesh, path: np.ndarray) -> bool:
    """Every segment of ``path`` lies on the mesh (up to rounding: corners touch its boundary)."""
    outside = shapely.LineString(path).difference(navmesh.region).length
    return all(navmesh.contains(p) for p in path) and outside < 1e-9


def plan(navigator, seed: int, count: int, profile: str = "explore",
         allow_jump: bool = True) -> list:
    """``count`` activities, the agent teleported to the end of every walk."""
    planner = Planner(navigator, np.random.default_rng(seed), PROFILES[profile], allow_jump)
    position = np.array([2.0, 2.0])
    activities = []
    for _ in range(count):
        act = planner.next(position)
        if isinstance(act, Move):
            position = act.path[-1]
        activities.append(act)
    return activities


def fingerprint(activities: list) -> bytes:
    parts = []
    for act in activities:
        if isinstance(act, Move):
            parts += [act.path.tobytes(), act.gait.encode(), act.mode.encode(),
                      np.array(act.jumps).tobytes()]
        else:
            parts.append(repr(act).encode())
    return b"|".join(parts)


def test_same_seed_gives_the_same_plan_through_the_protocol_only(navmesh):
    a, b = ProtocolOnly(navmesh), ProtocolOnly(navmesh)
    first, second = plan(a, seed=5, count=60), plan(b, seed=5, count=60)
    assert fingerprint(first) == fingerprint(second)
    assert a.calls == b.calls and set(a.calls) == {"find_path", "random_point"}
    assert fingerprint(plan(ProtocolOnly(navmesh), seed=6, count=60)) != fingerprint(first)


def test_walks_are_continuous_and_stay_on_the_mesh(navmesh):
    position = np.array([2.0, 2.0])
    planner = Planner(navmesh, np.random.default_rng(1), PROFILES["explore"])
    walks = 0
    for _ in range(80):
        act = planner.next(position)
        if not isinstance(act, Move):
            continue
        walks += 1
        assert np.array_equal(act.path[0], position)
        assert act.gait in GAITS and act.mode in MODES
        assert on_mesh(navmesh, act.path)
        assert all(0.0 <= s <= act.length() for s in act.jumps)
        position = act.path[-1]
    assert walks > 30


def test_jitter_moves_waypoints_but_keeps_paths_valid(navmesh):
    start, goal = np.array([2.0, 10.0]), np.array([28.0, 3.0])
    raw = navmesh.find_path(start, goal)
    still = Planner(navmesh, np.random.default_rng(0),
                    BehaviourProfile(jitter_m=0.0)).jitter(raw)
    shaky = Planner(navmesh, np.random.default_rng(0), BehaviourProfile(jitter_m=1.0)).jitter(raw)
    for path in (still, shaky):
        assert np.array_equal(path[0], start) and np.allclose(path[-1], goal)
        assert on_mesh(navmesh, path)
        assert np.hypot(*np.diff(path, axis=0).T).max() <= 6.0 + 1e-9  # resampled
    # without jitter the resampled path is the original polyline, only with more points
    assert shapely.distance(shapely.LineString(raw), shapely.points(still)).max() < 1e-9
    assert len(still) > len(raw)
    offsets = [min(np.hypot(*(still - p).T)) for p in shaky]
    assert max(offsets) > 0.2  # the jitter really moved points


def test_every_kind_of_activity_appears_with_the_balanced_profile(navmesh):
    activities = plan(navmesh, seed=3, count=300, profile="balanced")
    kinds = {type(a) for a in activities}
    assert kinds == {Move, Pause, TurnInPlace, LookAround}
    moves = [a for a in activities if isinstance(a, Move)]
    assert {m.gait for m in moves} == set(GAITS)
    assert {m.mode for m in moves} == set(MODES)
    assert any(m.jumps for m in moves) and any(a.jump for a in activities if isinstance(a, Pause))
    limit = PROFILES["balanced"].short_leg_m
    assert all(m.length() < limit for m in moves if m.mode != "forward")
    assert not any(m.jumps for m in moves if m.gait == "crouch")


def test_no_jumps_are_planned_when_the_world_forbids_them(navmesh):
    activities = plan(navmesh, seed=3, count=300, profile="balanced", allow_jump=False)
    assert not any(a.jumps for a in activities if isinstance(a, Move))
    assert not any(a.jump for a in activities if isinstance(a, Pause))


def test_planner_gives_up_gracefully_off_the_mesh(navmesh):
    with pytest.raises(Unreachable):
        navmesh.find_path(np.array([15.0, 3.0]), np.array([2.0, 2.0]))  # inside the wall
    planner = Planner(navmesh, np.random.default_rng(0), PROFILES["explore"])
    assert isinstance(planner.leg(np.array([15.0, 3.0])), Pause)


@pytest.mark.parametrize("field, value, message", [
    ("p_pause", 1.5, "probabilities"), ("p_sprint", 0.7, "p_sprint"),
    ("walk_speed", 0.0, "positive"), ("pitch_limit", 95.0, "pitch_limit")])
def test_profile_rejects_impossible_settings(field, value, message):
    changes = {field: value}
    if field == "p_sprint":
        changes["p_crouch"] = 0.5
    with pytest.raises(ValueError, match=message):
        BehaviourProfile(**changes)


def test_named_profiles_differ():
    assert set(PROFILES) >= {"explore", "balanced", "calm"}
    assert all(name == profile.name for name, profile in PROFILES.items())
    assert PROFILES["calm"].max_turn_rate < PROFILES["explore"].max_turn_rate
