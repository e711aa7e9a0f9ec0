"""Streaming generation: the VAE a latent at a time, the block-by-block Generator, training play."""

from __future__ import annotations

import dataclasses
import os
import re
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fit_support import REPO, shard_set, subprocess_env
from real_obs import running_xvfb
from test_dit import trained
from x11_client import XClient

from datagen.episode import KEYS
from datagen.video import probe, read_frames
from shards.action_space import get_space
from shards.reader import ShardError
from training.causal import CausalConfig, block_causal_mask
from training.cli import main as training
from training.conditioning import condition_video
from training.config import get_preset
from training.dit import WorldDiT
from training.fit import FitConfig, fit
from training.generator import Generator, StreamConfig
from training.image_encoder import StandinImageEncoder
from training.play import PlayStats, play
from training.play_window import open_window, zoom_for
from training.sample import load_run, read_action_file, to_uint8, write_inputs
from training.terminal_input import Typed, block_actions, key_bytes, parse
from training.vae import StreamingDecoder, StreamingEncoder, VaeError, WanVAE, build_vae

TINY = get_preset("tiny")


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    torch.manual_seed(0)
    model = build_vae("tiny")
    model.register_to_config(latents_mean=[0.1] * 16, latents_std=[0.5] * 16)
    return WanVAE(model, {"name": "random-tiny"})


def test_a_latent_at_a_time_gives_what_a_whole_decode_and_encode_give(vae):
    z = torch.randn(2, 16, 5, 4, 6, generator=torch.Generator().manual_seed(1))
    decoder = StreamingDecoder(vae)
    parts = [decoder(z[:, :, i:i + 1]) for i in range(5)]
    assert [p.shape[2] for p in parts] == [1, 4, 4, 4, 4]
    assert torch.allclose(torch.cat(parts, dim=2), vae.decode(z), atol=1e-6)
    video = condition_video(torch.rand(1, 3, 32, 48) * 2 - 1, 4 * 6 + 1)
    encoder = StreamingEncoder(vae)
    latents = [encoder(video[:, :, :1])] + [encoder(video[:, :, 1 + 4 * i:5 + 4 * i])
                                            for i in range(6)]
    assert torch.allclose(torch.cat(latents, dim=2), vae.encode(video), atol=1e-6)
    with pytest.raises(VaeError, match="one latent frame"):
        decoder(z[:, :, :2])
    with pytest.raises(VaeError, match=r"\[B, 3, 4, H, W\] now"):
        encoder(video[:, :, :1])


def test_stream_config_warps_the_released_steps_and_checks_its_window():
    assert np.allclose(StreamConfig().sigmas(), [1.0, 0.908844, 0.713979], atol=1e-5)
    with pytest.raises(ValueError, match="decreasing"):
        StreamConfig(timesteps=(333.0, 666.0))
    with pytest.raises(ValueError, match="whole block"):
        StreamConfig(block=3, local=2)


def actions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.integers(0, 2, (n, 7)).astype(np.uint8), g.normal(0, 2, (n, 2))


def test_blocks_stream_for_as_long_as_actions_come_with_flat_state(vae):
    torch.manual_seed(0)
    model = trained(WorldDiT(TINY)).eval()
    images = StandinImageEncoder(TINY)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    gen = Generator(model, vae, images, get_space("mg2_universal"), StreamConfig(seed=3))
    gen.reset(image)
    sizes, history = [], []
    first = None
    for block in range(12):
        n = gen.frames_needed
        assert n == (9 if block == 0 else 12)
        frames = gen.step(*actions(n, block))
        assert frames.shape == (n, 32, 48, 3) and frames.dtype == np.uint8
        first = frames if first is None else first
        sizes.append(gen.cache.nbytes())
        history.append(gen._history[0].shape[1])
    assert gen.cache.start == 36 and len(set(sizes[1:])) == 1 and len(set(history[2:])) == 1
    # frame 0 is the image itself, as training sample gives it; same seed and inputs, same
    # frames
    assert np.array_equal(first[0], to_uint8(image[0, :, None])[0])
    again = Generator(model, vae, images, get_space("mg2_universal"), StreamConfig(seed=3))
    again.reset(image)
    assert np.array_equal(again.step(*actions(9, 0)), first)
    with pytest.raises(ValueError, match="needs 12 frames"):
        again.step(*actions(9, 1))


