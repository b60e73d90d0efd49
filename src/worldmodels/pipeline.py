"""The pipeline: every stage in order, one registry, and `worldmodels run`.

Stages talk to each other only through the run directory (`artifacts`). `run` runs each stage whose
artifact is not complete, in order; a rerun of a finished run does nothing, and a rerun of a killed run
continues the stage it was in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from worldmodels import iterate
from worldmodels.config import Config
from worldmodels.runtime import Runtime
from worldmodels.stages import collect, encode, evaluate, train_controller, train_mdnrnn, train_vae
from worldmodels.tools.diagnose import diagnose, format_table


class Stage(NamedTuple):
    name: str  # the subcommand
    help: str
    run: Callable[[Runtime], Any]
    status: Callable[[Path, Config], dict[str, Any]]


STAGES = [
    Stage("collect", "collect random-policy episodes from the real environment", collect.run, collect.status),
    Stage("train-vae", "train V, the ConvVAE, on the collected frames", train_vae.run, train_vae.status),
    Stage("encode", "store V's (mu, logvar) for every frame, for training M", encode.run, encode.status),
    Stage("train-mdnrnn", "train M, the MDN-RNN, on the encoded episodes", train_mdnrnn.run, train_mdnrnn.status),
    Stage("train-controller", "train C with CMA-ES, in the real environment or in M's dream",
          train_controller.run, train_controller.status),
    Stage("iterate", "iterative training: collect with C, fine-tune M, retrain C in the dream (iterate.rounds)",
          iterate.run, iterate.status),
    Stage("evaluate", "score the trained agent over real episodes (default 100)", evaluate.run, evaluate.status),
]


def check_dream(rt: Runtime) -> None:
    """The dream-fidelity check before C is trained in M: warn when a fixed policy exploits M."""
    if rt.config.controller.diagnose_episodes:
        print("run: checking the dream with fixed policies (controller.diagnose_episodes)", flush=True)
        print(format_table(diagnose(rt.run_dir, rt.config.controller.diagnose_episodes, device=rt.device)))


def run(rt: Runtime) -> None:
    """Every stage in order, each skipped when its artifact is complete."""
    timings = {}
    for stage in STAGES:
        if stage.status(rt.run_dir, rt.config)["status"] == "done":
            print(f"run: {stage.name} is done, skipped")
            continue
        if stage.name == "train-controller" and rt.config.controller.where == "dream":
            check_dream(rt)
        print(f"run: {stage.name}", flush=True)
        tic = time.perf_counter()
        stage.run(rt)
        timings[stage.name] = time.perf_counter() - tic
        print(f"run: {stage.name} took {timings[stage.name] / 60:.1f} min", flush=True)
    if timings:
        print("run: wall time " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    print(f"run: all stages done in {rt.run_dir}; `worldmodels inspect {rt.run_dir}` shows the results")
