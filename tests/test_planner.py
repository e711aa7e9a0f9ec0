"""The behaviour planner on the real navigation mesh, seen only through the Navigator protocol."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from datagen.action_coverage import check_goals, count_actions, coverage
from datagen.builtin.agent import Agent
from datagen.builtin.navmesh import NavMesh
from datagen.builtin.scenes import build_world
from datagen.builtin.world import Atmosphere, Box, World
from datagen.navigation import Unreachable
from datagen.planner import (
    GAITS,
    MODES,
    PROFILES,
    BehaviourProfile,
    LookAround,
    Move,
    Pause,
    Planner,
    Quota,
    TurnInPlace,
)

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
    assert not any(m.jumps for m in moves if m.gait == "crouch")
    assert all(m.mode in ("forward", "forward_left", "forward_right")
               for m in moves if m.gait == "sprint")  # shift sprints only with W


def test_side_and_crouch_legs_are_short_and_forward_legs_are_not(navmesh):
    profile = PROFILES["balanced"]
    moves = [a for a in plan(navmesh, seed=4, count=300, profile="balanced")
             if isinstance(a, Move)]
    assert all(m.length() <= profile.side_leg_m[1] + 1e-9 for m in moves if m.mode != "forward")
    assert all(m.length() <= profile.crouch_leg_m[1] + 1e-9 for m in moves if m.gait == "crouch")
    assert max(m.length() for m in moves if m.mode == "forward") > profile.side_leg_m[1]


def test_no_jumps_are_planned_when_the_world_forbids_them(navmesh):
    activities = plan(navmesh, seed=3, count=300, profile="balanced", allow_jump=False)
    assert not any(a.jumps for a in activities if isinstance(a, Move))
    assert not any(a.jump for a in activities if isinstance(a, Pause))


def test_planner_gives_up_gracefully_off_the_mesh(navmesh):
    with pytest.raises(Unreachable):
        navmesh.find_path(np.array([15.0, 3.0]), np.array([2.0, 2.0]))  # inside the wall
    planner = Planner(navmesh, np.random.default_rng(0), PROFILES["explore"])
    assert isinstance(planner.leg(np.array([15.0, 3.0])), Pause)


def test_a_leg_keeps_clear_of_what_the_avoid_check_vetoes(navmesh):
    """The controller re-plans round a person who blocked the way through ``avoid``: vetoed
    paths are skipped, and without a veto the plan is the same as ever (same draws)."""
    start = np.array([20.0, 5.0])  # east of the wall

    def west(path: np.ndarray) -> bool:  # through a gap in the wall
        return bool((path[:, 0] < 15.0).any())

    planner = Planner(navmesh, np.random.default_rng(2), PROFILES["explore"])
    legs = [planner.leg(start, avoid=west) for _ in range(20)]
    assert all(isinstance(leg, Move) and not west(leg.path) for leg in legs)
    assert isinstance(planner.leg(start, avoid=lambda path: True), Pause)
    plain, vetoed_none = (Planner(ProtocolOnly(navmesh), np.random.default_rng(3),
                                  PROFILES["explore"]) for _ in range(2))
    assert fingerprint([plain.leg(start) for _ in range(10)]) == \
        fingerprint([vetoed_none.leg(start, avoid=lambda path: False) for _ in range(10)])


@pytest.mark.parametrize("field, value, message", [
    ("p_pause", 1.5, "probabilities"), ("p_sprint", 0.7, "p_sprint"),
    ("walk_speed", 0.0, "positive"), ("pitch_limit", 95.0, "pitch_limit"),
    ("p_diagonal", 0.9, "p_strafe \\+ p_backward \\+ p_diagonal"),
    ("side_leg_m", (3.0, 1.0), "ranges"), ("crouch_leg_m", (0.0, 2.0), "ranges"),
    ("give_way_wait_s", (2.0, 1.0), "ranges"), ("give_way_notice_s", 0.0, "positive")])
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


def test_quota_keeps_counts_close_to_their_shares_and_respects_allowed():
    shares = {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05}
    quota, rng = Quota(shares), np.random.default_rng(0)
    draws = [quota.draw(rng) for _ in range(400)]
    for name, p in shares.items():
        assert abs(draws.count(name) - p * 400) <= 2.0, (name, draws.count(name))
    assert draws[:40] != sorted(draws[:40])  # still a random order
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a, b = Quota(shares), Quota(shares)
    assert [a.draw(rng_a) for _ in range(50)] == [b.draw(rng_b) for _ in range(50)]
    limited = {quota.draw(rng, allowed=("c", "d")) for _ in range(100)}
    assert limited == {"c", "d"}


def simulated_mix(profile: str, seeds: tuple[int, ...], seconds: float) -> tuple[dict, np.ndarray]:
    """The action coverage of the agent (no rendering) in the city, pooled over ``seeds``."""
    keys, mouse = [], []
    for seed in seeds:
        world = build_world("city", seed)
        agent = Agent(world, NavMesh.from_world(world), seed=seed, fps=30,
                      profile=PROFILES[profile])
        ticks = [agent.first()] + [agent.step() for _ in range(round(seconds * 30) - 1)]
        keys += [t.keys for t in ticks]
        mouse += [(t.mouse_dx, t.mouse_dy) for t in ticks]
    keys_array = np.array(keys)
    return coverage(count_actions(keys_array, np.array(mouse))), keys_array


def test_balanced_profile_meets_the_coverage_goals_in_the_city():
    cov, _ = simulated_mix("balanced", seeds=(1, 2), seconds=60.0)
    missed = [g.describe() for g in check_goals(cov) if not g.met]
    assert not missed, missed
    assert cov["holds"]["space"]["within_window"] == 1.0  # jumps are taps, not holds
    assert cov["holds"]["w"]["median_frames"] >= 16  # walks are held, not tapped


def test_explore_profile_is_mostly_forward_with_little_crouching():
    cov, _ = simulated_mix("explore", seeds=(3,), seconds=90.0)
    shares = cov["keys"]
    assert shares["ctrl"] < 0.08, shares
    assert shares["w"] > 0.5 and shares["w"] > 4 * max(shares[k] for k in "sad"), shares
    assert min(shares[k] for k in ("s", "a", "d", "space", "shift")) > 0.0, shares
