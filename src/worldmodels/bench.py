"""`worldmodels bench [--quick] [--json FILE]`: how fast this machine runs each part, against its own ceiling.

Everything is measured in one run at the paper's sizes (Doom: z 64, LSTM 512; CarRacing: z 32, LSTM 256):

1. the machine's ceiling: a 2048 x 2048 fp32 (and bf16) matrix product, 2 FLOPs per multiply-add;
2. one Doom CMA-ES generation in the dream, 64 x 16 = 1,024 agents for exactly 1,000 steps, in fp32 and
   bf16, against the same work as a per-agent loop (the original's way); the same at CarRacing's size;
   and whether bf16 changes the outcome (returns of a generation with deaths, fp32 vs bf16, same seeds);
3. V training (forward, loss, backward, Adam) at batch 100;
4. M training: the whole train-mdnrnn loop, data streamed from synthetic series files, at both sizes;
5. real-environment rollouts: the bare environment, the agent (V + M + C every step) on one worker with one
   env and with 8 in lockstep (what rollout workers run), and 1 and 2 workers of the process pool;
6. peak memory (VmHWM, the peak RSS, of a subprocess) of V training and of collection at two dataset sizes.

The dream's models are fresh, untrained ones: speed does not depend on the weights, and for the timed
generations the done head is forced negative (its row zeroed, its bias -1e4) so that every agent lives
the full 1,000 steps and runs compare. FLOP counts are the matrix products: per dream agent-step, LSTM
2 (in + H) 4H, head 2 H out and controller 2 in A; V and M training count forward + backward as 3x the
forward products. `--quick` times fewer steps and extrapolates; the table says where.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from worldmodels.artifacts import mdnrnn_checkpoint, vae_checkpoint
from worldmodels.checkpoint import save_checkpoint
from worldmodels.config import resolve, save_run_config
from worldmodels.data.episodes import episode_path, list_episodes, write_arrays
from worldmodels.data.sequences import series_lengths
from worldmodels.data.streams import prefetch
from worldmodels.envs import make_env
from worldmodels.envs.dream import COMPONENT_STREAM, EPS_STREAM, CounterRandom, DreamWorld, rollout_population
from worldmodels.executors import make_executor
from worldmodels.models.controller import ControllerSpec, controller_actions, controller_features
from worldmodels.models.mdnrnn import MDNRNN, StepWeights, head_step, lstm_step, sample_mixture
from worldmodels.models.vae import ConvVAE, frames_to_tensor, vae_loss
from worldmodels.rollout import RolloutTask, RolloutWorker, load_agent
from worldmodels.runtime import Runtime
from worldmodels.stages.train_mdnrnn import epoch_batches, model_args, train_step
from worldmodels.training import autocast


class PaperSize(TypedDict):
    """A task's models at the paper's size: z (latent), LSTM (hidden), action width, controller mode."""

    name: str
    latent: int
    hidden: int
    action: int
    mode: str


DOOM: PaperSize = {"name": "doom", "latent": 64, "hidden": 512, "action": 1, "mode": "zch"}
CARRACING: PaperSize = {"name": "carracing", "latent": 32, "hidden": 256, "action": 3, "mode": "zh"}
LOCKSTEP_ENVS = Runtime.envs  # real environments per worker: the CLI's default --envs


class Table:
    """Rows of (section, what, value, unit, note), printed as one aligned table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, section: str, what: str, value: float | str, unit: str = "", note: str = "") -> None:
        text = value if isinstance(value, str) else _fmt(value)
        self.rows.append((section, what, text, unit, note))
        print(f"  {section:<10} {what:<52} {text:>10} {unit:<11} {note}", flush=True)

    def markdown(self) -> str:
        lines = ["| section | measurement | value | unit | note |", "|---|---|---:|---|---|"]
        lines += [f"| {s} | {w} | {v} | {u} | {n} |" for s, w, v, u, n in self.rows]
        return "\n".join(lines)


