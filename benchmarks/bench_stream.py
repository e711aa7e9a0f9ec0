"""Streaming generation: the rolling KV cache against recomputing the window, and flat latency.

For a preset (random weights: timing only), generates ``--blocks`` blocks of ``--block`` latents
at ``--size`` (video pixels; latents are 8x smaller) with ``len(timesteps)`` denoising steps
per block, two ways in the same run:

- **cached** (:class:`training.causal.StreamCache`, what ``training play`` does): each
  denoising step runs the block's latents only, reading the cached keys of the window; one
  more pass at ``t = 0`` writes the block's clean keys;
- **recompute**: no cache; each denoising step runs the whole window (the previous
  ``local - block`` clean latents at ``t = 0`` and the block) with the block-causal mask.

Prints the median per-block time of both and their ratio, and for the cached path the median
latency of blocks 5-15 against the last ten blocks (a flat cache keeps them equal), as markdown.

    python benchmarks/bench_stream.py --preset small --size 128x64 --blocks 300
    python benchmarks/bench_stream.py --preset small --action-blocks 0-2  # half the modules
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from datagen.command import parse_size
from training.action_module import action_span
from training.causal import CausalConfig, StreamCache, block_causal_mask
from training.config import get_preset, with_action_blocks
from training.dit import WorldDiT
from training.generator import StreamConfig


def _inputs(cfg, frames: int, h: int, w: int, start: int, g: torch.Generator) -> dict:
    first, last = action_span(start, frames, cfg.action)
    n = last + 1 - first
    return dict(x=torch.randn(1, 16, frames, h, w, generator=g),
                cond=torch.zeros(1, 20, frames, h, w),
                keyboard=torch.zeros(1, n, cfg.action.keyboard_dim),
                mouse=torch.zeros(1, n, 2) if cfg.action.mouse else None)


@torch.no_grad()
def cached(model: WorldDiT, stream: StreamConfig, blocks: int, h: int, w: int,
           image: torch.Tensor) -> list[float]:
    cache, g, times = StreamCache(stream.causal), torch.Generator().manual_seed(0), []
    for _ in range(blocks):
        began = time.perf_counter()
        args = _inputs(model.cfg, stream.block, h, w, cache.start, g)
        for sigma in stream.sigmas():
            t = torch.full((1, stream.block), 1000.0 * sigma)
            model(args["x"], t, args["cond"], image, args["keyboard"], args["mouse"], cache=cache)
        model(args["x"], torch.zeros(1, stream.block), args["cond"], image, args["keyboard"],
              args["mouse"], cache=cache)
        cache.advance()
        times.append(time.perf_counter() - began)
    return times


@torch.no_grad()
def recompute(model: WorldDiT, stream: StreamConfig, blocks: int, h: int, w: int,
              image: torch.Tensor) -> list[float]:
    g, times = torch.Generator().manual_seed(0), []
    for b in range(blocks):
        began = time.perf_counter()
        end = (b + 1) * stream.block
        start = max(0, end - stream.local)
        frames = end - start
        args = _inputs(model.cfg, frames, h, w, 0, g)
        mask = block_causal_mask(frames, CausalConfig(stream.block, frames, 0))
        for sigma in stream.sigmas():
            t = torch.full((1, frames), 1000.0 * sigma)
            t[:, :frames - stream.block] = 0.0  # the window's earlier latents are clean
            model(args["x"], t, args["cond"], image, args["keyboard"], args["mouse"],
                  frame_mask=mask)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--blocks", type=int, default=300)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--local", type=int, default=6)
    parser.add_argument("--action-blocks", default="",
                        help="blocks with action modules, e.g. 0-2 (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = with_action_blocks(get_preset(args.preset), args.action_blocks)
    model = WorldDiT(cfg).eval()
    width, height = parse_size(args.size)
    h, w = height // 8, width // 8
    image = torch.randn(1, cfg.image_tokens, cfg.image_dim)
    stream = StreamConfig(block=args.block, local=args.local)
    with_cache = cached(model, stream, args.blocks, h, w, image)
    without = recompute(model, stream, min(args.blocks, 60), h, w, image)
    ms = statistics.median(with_cache[5:]) * 1000
    base = statistics.median(without[5:]) * 1000
    early = statistics.median(with_cache[5:15]) * 1000
    late = statistics.median(with_cache[-10:]) * 1000
    fps = 4 * args.block / (ms / 1000)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} thread(s)\n")
    print("| preset | action blocks | latents/block | window | size | cached ms/block "
          "| recompute ms/block "
          "| speed-up | blocks 5-15 ms | last 10 ms | late/early | frames/s (model only) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    blocks = f"{len(cfg.action.blocks)} of {cfg.num_layers}"
    print(f"| {args.preset} | {blocks} | {args.block} | {args.local} | {args.size} | {ms:.1f} "
          f"| {base:.1f} | {base / ms:.2f}x | {early:.1f} | {late:.1f} | {late / early:.3f} "
          f"| {fps:.1f} |")


if __name__ == "__main__":
    main()
