"""Top-down plan of a scene: navigation mesh, obstacles, terrain and the agent's trajectories.

The picture a person checks to see where episodes went (like the trajectory figures of the
Matrix-Game 2.0 paper). Drawn with matplotlib's Agg canvas, so no display is needed and the
global pyplot state is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from datagen.builtin.navmesh import NavMesh
from datagen.builtin.world import World


def plot_plan(world: World, navmesh: NavMesh, trajectories: Sequence[np.ndarray], out: Path,
              title: str = "") -> Path:
    """Draw the plan of ``world`` with ``navmesh`` and ``trajectories`` ([K, 2] or [K, 3] arrays,
    x and y in metres) to the PNG file ``out``, written atomically. Returns ``out``."""
    out = Path(out)
    tracks = [np.asarray(t, dtype=np.float64) for t in trajectories]
    for k, t in enumerate(tracks):
        if t.ndim != 2 or t.shape[1] not in (2, 3) or len(t) == 0:
            raise ValueError(f"trajectory {k} must be a non-empty [K, 2] or [K, 3] array, "
                             f"got shape {t.shape}")

    fig = Figure(figsize=(8, 8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xmin, ymin, xmax, ymax = world.bounds
    if world.terrain is not None:
        ter = world.terrain
        ny, nx = ter.heights.shape
        extent = (ter.origin[0], ter.origin[0] + (nx - 1) * ter.cell,
                  ter.origin[1], ter.origin[1] + (ny - 1) * ter.cell)
        ax.imshow(ter.heights, origin="lower", extent=extent, cmap="terrain", alpha=0.35,
                  interpolation="bilinear", zorder=0)
    ax.add_collection(PolyCollection(navmesh.triangles, facecolors=(0.75, 0.85, 1.0, 0.45),
                                     edgecolors=(0.35, 0.45, 0.65, 0.6), linewidths=0.25,
                                     zorder=1))
    footprints = [np.asarray(p.exterior.coords) for o in world.obstacles()
                  for p in shapely.get_parts(o) if not p.is_empty]
    if footprints:
        ax.add_collection(PolyCollection(footprints, facecolors=(0.3, 0.3, 0.32),
                                         edgecolors="none", zorder=2))
    for poly in shapely.get_parts(world.walkable):
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)
            ax.plot(xy[:, 0], xy[:, 1], color="black", linewidth=1.0, zorder=3)

    for k, t in enumerate(tracks):
        color = f"C{k % 10}"
        ax.plot(t[:, 0], t[:, 1], color=color, linewidth=1.6, zorder=4, label=f"#{k}")
        ax.plot(*t[0, :2], marker="o", markersize=6, color=color, markeredgecolor="black",
                zorder=5)
        ax.plot(*t[-1, :2], marker="X", markersize=8, color=color, markeredgecolor="black",
                zorder=5)

    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    stats = navmesh.stats()
    ax.set_title(title or f"{world.scene} seed {world.seed}: {stats['triangles']} triangles, "
                          f"{len(tracks)} trajectories (o start, x end)")
    fig.tight_layout()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
