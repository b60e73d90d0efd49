"""`worldmodels run`: every stage in order, each skipped when its artifact is complete.

A rerun of a finished run does nothing; a rerun of a killed run continues the stage it was in.
"""

from __future__ import annotations

import importlib
import time

from worldmodels.runtime import Runtime
from worldmodels.stages.inspect import PIPELINE


def check_dream(rt: Runtime) -> None:
    """The dream-fidelity check before C is trained in M: warn when a fixed policy exploits M."""
    from worldmodels.stages.diagnose import diagnose, format_table

    if rt.config.controller.diagnose_episodes:
        print("run: checking the dream with fixed policies (controller.diagnose_episodes)", flush=True)
        print(format_table(diagnose(rt.run_dir, rt.config.controller.diagnose_episodes, device=rt.device)))


def run(rt: Runtime) -> None:
    timings = {}
    for name, module_name in PIPELINE:
        module = importlib.import_module(f"worldmodels.stages.{module_name}")
        if module.status(rt.run_dir, rt.config)["status"] == "done":
            print(f"run: {name} is done, skipped")
            continue
        if name == "train-controller" and rt.config.controller.where == "dream":
            check_dream(rt)
        print(f"run: {name}", flush=True)
        tic = time.perf_counter()
        module.run(rt)
        timings[name] = time.perf_counter() - tic
        print(f"run: {name} took {timings[name] / 60:.1f} min", flush=True)
    if timings:
        print("run: wall time " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    print(f"run: all stages done in {rt.run_dir}; `worldmodels inspect {rt.run_dir}` shows the results")
