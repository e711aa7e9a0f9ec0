"""The GPU numbers of issues 7 and 9 in one short run: a training step and streaming play.

Meant for a few minutes on a lent GPU (everything has random weights: only time and memory are
measured, nothing is downloaded), and checked on the CPU with the ``tiny`` preset in the tests.

- **train**: ``--train-preset`` (``mg2-foundation``) on one clip of ``--frames`` frames at
  ``--size`` (352x640 by 57: 15 x 44 x 80 latents), the trainer's own flow-matching loss
  (:func:`training.losses.flow_loss`), backward, gradient clipping and an AdamW step, in
  ``--precision`` (bf16 autocast on a GPU), optionally with gradient checkpointing. Reported:
  the median step time after ``--warmup`` steps, the peak memory, and the model FLOPs
  utilisation: three forward passes' FLOPs (:func:`training.params.forward_flops`) per step
  against ``--peak-tflops`` (the GPU's dense bf16 peak, known for common GPUs by name).
- **stream**: ``--stream-preset`` (``mg2-universal``) played by :class:`training.generator.
  Generator` exactly as ``training play`` plays (blocks of 3 latents, 3 denoising steps, a
  6-latent rolling cache, the Wan2.1-shaped VAE decoding latent by latent), batch 1, under
  designed actions. Reported: frames/s and ms per block over the blocks after
  ``--warmup-blocks``, VAE decoding included, and the share of a block spent decoding.

    python benchmarks/bench_gpu.py --json gpu.json              # on the GPU: both parts
    python benchmarks/bench_gpu.py --parts stream --compile     # torch.compile the DiT
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import numpy as np
import torch

from shards.action_space import get_space
from training.action_design import sample_actions
from training.config import get_preset
from training.data import Batch, latent_frames
from training.dit import WorldDiT
from training.fit import FitConfig, make_optimizer
from training.generator import Generator, StreamConfig
from training.image_encoder import make_image_encoder
from training.losses import flow_loss
from training.params import forward_flops
from training.vae import WanVAE, build_vae

# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by device-name match
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
               ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0), ("RTX 4090", 165.0))


def peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of the GPU called ``name`` (``torch.cuda.get_device_name``), or
    None for one not in :data:`PEAK_TFLOPS`."""
    return next((tf for key, tf in PEAK_TFLOPS if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def train_step(args: argparse.Namespace, device: torch.device) -> dict:
    cfg = get_preset(args.train_preset)
    height, width = args.size
    f, h, w = latent_frames(args.frames), height // 8, width // 8
    with torch.device(device):
        model = WorldDiT(cfg)
    model.gradient_checkpointing = args.checkpointing
    model.train()
    optimizer = make_optimizer(model, 1e-5, (0.9, 0.999), 0.01)
    fit_cfg = FitConfig(shards="bench", precision=args.precision)
    g = torch.Generator().manual_seed(0)
    n = cfg.action.temporal_ratio * (f - 1) + 1
    b = args.batch_size
    batch = Batch(keys=["bench"] * b,
                  latents=torch.randn(b, cfg.out_dim, f, h, w, generator=g).to(device),
                  cond=torch.randn(b, cfg.in_dim - cfg.out_dim, f, h, w, generator=g).to(device),
                  image=torch.randn(b, cfg.image_tokens, cfg.image_dim, generator=g).to(device),
                  keyboard=(torch.rand(b, n, cfg.action.keyboard_dim, generator=g) > 0.7)
                  .float().to(device),
                  mouse=(torch.randn(b, n, 2, generator=g) * 0.1).to(device)
                  if cfg.action.mouse else None)
    times = []
    for _ in range(args.warmup + args.steps):
        sync(device)
        began = time.perf_counter()
        loss, _ = flow_loss(model, batch, fit_cfg, g, precision=args.precision)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - began)
    step = statistics.median(times[args.warmup:])
    flops = 3 * forward_flops(cfg, f, h, w) * b
    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name(device))
                                if device.type == "cuda" else None)
    return {"preset": args.train_preset, "size": f"{height}x{width}", "frames": args.frames,
            "latents": [f, h, w], "batch_size": b, "precision": args.precision,
            "checkpointing": args.checkpointing,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "step_s": step, "samples_per_s": b / step, "loss": loss.item(),
            "model_tflop_per_step": flops / 1e12,
            "achieved_tflops": flops / step / 1e12,
            "mfu": None if peak is None else flops / step / (peak * 1e12),
            "peak_tflops": peak, "peak_memory_gib": peak_memory_gib(device)}


