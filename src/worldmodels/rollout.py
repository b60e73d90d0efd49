"""The agent (V, M and C) in the real environment, and the workers that run its episodes.

Per step, as the original (`carracing/model.py` get_action, `doomrnn/doomreal.py`; docs/faithfulness.md#c):
frame_t -> V -> z_t sampled from (mu, logvar); a_t = C([z_t, (c_t,) h_t]); M advances its state with
(z_t, a_t) (Doom: the continuous a and the restart flag, before the env step); env.step(a_t).
Randomness (z sampling) comes from the episode's seed only, so any worker gives the same return.

A worker runs a task's episodes in lockstep on up to `--envs` environments (`AgentBatch`, `Agent.run_episodes`):
one V encode and one M product per step for all of them, far cheaper per frame than batch 1, computed while
the other half of the environments steps (BENCHMARKS.md); every episode gets the same return it gets alone.
"""

from __future__ import annotations

import copy
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from worldmodels.artifacts import controller_spec, load_mdnrnn, load_vae
from worldmodels.config import Config, from_dict, load_run_config
from worldmodels.envs import FrameEnv, make_env, task_spec
from worldmodels.executors import make_executor
from worldmodels.logger import progress_bar
from worldmodels.models.controller import ControllerSpec, controller_actions, controller_features
from worldmodels.models.mdnrnn import MDNRNN, StepWeights, lstm_step
from worldmodels.models.rows import pad_rows, round_up
from worldmodels.models.vae import ConvVAE, tensor_to_frames
from worldmodels.runtime import Runtime


class EpisodeResult(NamedTuple):
    total_reward: float
    length: int
    frames: np.ndarray | None = None  # (T, 64, 64, 3) what the agent saw, when recorded
    reconstructions: np.ndarray | None = None  # (T, 64, 64, 3) V's reconstruction of each frame
    actions: np.ndarray | None = None  # (T, A)
    rewards: np.ndarray | None = None  # (T,)
    dones: np.ndarray | None = None  # (T,)


_NOISE_BLOCK = 256  # steps of V's sampling noise drawn at once (the same numbers as one draw per step)


