"""`worldmodels temperatures RUN_DIR`: the paper's temperature table for Doom.

For each tau, C is trained in M's dream at that temperature (from scratch, the run's CMA-ES settings), then
its best is scored in the dream at the same tau and in the real game. The paper's shape: low tau gives high
dream scores and low real ones (C exploits M: the fireballs stop coming), and around 1.15 transfers best.
Results go to `temperatures/` (one directory per tau, resumable) and `temperatures.md` / `.png` / `.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import agent_mdnrnn, controller_spec, load_params
from worldmodels.checkpoint import atomic_write_bytes, atomic_write_text
from worldmodels.envs.dream import DreamWorld, rollout_population
from worldmodels.rollout import score
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed
from worldmodels.stages import train_controller

PAPER_TAUS = (0.1, 0.5, 1.0, 1.15, 1.3)
PAPER_ROWS = {  # the paper's Table 2: dream, real
    0.1: ("2086 ± 140", "193 ± 58"), 0.5: ("2060 ± 277", "196 ± 50"), 1.0: ("1145 ± 690", "868 ± 511"),
    1.15: ("918 ± 546", "1092 ± 556"), 1.3: ("732 ± 269", "753 ± 139"),
}


def run_table(rt: Runtime, taus: tuple[float, ...] = PAPER_TAUS, episodes: int = 100,
              generations: int | None = None) -> list[dict[str, Any]]:
    mdnrnn_path = agent_mdnrnn(rt.run_dir, rt.config)  # the M of the run's controller (iterate.keep=best)
    world = DreamWorld.from_run(rt.run_dir, rt.torch_device, mdnrnn_path=mdnrnn_path,
                                dropout=rt.config.controller.dream_dropout)  # the dream C is trained in
    rows = []
    for tau in taus:
        out = rt.run_dir / "temperatures" / f"tau_{tau:g}"
        result_path = out / "result.json"
        if result_path.is_file():
            rows.append(json.loads(result_path.read_text()))
            print(f"temperatures: tau {tau:g} is done, skipped")
            continue
        config = copy.deepcopy(rt.config)
        config.controller.temperature = tau
        rt_tau = dataclasses.replace(rt, config=config)
        print(f"temperatures: training C in the dream at tau {tau:g}", flush=True)
        train_controller.run(rt_tau, round_index=1000 + int(tau * 1000), out=out, generations=generations,
                             mdnrnn_path=mdnrnn_path)
        params = load_params(out)

        seeds = [derive_seed(config.seed, "temperature-table", i) for i in range(episodes)]
        spec = controller_spec(config)
        dream = rollout_population(world, spec, params[None], np.array([seeds]), tau, config.controller.max_steps)[0]
        real = score(rt_tau, params, seeds, mdnrnn_path)
        row = {"temperature": tau, "dream_mean": float(dream.mean()), "dream_std": float(dream.std()),
               "real_mean": float(real.mean()), "real_std": float(real.std()), "episodes": episodes,
               "generations": generations or config.controller.generations,
               "population": config.controller.population_size, "rollouts": config.controller.rollouts}
        atomic_write_text(result_path, json.dumps(row, indent=2))
        rows.append(row)
        print(f"temperatures: tau {tau:g}: dream {row['dream_mean']:.0f} ± {row['dream_std']:.0f}, "
              f"real {row['real_mean']:.0f} ± {row['real_std']:.0f}")
    write_outputs(rt.run_dir, rows)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| tau | dream (ours) | real game (ours) | dream (paper) | real (paper) |", "|---|---|---|---|---|"]
    for r in rows:
        paper = PAPER_ROWS.get(r["temperature"], ("", ""))
        lines.append(f"| {r['temperature']:g} | {r['dream_mean']:.0f} ± {r['dream_std']:.0f} | "
                     f"{r['real_mean']:.0f} ± {r['real_std']:.0f} | {paper[0]} | {paper[1]} |")
    return "\n".join(lines)


def write_outputs(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    atomic_write_text(run_dir / "temperatures.json", json.dumps(rows, indent=2))
    atomic_write_text(run_dir / "temperatures.md", markdown(rows) + "\n")
    taus = [r["temperature"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label in (("dream", "in the dream"), ("real", "in the real game")):
        ax.errorbar(taus, [r[f"{key}_mean"] for r in rows], yerr=[r[f"{key}_std"] for r in rows],
                    marker="o", capsize=3, label=label)
    ax.set_xlabel("temperature tau of the dream C was trained in")
    ax.set_ylabel("steps survived")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(run_dir / "temperatures.png", buffer.getvalue())
