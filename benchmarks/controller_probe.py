"""What a trained controller does, for RESULTS.md: its actions, M's state scale, and its real score.

    python benchmarks/controller_probe.py RUN_DIR [--controller controller] [--seeds 10000,10001]
        [--score-from 10000 --episodes 100]

1. actions: the controller (RUN_DIR/CONTROLLER/best.npz) replayed in the real game on `--seeds`: episode
   length and the fraction of steps it chose LEFT / no-op / RIGHT (Doom's thirds of [-1, 1]);
2. state scale: rms of z, h and c over 64 dream agents x 200 steps of random actions at tau 1.15 (why the
   [z, c, h] controller saturates);
3. with `--score-from S`: the mean ± std over `--episodes` real episodes with seeds S.. on 2 workers (what
   `evaluate` does, for a controller other than the run's current one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    from worldmodels.artifacts import M_SNAPSHOT, load_params
    from worldmodels.config import load_run_config
    from worldmodels.envs import make_env
    from worldmodels.envs.dream import DreamBatch, DreamWorld
    from worldmodels.rollout import load_agent, score
    from worldmodels.runtime import Runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--controller", default="controller", help="directory under RUN_DIR holding best.npz")
    parser.add_argument("--seeds", default="10000,10001")
    parser.add_argument("--score-from", type=int)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    params = load_params(args.run_dir / args.controller)
    snapshot = args.run_dir / args.controller / M_SNAPSHOT  # the M this controller was trained with, if kept
    mdnrnn_path = snapshot if snapshot.is_file() else None
    torch.set_num_threads(1)

    agent, _ = load_agent(args.run_dir, "cpu", mdnrnn_path=mdnrnn_path)
    env = make_env("doom")
    for seed in map(int, args.seeds.split(",")):
        a = agent.run_episode(env, params, seed, 2100, record=True).actions[:, 0]
        print(f"seed {seed}: {len(a)} steps; LEFT {(a < -1 / 3).mean():.1%}, "
              f"no-op {((a >= -1 / 3) & (a <= 1 / 3)).mean():.1%}, RIGHT {(a > 1 / 3).mean():.1%}")
    env.close()

    batch = DreamBatch(DreamWorld.from_run(args.run_dir, mdnrnn_path=mdnrnn_path), 1.15, 300)
    batch.reset(torch.arange(64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch.step(torch.rand(64, 1, generator=generator) * 2 - 1)
    h, c = batch.state
    rms = {name: float(x.pow(2).mean().sqrt()) for name, x in (("z", batch.z), ("h", h), ("c", c))}
    print("dream state rms after 200 random steps: " + ", ".join(f"{k} {v:.2f}" for k, v in rms.items()))

    if args.score_from is not None:
        rt = Runtime(run_dir=args.run_dir, config=load_run_config(args.run_dir), workers=2, quiet=True)
        returns = score(rt, params, list(range(args.score_from, args.score_from + args.episodes)), mdnrnn_path)
        print(f"{args.controller}: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} real episodes, "
              f"seeds {args.score_from}..{args.score_from + args.episodes - 1}")


if __name__ == "__main__":
    main()
