"""Scene generators: registry, determinism per seed, variation across seeds, layout invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString

from datagen.builtin.render.textures import MATERIALS
from datagen.builtin.scenes import SCENES, build_world
from datagen.builtin.scenes.rooms import LINTEL
from datagen.builtin.world import Box, Cylinder, Sphere, World

NAMES = ["city", "park", "hills", "rooms"]


def _prim_key(p) -> tuple:
    return (type(p).__name__, repr(p))


def _summary(world: World) -> tuple:
    movers = [(repr(m.parts), m.route.tobytes(), m.speed, m.offset) for m in world.movers]
    terrain = None if world.terrain is None else world.terrain.heights.tobytes()
    return ([_prim_key(p) for p in world.primitives], movers, terrain, world.bounds,
            world.walkable.wkb, repr(world.atmosphere), json.dumps(world.settings))


def _materials(world: World) -> set[str]:
    names = {p.material for p in world.primitives}
    names |= {p.material for m in world.movers for p in m.parts}
    names.add(world.ground_material)
    if world.terrain is not None:
        names.add(world.terrain.material)
    return names


def test_registry_lists_the_four_scenes_in_order_with_one_line_descriptions():
    assert list(SCENES) == NAMES
    for name, info in SCENES.items():
        assert info.name == name
        assert info.description and "\n" not in info.description


def test_unknown_scene_names_the_known_ones():
    with pytest.raises(ValueError, match="city, park, hills, rooms"):
        build_world("moon", 0)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_world(name):
    assert _summary(build_world(name, 7)) == _summary(build_world(name, 7))


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_differ_in_layout_and_settings(name):
    a, b = build_world(name, 1), build_world(name, 2)
    assert [_prim_key(p) for p in a.primitives] != [_prim_key(p) for p in b.primitives]
    assert a.settings != b.settings
    assert a.atmosphere != b.atmosphere


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 3])
def test_layout_invariants(name, seed):
    world = build_world(name, seed)
    assert world.scene == name and world.seed == seed
    area = world.bounds_polygon().buffer(1e-6)
    solids = [p for p in world.primitives if p.solid]
    assert solids, "a scene without obstacles"
    for p in solids:
        assert area.contains(p.footprint()), f"solid {p} leaves the bounds"
    obstacles = shapely.union_all(world.obstacles())
    assert world.movers, "every scene has moving things"
    for m in world.movers:
        assert m.route.ndim == 2 and m.route.shape[1] == 2 and len(m.route) >= 2
        assert m.speed > 0
        loop = LineString(np.vstack([m.route, m.route[:1]]))
        assert area.contains(loop), "mover route leaves the bounds"
        assert not loop.intersects(obstacles), f"a {name} mover walks through a solid"
    assert not world.walkable.is_empty
    free = world.walkable.difference(obstacles)
    parts = sorted(getattr(free, "geoms", [free]), key=lambda g: g.area, reverse=True)
    assert parts[0].area > 0.9 * free.area, "the walkable area is split into pieces"
    assert _materials(world) <= set(MATERIALS)


@pytest.mark.parametrize("name", NAMES)
def test_settings_are_json_and_record_the_look(name):
    world = build_world(name, 5)
    settings = json.loads(json.dumps(world.settings))
    for key in ("time_of_day", "sun_direction", "sky_zenith", "sky_horizon", "fog_density",
                "palette", "scene_size_m"):
        assert key in settings
    assert settings["time_of_day"] == world.atmosphere.time_of_day
    assert settings["fog_density"] == pytest.approx(world.atmosphere.fog_density, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_seeds_vary_time_palette_and_fog(name):
    worlds = [build_world(name, s) for s in range(12)]
    hours = [w.atmosphere.time_of_day for w in worlds]
    assert max(hours) - min(hours) > 4.0
    assert len({w.settings["palette"] for w in worlds}) >= 2
    if name != "rooms":
        assert len({w.settings["fog"] for w in worlds}) >= 2
        # the sun is up and lower in the early morning and evening than around noon
        for w in worlds:
            assert w.atmosphere.sun_direction[2] < 0
    assert len({round(w.atmosphere.sun_direction[0], 6) for w in worlds}) > 6


def test_hills_have_climbable_slopes_and_things_stand_on_the_ground():
    world = build_world("hills", 4)
    terrain = world.terrain
    assert terrain is not None
    gy, gx = np.gradient(terrain.heights, terrain.cell)
    steepest = math.degrees(math.atan(np.hypot(gx, gy).max()))
    assert steepest > 15.0
    for p in world.primitives:
        if isinstance(p, Cylinder) and p.solid:  # tree trunks start just below the ground
            ground = terrain.height_at(*p.base[:2])
            assert ground - 0.5 < p.base[2] <= ground + 0.01


def test_rooms_are_indoors_and_every_room_is_reachable():
    world = build_world("rooms", 2)
    assert world.ceiling is not None and world.ceiling > world.eye_height + 0.8
    lintels = [p for p in world.primitives if isinstance(p, Box) and not p.solid
               and p.base[2] == LINTEL]
    assert lintels  # jumps are allowed; a doorway's lintel is what is overhead there
    door = np.array(lintels[0].base[:2])
    assert world.headroom(door, 0.3) == LINTEL
    free = world.walkable.difference(shapely.union_all(world.obstacles()))
    assert free.geom_type == "Polygon", "some room has no doorway"
    walls = [p for p in world.primitives if isinstance(p, Box) and p.solid
             and p.material == "plaster"]
    assert len(walls) > 8
    for w in walls:
        assert w.size[2] == pytest.approx(world.ceiling)


@pytest.mark.parametrize("name", ["city", "park"])
def test_outdoor_scenes_have_their_characteristic_pieces(name):
    world = build_world(name, 1)
    kinds = {type(p) for p in world.primitives}
    assert {Box, Cylinder, Sphere} <= kinds
    if name == "city":
        assert world.settings["buildings"] >= 8
        assert world.settings["cars"] >= 1 and world.settings["pedestrians"] >= 1
        assert 100 <= world.settings["primitives"] <= 400
    else:
        assert world.settings["trees"] >= 20
        assert any(p.material == "water" and p.solid for p in world.primitives)
        assert any(isinstance(p, Box) and p.material == "dirt" and not p.solid
                   for p in world.primitives)
