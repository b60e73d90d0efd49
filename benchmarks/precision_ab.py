"""fp32 vs bf16, interleaved in one process: V's train step, M's training loop, V's batch-1 encoder.

    python benchmarks/precision_ab.py [--rounds 2]

1. V: train-vae's step (`bench.time_vae_training`), batch 100, 8 steps, fp32 and `vae.precision=bfloat16`;
2. M: train-mdnrnn's loop (`bench.time_mdnrnn_training`) at doom-quick's batch 32 x 100-frame chunks,
   8 steps, fp32 and `mdnrnn.precision=bfloat16`;
3. the agent's V encoder on one 64x64 frame per call, one thread, fp32 channels-last (what `_FastAgent`
   runs) and bf16 NCHW.

Each pair runs `--rounds` times, alternating, so a change in the machine's load hits both; prints every
measurement. The figures of BENCHMARKS.md's "Session 2" table came from this script.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels import bench
from worldmodels.models.vae import ConvVAE


def encoder_ms(dtype: torch.dtype, channels_last: bool, calls: int = 300) -> float:
    encoder = copy.deepcopy(ConvVAE(64).encoder).to(dtype)
    if channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def call():
        x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).to(dtype).div_(255.0)
        return encoder(x if channels_last else x.contiguous())

    with torch.inference_mode():
        for _ in range(20):
            call()
        tic = time.perf_counter()
        for _ in range(calls):
            call()
    return (time.perf_counter() - tic) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    rounds = parser.parse_args().rounds
    print(f"python benchmarks/precision_ab.py --rounds {rounds}: {bench.machine()}")
    shape = ["mdnrnn.batch_size=32", "mdnrnn.sequence_length=100"]  # doom-quick's
    with tempfile.TemporaryDirectory(prefix="wm-ab-") as tmp:
        for _ in range(rounds):
            for precision in ("float32", "bfloat16"):
                print(f"V train step, {precision}: {bench.time_vae_training(64, 8, precision=precision):.0f} images/s")
            for precision in ("float32", "bfloat16"):
                frames = bench.time_mdnrnn_training(bench.DOOM, 8, Path(tmp), precision=precision, overrides=shape)
                print(f"M loop, batch 32 x 100, {precision}: {frames:.0f} frames/s")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(rounds):
        print(f"V encoder, batch 1, fp32 channels-last: {encoder_ms(torch.float32, True):.2f} ms; "
              f"bf16 NCHW: {encoder_ms(torch.bfloat16, False):.2f} ms")
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
