"""Same-run comparison of the dream engine and the real-env agent before and after the optimisation work.

Interleaved, best of 3, in one process: `python benchmarks/before_after.py [STEPS]`. The "before" code is
read from git history (commit ce67bf2's dream.py, a62d1b3's rollout.py) into a temporary directory.
"""
import subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

_old = Path(tempfile.mkdtemp(prefix="wm-before-"))
for name, ref in (("old_dream", "ce67bf2:src/worldmodels/envs/dream.py"), ("old_rollout", "a62d1b3:src/worldmodels/rollout.py")):
    (_old / f"{name}.py").write_text(subprocess.run(["git", "show", ref], capture_output=True, text=True, check=True,
                                                    cwd=Path(__file__).resolve().parent).stdout)
sys.path.insert(0, str(_old))
import old_dream, old_rollout  # noqa: E402
from worldmodels.envs import dream as new_dream
from worldmodels import rollout as new_rollout
from worldmodels.bench import dream_world, _population, DOOM, matmul_gflops
from worldmodels.models.vae import ConvVAE
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.controller import ControllerSpec
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
res = {}
for size in (DOOM,):
    w = dream_world(size)
    old_w = old_dream.DreamWorld(w.mdnrnn, w.initial_mu, w.initial_logvar, w.survival_reward)
    spec, params, seeds = _population(size, 64, 16)
    runs = {"old engine fp32": lambda: old_dream.rollout_population(old_w, spec, params, seeds, 1.15, steps),
            "new eager fp32": lambda: new_dream.rollout_population(w, spec, params, seeds, 1.15, steps),
            "new eager bf16": lambda: new_dream.rollout_population(w, spec, params, seeds, 1.15, steps, dtype=torch.bfloat16),
            "new compiled fp32": lambda: new_dream.rollout_population(w, spec, params, seeds, 1.15, steps, compile=True),
            "new compiled bf16": lambda: new_dream.rollout_population(w, spec, params, seeds, 1.15, steps, dtype=torch.bfloat16, compile=True)}
    for f in runs.values(): new_dream.rollout_population(w, spec, params, seeds, 1.15, 2, compile=True); break
    new_dream.rollout_population(w, spec, params, seeds, 1.15, 2, dtype=torch.bfloat16, compile=True)
    for rep in range(3):
        res.setdefault("matmul fp32 GFLOP/s", []).append(matmul_gflops(torch.float32, 1024, 2))
        for k, f in runs.items():
            t = time.perf_counter(); f(); res.setdefault(k + " ms/step", []).append((time.perf_counter() - t) / steps * 1e3)
# agent
class Env:
    class spec: action_dim = 1; max_steps = 10**6
    def reset(self, seed=None): self.t = 0; return self.f
    def step(self, a): self.t += 1; return self.f, 1.0, False, False
env = Env(); env.f = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
torch.set_num_threads(1)
torch.manual_seed(0)
vae, m = ConvVAE(64).eval(), MDNRNN(64, 1, 512, restart_input=True, done_head=True).eval()
spec = ControllerSpec("zch", 64, 512, 1, env="doom")
p = np.random.default_rng(0).normal(0, 0.1, 1088).astype(np.float32)
agents = {"old agent": old_rollout.Agent(vae, m, spec), "new agent": new_rollout.Agent(vae, m, spec)}
for rep in range(3):
    for k, a in agents.items():
        t = time.perf_counter(); a.run_episode(env, p, 0, 300); res.setdefault(k + " ms/step", []).append((time.perf_counter() - t) / 300 * 1e3)
for k, v in res.items():
    print(f"{k:32s} best {min(v):8.2f}  all {[round(x, 1) for x in v]}")