def _fmt(x: float) -> str:
    if x == 0 or not np.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _best_time(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of `repeats` calls (other processes on the machine only ever slow a call down)."""
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


# --- 1. ceiling -----------------------------------------------------------------------------------------


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    seconds = _best_time(lambda: [a @ b for _ in range(3)], repeats) / 3
    return 2 * n**3 / seconds / 1e9


# --- 2. dream -------------------------------------------------------------------------------------------


def dream_world(size: PaperSize, deaths: bool = False, seed: int = 0) -> DreamWorld:
    """A fresh M at a paper size. Doom: restart input and done head, the done logit forced negative unless
    `deaths` (then scaled so that episodes end at varied steps); CarRacing: reward head, no done head."""
    torch.manual_seed(seed)
    doom = size["name"] == "doom"
    mdnrnn = MDNRNN(size["latent"], size["action"], size["hidden"], restart_input=doom, done_head=doom,
                    reward_head=not doom).eval()
    with torch.no_grad():
        if doom and deaths:
            mdnrnn.output_layer.weight[0] *= 8.0
            mdnrnn.output_layer.bias[0] = -1.2  # probed: a few deaths per thousand agent-steps
        elif doom:
            mdnrnn.output_layer.weight[0].zero_()
            mdnrnn.output_layer.bias[0] = -1e4
    mu = torch.randn(1000, size["latent"])
    return DreamWorld(mdnrnn, mu, torch.full_like(mu, -2.0), survival_reward=doom)


def controller_spec(size: PaperSize) -> ControllerSpec:
    return ControllerSpec(size["mode"], size["latent"], size["hidden"], size["action"], env=size["name"])


def dream_flops_per_agent_step(size: PaperSize) -> int:
    spec = controller_spec(size)
    inputs = size["latent"] + size["action"] + (1 if size["name"] == "doom" else 0)
    hidden = size["hidden"]
    out = 1 + 3 * 5 * size["latent"]  # done (Doom) or reward (CarRacing) column + the mixtures
    return 2 * ((inputs + hidden) * 4 * hidden + hidden * out + spec.input_size * spec.action_dim)


def _population(size: PaperSize, population: int, rollouts: int,
                seed: int = 0) -> tuple[ControllerSpec, np.ndarray, np.ndarray]:
    spec = controller_spec(size)
    params = np.random.default_rng(seed).normal(0.0, 0.1, (population, spec.num_params))  # CMA-ES sigma0 0.1
    seeds = np.arange(population * rollouts).reshape(population, rollouts) + 1000 * seed
    return spec, params, seeds


def time_generation(world: DreamWorld, size: PaperSize, steps: int, dtype: torch.dtype, compile: bool = False,
                    population: int = 64, rollouts: int = 16) -> float:

    spec, params, seeds = _population(size, population, rollouts)
    rollout_population(world, spec, params, seeds, 1.15, 2, dtype=dtype, compile=compile)  # warm-up / compile
    tic = time.perf_counter()
    returns = rollout_population(world, spec, params, seeds, 1.15, steps, dtype=dtype, compile=compile)
    seconds = time.perf_counter() - tic
    if world.survival_reward:
        assert (returns == steps).all(), "every agent must live the whole run"
    return seconds


def time_per_agent_loop(world: DreamWorld, size: PaperSize, agents: int, steps: int) -> float:
    """Seconds per agent-step of the original's way: one agent at a time, batch 1: C, M's step, sampling."""
    spec, params, seeds = _population(size, agents, 1)
    mdnrnn, z_dim = world.mdnrnn, size["latent"]
    weights = StepWeights(mdnrnn)
    total = 0.0
    with torch.no_grad():
        for agent in range(agents):
            params_t = torch.as_tensor(params[agent : agent + 1], dtype=torch.float32)
            rng = CounterRandom(torch.tensor([int(seeds[agent, 0])]))
            z, (h, c) = world.initial_mu[agent : agent + 1].clone(), mdnrnn.initial_state(1)
            restart = torch.ones(1) if mdnrnn.restart_input else None
            tic = time.perf_counter()
            for t in range(1, steps + 1):
                action = controller_actions(spec, params_t, controller_features(spec, z, h, c))
                h, c = lstm_step(weights, z, action, restart, h, c)
                extra, mixture = head_step(weights, h)
                step = torch.tensor([t])
                uniform = rng.uniform(step, COMPONENT_STREAM, z_dim)
                z = sample_mixture(mixture, 1.15, uniform, rng.normal(step, EPS_STREAM, z_dim))
                restart = torch.zeros(1) if restart is not None else None
                _ = bool(extra[0, 0] > 0) if mdnrnn.done_head else False
            total += time.perf_counter() - tic
    return total / (agents * steps)


def bf16_outcome(size: PaperSize, population: int, rollouts: int, max_steps: int) -> dict[str, float]:
    """A generation where agents die (done head live): fp32 vs bf16 returns, same seeds."""
    world = dream_world(size, deaths=True)
    spec, params, seeds = _population(size, population, rollouts, seed=1)
    fp32 = rollout_population(world, spec, params, seeds, 1.15, max_steps)
    bf16 = rollout_population(world, spec, params, seeds, 1.15, max_steps, dtype=torch.bfloat16)
    stderr = float(np.hypot(fp32.std(), bf16.std()) / np.sqrt(fp32.size))
    fitness32, fitness16 = fp32.mean(1), bf16.mean(1)
    return {
        "fp32_mean_return": float(fp32.mean()), "bf16_mean_return": float(bf16.mean()),
        "difference_in_stderr": float((bf16.mean() - fp32.mean()) / stderr),
        "fp32_return_std": float(fp32.std()),
        "candidate_fitness_correlation": float(np.corrcoef(fitness32, fitness16)[0, 1]),
        "same_episode_lengths": float((fp32 == bf16).mean()),
    }


# --- 3. V training --------------------------------------------------------------------------------------


def vae_flops_per_image(latent: int) -> int:
    """Forward multiply-adds of every conv, transposed conv and linear layer, x2 FLOPs, x3 for training."""
    model, macs = ConvVAE(latent), [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs[0] += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, torch.nn.ConvTranspose2d):
            macs[0] += inputs[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, torch.nn.Linear):
            macs[0] += module.in_features * module.out_features

    for module in model.modules():
        module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    return 3 * 2 * macs[0]


def time_vae_training(latent: int, steps: int, channels_last: bool = False, precision: str = "float32") -> float:
    """Images per second of train-vae's step: frames_to_tensor, forward (under `vae.precision`'s autocast),
    loss in fp32, backward, Adam, batch 100."""
    torch.manual_seed(0)
    model = ConvVAE(latent)
    if channels_last:
        # torch's stubs lack Module.to's memory_format keyword (torch.nn.Module.to documents it)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = np.random.default_rng(0).integers(0, 256, (steps + 2, 100, 64, 64, 3), dtype=np.uint8)

    def train_step(batch: np.ndarray) -> None:
        x = frames_to_tensor(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, precision):
            recon, mu, logvar = model(x)
        losses = vae_loss(x, recon.float(), mu.float(), logvar.float(), 0.5)
        optimizer.zero_grad(set_to_none=True)
        losses.loss.backward()
        optimizer.step()

    for i in range(2):
        train_step(frames[i])
    tic = time.perf_counter()
    for i in range(steps):
        train_step(frames[2 + i])
    return 100 * steps / (time.perf_counter() - tic)


# --- 4. M training --------------------------------------------------------------------------------------


def mdnrnn_flops_per_frame(size: PaperSize) -> int:
    inputs = size["latent"] + size["action"] + (1 if size["name"] == "doom" else 0)
    hidden = size["hidden"]
    out = (1 if size["name"] == "doom" else 0) + 15 * size["latent"]
    return 3 * 2 * ((inputs + hidden) * 4 * hidden + hidden * out)


def _write_series(directory: Path, episodes: int, length: int, size: PaperSize, rng: np.random.Generator) -> None:
    for i in range(episodes):
        done = np.zeros(length, bool)
        done[-1] = size["name"] == "doom"
        write_arrays(episode_path(directory, i), compress=False,
                     mu=rng.normal(size=(length, size["latent"])).astype(np.float16),
                     logvar=np.full((length, size["latent"]), -3.0, np.float16),
                     action=rng.uniform(-1, 1, (length, size["action"])).astype(np.float32),
                     reward=np.ones(length, np.float32), done=done, meta={"env": size["name"], "index": i})


def time_mdnrnn_training(size: PaperSize, steps: int, workdir: Path, warm_up: bool = True,
                         precision: str = "float32", overrides: list[str] | None = None) -> float:
    """Frames per second of train-mdnrnn's loop (its batches, prefetch, train_step, clip, Adam) on series
    files written to `workdir`: Doom's 100 streams x 500-frame chunks, CarRacing's 100 whole episodes
    (the paper preset's shapes; `overrides` such as mdnrnn.batch_size=32 change them)."""
    doom = size["name"] == "doom"
    config = resolve(size["name"], overrides)
    m = config.mdnrnn
    length = 300 if doom else 1000  # Doom's ~300-frame episodes, CarRacing's 1000 frames exactly
    episodes = (2 * m.batch_size * m.sequence_length) // length + 1 if doom else m.batch_size
    directory = workdir / f"series-{size['name']}-{episodes}"
    if not directory.is_dir():  # the same files serve every precision
        _write_series(directory, episodes, length, size, np.random.default_rng(0))
    paths = list_episodes(directory)
    lengths = series_lengths(paths)

    torch.manual_seed(0)
    model = MDNRNN(**model_args(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=m.learning_rate)

    def batches():
        epoch = 0
        while True:
            yield from epoch_batches(config, paths, lengths, epoch)
            epoch += 1

    frames, state, tic, first = 0, None, time.perf_counter(), int(warm_up)
    for step, batch in enumerate(prefetch(batches())):
        if step == 1 and warm_up:  # the first step warms up allocators and threads
            frames, tic = 0, time.perf_counter()
        if step == steps + first:
            break
        generator = torch.Generator().manual_seed(step)
        losses, state = train_step(model, batch, state, generator, "cpu", m.restart_factor, precision)
        optimizer.zero_grad(set_to_none=True)
        losses.loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), m.grad_clip)
        optimizer.step()
        state = (state[0].detach(), state[1].detach()) if m.carry_state else None
        frames += batch.done_target.size
        losses.loss.item()
    return frames / (time.perf_counter() - tic)


