"""`worldmodels inspect RUN_DIR`: the config summary and each stage's status with its key figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldmodels.config import CONFIG_FILE, load_run_config
from worldmodels.errors import UserError
from worldmodels.pipeline import STAGES


def inspect_run(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); start one with `worldmodels collect`")
    config = load_run_config(run_dir)
    stages = {stage.name: stage.status(run_dir, config) for stage in STAGES}
    return {"run_dir": str(run_dir), "config": config.to_dict(), "stages": stages}


def format_report(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"run directory {report['run_dir']}",
        f"  env {cfg['env']}  seed {cfg['seed']}  z {cfg['vae']['latent_dim']}  LSTM {cfg['mdnrnn']['hidden_size']}"
        f"  controller {cfg['controller']['mode']} in the {cfg['controller']['where']}"
        f"  (tau {cfg['controller']['temperature']})",
    ]
    for name, info in report["stages"].items():
        figures = "  ".join(f"{k} {_fmt(v)}" for k, v in info.items() if k != "status")
        lines.append(f"  {name:<17} {info['status']:<8} {figures}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
