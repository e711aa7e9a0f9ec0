"""benchmarks/bench_gpu.py runs end to end (on the CPU, tiny preset) before any GPU is lent.

A lent GPU comes with minutes, not hours: the script that measures the training step and
streaming play on it must not be debugged there.
"""

from __future__ import annotations

import json
import subprocess
import sys

from fit_support import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_gpu import peak_tflops  # noqa: E402


def test_the_gpu_benchmark_measures_a_training_step_and_streaming_play(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--device", "cpu",
         "--train-preset", "tiny", "--stream-preset", "tiny", "--size", "32x64", "--frames",
         "9", "--steps", "2", "--warmup", "1", "--blocks", "3", "--warmup-blocks", "1",
         "--vae-arch", "tiny", "--peak-tflops", "1", "--json", str(out)],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    train, stream = result["train"], result["stream"]
    assert train["latents"] == [3, 4, 8] and train["precision"] == "fp32"
    assert train["step_s"] > 0 and train["loss"] > 0
    # MFU is the model FLOPs of a step (3 forward passes) over the time, against the peak given
    assert abs(train["mfu"] - train["model_tflop_per_step"] / train["step_s"]) < 1e-9
    assert stream["fps"] > 0 and 0 < stream["decode_share"] < 1
    assert "frames/s" in done.stdout and "MFU" in done.stdout


def test_known_gpus_have_their_dense_bf16_peak():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("a GPU nobody has heard of") is None
