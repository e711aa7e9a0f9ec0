"""Block-causal attention: the masked full-sequence path and the rolling KV-cached path agree."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_dit import inputs, trained
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from training.action_module import action_span
from training.causal import CausalConfig, StreamCache, block_causal_mask
from training.config import get_preset
from training.dit import WorldDiT

TINY = get_preset("tiny")


def test_the_mask_sees_own_and_earlier_blocks_within_the_window_and_the_sink():
    m = block_causal_mask(9, CausalConfig(block=3, local=6))
    assert m[0].tolist() == [True] * 3 + [False] * 6  # block 0 sees itself, both ways
    assert m[2].tolist() == m[0].tolist()
    assert m[4].tolist() == [True] * 6 + [False] * 3
    assert m[8].tolist() == [False] * 3 + [True] * 6  # the oldest block left the window
    sink = block_causal_mask(10, CausalConfig(block=2, local=5, sink=1))
    assert sink[8].tolist() == [True] + [False] * 5 + [True] * 4  # block 8-9 sees 6-9 and 0
    short = block_causal_mask(9, CausalConfig(block=2, local=5, sink=1))
    assert short[8].tolist() == [True] + [False] * 4 + [True] * 4  # a short last block: 5-8
    with pytest.raises(ValueError, match="whole block"):
        CausalConfig(block=3, local=4, sink=2)


def run_blocks(model: WorldDiT, batch: dict, cfg: CausalConfig) -> torch.Tensor:
    """The whole sequence block by block through a cache, outputs concatenated."""
    cache, outs = StreamCache(cfg), []
    frames = batch["x"].shape[2]
    for start in range(0, frames, cfg.block):
        n = min(cfg.block, frames - start)
        first, last = action_span(start, n, model.cfg.action)
        part = {k: batch[k][:, :, start:start + n] for k in ("x", "cond")}
        outs.append(model(**part, t=batch["t"][:, start:start + n], image=batch["image"],
                          keyboard=batch["keyboard"][:, first:last + 1],
                          mouse=batch["mouse"][:, first:last + 1], cache=cache))
        cache.advance()
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("cfg", [CausalConfig(3, 6), CausalConfig(3, 4), CausalConfig(2, 5, 1),
                                 CausalConfig(3, 12)], ids=["mg2", "driving-4", "sink", "all"])
def test_cached_block_by_block_generation_equals_the_masked_full_sequence(cfg):
    torch.manual_seed(0)
    model = trained(WorldDiT(TINY)).eval()
    batch = inputs(TINY, 11, h=4, w=6, batch=2, seed=3)
    with torch.no_grad():
        masked = model(**batch, frame_mask=block_causal_mask(11, cfg))
        cached = run_blocks(model, batch, cfg)
        full = model(**batch)
    assert torch.allclose(cached, masked, atol=2e-5), (cached - masked).abs().max()
    assert (full - masked).abs().max() > 1e-3  # the mask matters


def test_a_block_can_be_denoised_in_several_calls_before_it_is_final():
    cfg = CausalConfig(3, 6)
    model = trained(WorldDiT(TINY)).eval()
    batch = inputs(TINY, 6, seed=4)
    once, again = StreamCache(cfg), StreamCache(cfg)
    with torch.no_grad():
        for cache, rounds in ((once, 1), (again, 3)):
            for r in range(rounds):  # earlier rounds see other inputs, then get overwritten
                x = batch["x"][:, :, :3] + (rounds - 1 - r)
                model(x=x, t=batch["t"][:, :3], cond=batch["cond"][:, :, :3],
                      image=batch["image"], keyboard=batch["keyboard"][:, :9],
                      mouse=batch["mouse"][:, :9], cache=cache)
            cache.advance()
        outs = [model(x=batch["x"][:, :, 3:], t=batch["t"][:, 3:], cond=batch["cond"][:, :, 3:],
                      image=batch["image"], keyboard=batch["keyboard"][:, :21],
                      mouse=batch["mouse"][:, :21], cache=c) for c in (once, again)]
    assert torch.equal(outs[0], outs[1])


class AttentionShapes(TorchFunctionMode):
    """The query and key shapes of every attention call: FlopCounterMode counts no FLOPs for
    scaled_dot_product_attention on a CPU, so equal FLOPs alone say nothing of attention."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.shapes.append((tuple(args[0].shape), tuple(args[1].shape)))
        return func(*args, **(kwargs or {}))