class _FastAgent:
    """The per-step work of `Agent` with everything that does not change during an episode done once.

    V's encoder runs channels-last (the layout the uint8 HWC frames already have, and oneDNN's fast one), its
    two heads are one product, and M's two gate products are one product over [z, a, (restart), h] (the
    the dream's `StepWeights` and `lstm_step`, in float32).
    """

    def __init__(self, vae: ConvVAE, mdnrnn: MDNRNN | None, device: torch.device) -> None:
        self.device = device
        # torch's stubs lack Module.to's memory_format keyword (torch.nn.Module.to documents it)
        self.encoder = copy.deepcopy(vae.encoder).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.w_latent = torch.cat([vae.fc_mu.weight, vae.fc_logvar.weight]).t().contiguous()  # (1024, 2Z)
        self.b_latent = torch.cat([vae.fc_mu.bias, vae.fc_logvar.bias]).detach()
        self.latent_dim = vae.latent_dim
        self.m_weights = StepWeights(mdnrnn) if mdnrnn is not None else None

    def encode(self, frames: np.ndarray, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 64, 64, 3) uint8 -> mu, logvar (rows, Z), rows >= n padded with zeros; the NHWC bytes are viewed
        as NCHW channels-last, no copy. The convolutions give a frame the same bits in any batch (tested)."""
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        features = self.encoder(x).flatten(start_dim=1)  # (n, 1024) in (C, H, W) order, as ConvVAE.encode
        stats = torch.addmm(self.b_latent, pad_rows(features, rows), self.w_latent)
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]


class AgentBatch:
    """Up to `capacity` episodes of the agent stepped together, one slot each (lockstep rollouts).

    A step of the n slots that act is one V encode of their n frames, one product for V's heads, one batched
    C and one product for M's gates. As in the dream (`models.rows`), products and elementwise work
    run on rows padded to a multiple of 16, so a slot's numbers do not depend on how many others share its
    step: an episode gives the same return alone or in any batch (tests). z's noise comes from each
    episode's own seed only.

    `act(slots, frames, overrides)` returns the actions to send to the envs; a row of `overrides` (an
    exploring collection policy) replaces C's action, and M advances with the action actually taken, so h
    stays consistent with what the agent did.
    """

    def __init__(self, agent: Agent, capacity: int = 1) -> None:
        self.agent, self.fast = agent, agent.fast()
        spec, device, latent = agent.spec, agent.device, agent.vae.latent_dim
        self.params = torch.zeros(capacity, spec.num_params, device=device)
        self.h = torch.zeros(capacity, spec.hidden_size, device=device)
        self.c = torch.zeros_like(self.h)
        m_weights = self.fast.m_weights
        self.restart = (torch.zeros(capacity, device=device) if m_weights is not None and m_weights.restart_input
                        else None)
        self.generators: list[torch.Generator | None] = [None] * capacity
        self.noise = torch.zeros(capacity, _NOISE_BLOCK, latent, device=device)
        self.steps = [0] * capacity
        self.mu = torch.zeros(capacity, latent, device=device)  # V's mean of each slot's last frame (recordings)

    def start(self, slot: int, params: np.ndarray, seed: int) -> None:
        """A new episode in `slot`: controller `params`, z's noise from `seed`, M's state zeroed."""
        self.params[slot] = torch.tensor(np.asarray(params, dtype=np.float32).reshape(-1))
        self.h[slot], self.c[slot] = 0.0, 0.0
        if self.restart is not None:
            self.restart[slot] = 1.0
        self.generators[slot] = torch.Generator().manual_seed(int(seed))
        self.steps[slot] = 0

    def act(self, slots: list[int], frames: np.ndarray,
            overrides: list[np.ndarray | None] | None = None) -> np.ndarray:
        """Actions (n, A) of `slots` seeing `frames` (n, 64, 64, 3) uint8."""
        agent, fast, n = self.agent, self.fast, len(slots)
        rows, index = round_up(n), torch.tensor(slots, device=self.h.device)
        for slot in slots:
            if self.steps[slot] % _NOISE_BLOCK == 0:  # torch.randn per step would give these same numbers
                self.noise[slot] = torch.randn((_NOISE_BLOCK, agent.vae.latent_dim), generator=self.generators[slot])
        eps = self.noise[index, torch.tensor([self.steps[s] % _NOISE_BLOCK for s in slots], device=index.device)]
        for slot in slots:
            self.steps[slot] += 1
        mu, logvar = fast.encode(frames, rows)
        self.mu[index] = mu[:n]
        z = mu + torch.exp(logvar / 2) * pad_rows(eps, rows)  # z is sampled, never the mean (docs/faithfulness.md#v)
        h, c = pad_rows(self.h[index], rows), pad_rows(self.c[index], rows)
        features = controller_features(agent.spec, z, h, c)
        action = controller_actions(agent.spec, pad_rows(self.params[index], rows), features)  # (rows, A)
        for row, override in enumerate(overrides or ()):
            if override is not None:
                action[row] = torch.as_tensor(override, dtype=torch.float32)
        if fast.m_weights is not None:
            restart = None if self.restart is None else pad_rows(self.restart[index], rows)
            h, c = lstm_step(fast.m_weights, z, action, restart, h, c)
            self.h[index], self.c[index] = h[:n], c[:n]
            if self.restart is not None:
                self.restart[index] = 0.0
        return action[:n].cpu().numpy()


@dataclass
class Agent:
    vae: ConvVAE
    mdnrnn: MDNRNN | None  # None for the V-only controllers ("z", "z_hidden"), which never read h
    spec: ControllerSpec
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        self._fast: _FastAgent | None = None

    def fast(self) -> _FastAgent:
        if self._fast is None:
            self._fast = _FastAgent(self.vae, self.mdnrnn, self.device)
        return self._fast

    def run_episode(self, env: FrameEnv, params: np.ndarray, seed: int, max_steps: int,
                    record: bool = False) -> EpisodeResult:
        """One episode; with `record`, what the agent saw, V's reconstructions, actions, rewards and dones."""
        return self.run_episodes([env], params, [seed], max_steps, record)[0]

    @torch.inference_mode()
    def run_episodes(self, envs: list[FrameEnv], params: np.ndarray, seeds: list[int] | tuple[int, ...],
                     max_steps: int, record: bool = False, negative_stop: int = 0) -> list[EpisodeResult]:
        """Episodes with `seeds` in lockstep over `envs` (`lockstep`), results in the order of `seeds`. The
        returns are those of one episode at a time (`AgentBatch`). `params`: one controller (num_params,) for
        all, or one per episode (len(seeds), num_params). `negative_stop` > 0 ends an episode after that many
        consecutive steps with a negative reward (config `controller.negative_stop`; training only)."""
        batch, results = AgentBatch(self, len(envs)), [EpisodeResult(0.0, 0)] * len(seeds)
        per_episode = np.broadcast_to(params, (len(seeds), params.shape[-1]))
        running: dict[int, list] = {}  # slot -> [episode index, total reward, steps, recorded steps, negatives]

        def begin(slot: int, job: tuple[int, int]) -> np.ndarray:
            batch.start(slot, per_episode[job[0]], job[1])
            running[slot] = [job[0], 0.0, 0, [], 0]
            return envs[slot].reset(seed=int(job[1]))

        def act(slots: list[int], frames: np.ndarray) -> np.ndarray:
            actions = batch.act(slots, frames)
            if record:  # what the agent saw, V's reconstruction of it, what it did
                reconstructions = tensor_to_frames(self.vae.decode(batch.mu[slots]))
                for slot, frame, reconstruction, action in zip(slots, frames, reconstructions, actions):
                    running[slot][3].append([frame, reconstruction, action])
            return actions

        def after(slot: int, frame: np.ndarray, reward: float, terminated: bool, truncated: bool) -> bool:
            episode = running[slot]
            episode[1], episode[2] = episode[1] + reward, episode[2] + 1
            if record:
                episode[3][-1] += [reward, terminated]
            episode[4] = episode[4] + 1 if reward < 0 else 0
            over = (terminated or truncated or episode[2] >= max_steps
                    or (negative_stop > 0 and episode[4] >= negative_stop))
            if over:
                recorded: tuple[np.ndarray, ...] = ()
                if record:
                    frames, reconstructions, actions, rewards, dones = zip(*episode[3])
                    recorded = (np.stack(frames), np.stack(reconstructions), np.stack(actions),
                                np.array(rewards, np.float32), np.array(dones))
                results[episode[0]] = EpisodeResult(episode[1], episode[2], *recorded)
            return over

        lockstep(envs, deque(enumerate(seeds)), begin, act, after)
        return results


