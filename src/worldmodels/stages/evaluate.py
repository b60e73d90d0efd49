"""`worldmodels evaluate`: the trained agent (V, M, C) over real episodes with fixed, recorded seeds.

Writes `eval.json` with mean, std, returns, episodes and seeds (the paper reports the mean ± std over 100
episodes). `--video` also records the first episode: what the agent sees beside V's reconstruction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import EVAL_FILE, agent_mdnrnn, controller_name, load_best, mdnrnn_checkpoint
from worldmodels.checkpoint import atomic_write_text
from worldmodels.config import Config
from worldmodels.envs import make_env, task_spec
from worldmodels.errors import UserError
from worldmodels.media import caption, save_gif
from worldmodels.rollout import load_agent, score
from worldmodels.runtime import Runtime


def evaluation_episode_seeds(config: Config) -> list[int]:
    return [config.evaluate.seed + i for i in range(config.evaluate.episodes)]


def run(rt: Runtime, video: bool = False, out: Path | None = None) -> dict[str, Any]:
    """Score the run's best controller; the result goes to `out` (default RUN_DIR/eval.json, which is
    what `run` and `inspect` read)."""
    cfg = rt.config
    params, meta = load_best(rt.run_dir)
    mdnrnn_path = agent_mdnrnn(rt.run_dir, cfg)
    seeds = evaluation_episode_seeds(cfg)
    tic = time.perf_counter()
    returns = score(rt, params, seeds, mdnrnn_path)
    result = {
        "mean": float(returns.mean()), "std": float(returns.std()), "episodes": len(returns),
        "returns": returns.tolist(), "seeds": seeds, "env": cfg.env,
        "controller": {"mode": meta["mode"], "trained_in": meta["where"], "generation": meta["generation"],
                       "temperature": meta["temperature"], "training_score": meta["score"],
                       "directory": controller_name(rt.run_dir, cfg),
                       "mdnrnn": str((mdnrnn_path or mdnrnn_checkpoint(rt.run_dir)).relative_to(rt.run_dir))},
        "seconds": round(time.perf_counter() - tic, 1),
    }
    out = out or rt.run_dir / EVAL_FILE
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"evaluate: {result['mean']:.1f} ± {result['std']:.1f} over {len(returns)} real episodes "
          f"(seeds {seeds[0]}..{seeds[-1]}) -> {out}")
    if video:
        write_video(rt, params, seeds[0], task_spec(cfg.env).max_steps, mdnrnn_path)
    return result


def write_video(rt: Runtime, params: np.ndarray, seed: int, max_steps: int, mdnrnn_path: Path | None) -> Path:
    """The first evaluation episode as a GIF: the real frame (left) beside V's reconstruction (right)."""
    agent, cfg = load_agent(rt.run_dir, rt.torch_device, mdnrnn_path=mdnrnn_path)
    env = make_env(cfg.env, doom_resolution=cfg.doom_resolution)
    episode = agent.run_episode(env, params, seed, max_steps, record=True)
    env.close()
    assert episode.frames is not None and episode.reconstructions is not None  # record=True keeps them
    assert episode.rewards is not None
    gap = np.full((64, 2, 3), 255, np.uint8)
    returns = np.cumsum(episode.rewards)
    frames = [caption(np.concatenate([f, gap, r], axis=1), ["real      V's recon.", f"t {t:4d}  return {g:6.1f}"])
              for t, (f, r, g) in enumerate(zip(episode.frames, episode.reconstructions, returns))]
    out = save_gif(rt.run_dir / "eval.gif", frames[::2], fps=25)
    print(f"evaluate: video of seed {seed} ({episode.length} steps, return {episode.total_reward:.1f}) -> {out}")
    return out


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return {"status": "missing"}
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path} is corrupt: delete it and run `worldmodels evaluate` again") from None
    # done only for the current seeds and the current controller (iterative training replaces it)
    complete = (result["seeds"] == evaluation_episode_seeds(config)
                and result["controller"].get("directory") == controller_name(run_dir, config))
    return {"status": "done" if complete else "partial", "mean": round(result["mean"], 1),
            "std": round(result["std"], 1), "episodes": result["episodes"]}
