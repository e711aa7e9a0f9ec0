"""``training play``: stream a session from an image and an action file into an MP4.

Blocks are generated one after another by :class:`training.generator.Generator` for as long as
the action file lasts (a last, shorter block is padded with its last action and trimmed), and
every block's frames are written to the video as soon as they are decoded. Each block's
latency and the running frames per second are printed; the video is ``<out>.partial.mp4``
until the session ends, then renamed to ``out``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.video import H264Writer
from training.generator import Generator, StreamConfig
from training.sample import LoadedRun, load_image, read_action_file


@dataclass
class PlayStats:
    frames: int  # frames written (the image's reconstruction included)
    first_block_frames: int  # frames of the first block
    block_seconds: list[float]  # wall time of each block: generation and decoding

    @property
    def blocks(self) -> int:
        return len(self.block_seconds)

    @property
    def fps(self) -> float:
        """Frames per second after the first block (which also warms up); of the first block
        when there is no other."""
        if self.blocks == 1:
            return self.frames / max(self.block_seconds[0], 1e-9)
        return (self.frames - self.first_block_frames) / max(sum(self.block_seconds[1:]), 1e-9)


def play(run: LoadedRun, image: Path, actions: Path, out: Path, cfg: StreamConfig,
         key: str | None = None, frames: int | None = None, fps: float | None = None,
         progress: bool = True) -> PlayStats:
    """Generate from ``image`` under the actions of ``actions`` (an episode CSV or its folder,
    or clip ``key`` of a shard tar), ``frames`` of them at most, into ``out``."""
    keys, mouse = read_action_file(actions, key)
    if frames is not None:
        if not 1 <= frames <= len(keys):
            raise ValueError(f"{actions} has {len(keys)} frames of actions; --frames must be "
                             f"1..{len(keys)}, got {frames}")
        keys, mouse = keys[:frames], mouse[:frames]
    generator = Generator(run.model, run.vae, run.images, run.space, cfg)
    generator.reset(load_image(image, run.size).to(run.vae.device))
    fps = fps or run.fps or 15.0
    total, done, seconds = len(keys), 0, []
    first_block = generator.frames_needed
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.mp4")
    writer = None
    try:
        while done < total:
            n = generator.frames_needed
            k, m = keys[done:done + n], mouse[done:done + n]
            if len(k) < n:  # the file ends inside this block: hold its last action
                k = np.concatenate([k, np.repeat(k[-1:], n - len(k), axis=0)])
                m = np.concatenate([m, np.repeat(m[-1:], n - len(m), axis=0)])
            began = time.perf_counter()
            block = generator.step(k, m)[:total - done]
            seconds.append(time.perf_counter() - began)
            if writer is None:
                writer = H264Writer(tmp, block.shape[2], block.shape[1], fps, crf=18)
            for frame in block:
                writer.write(frame)
            done += len(block)
            if progress:
                print(f"block {len(seconds)}: {len(block)} frames in {seconds[-1] * 1000:.0f} ms "
                      f"({len(block) / seconds[-1]:.1f} frames/s), {done}/{total} frames",
                      flush=True)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return PlayStats(done, first_block, seconds)