def test_a_block_under_bf16_autocast_gives_the_fp32_frames_within_rounding(vae):
    """On a GPU blocks run under bf16 autocast; CPU autocast runs the same code path here."""
    torch.manual_seed(0)
    model = trained(WorldDiT(TINY)).eval()
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    made, cache_bytes = {}, {}
    for precision in ("fp32", "bf16"):
        gen = Generator(model, vae, StandinImageEncoder(TINY), get_space("mg2_universal"),
                        StreamConfig(seed=3))
        assert gen.precision == "fp32"  # what "auto" means on a CPU
        gen.precision = precision
        gen.reset(image)
        made[precision] = np.concatenate([gen.step(*actions(gen.frames_needed, b))
                                          for b in range(3)]).astype(int)
        cache_bytes[precision] = gen.cache.nbytes()
    assert cache_bytes["bf16"] * 2 == cache_bytes["fp32"]  # keys and values kept in bf16
    diff = np.abs(made["bf16"] - made["fp32"])
    assert diff.mean() < 2 and diff.max() < 24, (diff.mean(), diff.max())
    assert np.any(diff > 0)  # bf16 did run
    with pytest.raises(ValueError, match="bf16 is for GPUs"):
        Generator(model, vae, StandinImageEncoder(TINY), get_space("mg2_universal"),
                  StreamConfig(precision="bf16"))
    with pytest.raises(ValueError, match="precision must be one of"):
        StreamConfig(precision="fp16")