def train_or_checkpoint(args: argparse.Namespace, device: torch.device) -> dict:
    """:func:`train_step`; out of memory without gradient checkpointing, again with it."""
    try:
        return train_step(args, device)
    except torch.OutOfMemoryError:
        if args.checkpointing:
            raise
    # outside the handler, so the failed attempt's tensors are freed
    print("train: out of memory; again with gradient checkpointing", flush=True)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    args.checkpointing = True
    return train_step(args, device)


def stream(args: argparse.Namespace, device: torch.device) -> dict:
    cfg = get_preset(args.stream_preset)
    height, width = args.size
    with torch.device(device):
        model = WorldDiT(cfg).eval().requires_grad_(False)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.manual_seed(0)
    vae_model = build_vae(args.vae_arch)
    z = vae_model.config.z_dim
    vae_model.register_to_config(latents_mean=[0.0] * z, latents_std=[1.0] * z)
    vae = WanVAE(vae_model.to(device, dtype), {"name": f"random {args.vae_arch}"})
    if args.compile:
        model.forward = torch.compile(model.forward)
    generator = Generator(model, vae, make_image_encoder(cfg, None, device),
                          get_space(cfg.space), StreamConfig(precision=args.precision))
    g = torch.Generator().manual_seed(0)
    generator.reset((torch.rand(1, 3, height, width, generator=g) * 2 - 1).to(device))
    blocks = args.warmup_blocks + args.blocks
    fps = 15.0
    keys, mouse = sample_actions(1 + 4 * 3 * blocks, fps, np.random.default_rng(0))
    decode_s = []
    decoder_call = generator._decoder.__call__

    def timed_decode(latent: torch.Tensor) -> torch.Tensor:
        sync(device)
        began = time.perf_counter()
        out = decoder_call(latent)
        sync(device)
        decode_s[-1] += time.perf_counter() - began
        return out

    generator._decoder = timed_decode
    times, frames, done = [], [], 0
    for _ in range(blocks):
        n = generator.frames_needed
        decode_s.append(0.0)
        sync(device)
        began = time.perf_counter()
        out = generator.step(keys[done:done + n], mouse[done:done + n])
        sync(device)
        times.append(time.perf_counter() - began)
        frames.append(len(out))
        done += n
    steady = slice(args.warmup_blocks, None)
    seconds, made = sum(times[steady]), sum(frames[steady])
    return {"preset": args.stream_preset, "size": f"{height}x{width}",
            "precision": args.precision, "compile": args.compile, "vae": args.vae_arch,
            "block_latents": 3, "steps": 3, "window": 6, "blocks": args.blocks,
            "fps": made / seconds, "block_ms_median": 1000 * statistics.median(times[steady]),
            "decode_share": sum(decode_s[steady]) / seconds,
            "first_block_ms": 1000 * times[0], "peak_memory_gib": peak_memory_gib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="train,stream", help="train, stream or both")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--train-preset", default="mg2-foundation")
    parser.add_argument("--stream-preset", default="mg2-universal")
    parser.add_argument("--size", default="352x640", help="HEIGHTxWIDTH of the video")
    parser.add_argument("--frames", type=int, default=57, help="training clip, 4k+1")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--warmup-blocks", type=int, default=5)
    parser.add_argument("--precision", default="auto", help="auto (bf16 on GPU), bf16, fp32")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT (stream)")
    parser.add_argument("--vae-arch", default="wan2.1", help="training.vae.ARCHS name")
    parser.add_argument("--peak-tflops", type=float, default=0.0,
                        help="the GPU's dense bf16 peak (0: known GPUs by name)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    args.size = (height, width)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    if args.precision == "auto":
        args.precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    machine = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
               else platform.processor() or platform.machine(),
               "torch": torch.__version__, "cuda": torch.version.cuda}
    results: dict = {"machine": machine}
    parts = set(args.parts.split(","))
    if "train" in parts:
        results["train"] = train_or_checkpoint(args, device)
        r = results["train"]
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        print(f"train {r['preset']} {r['size']} x {r['frames']} frames, batch {r['batch_size']},"
              f" {r['precision']}{', checkpointing' if r['checkpointing'] else ''}: "
              f"{r['step_s']:.3f} s a step, {r['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}, "
              f"peak memory {r['peak_memory_gib'] or math.nan:.1f} GiB", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
    if "stream" in parts:
        results["stream"] = stream(args, device)
        r = results["stream"]
        print(f"stream {r['preset']} {r['size']}, {r['precision']}"
              f"{', compiled' if r['compile'] else ''}: {r['fps']:.1f} frames/s, "
              f"{r['block_ms_median']:.1f} ms a block (VAE decode {100 * r['decode_share']:.0f} "
              f"%), first block {r['first_block_ms']:.0f} ms", flush=True)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