# --- 5. real environment --------------------------------------------------------------------------------


def make_agent_run(run_dir: Path, size: PaperSize) -> dict:
    """A run directory with fresh V and M at a paper size, as `load_agent` and `RolloutWorker` read it."""
    config = resolve(size["name"])
    save_run_config(run_dir, config)
    torch.manual_seed(0)
    args = model_args(config)
    save_checkpoint(mdnrnn_checkpoint(run_dir), "mdnrnn", {
        "model": MDNRNN(**args).state_dict(), "complete": True, "epoch": 0, "step": 0, "parameters": 0,
        "paper_parameters": 0, "model_args": args})
    save_checkpoint(vae_checkpoint(run_dir), "vae", {
        "model": ConvVAE(size["latent"]).state_dict(), "complete": True, "epoch": 0, "step": 0,
        "parameters": 0, "model_args": {"latent_dim": size["latent"]}})
    return config.to_dict()


def time_bare_env(name: str, steps: int, doom_resolution: str | None = None, backend: str = "gymnasium") -> float:
    env = make_env(name, doom_resolution=doom_resolution, backend=backend)
    rng = np.random.default_rng(0)
    low = np.array([-1.0, 0.0, 0.0] if name == "carracing" else [-1.0], np.float32)
    env.reset(seed=0)
    done, episode = 0, 0
    tic = time.perf_counter()
    while done < steps:
        action = rng.uniform(low, 1.0).astype(np.float32)
        _, _, terminated, truncated = env.step(action)
        done += 1
        if terminated or truncated:
            episode += 1
            env.reset(seed=episode)
    seconds = time.perf_counter() - tic
    env.close()
    return steps / seconds


