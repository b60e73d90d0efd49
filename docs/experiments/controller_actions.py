"""What a run's controller does on the real track: its return and mean actions over a few episodes.

    python docs/experiments/controller_actions.py RUN_DIR [--episodes 4] [--seed 100]

The run's C (with the M it was trained with) drives `--episodes` episodes on the run's training engine
(`carracing_backend`), seeds `--seed` onwards; prints each episode's return, the mean of each action
dimension and of its absolute value (CarRacing: steer, gas, brake).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from worldmodels.artifacts import agent_mdnrnn, load_best
from worldmodels.config import load_run_config
from worldmodels.rollout import load_agent
from worldmodels.tools.diagnose import real_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()
    config = load_run_config(args.run_dir)
    params, _ = load_best(args.run_dir, config)
    agent, _ = load_agent(args.run_dir, "cpu", config.to_dict(), agent_mdnrnn(args.run_dir, config))
    env = real_env(config)
    for seed in range(args.seed, args.seed + args.episodes):
        episode = agent.run_episode(env, params, seed, config.controller.max_steps, record=True)
        assert episode.actions is not None  # recorded
        actions = episode.actions.astype(np.float64)
        mean, magnitude = (x.mean(axis=0).round(2).tolist() for x in (actions, np.abs(actions)))
        print(
            f"{args.run_dir} seed {seed}: return {episode.total_reward:.1f}; "
            f"action mean {mean}, mean |action| {magnitude}"
        )
    env.close()


if __name__ == "__main__":
    main()