def lockstep(envs: list[FrameEnv], jobs: deque, begin: Callable[[int, Any], np.ndarray],
             act: Callable[[list[int], np.ndarray], np.ndarray],
             after: Callable[[int, np.ndarray, float, bool, bool], bool]) -> None:
    """Run the episodes of `jobs` on `envs` together until none is left.

    `begin(slot, job)` starts a job's episode on env `slot` and returns its first frame; `act(slots, frames)`
    returns the actions of those slots, all at once; `after(slot, frame, reward, terminated, truncated)`
    takes a step's outcome and says whether the episode is over, and the env then takes the next job
    (`after` may put a job back at the front, as collection's retries do). The envs form two halves that
    take turns: while one half's envs step, `act` computes the other half's actions, so the agent costs
    little wall time beside the environments' own. Asynchronous envs (EnvPool) step in their engine's own
    threads between `send` and `receive`; the others step in one Python thread (ViZDoom and Box2D release
    the GIL, and so does torch). Only one Python thread touches the envs at any time.
    """
    frames: dict[int, np.ndarray] = {}  # each running slot's latest frame

    def take(slot: int) -> None:
        if jobs:
            frames[slot] = begin(slot, jobs.popleft())
        else:
            frames.pop(slot, None)

    def step(slots: list[int], actions: np.ndarray) -> list[tuple[int, tuple]]:
        return [(slot, envs[slot].step(action)) for slot, action in zip(slots, actions)]

    def start(slots: list[int], actions: np.ndarray) -> Callable[[], list[tuple[int, tuple]]]:
        """Start the step of `slots`; returns what waits for its outcomes."""
        if asynchronous:
            for slot, action in zip(slots, actions):
                envs[slot].send(action)
            return lambda: [(slot, envs[slot].receive()) for slot in slots]
        return stepper.submit(step, slots, actions).result

    for slot in range(len(envs)):
        take(slot)
    halves = [range(0, len(envs), 2), range(1, len(envs), 2)]
    asynchronous = all(env.asynchronous for env in envs)
    stepping = None  # the other half's step, in flight
    with ThreadPoolExecutor(max_workers=1) as stepper:
        while frames or stepping is not None:
            for half in halves:
                slots = [slot for slot in half if slot in frames]
                actions = act(slots, np.stack([frames[slot] for slot in slots])) if slots else None
                if stepping is not None:
                    for slot, (frame, reward, terminated, truncated) in stepping():
                        frames[slot] = frame
                        if after(slot, frame, reward, terminated, truncated):
                            take(slot)
                stepping = start(slots, actions) if actions is not None else None  # None iff no slots


TASK_ENVS_MAX = 8  # a task has at most this many times `envs` items