def time_agent(run_dir: Path, name: str, steps: int, envs: int = 1, doom_resolution: str | None = None,
               backend: str = "gymnasium") -> float:
    """Steps per second of the agent (V + M + C every step) in the real env, one thread, `envs` environments
    in lockstep (`Agent.run_episodes`, what a rollout worker runs; 1 = one episode at a time)."""
    agent, _ = load_agent(run_dir, "cpu")
    pool = [make_env(name, doom_resolution=doom_resolution, backend=backend) for _ in range(envs)]
    params = np.random.default_rng(0).normal(0.0, 0.1, agent.spec.num_params).astype(np.float32)
    agent.run_episodes(pool, params, list(range(envs)), 20)  # warm-up, and every env made and reset once
    done, seed, seconds = 0, envs, 0.0
    while done < steps:
        cap = min(max(1, (steps - done) // envs), pool[0].spec.max_steps)
        tic = time.perf_counter()
        done += sum(e.length for e in agent.run_episodes(pool, params, list(range(seed, seed + envs)), cap))
        seconds += time.perf_counter() - tic
        seed += envs
    for env in pool:
        env.close()
    return done / seconds


def time_pool(run_dir: Path, config: dict, workers: int, tasks: int, episode_steps: int, envs: int) -> float:
    """Agent steps per second of `workers` processes of the ProcessPoolExecutor (startup excluded), each task
    `envs` episodes in lockstep. Episodes are capped at `episode_steps`; Doom's reward is +1 per step survived,
    so returns count steps."""
    worker = RolloutWorker(str(run_dir), config, episode_steps, envs=envs)
    rng = np.random.default_rng(0)
    params = [rng.normal(0.0, 0.1, 1088).astype(np.float32) for _ in range(tasks)]
    with make_executor("process", worker, workers=workers, task_timeout=600.0) as executor:
        warm_up = tuple(range(10_000, 10_000 + envs))  # start every worker and make its envs
        executor.map([RolloutTask(params[0], warm_up) for _ in range(workers)])
        tic = time.perf_counter()
        results = executor.map([RolloutTask(p, tuple(range(i * envs, (i + 1) * envs))) for i, p in enumerate(params)])
        seconds = time.perf_counter() - tic
    return sum(length for task in results for _, length in task) / seconds


# --- 6. memory ------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import sys, numpy as np
from pathlib import Path
from worldmodels.config import resolve, save_run_config
from worldmodels.runtime import Runtime
stage, run_dir, episodes = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
overrides = [f"collect.episodes={episodes}", "vae.epochs=1", "vae.batch_size=100", "vae.shuffle_buffer_episodes=4",
             "vae.latent_dim=64", "collect.max_frames=200"]
config = resolve("doom-smoke", overrides)
save_run_config(run_dir, config, force=True)
rt = Runtime(run_dir, config, workers=1, device="cpu", executor="inprocess", quiet=True)
if stage == "collect":
    from worldmodels.stages import collect
    collect.run(rt)
else:
    from worldmodels.data.episodes import Episode, episode_path, write_episode
    from worldmodels.artifacts import EPISODES_DIR
    rng = np.random.default_rng(0)
    for i in range(episodes):  # synthetic 200-frame episodes, as collect writes them
        obs = rng.integers(0, 256, (200, 64, 64, 3), dtype=np.uint8)
        write_episode(episode_path(run_dir / EPISODES_DIR, i), Episode(obs, np.zeros((200, 1), np.float32),
                      np.ones(200, np.float32), np.zeros(200, bool), {"env": "doom", "index": i, "seed": i}))
    from worldmodels.stages import train_vae
    train_vae.run(rt)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so it would start at the parent's peak
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


def peak_rss_mb(stage: str, episodes: int, workdir: Path) -> float:
    run_dir = workdir / f"{stage}-{episodes}"
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, stage, str(run_dir), str(episodes)],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {stage} {episodes} failed:\n{result.stderr[-3000:]}")
    return int(result.stdout.split()[-1]) / 1024  # VmHWM is in KiB


# --- the run --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_average": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def main(quick: bool = False, json_path: str | None = None, dream_steps: int | None = None,
         mdnrnn_steps: int | None = None) -> dict[str, Any]:
    """Run every measurement, print the table, write the JSON object if asked; returns that object.

    dream_steps / mdnrnn_steps: steps timed per dream generation (then extrapolated to 1,000) and per M
    training run, to shorten a full run on a busy machine (default: 1,000 and 4; --quick: 40 and 1).
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"quick": quick, "machine": machine()}
    table = Table()
    print(f"worldmodels bench{' --quick' if quick else ''}: {out['machine']}", flush=True)
    dream_steps = dream_steps or (40 if quick else 1000)
    mdnrnn_steps = mdnrnn_steps or (1 if quick else 4)
    scale = 1000 / dream_steps
    extrapolated = f"{dream_steps} steps timed, x{scale:g}" if dream_steps != 1000 else "timed in full"

    # 1. ceiling
    ceiling = matmul_gflops(torch.float32)
    ceiling_bf16 = matmul_gflops(torch.bfloat16)
    out.update(matmul_gflops=ceiling, matmul_bf16_gflops=ceiling_bf16)
    table.add("ceiling", "fp32 matmul 2048^3", ceiling, "GFLOP/s", f"{torch.get_num_threads()} threads")
    table.add("ceiling", "bf16 matmul 2048^3", ceiling_bf16, "GFLOP/s")

    # 2. dream
    for size in (DOOM, CARRACING):
        name, agents = size["name"], 64 * 16
        world = dream_world(size)
        flops = dream_flops_per_agent_step(size) * agents * 1000
        modes = [("fp32", torch.float32, False), ("bf16", torch.bfloat16, False)]
        if not quick:
            modes += [("fp32 compiled", torch.float32, True), ("bf16 compiled", torch.bfloat16, True)]
        for label, dtype, compiled in modes:
            now = matmul_gflops(torch.float32, 1024, 2)  # other processes come and go: the ceiling right now
            try:
                seconds = time_generation(world, size, dream_steps, dtype, compiled) * scale
            except Exception as e:  # torch.compile needs a C++ compiler: report, go on
                table.add("dream", f"{name} generation {label}", "failed", "", f"{type(e).__name__}: {e}"[:80])
                continue
            ceiling_here = ceiling if dtype == torch.float32 else ceiling_bf16
            suffix = f"{'_bf16' if dtype == torch.bfloat16 else ''}{'_compiled' if compiled else ''}"
            key = f"{name}_dream_generation{suffix}_s"
            out[key] = seconds
            out[key[:-2] + "_flops_fraction"] = flops / seconds / 1e9 / ceiling
            table.add("dream", f"{name} 1,024 agents x 1,000 steps, {label}", seconds, "s", extrapolated)
            table.add("dream", f"  agent-steps/s, {label}", agents * 1000 / seconds, "steps/s")
            table.add("dream", f"  achieved, {label}", flops / seconds / 1e9, "GFLOP/s",
                      f"{flops / seconds / 1e9 / ceiling:.0%} of fp32 ceiling, "
                      f"{flops / seconds / 1e9 / ceiling_here:.0%} of its own dtype's; "
                      f"fp32 matmul just before: {now:.0f} GFLOP/s")
        per_agent_count, per_agent_steps = (1, 50) if quick else (2, 300)
        per_agent = time_per_agent_loop(world, size, per_agent_count, per_agent_steps) * agents * 1000
        out[f"{name}_dream_per_agent_s"] = per_agent
        table.add("dream", f"{name} same work, per-agent loop (batch 1)", per_agent, "s",
                  f"{per_agent_count} agent(s) x {per_agent_steps} steps timed, extrapolated to 1,024 x 1,000")
        # headline figures per dtype: the faster of eager and compiled (both stay in the JSON)
        for dt in ("", "_bf16"):
            head = f"{name}_dream_generation{dt}"
            out[f"{head}_eager_s"] = out[f"{head}_s"]
            out[f"{head}_eager_flops_fraction"] = out[f"{head}_flops_fraction"]
            out[f"{head}_mode"] = "eager"
            if out.get(f"{head}_compiled_s", float("inf")) < out[f"{head}_s"]:
                out[f"{head}_s"] = out[f"{head}_compiled_s"]
                out[f"{head}_flops_fraction"] = out[f"{head}_compiled_flops_fraction"]
                out[f"{head}_mode"] = "compiled"
        fp32_s, eager_s = out[f"{name}_dream_generation_s"], out[f"{name}_dream_generation_eager_s"]
        out[f"{name}_dream_batched_vs_per_agent"] = per_agent / fp32_s
        table.add("dream", "  batched fp32 vs per-agent loop", per_agent / fp32_s, "x",
                  f"batched fp32 {out[f'{name}_dream_generation_mode']}; eager: {per_agent / eager_s:.0f}x")
    out["dream_agent_steps_per_s"] = 1024 * 1000 / min(out["doom_dream_generation_s"],
                                                        out["doom_dream_generation_bf16_s"])
    out["dream_batched_vs_per_agent"] = out["doom_dream_batched_vs_per_agent"]
    out["dream_flops_fraction"] = out["doom_dream_generation_flops_fraction"]
    population, rollouts, cap = (8, 8, 200) if quick else (64, 16, 1000)
    outcome = bf16_outcome(DOOM, population, rollouts, cap)
    out["dream_bf16_outcome"] = outcome
    table.add("dream", f"returns with deaths, fp32 ({population}x{rollouts}, cap {cap})",
              outcome["fp32_mean_return"], "steps", f"std {outcome['fp32_return_std']:.0f}")
    table.add("dream", "  same seeds, bf16", outcome["bf16_mean_return"], "steps",
              f"difference {outcome['difference_in_stderr']:+.1f} standard errors; candidate fitness "
              f"correlation {outcome['candidate_fitness_correlation']:.2f}; "
              f"{outcome['same_episode_lengths']:.0%} of episodes the same length")

    # 3. V training: train-vae's step as it is, then two alternatives (same FLOPs counted for each)
    vae_steps = 2 if quick else 20
    vae_flops = vae_flops_per_image(64)
    for key, label, options in (
        ("vae", "train step, batch 100 (NCHW, as train-vae)", {}),
        ("vae_channels_last", "  same, channels_last", {"channels_last": True}),
        ("vae_bf16", "  same, vae.precision=bfloat16 (autocast, fp32 weights)", {"precision": "bfloat16"}),
    ):
        images = time_vae_training(64, vae_steps, **options)
        out.update({f"{key}_images_per_s": images, f"{key}_flops_fraction": images * vae_flops / 1e9 / ceiling})
        table.add("V", label, images, "images/s", f"{images * vae_flops / 1e9:.0f} GFLOP/s = "
                  f"{out[f'{key}_flops_fraction']:.0%} of the fp32 ceiling; {vae_flops / 1e6:.0f} MFLOP/image")

    # 4. M training, in fp32 (the original's) and bf16 mixed precision
    with tempfile.TemporaryDirectory(prefix="wm-bench-") as tmp:
        for size in (DOOM, CARRACING):
            name = size["name"]
            for key, label, precision in (
                (f"{name}_mdnrnn", f"{name} train-mdnrnn loop, batch 100, data streamed", "float32"),
                (f"{name}_mdnrnn_bf16", "  same, mdnrnn.precision=bfloat16 (autocast, fp32 weights)", "bfloat16"),
            ):
                frames = time_mdnrnn_training(size, mdnrnn_steps, Path(tmp), warm_up=not quick, precision=precision)
                fraction = frames * mdnrnn_flops_per_frame(size) / 1e9 / ceiling
                out.update({f"{key}_frames_per_s": frames, f"{key}_flops_fraction": fraction})
                table.add("M", label, frames, "frames/s", f"{fraction:.0%} of the fp32 ceiling; "
                          f"{mdnrnn_steps} steps{' incl. warm-up' if quick else ''}")
    out["mdnrnn_frames_per_s"] = out["doom_mdnrnn_frames_per_s"]
    out["mdnrnn_flops_fraction"] = out["doom_mdnrnn_flops_fraction"]

    # 5. real environments, one thread per worker as in the process pool
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="wm-bench-") as tmp:
            for size, steps in ((DOOM, 800 if quick else 4000), (CARRACING, 300 if quick else 1000)):
                name, run_dir = size["name"], Path(tmp) / size["name"]
                config = make_agent_run(run_dir, size)
                env_rate = time_bare_env(name, steps)
                one_rate = time_agent(run_dir, name, steps)
                agent_rate = time_agent(run_dir, name, steps, LOCKSTEP_ENVS)
                overhead = env_rate / agent_rate - 1.0
                out[f"{name}_env_steps_per_s"] = env_rate
                out[f"{name}_agent_batch1_steps_per_s"] = one_rate
                out[f"{name}_agent_batch1_overhead_fraction"] = env_rate / one_rate - 1.0
                out[f"{name}_agent_steps_per_s"] = agent_rate
                out[f"{name}_agent_overhead_fraction"] = overhead
                table.add("real env", f"{name} bare environment", env_rate, "steps/s", f"{steps} steps")
                table.add("real env", f"{name} agent (V + M + C), 1 worker, 1 env", one_rate, "steps/s",
                          f"overhead {env_rate / one_rate - 1.0:.0%} of the env's own time")
                table.add("real env", f"{name} agent, 1 worker, {LOCKSTEP_ENVS} envs in lockstep", agent_rate,
                          "steps/s", f"overhead {overhead:.0%} of the env's own time (--envs {LOCKSTEP_ENVS})")
                if name == "carracing":  # the faster engine, config carracing_backend=envpool
                    fast_env = time_bare_env(name, steps, backend="envpool")
                    fast_agent = time_agent(run_dir, name, steps, LOCKSTEP_ENVS, backend="envpool")
                    out.update(carracing_envpool_env_steps_per_s=fast_env,
                               carracing_envpool_agent_steps_per_s=fast_agent)
                    table.add("real env", "carracing bare environment, EnvPool", fast_env, "steps/s",
                              f"{fast_env / env_rate:.1f}x Gymnasium's")
                    table.add("real env", f"carracing agent, {LOCKSTEP_ENVS} envs in lockstep, EnvPool", fast_agent,
                              "steps/s", f"{fast_agent / agent_rate:.1f}x with Gymnasium's")
                if name == "doom":  # the faster renderer, config doom_resolution=160x120
                    low_env = time_bare_env(name, steps, "160x120")
                    low_agent = time_agent(run_dir, name, steps, LOCKSTEP_ENVS, "160x120")
                    low_overhead = low_env / low_agent - 1.0
                    out.update(doom_160x120_env_steps_per_s=low_env, doom_160x120_agent_steps_per_s=low_agent,
                               doom_160x120_agent_overhead_fraction=low_overhead)
                    table.add("real env", "doom bare environment, ViZDoom at 160x120", low_env, "steps/s",
                              f"{low_env / env_rate:.1f}x the 320x240 env")
                    table.add("real env", f"doom agent, {LOCKSTEP_ENVS} envs in lockstep, 160x120", low_agent,
                              "steps/s", f"overhead {low_overhead:.0%} of that env's own time")
                    tasks = 2 if quick else 8
                    cap = 100 if quick else 500
                    rates = [time_pool(run_dir, config, w, tasks, cap, LOCKSTEP_ENVS) for w in (1, 2)]
                    out.update(doom_pool_1_steps_per_s=rates[0], doom_pool_2_steps_per_s=rates[1])
                    table.add("real env", "doom process pool, 1 worker", rates[0], "steps/s",
                              f"{tasks} tasks of {LOCKSTEP_ENVS} episodes")
                    table.add("real env", "doom process pool, 2 workers", rates[1], "steps/s",
                              f"scaling {rates[1] / rates[0]:.2f}x")
    finally:
        torch.set_num_threads(threads)
    out["agent_overhead_fraction"] = out["doom_agent_overhead_fraction"]

    # 6. memory
    with tempfile.TemporaryDirectory(prefix="wm-bench-") as tmp:
        small, large = (2, 6) if quick else (8, 40)
        for stage, sizes in (("train-vae", (small, large)), ("collect", (1, 4) if quick else (4, 16))):
            peaks = [peak_rss_mb(stage, n, Path(tmp)) for n in sizes]
            out[f"{stage.replace('-', '_')}_peak_rss_mb"] = dict(zip(map(str, sizes), peaks))
            table.add("memory", f"{stage} peak RSS, {sizes[0]} vs {sizes[1]} episodes",
                      f"{peaks[0]:.0f} / {peaks[1]:.0f}", "MB", f"growth {peaks[1] / peaks[0] - 1:+.0%}")

    out["elapsed_s"] = time.perf_counter() - t0
    out["table_markdown"] = table.markdown()
    print(f"bench: {out['elapsed_s']:.0f} s; load average now {os.getloadavg()[0]:.1f} "
          f"(other processes slow every figure; ratios within this run stay comparable)")
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2, default=float) + "\n")
        print(f"bench: wrote {json_path}")
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--dream-steps", type=int, default=None)
    parser.add_argument("--mdnrnn-steps", type=int, default=None)
    arguments = parser.parse_args()
    main(arguments.quick, arguments.json, arguments.dream_steps, arguments.mdnrnn_steps)
