"""Small pieces the training stages share: periodic checkpoints, status of a checkpoint, mixed precision."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from worldmodels.checkpoint import load_checkpoint
from worldmodels.logger import read_metrics

CHECKPOINT_SECONDS = 300.0  # long epochs also save every 5 minutes, so a kill loses little


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Every:
    """True once every `seconds` of wall time (for periodic checkpoints)."""

    def __init__(self, seconds: float = CHECKPOINT_SECONDS) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def training_status(path: Path, kind: str, target_epochs: int, *extra: str) -> dict[str, Any]:
    """inspect's view of a training checkpoint: done/partial, epochs, steps, parameters, last losses."""
    if not path.is_file():
        return {"status": "missing"}
    state = load_checkpoint(path, kind)
    info: dict[str, Any] = {
        "status": "done" if state["complete"] and state["epoch"] >= target_epochs else "partial",
        "epochs": f"{state['epoch']}/{target_epochs}",
        "steps": state["step"],
        **{key: state[key] for key in ("parameters", *extra)},
    }
    rows = read_metrics(path.parent / "metrics.jsonl")
    if rows:
        info.update({k.split("/")[1]: round(v, 4) for k, v in rows[-1].items() if k.startswith("losses/")})
    return info


def autocast(device: torch.device | str, precision: str) -> torch.autocast:
    """Mixed precision for a training step: 'bfloat16' runs the model's products in bf16 (weights, optimiser
    and loss stay fp32); 'float32' is the original's arithmetic. On CPUs with bf16 units this is 2-5x faster.
    """
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