def test_one_step_generation_is_the_models_x0_under_the_block_causal_mask(vae):
    """The generator's first block, one denoising step from t = 1000, equals the x0 the model
    predicts for the same noise on the whole masked sequence (wiring of condition, actions and
    the clean latent 0)."""
    torch.manual_seed(0)
    model = trained(WorldDiT(TINY)).eval()
    images = StandinImageEncoder(TINY)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    cfg = StreamConfig(timesteps=(1000.0,), seed=5)
    gen = Generator(model, vae, images, get_space("mg2_universal"), cfg)
    gen.reset(image)
    keys, mouse = actions(9)
    x0 = None

    def keep(module, args, kwargs, output):
        nonlocal x0
        if kwargs["cache"].start == 0 and args[1][0, 1] > 0:  # the denoising call
            x0 = args[0] - output

    hook = model.register_forward_hook(keep, with_kwargs=True)
    gen.step(keys, mouse)
    hook.remove()
    noise = torch.randn(1, 16, 3, 4, 6, generator=torch.Generator().manual_seed(5))
    cond = vae.encode(condition_video(image, 9))
    noise[:, :, 0] = cond[:, :, 0]
    mask = torch.zeros(1, 4, 3, 4, 6)
    mask[:, :, 0] = 1
    kb, ms = torch.from_numpy(keys[:, :4].astype(np.float32))[None], \
        torch.from_numpy((mouse[:, ::-1] / 15).astype(np.float32).copy())[None]
    with torch.no_grad():
        v = model(noise, torch.tensor([[0.0, 1000.0, 1000.0]]), torch.cat([mask, cond], 1),
                  images(image), kb, ms, frame_mask=block_causal_mask(3, CausalConfig()))
    assert torch.allclose(x0[:, :, 1:], (noise - v)[:, :, 1:], atol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny run of ``training fit`` (two steps) and a recorded episode to play it from."""
    data = shard_set(tmp_path_factory)
    run = tmp_path_factory.mktemp("play") / "run"
    torch.set_num_threads(1)
    fit(FitConfig(out=str(run), shards=str(data["shards"]), vae=str(data["vae"]), frames=9,
                  batch_size=2, steps=2, warmup=1, val_every=0, checkpoint_every=0,
                  num_workers=0, progress=False))
    episode = sorted((data["raw"].parent / "episodes").glob("*/*/actions.csv"))[0].parent
    return run, episode


@pytest.mark.slow
def test_training_play_writes_a_frame_per_action_block_by_block(tiny_run, tmp_path, capsys):
    run, episode = tiny_run
    args = ["play", "--ckpt", str(run), "--image", str(episode / "video.mp4"), "--actions",
            str(episode)]
    out = tmp_path / "play.mp4"
    assert training([*args, "--frames", "33", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "block 3: 12 frames" in printed and "frames/s" in printed
    info = probe(out)
    assert info.frames == 1 + 4 * (9 - 1) and (info.width, info.height) == (64, 32)
    assert not list(tmp_path.glob("*.partial.mp4"))
    short = tmp_path / "short.mp4"
    assert training([*args, "--frames", "30", "--out", str(short)]) == 0
    assert probe(short).frames == 30  # the last block is cut where the actions end
    printed = capsys.readouterr().out
    assert "block 3: 12 frames" in printed and "9 kept where the actions end, 30/30" in printed
    # frames/s counts what each block generated, not what was kept of the cut last one
    assert PlayStats(30, [9, 12, 12], [5.0, 1.0, 1.0]).fps == 12.0
    assert training([*args, "--frames", "500", "--out", str(short)]) == 2
    assert "--frames must be" in capsys.readouterr().err
    assert training([*args, "--local", "2", "--out", str(short)]) == 2
    assert "whole block" in capsys.readouterr().err


@pytest.mark.slow
def test_play_takes_a_30_fps_episode_at_the_rate_its_model_learnt(tiny_run, tmp_path):
    run, episode = tiny_run
    learnt_at_15 = dataclasses.replace(load_run(run), fps=15.0)  # footage curated with --fps 15
    out = tmp_path / "play.mp4"
    play(learnt_at_15, episode / "video.mp4", episode, out, StreamConfig(), progress=False)
    info = probe(out)
    assert info.frames == len(read_action_file(episode).keys) // 2 and info.fps == 15.0


def test_inputs_recorded_at_another_rate_are_merged_or_held_as_curation_does(tmp_path):
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 2, (9, len(KEYS)), dtype=np.uint8)
    mouse = rng.normal(size=(9, 2))
    path = tmp_path / "a.actions.csv"
    write_inputs(path, keys, mouse, 30.0)
    at_30 = read_action_file(path)
    k, m = at_30.at(15.0)  # frame j shows row 2j and merges rows 2j-1 and 2j
    assert len(k) == 5 and np.array_equal(k[0], keys[0]) and np.array_equal(m[0], mouse[0])
    assert np.array_equal(k[1:], keys[1::2] | keys[2::2])
    assert np.allclose(m[1:], mouse[1::2] + mouse[2::2])
    assert np.allclose(m.sum(0), mouse.sum(0))  # the camera turns as far
    same = at_30.at(30.0)
    assert np.array_equal(same[0], keys) and np.array_equal(same[1], mouse)
    k, m = at_30.at(60.0)  # each row shown twice: the keys held, the mouse moved once
    assert len(k) == 17 and np.array_equal(k[2::2], keys[1:]) and np.array_equal(k[1::2], keys[:-1])
    assert np.array_equal(m[2::2], mouse[1:]) and not m[1::2].any()


def test_typed_keys_become_the_next_blocks_held_inputs():
    typed = parse(b"wD \x1b[D\x1b[Djk\x17")
    assert typed.keys == {"w", "d", "shift", "space", "ctrl"} and not typed.quit
    assert typed.turns == {"left": 3, "down": 1}
    keys, mouse = block_actions(typed, 12, 15.0, turn_deg_s=45.0, look_deg_s=20.0)
    assert keys[:, KEYS.index("w")].all() and keys[:, KEYS.index("ctrl")].all()
    assert keys[:3, KEYS.index("space")].all() and not keys[3:, KEYS.index("space")].any()
    assert np.allclose(mouse, [-3 * 45 / 15, -20 / 15])  # turning left, looking down
    assert parse(b"q").quit and parse(b"\x03").quit
    assert typed.describe() == "W+D+space+shift+ctrl down x1 left x3".replace(" x", "x")
    assert Typed().describe() == "idle"
    assert not block_actions(Typed(), 9, 15.0)[0].any()
    # a key pressed in the play window is what the terminal sends for it
    window = parse(key_bytes("Left", "") + key_bytes("w", "\x17") + key_bytes("a", "A"))
    assert window.turns == {"left": 1} and window.keys == {"w", "ctrl", "a", "shift"}
    assert parse(key_bytes("q", "q")).quit and not parse(key_bytes("Shift_L", "")).keys
    # application cursor mode arrows, capital I J K L (caps lock), and c to crouch in place
    typed = parse(b"\x1bOC\x1bOAJKc")
    assert typed.turns == {"right": 1, "up": 1, "left": 1, "down": 1} and typed.keys == {"ctrl"}


class PlaySession:
    """``training play --interactive`` in a subprocess on a pseudo-terminal: ``type`` writes to
    its terminal, ``seen`` is everything it printed."""

    def __init__(self, run: Path, episode: Path, out: Path, *flags: str,
                 env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "training.cli", "play", "--interactive", "--ckpt", str(run),
             "--image", str(episode / "video.mp4"), "--out", str(out), "--max-blocks", "40",
             *flags], stdin=slave, stdout=slave, stderr=slave,
            env=subprocess_env() | (env or {}), cwd=REPO)
        os.close(slave)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for(self, pattern: bytes, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.poll() is None, self._tail(pattern)
            if select.select([self.master], [], [], min(left, 1.0))[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the session ended and its terminal closed
                    break
        assert pattern in self.seen, self._tail(pattern)

    def _tail(self, pattern: bytes) -> str:
        return f"no {pattern!r} in: {self.seen.decode(errors='replace')[-2000:]}"

    def finish(self, timeout: float = 60.0) -> int:
        """The exit code, once what it printed before it quit is read."""
        code = self.proc.wait(timeout=timeout)
        while select.select([self.master], [], [], 0.5)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.mark.slow
def test_a_person_plays_from_a_terminal(tiny_run, tmp_path):
    """``training play --interactive`` driven through a pseudo-terminal."""
    run, episode = tiny_run
    out = tmp_path / "session.mp4"
    play = PlaySession(run, episode, out, "--no-window")
    try:
        play.wait_for(b"block 1: idle")
        assert f"frames go to {out} and {tmp_path / 'session.preview.png'} (--no-window)".encode() \
            in play.seen
        play.type(b"w")
        play.wait_for(b": W -> 12 frames")
        play.type(b"jj")
        play.wait_for(b": leftx2 -> 12 frames")
        play.type(b"q")
        assert play.finish() == 0
    finally:
        play.close()
    blocks = play.seen.count(b" frames in ")
    assert probe(out).frames == 9 + 12 * (blocks - 1)
    assert (tmp_path / "session.preview.png").is_file()
    # what was played is written beside the video, a row per frame, and replays the session
    inputs = tmp_path / "session.actions.csv"
    played_inputs = read_action_file(inputs)
    rate = load_run(run).fps  # the model's footage's: inputs are written at it
    assert np.allclose(played_inputs.times, np.arange(len(played_inputs.keys)) / rate)
    keys, mouse = played_inputs.at(rate)  # so they play back unchanged
    assert np.array_equal(keys, played_inputs.keys) and len(keys) == probe(out).frames
    # each block's rows hold what its status line says was played (a key typed after a block's
    # time is up drives the one after, so a loaded machine may add idle blocks in between)
    played = re.findall(rb"block \d+: (.+?) -> (\d+) frames in ", play.seen)
    ends = np.cumsum([int(n) for _, n in played])
    blocks = [(what, slice(end - int(n), end)) for (what, n), end in zip(played, ends, strict=True)]
    assert [what for what, _ in blocks if what != b"idle"] == [b"W", b"leftx2"]
    assert blocks[0][0] == b"idle" and ends[-1] == len(keys)
    for what, rows in blocks:
        if what == b"idle":
            assert not keys[rows].any() and not mouse[rows].any()
        elif what == b"W":
            assert keys[rows, KEYS.index("w")].all()
        else:  # turning left
            assert (mouse[rows, 0] < 0).all()
    replay = tmp_path / "replay.mp4"
    assert training(["play", "--ckpt", str(run), "--image", str(episode / "video.mp4"),
                     "--actions", str(inputs), "--out", str(replay)]) == 0
    assert np.array_equal(np.stack(list(read_frames(replay))), np.stack(list(read_frames(out))))


def test_an_inputs_only_action_file_reads_back_exactly_and_bad_ones_are_named(tmp_path):
    keys = np.random.default_rng(0).integers(0, 2, (5, len(KEYS)), dtype=np.uint8)
    mouse = np.random.default_rng(1).normal(size=(5, 2)) * 3
    path = tmp_path / "a.actions.csv"
    write_inputs(path, keys[:2], mouse[:2], 15.0)
    write_inputs(path, keys[2:], mouse[2:], 15.0, first=2)
    got = read_action_file(path)
    assert np.array_equal(got.keys, keys) and np.array_equal(got.mouse, mouse)
    assert np.array_equal(got.times, np.arange(5) / 15.0)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")
    with pytest.raises(ValueError, match="frames 0, 1, 2"):
        read_action_file(path)
    path.write_text(lines[0] + "\n" + lines[1].replace(",0,", ",2,", 1) + "\n")
    with pytest.raises(ValueError, match="0 or 1"):
        read_action_file(path)


def test_the_actions_of_a_shard_clip_read_by_key_and_a_bad_tar_is_named(tmp_path):
    import io

    from webdataset import TarWriter

    rng = np.random.default_rng(2)
    clips = {f"ep{i}/clip-00000{i}": (rng.integers(0, 2, (9, len(KEYS))).astype(np.uint8),
                                      rng.normal(size=(9, 2)).astype(np.float32))
             for i in range(2)}
    with open(tmp_path / "train-000000.tar", "wb") as f:
        writer = TarWriter(f)
        for key, (keys, mouse) in clips.items():
            arrays = {}
            for name, array in (("keys.npy", keys), ("mouse.npy", mouse)):
                buf = io.BytesIO()
                np.save(buf, array)
                arrays[name] = buf.getvalue()
            writer.write({"__key__": key, **arrays})
        writer.close()
    for key in (None, "ep1/clip-000001"):
        got = read_action_file(tmp_path / "train-000000.tar", key)
        keys, mouse = clips[key or "ep0/clip-000000"]
        assert np.array_equal(got.keys, keys) and np.array_equal(got.mouse, mouse)
        assert got.mouse.dtype == np.float64
        assert got.times is None  # no json member: the rows are played as they are
        assert got.at(15.0)[0] is got.keys
    with pytest.raises(KeyError, match="no clip 'ep9/clip-000009' in"):
        read_action_file(tmp_path / "train-000000.tar", "ep9/clip-000009")
    (tmp_path / "bad.tar").write_bytes(b"not a tar")
    with pytest.raises(ShardError, match="cannot read shard .*bad.tar"):
        read_action_file(tmp_path / "bad.tar")


@pytest.mark.skipif(shutil.which("Xvfb") is None,
                    reason="Xvfb is not installed: no X server to open the play window on")
def test_the_play_window_stays_live_while_a_block_is_generated(monkeypatch):
    """A block is generated on another thread while the window's event loop runs: it is
    redrawn, and a key pressed in it then is taken with the keys of the block's play."""
    with running_xvfb(640, 480) as display, XClient(display) as x:
        monkeypatch.setenv("DISPLAY", display)
        window, why = open_window("live while generating")
        assert window is not None, why
        try:
            window.show(np.zeros((32, 64, 3), np.uint8), "ready")
            x.focus(x.window("live while generating"))
            handled = []
            window.root.after(100, lambda: handled.append(time.perf_counter()))

            def generate() -> float:  # a slow block, with a key pressed half way
                time.sleep(0.3)
                x.press("w")
                time.sleep(0.3)
                return time.perf_counter()

            with ThreadPoolExecutor(1) as pool:
                job = pool.submit(generate)
                assert window.wait(job, "generating", lambda t: time.sleep(t) or b"") == b""
                done = job.result()
            assert handled and handled[0] < done - 0.3  # Tk's event loop ran meanwhile
            typed = window.play([np.zeros((32, 64, 3), np.uint8)], time.perf_counter(), "shown",
                                lambda t: b"")
            assert parse(typed).keys == {"w"}
        finally:
            window.close()


def blurred(frames: np.ndarray) -> np.ndarray:
    """4x4 means of ``[..., H, W, 3]`` frames: what H.264's 4:2:0 chroma keeps of them."""
    *lead, h, w, c = frames.shape
    return frames.reshape(*lead, h // 4, 4, w // 4, 4, c).mean(axis=(-4, -2))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Xvfb") is None,
                    reason="Xvfb is not installed: no X server to open the play window on")
def test_a_person_plays_in_a_window_when_a_display_exists(tiny_run, tmp_path):
    """Under a real X server the session opens a window that shows the frames it writes to the
    MP4, and keys pressed in it (real X key events, through XTEST) drive the next block, as
    keys typed in the terminal still do."""
    run, episode = tiny_run
    out = tmp_path / "session.mp4"
    zoom, grabs = zoom_for(32), []  # (the block just printed, the window's frame then)
    with running_xvfb(1024, 768) as display, XClient(display) as x:
        play = PlaySession(run, episode, out, env={"DISPLAY": display})
        try:
            play.wait_for(b"block 1: idle")
            assert f"frames go to a window and to {out}".encode() in play.seen
            window = x.window(f"training play: {out.name}")
            x.focus(window)
            for act, record in ((lambda: x.press("w"), b": W -> "),
                                (lambda: x.press("Control_L", "d"), b": D+ctrl -> "),
                                (lambda: x.press("Left"), b": leftx1 -> "),
                                (lambda: play.type(b"i"), b": upx1 -> ")):  # the terminal too
                act()
                play.wait_for(record + b"12 frames")
                block = int(re.findall(rb"block (\d+)" + re.escape(record), play.seen)[-1])
                shown = x.grab(window, 64 * zoom, 32 * zoom)[zoom // 2::zoom, zoom // 2::zoom]
                grabs.append((block, shown))
            x.press("q")
            assert play.finish() == 0
        finally:
            play.close()
    assert not (tmp_path / "session.preview.png").exists()
    written = np.stack(list(read_frames(out))).astype(np.float32)
    assert len(written) == 9 + 12 * (play.seen.count(b" frames in ") - 1)
    for block, shown in grabs:
        errors = np.abs(blurred(written) - blurred(shown.astype(np.float32))).mean(axis=(1, 2, 3))
        closest, second = np.sort(errors)[:2]
        # the window showed one of the frames written (up to H.264's loss), not any frame ...
        assert closest < 6 and second > 3 * closest, (closest, second)
        # ... and a new one: at least the last of the block before the one just printed
        assert errors.argmin() >= 9 + 12 * (block - 2) - 1, (errors.argmin(), block)
