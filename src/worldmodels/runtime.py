"""How a stage runs, as opposed to what it computes: run directory, workers, device, executor.

None of these change results (seeds never depend on workers or executor), so they are not part of
`config.yaml` and may differ between a run and its resume.
"""

from __future__ import annotations

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
