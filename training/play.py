"""``training play``: stream a session from an image and an action file, or from a player.

Blocks are generated one after another by :class:`training.generator.Generator` and every
block's frames are written to the video as soon as they are decoded; each block's latency and
frames per second are printed.

- :func:`play`: for as long as the action file lasts (a last, shorter block is padded with its
  last action and trimmed); the video is ``<out>.partial.mp4`` until the session ends, then
  renamed to ``out``.
- :func:`play_interactive` (``--interactive``): a person plays from the terminal
  (:mod:`training.terminal_input`); what is typed while a block plays drives the next one.
  Blocks are paced to real time (a block of ``n`` frames lasts ``n / fps`` seconds, or as long
  as it takes to generate). Frames go to ``out`` as they are made (a fragmented MP4 that can be
  watched while it grows) and, when a display exists, to a window
  (:mod:`training.play_window`) that shows each block's frames over what is left of its
  ``n / fps`` seconds and takes keys too; without one (or with ``window=False``), the newest
  frame, enlarged with the inputs drawn over it, goes to ``<out>.preview.png`` (replaced
  atomically), which any image viewer can keep open. What was played goes to
  ``<out>.actions.csv``, a row per frame (:data:`training.sample.INPUT_COLUMNS`), so
  :func:`play` can replay the session from the same image and seed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curation.preview import MIN_HEIGHT, draw_overlay, layout
from datagen.video import H264Writer
from training.generator import Generator, StreamConfig
from training.play_window import open_window
from training.sample import LoadedRun, load_image, read_action_file, write_inputs
from training.terminal_input import TerminalInput, Typed, block_actions, parse

HELP = ("keys: w a s d move (W A S D sprint, ^W ^A ^S ^D crouch), c crouches, space jumps, "
        "arrows or j l turn, i k look, q quits; what you type while a block plays drives the next")


@dataclass
class PlayStats:
    frames: int  # frames written (frame 0, the image itself, included)
    made: list[int]  # frames each block generated (a last block cut where the actions end
    #                  generated a whole one)
    block_seconds: list[float]  # wall time of each block: generation and decoding

    @property
    def blocks(self) -> int:
        return len(self.block_seconds)

    @property
    def fps(self) -> float:
        """Frames generated per second after the first block (which also warms up); of the
        first block when there is no other."""
        if self.blocks == 1:
            return self.made[0] / max(self.block_seconds[0], 1e-9)
        return sum(self.made[1:]) / max(sum(self.block_seconds[1:]), 1e-9)


def timed_blocks(generator: Generator, keys: np.ndarray,
                 mouse: np.ndarray) -> Iterator[tuple[np.ndarray, int, float]]:
    """Each block of ``generator.blocks(keys, mouse)`` with the frames generated for it and
    the seconds it took."""
    blocks = generator.blocks(keys, mouse)
    while True:
        made, began = generator.frames_needed, time.perf_counter()
        block = next(blocks, None)
        if block is None:
            return
        yield block, made, time.perf_counter() - began


def play(run: LoadedRun, image: Path, actions: Path, out: Path, cfg: StreamConfig,
         key: str | None = None, frames: int | None = None, fps: float | None = None,
         progress: bool = True) -> PlayStats:
    """Generate from ``image`` under the actions of ``actions`` (an episode CSV or its folder,
    or clip ``key`` of a shard tar; resampled to the model's frame rate, ActionFile.at),
    ``frames`` of them at most, into ``out``."""
    keys, mouse = read_action_file(actions, key).at(run.fps)
    if frames is not None:
        if not 1 <= frames <= len(keys):
            raise ValueError(f"{actions} has {len(keys)} frames of actions at the model's "
                             f"{run.fps or 'unknown'} fps; --frames must be "
                             f"1..{len(keys)}, got {frames}")
        keys, mouse = keys[:frames], mouse[:frames]
    generator = Generator(run.model, run.vae, run.images, run.space, cfg)
    generator.reset(load_image(image, run.size).to(run.vae.device))
    fps = fps or run.fps or 15.0
    total, done, made, seconds = len(keys), 0, [], []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.mp4")
    writer = None
    try:
        for block, n, took in timed_blocks(generator, keys, mouse):
            made.append(n)
            seconds.append(took)
            if writer is None:
                writer = H264Writer(tmp, block.shape[2], block.shape[1], fps, crf=18)
            for frame in block:
                writer.write(frame)
            done += len(block)
            kept = "" if len(block) == n else f", {len(block)} kept where the actions end"
            if progress:
                print(f"block {len(seconds)}: {n} frames in {took * 1000:.0f} ms "
                      f"({n / took:.1f} frames/s){kept}, {done}/{total} frames", flush=True)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return PlayStats(done, made, seconds)


def _preview(path: Path, frame: np.ndarray, keys: np.ndarray, mouse: np.ndarray,
             label: str) -> None:
    """The newest frame, enlarged, inputs drawn, written to ``path`` atomically."""
    h, w = frame.shape[:2]
    scale = max(1, -(-MIN_HEIGHT // h))
    big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    drawn = draw_overlay(big, layout(w * scale, h * scale), keys, float(mouse[0]),
                         float(mouse[1]), [label])
    tmp = path.with_name(path.name + ".tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    os.replace(tmp, path)


def _typed_until(terminal: TerminalInput, deadline: float) -> bytes:
    """What is typed in ``terminal`` until ``deadline`` (a ``time.perf_counter()``)."""
    data = terminal.read(timeout=max(0.0, deadline - time.perf_counter()))
    while time.perf_counter() < deadline:
        data += terminal.read(timeout=deadline - time.perf_counter())
    return data


def play_interactive(run: LoadedRun, image: Path, out: Path, cfg: StreamConfig,
                     fps: float | None = None, max_blocks: int = 0,
                     terminal: TerminalInput | None = None, window: bool = True) -> PlayStats:
    """A person plays from the terminal on stdin (and the window, when ``window`` and a display
    allow one) until ``q`` (or ``max_blocks`` blocks)."""
    terminal = terminal or TerminalInput()
    generator = Generator(run.model, run.vae, run.images, run.space, cfg)
    generator.reset(load_image(image, run.size).to(run.vae.device))
    rate = run.fps or fps or 15.0  # of the inputs: the frame rate the model learnt them at
    fps = fps or rate  # of the video
    preview = out.with_name(out.stem + ".preview.png")
    inputs = out.with_name(out.stem + ".actions.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    done, made, seconds = 0, [], []
    typed, writer = Typed(), None
    shown, why = open_window(f"training play: {out.name}") if window else (None, "--no-window")
    print(f"frames go to a window and to {out}" if shown else
          f"frames go to {out} and {preview} ({why})", flush=True)
    print(HELP, flush=True)
    with terminal, ThreadPoolExecutor(1) as worker:
        try:
            while not typed.quit and not (max_blocks and len(seconds) >= max_blocks):
                n = generator.frames_needed
                keys, mouse = block_actions(typed, n, rate)
                began, early = time.perf_counter(), b""
                if shown is None:
                    block = generator.step(keys, mouse)
                else:  # generated beside the window's event loop, which stays live
                    job = worker.submit(generator.step, keys, mouse)
                    early = shown.wait(job, f"block {len(seconds) + 1}: generating "
                                            f"({typed.describe()})", terminal.read)
                    block = job.result()
                made.append(n)
                seconds.append(time.perf_counter() - began)
                if writer is None:
                    writer = H264Writer(out, block.shape[2], block.shape[1], fps, crf=18)
                for frame in block:
                    writer.write(frame)
                write_inputs(inputs, keys, mouse, rate, first=done)
                done += n
                status = (f"block {len(seconds)}: {typed.describe()} -> {n} frames in "
                          f"{seconds[-1] * 1000:.0f} ms ({n / seconds[-1]:.1f} frames/s)")
                if shown is None:
                    _preview(preview, block[-1], keys[-1], mouse[-1],
                             f"block {len(seconds)}: {typed.describe()}")
                print(status, flush=True)
                # the block plays for n / fps seconds: what is typed meanwhile drives the next
                deadline = began + n / fps
                typed = parse(early + (shown.play(block, deadline, status, terminal.read)
                                       if shown else _typed_until(terminal, deadline)))
        finally:
            if writer is not None:
                writer.close()
            if shown is not None:
                shown.close()
    print(f"{out}: {done} frames, inputs in {inputs}" + ("" if shown else f"; preview {preview}"),
          flush=True)
    return PlayStats(done, made, seconds)
