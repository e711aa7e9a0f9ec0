"""The simulated game's window, for the GTA V end-to-end test: the plugin core and its simulator
(``wfgta_sim_host --lockstep``) decide every frame's camera; this draws the built-in city from
that camera (Panda3D, offscreen) and shows each frame in a real X window (Tk) on the (Xvfb)
screen, where a real OBS captures it.

Lockstep with the simulator: the rectangles the plugin drew for a frame (``R x y w h r g b a``,
GTA's DRAW_RECT: centre and size relative to the screen) come before the frame's line
``F <frame> <game_ms> x y z rx ry rz fov``, and are drawn over it. For each frame line it
waits for the frame's slot on the wall clock (``fps`` frames a second), draws and presents the
frame, then tells the simulator (one line on its stdin), whose next script tick stamps the
frame's message with the wall-clock time at which it had just been presented, as in the game.

Run as ``python tests/gta_game_view.py --scene city --seed 3 --world world.json -- <sim host
command>``: ``--world`` is written first (the city's streets, for the simulator to drive on),
then the simulator is started with the remaining arguments.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tkinter as tk
from pathlib import Path

import numpy as np

from datagen.builtin.render.panda import Renderer
from datagen.builtin.scenes import build_world
from datagen.builtin.world import Box, World
from datagen.gta.pose import contract_quat, horizontal_fov
from datagen.gta.sync import GREEN, MAGENTA, MARKER_CELLS


def street_grid(world: World, in_vehicle: bool = True) -> dict:
    """The city's road centre lines and width, in the simulator's world-file form (the player
    starting in a car, or on foot)."""
    roads = [p for p in world.primitives if isinstance(p, Box) and p.material == "road"]
    xs = sorted(p.base[0] for p in roads if abs(p.yaw) == 90.0)  # running along y
    ys = sorted(p.base[1] for p in roads if p.yaw == 0.0)
    half = (world.bounds[2] - world.bounds[0]) / 2
    return {"half": half, "roads_x": xs, "roads_y": ys, "road_width": roads[0].size[1],
            "seed": world.seed, "player_in_vehicle": in_vehicle}


def parse_frame(line: str) -> tuple[int, int, np.ndarray, np.ndarray, float]:
    """``(frame, game_ms, pos[3], rot[3], fov)`` of one ``F`` line."""
    parts = line.split()
    if len(parts) != 10 or parts[0] != "F":
        raise ValueError(f"not a frame line: {line!r}")
    values = [float(v) for v in parts[3:]]
    return int(parts[1]), int(parts[2]), np.array(values[:3]), np.array(values[3:6]), values[6]


class Window:
    """A borderless window in the screen's top-left corner showing one RGB frame at a time."""

    def __init__(self, width: int, height: int) -> None:
        self.root = tk.Tk()
        self.root.overrideredirect(True)
        self.root.geometry(f"{width}x{height}+0+0")
        self.label = tk.Label(self.root, borderwidth=0, highlightthickness=0)
        self.label.place(x=0, y=0)
        self.header = f"P6 {width} {height} 255\n".encode()

    def show(self, rgb: np.ndarray) -> None:
        photo = tk.PhotoImage(data=self.header + rgb.tobytes(), format="PPM")
        self.label.configure(image=photo)
        self.label.image = photo  # Tk keeps no reference of its own
        self.root.update()
        self.root.winfo_pointerxy()  # a round trip: the X server has drawn it when this returns

    def close(self) -> None:
        self.root.destroy()


def draw_rect(frame: np.ndarray, line: str) -> None:
    """Draw one ``R`` line's rectangle onto an RGB frame, as the game draws DRAW_RECT."""
    x, y, w, h, r, g, b, _ = (float(v) for v in line.split()[1:])
    height, width = frame.shape[:2]
    x0, x1 = round((x - w / 2) * width), round((x + w / 2) * width)
    y0, y1 = round((y - h / 2) * height), round((y + h / 2) * height)
    frame[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = (r, g, b)


def draw_marker(frame: np.ndarray, code: int) -> np.ndarray:
    """Draw marker ``code`` as the plugin's DRAW_RECTs do (for tests with a game double)."""
    height, width = frame.shape[:2]
    for bit, (x0, y0, x1, y1) in enumerate(MARKER_CELLS):
        colour = MAGENTA if code >> bit & 1 else GREEN
        frame[round(y0 * height):round(y1 * height), round(x0 * width):round(x1 * width)] = colour
    return frame


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", default="city")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--on-foot", action="store_true", help="the player starts on foot")
    parser.add_argument("sim", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    world = build_world(args.scene, args.seed)
    args.world.write_text(json.dumps(street_grid(world, in_vehicle=not args.on_foot)))
    sim_cmd = args.sim[1:] if args.sim[:1] == ["--"] else args.sim
    sim = subprocess.Popen(sim_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           bufsize=1)
    renderer = window = None
    try:
        start, shown, rects = 0.0, 0, []
        for line in sim.stdout:
            if line.startswith("R "):
                rects.append(line)
            if not line.startswith("F "):
                continue
            _, game_ms, pos, rot, fov = parse_frame(line)
            if renderer is None:
                fov_h = float(horizontal_fov(fov, width, height))
                renderer, window = Renderer(world, width, height, fov_h), Window(width, height)
                start = time.monotonic()
            frame = renderer.render(pos, contract_quat(rot), world.mover_poses(game_ms / 1000.0))
            for rect in rects:
                draw_rect(frame, rect)
            rects.clear()
            delay = start + shown / args.fps - time.monotonic()  # this frame's slot
            if delay > 0:
                time.sleep(delay)
            window.show(frame)
            shown += 1
            sim.stdin.write("\n")
            sim.stdin.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        if renderer is not None:
            renderer.close()
            window.close()
        if sim.stdin:
            sim.stdin.close()
        sim.wait(timeout=10)
    return sim.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
