"""Built-in scenes: a registry of generators, each turning a seed into a :class:`World`.

Every scene is procedural and fully determined by its seed (numpy generators only, derived per
aspect from ``np.random.SeedSequence(seed)``); the per-episode look and layout it drew are kept
in ``World.settings`` for meta.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datagen.builtin.scenes import city, hills, park, rooms
from datagen.builtin.world import World


@dataclass(frozen=True)
class SceneInfo:
    name: str
    description: str
    build: Callable[[int], World]


SCENES: dict[str, SceneInfo] = {
    info.name: info for info in (
        SceneInfo("city", "street grid with buildings of varied heights, props, cars and "
                  "pedestrians (100 x 100 m)", city.build),
        SceneInfo("park", "open lawn with trees, rocks, dirt paths, a pond, hedges, walkers and "
                  "dogs (120 x 120 m)", park.build),
        SceneInfo("hills", "height-field hills with slopes up to ~25 degrees, trees, rocks, "
                  "hikers and sheep (150 x 150 m)", hills.build),
        SceneInfo("rooms", "indoor floor plan: rooms, corridors and doorways, furniture and "
                  "people walking", rooms.build),
    )
}


def build_world(name: str, seed: int) -> World:
    """The World of scene ``name`` for ``seed``; unknown names raise ``ValueError``."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known scenes: {', '.join(SCENES)}")
    return SCENES[name].build(int(seed))
