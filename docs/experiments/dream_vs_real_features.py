"""What one controller does in the dream and in the game: its action, and the mean and spread of its
features [z, h] in both (RESULTS.md, session 7).

    python docs/experiments/dream_vs_real_features.py RUN_DIR CONTROLLER_DIR MDNRNN_CHECKPOINT
"""

import sys
from pathlib import Path

import torch

from worldmodels import rollout
from worldmodels.config import load_run_config
from worldmodels.data.episodes import read_arrays
from worldmodels.envs import make_env
from worldmodels.envs.dream import DreamBatch, DreamWorld, agent_actions
from worldmodels.stages.train_controller import controller_spec

if __name__ == "__main__":
    run_dir, controller, m_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    cfg = load_run_config(run_dir)
    spec = controller_spec(cfg)
    params = read_arrays(controller / "best.npz", ("params",))["params"]
    weights = torch.as_tensor(params)

    real, features = [], rollout.controller_features

    def recorded(*args):
        f = features(*args)
        real.append(f.clone())
        return f

    rollout.controller_features = recorded  # the agent's features, step by step
    agent, _ = rollout.load_agent(run_dir, torch.device("cpu"), mdnrnn_path=m_path)
    env = make_env(cfg.env)
    lengths = [agent.run_episode(env, params, 5000 + s, 2100).length for s in range(5)]
    env.close()
    real = torch.cat(real).float()

    world = DreamWorld.from_run(run_dir, "cpu", mdnrnn_path=m_path)
    batch, dream = DreamBatch(world, cfg.controller.temperature, 2100), []
    batch.reset(torch.arange(64))
    for _ in range(400):
        f = batch.features(spec)
        dream.append(f[batch.alive].clone())
        batch.step(agent_actions(spec, weights.expand(64, -1), f))
        if not batch.alive.any():
            break
    dream = torch.cat(dream).float()

    print(f"real episode lengths {lengths}; dream mean {batch.returns.mean().item():.0f} (64 agents, <= 400 steps)")
    for name, f in (("real", real), ("dream", dream)):
        a = agent_actions(spec, weights.expand(len(f), -1), f).squeeze(-1)
        print(f"{name}: tanh output mean {a.mean():.3f} std {a.std():.3f}; LEFT {(a < -1 / 3).float().mean():.2f}, "
              f"RIGHT {(a > 1 / 3).float().mean():.2f} of steps")
    Z = cfg.vae.latent_dim
    for name, part in (("z", slice(0, Z)), ("h", slice(Z, None))):
        gap = (real[:, part].mean(0) - dream[:, part].mean(0)).abs()
        print(f"{name}: mean |real - dream| of the means {gap.mean():.3f} (max {gap.max():.3f}); "
              f"std real {real[:, part].std(0).mean():.3f}, dream {dream[:, part].std(0).mean():.3f}")