def test_rolling_eviction_keeps_per_block_work_and_memory_flat():
    cfg = CausalConfig(3, 6)
    model = trained(WorldDiT(TINY)).eval()
    cache = StreamCache(cfg)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, TINY.image_tokens, TINY.image_dim, generator=g)
    flops, sizes, buffers = {}, {}, {}
    with torch.no_grad():
        for block in range(300):
            start = cache.start
            first, last = action_span(start, 3, TINY.action)
            args = dict(x=torch.randn(1, 16, 3, 4, 6, generator=g), t=torch.full((1, 3), 500.0),
                        cond=torch.zeros(1, 20, 3, 4, 6), image=image,
                        keyboard=torch.ones(1, last + 1 - first, 4),
                        mouse=torch.zeros(1, last + 1 - first, 2), cache=cache)
            if block in (10, 299):
                with FlopCounterMode(display=False) as counter, AttentionShapes() as attention:
                    out = model(**args)
                flops[block] = (counter.get_total_flops(), attention.shapes)
                sizes[block] = cache.nbytes()
                buffers[block] = [(c.keys.data_ptr(), c.values.data_ptr())
                                  for c in cache.layers.values()]
            else:
                out = model(**args)
            assert torch.isfinite(out).all()
            cache.advance()
    assert cache.start == 900
    assert flops[10] == flops[299] and sizes[10] == sizes[299]
    # the self-attentions read a full window: 6 latents of 2x3 patches, for 3 latents' queries
    assert ((1, TINY.num_heads, 3 * 6, TINY.head_dim), (1, TINY.num_heads, 6 * 6, TINY.head_dim)) \
        in flops[299][1]
    assert buffers[10] == buffers[299]  # preallocated once, never reallocated


def test_no_gradient_reaches_earlier_blocks_through_the_cache():
    cfg = CausalConfig(3, 6)
    model = trained(WorldDiT(TINY))
    batch = inputs(TINY, 6, seed=5)
    cache = StreamCache(cfg)
    x0 = batch["x"][:, :, :3].clone().requires_grad_()
    x1 = batch["x"][:, :, 3:].clone().requires_grad_()
    model(x=x0, t=batch["t"][:, :3], cond=batch["cond"][:, :, :3], image=batch["image"],
          keyboard=batch["keyboard"][:, :9], mouse=batch["mouse"][:, :9], cache=cache)
    cache.advance()
    out = model(x=x1, t=batch["t"][:, 3:], cond=batch["cond"][:, :, 3:], image=batch["image"],
                keyboard=batch["keyboard"][:, :21], mouse=batch["mouse"][:, :21], cache=cache)
    out.pow(2).mean().backward()
    assert x0.grad is None  # the cache holds detached keys and values
    assert x1.grad is not None and x1.grad.abs().max() > 0  # the block's own keys carry it
    # with gradients the block's output is still what the no-gradient path gives
    with torch.no_grad():
        masked = model(**batch, frame_mask=block_causal_mask(6, cfg))
    assert torch.allclose(out.detach(), masked[:, :, 3:], atol=2e-5)


def test_gradient_checkpointing_leaves_a_cached_rollouts_gradients_alone():
    # DMD's rollout: a block's pass with gradients, then later blocks write over the cache
    # before backward; a checkpointed block would be recomputed against their keys
    batch = inputs(TINY, 6, seed=5)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = trained(WorldDiT(TINY))
        model.gradient_checkpointing = checkpointing
        cache = StreamCache(CausalConfig(3, 3))
        out = model(x=batch["x"][:, :, :3], t=batch["t"][:, :3], cond=batch["cond"][:, :, :3],
                    image=batch["image"], keyboard=batch["keyboard"][:, :9],
                    mouse=batch["mouse"][:, :9], cache=cache)
        cache.advance()
        with torch.no_grad():
            model(x=batch["x"][:, :, 3:], t=batch["t"][:, 3:], cond=batch["cond"][:, :, 3:],
                  image=batch["image"], keyboard=batch["keyboard"][:, :21],
                  mouse=batch["mouse"][:, :21], cache=cache)
        cache.advance()
        out.pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
