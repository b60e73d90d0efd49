"""How a stage runs, as opposed to what it computes: run directory, workers, device, executor.

None of these change results (seeds never depend on workers or executor), so they are not part of
`config.yaml` and may differ between a run and its resume.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from worldmodels.config import Config
from worldmodels.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("process", "inprocess", "ray")


@dataclass
class Runtime:
    run_dir: Path
    config: Config
    workers: int = 1
    envs: int = 16  # real environments per worker, stepped in lockstep (rollout.AgentBatch; BENCHMARKS.md)
    device: str = "auto"
    executor: str = "process"
    ray_address: str | None = None
    quiet: bool = False

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a UserError."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu or auto")
    return torch.device(name)


BF16_UNITS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that multiply bf16 natively


def cpu_has_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); True when that cannot be read."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return True
    return any(flag in flags for flag in BF16_UNITS)


def warn_if_slow_bf16(device: torch.device, key: str, value: str) -> None:
    """Warn, once per stage, when a config key asks for bf16 on a CPU that emulates it: on an AVX2-only CPU
    V's bf16 training step ran at 3.8 images/s against 217 in fp32 (RESULTS.md, 2026-12-07)."""
    if value == "bfloat16" and device.type == "cpu" and not cpu_has_bf16_units():
        print(f"warning: {key}=bfloat16 on a CPU without bf16 units ({' or '.join(BF16_UNITS)} missing from "
              f"/proc/cpuinfo) runs many times slower than float32: consider --set {key}=float32",
              file=sys.stderr, flush=True)