def task_chunks(items: list, envs: int, workers: int) -> list[tuple]:
    """`items` (seeds, episode indices) cut into tasks for lockstep workers: about four per worker, so that
    the workers share the load and a progress bar moves, and at least `envs` per task, so that a task's envs
    take new episodes as theirs end (its last ones run with fewer envs: 100 Doom evaluation episodes on one
    worker took 2.0 min as tasks of 13, 1.6 min as tasks of 25). At most `TASK_ENVS_MAX * envs` per task: the
    full presets' 10,000 episodes as 4 tasks moved the bar every ~20 minutes, each task ~20 minutes of
    collection's 30-minute timeout."""
    size = max(envs, min(-(-len(items) // (4 * workers)), TASK_ENVS_MAX * envs))
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


class RolloutTask(NamedTuple):
    """What crosses to a worker: the seeds of some episodes and the controller of each."""

    params: np.ndarray  # (num_params,) float32 for all the seeds, or (len(seeds), num_params)
    seeds: tuple[int, ...]
    negative_stop: int = 0  # see Agent.run_episodes


class WorkerEnvs:
    """A worker's environments, made when a task first needs them: at most `limit`, run in lockstep."""

    def __init__(self, name: str, limit: int, doom_resolution: str | None = None, backend: str = "gymnasium") -> None:
        self.name, self.limit, self.doom_resolution, self.backend = name, limit, doom_resolution, backend
        self.envs: list[FrameEnv] = []

    def take(self, n: int) -> list[FrameEnv]:
        while len(self.envs) < min(n, self.limit):
            self.envs.append(make_env(self.name, doom_resolution=self.doom_resolution, backend=self.backend))
        return self.envs[: min(n, self.limit)]


def run_task(agent: Agent, envs: WorkerEnvs, max_steps: int, task: RolloutTask) -> list[tuple[float, int]]:
    """(return, length) of each of the task's episodes."""
    episodes = agent.run_episodes(envs.take(len(task.seeds)), task.params, task.seeds, max_steps,
                                  negative_stop=task.negative_stop)
    return [(episode.total_reward, episode.length) for episode in episodes]


@dataclass
class RolloutWorker:
    """Picklable factory, built once per worker: loads V and M; the worker makes up to `envs` environments
    and runs a task's episodes in lockstep on them (the same returns as one at a time, faster per step)."""

    run_dir: str
    config: dict[str, Any]
    max_steps: int
    mdnrnn_path: Path | None = None  # M's checkpoint, if not the run's (see load_agent)
    envs: int = 1
    backend: str = "gymnasium"  # CarRacing's engine; scores that are reported always use Gymnasium's

    def __call__(self) -> Callable[[RolloutTask], list[tuple[float, int]]]:
        agent, config = load_agent(Path(self.run_dir), "cpu", self.config, self.mdnrnn_path)
        envs = WorkerEnvs(config.env, self.envs, config.doom_resolution, self.backend)
        return functools.partial(run_task, agent, envs, self.max_steps)


def uses_memory(spec: ControllerSpec) -> bool:
    """Whether C reads M's state (the V-only ablations "z" and "z_hidden" do not)."""
    return spec.mode in ("zh", "zch")


def load_agent(run_dir: Path, device: torch.device | str, config_dict: dict[str, Any] | None = None,
               mdnrnn_path: Path | None = None) -> tuple[Agent, Config]:
    """(Agent, Config) from a run directory's V and M and its config's controller spec.

    `mdnrnn_path` picks another M checkpoint: a controller must run with the M it was trained with, and
    after iterative training with `iterate.keep=best` that is a round's snapshot (`iterate.agent_mdnrnn`).
    """
    config = from_dict(config_dict) if config_dict is not None else load_run_config(run_dir)
    spec = controller_spec(config)
    mdnrnn = load_mdnrnn(run_dir, device, mdnrnn_path) if uses_memory(spec) else None
    return Agent(load_vae(run_dir, device), mdnrnn, spec, torch.device(device)), config


def score(rt: Runtime, params: np.ndarray, seeds: list[int], mdnrnn_path: Path | None = None,
          max_steps: int | None = None) -> np.ndarray:
    """Returns of the agent with controller `params` (and M at `mdnrnn_path`, default the run's) over real
    episodes with the given seeds, on the run's executor; `max_steps` defaults to the task's own cap."""
    max_steps = max_steps or task_spec(rt.config.env).max_steps
    worker = RolloutWorker(str(rt.run_dir), rt.config.to_dict(), max_steps, mdnrnn_path, rt.envs)
    tasks = [RolloutTask(params, chunk) for chunk in task_chunks(seeds, rt.envs, rt.workers)]
    with make_executor(rt.executor, worker, workers=rt.workers, task_timeout=900.0,
                       ray_address=rt.ray_address) as executor:
        with progress_bar(len(seeds), "evaluate", unit="ep", quiet=rt.quiet) as bar:
            size = len(tasks[0].seeds)
            results = executor.map(tasks, progress=lambda n: bar.advance_to(min(n * size, len(seeds))))
    return np.array([r for task in results for r, _ in task])
