"""Mean survival of the fixed policies (`worldmodels diagnose`'s) in the dreams of several Ms, at several
temperatures and done thresholds, dream only (RESULTS.md, session 15: is a harsh M calibrated by tau or by the
done rule?).

    python docs/experiments/dream_fixed_policies.py RUN_DIR M [M ...]

RUN_DIR gives the config and the initial z (its V's); each M is an M checkpoint. Environment: TAUS (default
1.15), THRESHOLDS (default 0, the original's rule; other values need docs/experiments/done-threshold.patch),
EPISODES (default 50). Prints a markdown table.
"""

import os
import sys
from pathlib import Path

from worldmodels.config import load_run_config
from worldmodels.envs.dream import DreamWorld
from worldmodels.stages.diagnose import dream_scores, fixed_policies

SEED = 12345  # the dream agents' seeds: SEED, SEED + 1, ...


def floats(name: str, default: str) -> list[float]:
    return [float(v) for v in os.environ.get(name, default).split(",")]


def main() -> None:
    run, models = Path(sys.argv[1]), sys.argv[2:]
    taus, thresholds = floats("TAUS", "1.15"), floats("THRESHOLDS", "0")
    episodes = int(os.environ.get("EPISODES", "50"))
    with_thresholds = thresholds != [0.0]
    if with_thresholds and not hasattr(DreamWorld, "done_threshold"):
        sys.exit("THRESHOLDS needs `git apply docs/experiments/done-threshold.patch`")
    cfg = load_run_config(run)
    policies = fixed_policies(cfg.env)
    print("| M | tau | done threshold | " + " | ".join(policies) + " |")
    print("|---|---|---|" + "---|" * len(policies))
    for m in models:
        world = DreamWorld.from_run(run, "cpu", mdnrnn_path=Path(m))
        for threshold in thresholds:
            if with_thresholds:
                world.done_threshold = threshold
            for tau in taus:
                means = [dream_scores(world, policy, episodes, tau, cfg.controller.max_steps, SEED).mean()
                         for policy in policies.values()]
                cells = " | ".join(f"{v:.0f}" for v in means)
                print(f"| {m} | {tau:g} | {threshold:g} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
