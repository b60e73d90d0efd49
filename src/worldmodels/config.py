"""Typed configuration: dataclasses with a docstring per field, presets layered over defaults, dotted overrides.

A run is described by one `Config`. Presets are small dicts of overrides applied in order over the
defaults (a preset may name a `base` preset it extends); `--set key=value` overrides come last and are
type-checked against the field they name. The resolved config is written to `config.yaml` in the run
directory, and a rerun with a different config is refused unless `--force`.

The paper presets follow the original's sizes and budgets (docs/faithfulness.md); the quick and smoke
presets say how they differ in their description.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from worldmodels.checkpoint import atomic_write_text
from worldmodels.errors import UserError

ENVIRONMENTS = ("carracing", "doom")
CARRACING_BACKENDS = ("gymnasium", "envpool")


def doc(default: Any, text: str) -> Any:
    """A dataclass field with a default and a docstring (shown by `worldmodels presets --fields`)."""
    return field(default=default, metadata={"doc": text})


@dataclass
class CollectConfig:
    episodes: int = doc(10_000, "Number of episodes to keep (original: first 10,000 files of 12,800).")
    max_frames: int = doc(
        0, "Frames per episode cap; 0 = the environment's own (CarRacing 1000 exactly, Doom at most 2100)."
    )
    long_holds: float = doc(
        0.0, "Doom: fraction of random episodes that hold each action 1..100 frames, so that M sees how a held "
        "action ends (a departure, used by doom-quick; 0 = the original's policy only, docs/faithfulness.md)."
    )
    driver: str = doc(
        "", "A run directory of the same environment whose trained controller (with that run's V and M) drives "
        "a share `driver_fraction` of the episodes, so V and M see driving a random policy never shows (a "
        "departure for training C in the dream, after Dropout's Dream Land; '' = the random policy only)."
    )
    driver_fraction: float = doc(0.9, "Share of the episodes the driver drives (Dropout's Dream Land: 0.9).")
    driver_exploration: float = doc(
        0.1, "The driver's chance per step of starting a random action held 1-10 frames (policies.AgentPolicy). "
        "CarRacing's driver loses much of its score to it (679 -> 345 at 0.02, 115 at 0.1; docs/faithfulness.md)."
    )


@dataclass
class VAEConfig:
    latent_dim: int = doc(32, "Size of z (CarRacing 32, Doom 64).")
    epochs: int = doc(10, "Passes over the frames (original code: 10; the paper text says 1).")
    batch_size: int = doc(100, "Frames per Adam step (original: 100, last partial batch dropped).")
    learning_rate: float = doc(1e-4, "Adam learning rate (original: 1e-4, TF defaults otherwise).")
    kl_tolerance: float = doc(0.5, "KL floor per sample, as a fraction of latent_dim nats (original: 0.5).")
    max_episodes: int = doc(
        0, "Train V on the first N episodes only; 0 = all (the original: all 10,000). V learns frames, not "
        "dynamics, and its time grows with the frames (the doom preset's 10,000 episodes: ~30 h here in fp32)."
    )
    precision: str = doc(
        "float32", "Training arithmetic: 'float32' (the original's) or 'bfloat16' (mixed precision, fp32 weights; "
        "a departure for speed on CPUs with bf16 units)."
    )
    shuffle_buffer_episodes: int = doc(
        32, "Episodes held in memory at once to shuffle frames across (bounds memory, not a model setting)."
    )


@dataclass
class MDNRNNConfig:
    hidden_size: int = doc(256, "LSTM units (CarRacing 256, Doom 512).")
    num_mixtures: int = doc(5, "Gaussians per z dimension (original: 5).")
    batch_size: int = doc(100, "Sequences per Adam step (original: 100).")
    sequence_length: int = doc(
        1000,
        "Frames per training sequence; M reads frames 0..L-2 and predicts 1..L-1 (CarRacing: whole 1000-frame "
        "episodes, 999 steps; Doom: 500-frame chunks).",
    )
    carry_state: bool = doc(
        False,
        "Doom's scheme: all episodes concatenated into batch_size streams with restart flags, state carried "
        "across chunks (truncated BPTT). False = CarRacing's: random whole episodes from zero state.",
    )
    epochs: int = doc(
        40, "Training length in epochs (CarRacing: 4000 steps x 100 / 10,000 = 40; Doom: 400 epochs)."
    )
    learning_rate: float = doc(1e-3, "Initial Adam learning rate (original: 1e-3).")
    learning_rate_decay: float = doc(
        1.0, "Per-step decay: lr = (lr0 - min) * decay**step + min (CarRacing 1.0 = constant, Doom 0.99999)."
    )
    min_learning_rate: float = doc(1e-5, "Floor of the decayed learning rate (original: 1e-5).")
    grad_clip: float = doc(1.0, "Element-wise gradient clipping by value (original: 1.0).")
    restart_input: bool = doc(False, "Feed the restart flag and zero the state on it (Doom: True).")
    done_head: bool = doc(False, "Predict episode end (Doom's restart head: True). Needed for dream training.")
    reward_head: bool = doc(
        False, "Predict the step reward (not in the paper; lets CarRacing train in the dream). The reward and done "
        "losses skip the steps after an episode's first terminal one (CarRacing's data runs on past it).",
    )
    restart_factor: float = doc(10.0, "Weight of positive examples in the done loss (original: 10).")
    reward_optimism: float = doc(
        1.0, "Weight of the reward head's squared error where it predicts more than the real reward (1: plain MSE). "
        "Not in the paper; a JAX port weighted optimism 5x so that C cannot farm M's over-rated states. Tried on "
        "CarRacing in the dream (RESULTS.md).",
    )
    input_dropout: float = doc(
        0.0, "Dropout on M's z input while training, one mask per sequence (the action and restart flag are "
        "kept). Not in the paper (0): Dropout's Dream Land (Wellmer & Kwok 2021) trains M at 0.05 so that "
        "`controller.dream_dropout` can make many dreams of it.",
    )
    recurrent_dropout: float = doc(
        0.0, "Dropout on h in M's recurrent product while training, one mask per sequence (Keras' "
        "recurrent_dropout). Not in the paper (0); Dropout's Dream Land: 0.05. Costly on CPU: M then steps its "
        "LSTM in Python instead of PyTorch's fused kernel (carracing-quick's batches of 20 whole episodes: "
        "~20 s a batch beside another job, against ~1 s fused).",
    )
    precision: str = doc(
        "float32", "Training arithmetic: 'float32' (the original's) or 'bfloat16' (mixed precision: the LSTM and "
        "head products in bf16, weights, state and loss in fp32; a departure for speed on CPUs with bf16 units)."
    )


@dataclass
class ControllerConfig:
    where: str = doc("real", "Where candidates are scored: 'real' environment or 'dream' (inside M).")
    mode: str = doc(
        "zh",
        "Controller inputs: 'zh' (CarRacing paper, with bias), 'zch' (Doom paper, no bias), 'z' (V only), "
        "'z_hidden' (z -> 40 tanh -> action).",
    )
    population_size: int = doc(64, "CMA-ES population (original: 64).")
    sigma0: float = doc(0.1, "CMA-ES initial step size (original: 0.1).")
    init: str = doc(
        "", "Start CMA-ES at a trained controller instead of x0 = 0 (the original's): a run directory (its "
        "controller, as `evaluate` scores it) or a controller directory with best.npz (e.g. RUN/rounds/04). It "
        "reads [z, h] of this run's V and M, so they must be the ones it was trained with (a departure, for "
        "fine-tuning a dream-trained C in the real environment; RESULTS.md)."
    )
    rollouts: int = doc(16, "Episodes per candidate; fitness is their mean (original: 16).")
    generations: int = doc(1800, "CMA-ES generations (original: 1800 for both tasks).")
    eval_every: int = doc(25, "Score the distribution mean every N generations (original: 25).")
    eval_rollouts: int = doc(1024, "Episodes for that score (original: 1024).")
    dream_dtype: str = doc(
        "float32", "Precision of the dream's matrix products: 'float32' or 'bfloat16' (state and sampling stay fp32)."
    )
    dream_compile: bool = doc(False, "torch.compile the dream step (20-60 s once per process; needs a C compiler).")
    temperature: float = doc(1.15, "Dream temperature tau (paper's best Doom row 1.15; original code 1.25).")
    dream_dropout: float = doc(
        0.0, "Dropout in the dream: each dream agent runs M with its own masks on z and on h in the recurrent "
        "product at this rate, fixed for its episode, so C is scored in many slightly different dreams "
        "(Dropout's Dream Land, Wellmer & Kwok 2021: 0.1 on an M trained with dropout 0.05). The real agent "
        "runs M without dropout. Not in the paper (0). At doom-quick's budgets it made every C a fixed action "
        "(RESULTS.md, \"Ablations\").",
    )
    max_steps: int = doc(1000, "Step cap of one episode while training (CarRacing 1000, Doom 2100).")
    negative_stop: int = doc(
        0, "Real-environment training only: end a candidate's rollout after this many consecutive steps with a "
        "negative reward (CarRacing: a car off the track or stopped only loses -0.1 a frame). 0 = never, the "
        "original's. The distribution mean's evaluations and `evaluate` always run whole episodes."
    )
    shared_seeds: bool = doc(
        False, "Give every candidate of a generation the same `rollouts` seeds (tracks), so that candidates are "
        "ranked on equal terms; False = the original's pairs (candidates i and i + P/2 share their seeds)."
    )
    seed: int = doc(0, "Base seed of the rollout seeds (original: 0 CarRacing, 111 Doom).")
    diagnose_episodes: int = doc(
        10, "Before training C in the dream, `run` scores fixed policies in the dream and the real game with "
        "this many episodes each and warns when M can be exploited (0 = skip; `worldmodels diagnose`)."
    )


@dataclass
class IterateConfig:
    rounds: int = doc(
        0,
        "Rounds of the paper's iterative training after the first pass (section 5 of the paper): each collects "
        "episodes with the current controller, fine-tunes M (and V if vae_epochs > 0) on all data and retrains "
        "C in the dream, warm-started. 0 = a single pass.",
    )
    episodes: int = doc(200, "Episodes collected with the current controller in each round.")
    exploration: float = doc(
        0.1, "Per-step chance, when not already exploring, of a random action held for 1..10 frames (random on "
        "~38% of the frames at 0.1, ~70% at 0.3)."
    )
    mdnrnn_epochs: int = doc(10, "Epochs of M's fine-tuning on all data in each round.")
    siblings: int = doc(
        1, "Fine-tunes of M in each round, each from the same M on the same data with its own seed (data order, "
        "z noise, CMA-ES) and a C trained on it; the round keeps the sibling whose C scores best over "
        "eval_episodes real episodes, with its M (a departure: real episodes pick among dreams). 1 = the paper's."
    )
    generations: int = doc(25, "CMA-ES generations in each round.")
    abandon: float = doc(
        0.0, "Stop a round's C training after the first generation whose mean return over all candidates reaches "
        "this fraction of controller.max_steps (0 = never, the paper's). A dream in which nearly any C survives "
        "that long only teaches C M's exploit (the paper's tau 0.1 and 0.5: dream ~2,070, game ~195), and each "
        "of its generations costs the most; the C is still scored, so keep: best can pass it over."
    )
    temperature: float = doc(
        0.0, "Dream temperature tau of the rounds' C training; 0 = controller.temperature (a departure when set: "
        "the paper trains every C at one tau)."
    )
    warm_start: bool = doc(
        True, "Start each round's CMA-ES from the last round's best at iterate.sigma0; False = afresh from x0 = 0 "
        "at controller.sigma0 (a fresh search does not inherit the last round's exploit of M)."
    )
    sigma0: float = doc(0.05, "CMA-ES step size of a round's warm start.")
    eval_episodes: int = doc(
        20, "Real episodes (the same seeds every round) to score each round's controller (shown by inspect)."
    )
    keep: str = doc(
        "last", "The controller the run ends with: the 'last' round's, or the 'best' of the first pass and all "
        "rounds by that real score (a departure: real episodes pick among controllers trained only in the dream)."
    )


@dataclass
class EvaluateConfig:
    episodes: int = doc(100, "Real episodes for the final score (paper: 100).")
    seed: int = doc(10_000, "First seed of the evaluation episodes (seeds seed .. seed+episodes-1).")


@dataclass
class Config:
    env: str = doc("carracing", "Task: 'carracing' (CarRacing-v3) or 'doom' (VizdoomTakeCover-v1).")
    doom_resolution: str = doc(
        "320x240", "Doom only: the resolution ViZDoom renders at before the resize to 64x64. '320x240' is the "
        "scenario's own (docs/faithfulness.md#environments); '160x120' steps ~2x faster and gives the same 64x64 "
        "frames up to resampling (a departure for speed; docs/doom-resolution.md)."
    )
    carracing_backend: str = doc(
        "gymnasium", "CarRacing only: the engine that collection and C's real-environment training step: "
        "'gymnasium' (Gymnasium's CarRacing-v3) or 'envpool' (EnvPool's C++ CarRacing-v3, ~7x faster; tracks "
        "differ from Gymnasium's for the same seed; `pip install 'worldmodels[envpool]'`). `evaluate` always "
        "scores in Gymnasium, the environment every published number uses."
    )
    seed: int = doc(0, "Base seed of the run (collection, training, sampling).")
    collect: CollectConfig = field(default_factory=CollectConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    mdnrnn: MDNRNNConfig = field(default_factory=MDNRNNConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- presets -------------------------------------------------------------------------------------------
# Each preset: description, optional base preset, overrides (nested dict). Applied base first.

PRESETS: dict[str, dict[str, Any]] = {
    "carracing": {
        "description": "CarRacing-v3 at the paper's sizes and budgets (docs/faithfulness.md); weeks on a laptop.",
        "overrides": {"env": "carracing"},
    },
    "doom": {
        "description": "VizdoomTakeCover-v1 at the paper's sizes and budgets, C trained in the dream at tau 1.15.",
        "overrides": {
            "env": "doom",
            "collect": {"episodes": 10_000},
            "vae": {"latent_dim": 64},
            "mdnrnn": {
                "hidden_size": 512,
                "sequence_length": 500,
                "carry_state": True,
                "epochs": 400,
                "learning_rate_decay": 0.99999,
                "restart_input": True,
                "done_head": True,
            },
            "controller": {"where": "dream", "mode": "zch", "max_steps": 2100, "seed": 111},
        },
    },
    "carracing-quick": {
        "description": "CarRacing at the paper's model sizes, C on [z, h] in the real environment, budgets for two "
        "hours on a 2-core machine: 200 random-agent episodes, V 1 epoch at lr 1e-3, M 200 steps of 20 whole "
        "episodes, C 32 x 4 rollouts a generation on EnvPool's CarRacing (every candidate on the same 4 tracks, a "
        "rollout ended after 50 steps without reward) for 30 generations, scored in Gymnasium's CarRacing-v3. "
        "Needs `pip install 'worldmodels[envpool]'`.",
        "base": "carracing",
        "overrides": {
            # EnvPool steps ~7x faster than Gymnasium (BENCHMARKS.md); evaluate still scores in Gymnasium
            "carracing_backend": "envpool",
            "collect": {"episodes": 200},
            # V: Adam at 1e-3 (as doom-quick): one epoch at the original's 1e-4 leaves V far from converged
            "vae": {"epochs": 1, "learning_rate": 1e-3},
            # M barely matters for CarRacing in the real environment (an untrained M drives as well in a published
            # port: h is a reservoir of the last frames); batches of 20 episodes, 20 epochs = 200 steps
            "mdnrnn": {"epochs": 20, "batch_size": 20},
            # cheaper, fairer rollouts than the original's 64 x 16 (RESULTS.md, "CarRacing"): the same tracks for all
            # candidates of a generation; a training rollout ends after 50 consecutive steps of negative reward
            # (a car off the track or standing); the mean is scored on 32 tracks every 5 generations
            "controller": {
                "population_size": 32,
                "rollouts": 4,
                "shared_seeds": True,
                "negative_stop": 50,
                "generations": 30,
                "eval_every": 5,
                "eval_rollouts": 32,
            },
            "evaluate": {"episodes": 100},
        },
    },
    "doom-quick": {
        "description": "Doom at the paper's model sizes, budgets for under an hour on a 2-core laptop: 700 random "
        "episodes (a quarter with long holds), V 1 epoch at lr 1e-3, M 25 epochs of 32 x 100-frame chunks (both "
        "in bf16 mixed precision), C on [z, h] 20 generations of 64 x 8 in the dream (bf16), then 1 round of "
        "iterative training (150 agent episodes at exploration 0.3; 4 sibling fine-tunes of M, +5 epochs each, a "
        "fresh C of 20 generations on each, in the dream at tau 1.5, stopped where the population survives 75% of "
        "the cap), keeping the controller with the best real score over 30 episodes.",
        "base": "doom",
        "overrides": {
            # a quarter of the random episodes hold each action up to 100 frames: with short holds only, M never
            # sees a held action end and C learns to hold RIGHT (it lives ~4-10x longer in the dream than in the
            # game); twice the episodes let the dream keep that exploit (docs/faithfulness.md#data-collection)
            "collect": {"episodes": 700, "long_holds": 0.25},
            # V: Adam at 1e-3 instead of the original's 1e-4 (the PyTorch ports' rate): one epoch then ends near
            # where 1e-4 ends after more than two, which is what makes the fireballs and monsters visible in z;
            # two epochs gave a harsher first dream and a worse run
            "vae": {"epochs": 1, "precision": "bfloat16", "learning_rate": 1e-3},
            "mdnrnn": {"epochs": 25, "batch_size": 32, "sequence_length": 100, "precision": "bfloat16"},
            # C on [z, h] with a bias (CarRacing's form), not the paper's Doom [z, c, h]: M's cell state c
            # has an rms of ~14 here, so at sigma0 0.1 the term W c saturates tanh and every candidate is a
            # constant action (measured: C then always holds RIGHT, in the dream and in the game)
            "controller": {"mode": "zh", "generations": 20, "rollouts": 8, "eval_every": 10, "eval_rollouts": 128,
                           "dream_dtype": "bfloat16"},
            # One round of iterative training. Its outcome hangs on the draw of M's fine-tune (about one draw in
            # four transfers), so the round trains four sibling Ms, a fresh C on each, and keeps the controller
            # with the best real score over 30 episodes (a departure: real episodes choose among dreams). The
            # rounds' C trains at tau 1.5 (at 1.15 every sibling's C failed), the round's agent explores at 0.3
            # so that M sees more of what the first C never does, and a round's C stops where its whole
            # population survives 75% of the cap (a lenient dream, whose C only learns M's exploit). More rounds,
            # warm starts, more siblings of fewer generations, 200 round episodes and tau 1.6 all scored less
            # (RESULTS.md, "Ablations")
            "iterate": {"rounds": 1, "episodes": 150, "exploration": 0.3, "mdnrnn_epochs": 5, "generations": 20,
                        "abandon": 0.75, "siblings": 4, "temperature": 1.5, "warm_start": False, "keep": "best",
                        "eval_episodes": 30},
        },
    },
    "carracing-smoke": {
        "description": "CarRacing end to end in about a minute for tests: tiny budgets, paper model sizes, "
        "carracing-quick's EnvPool training and early stops, evaluated in Gymnasium.",
        "base": "carracing",
        "overrides": {
            "carracing_backend": "envpool",
            "collect": {"episodes": 2, "max_frames": 60},
            "vae": {"epochs": 1, "batch_size": 20},
            "mdnrnn": {"epochs": 2, "batch_size": 2, "sequence_length": 60},
            "controller": {
                "population_size": 4,
                "rollouts": 1,
                "generations": 2,
                "eval_every": 2,
                "eval_rollouts": 2,
                "max_steps": 40,
                "shared_seeds": True,
                "negative_stop": 20,
            },
            "evaluate": {"episodes": 2},
        },
    },
    "doom-smoke": {
        "description": "Doom end to end in about a minute for tests: tiny budgets, paper model sizes, dream training.",
        "base": "doom",
        "overrides": {
            "collect": {"episodes": 6},
            "vae": {"epochs": 2, "batch_size": 50},
            "mdnrnn": {"epochs": 3, "batch_size": 4, "sequence_length": 100},
            "controller": {
                "diagnose_episodes": 0,
                "population_size": 8,
                "rollouts": 2,
                "generations": 3,
                "eval_every": 3,
                "eval_rollouts": 8,
                "max_steps": 300,
            },
            "evaluate": {"episodes": 3},
        },
    },
}

DEFAULT_PRESET = "doom-quick"


def _preset_chain(name: str) -> list[str]:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    chain = [name]
    while "base" in PRESETS[chain[-1]]:
        chain.append(PRESETS[chain[-1]]["base"])
    return chain[::-1]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def field_paths(config: Config | None = None) -> dict[str, dataclasses.Field]:
    """Every settable dotted key and its dataclass field."""
    paths: dict[str, dataclasses.Field] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                paths[f"{prefix}{f.name}"] = f

    walk(config or Config(), "")
    return paths


def _field_type(owner: Any, name: str) -> type:
    hints = typing.get_type_hints(type(owner))
    return hints[name]


def _coerce(key: str, raw: Any, expected: type) -> Any:
    """Convert `raw` (a string from the command line, or a YAML value) to `expected`, or raise UserError."""
    if isinstance(expected, types.UnionType):  # not used by Config today; keep the error honest
        raise UserError(f"{key}: unsupported type {expected}")
    if isinstance(raw, str) and expected is not str:
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError:
            pass
    if expected is bool:
        if isinstance(raw, bool):
            return raw
        raise UserError(f"--set {key}={raw!r}: expected true or false")
    if expected is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        raise UserError(f"--set {key}={raw!r}: expected an integer")
    if expected is float:
        if isinstance(raw, str):  # YAML 1.1 reads exponents without a dot (3e-4) as strings
            try:
                raw = float(raw)
            except ValueError:
                pass
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        raise UserError(f"--set {key}={raw!r}: expected a number")
    if expected is str:
        return str(raw)
    raise UserError(f"{key}: unsupported type {expected}")


def _set(config: Config, key: str, raw: Any) -> None:
    paths = field_paths(config)
    if key not in paths:
        close = difflib.get_close_matches(key, paths, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(
            f"unknown config key {key!r}{hint}; `worldmodels presets --fields` lists all keys"
        )
    *parents, leaf = key.split(".")
    owner: Any = config
    for p in parents:
        owner = getattr(owner, p)
    setattr(owner, leaf, _coerce(key, raw, _field_type(owner, leaf)))


CHOICES = {
    "env": ENVIRONMENTS,
    "doom_resolution": ("320x240", "160x120"),
    "carracing_backend": CARRACING_BACKENDS,
    "controller.where": ("real", "dream"),
    "controller.mode": ("zh", "zch", "z", "z_hidden"),
    "controller.dream_dtype": ("float32", "bfloat16"),
    "vae.precision": ("float32", "bfloat16"),
    "mdnrnn.precision": ("float32", "bfloat16"),
    "iterate.keep": ("last", "best"),
}


def validate(config: Config) -> Config:
    """Check choices and ranges that a type alone cannot; raise UserError naming the key."""
    flat = _flatten(config.to_dict())
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise UserError(f"{key}={flat[key]!r} is not valid; choose one of: {', '.join(choices)}")
    positive = [
        "collect.episodes", "vae.latent_dim", "vae.epochs", "vae.batch_size", "mdnrnn.hidden_size",
        "mdnrnn.num_mixtures", "mdnrnn.batch_size", "mdnrnn.sequence_length", "mdnrnn.epochs",
        "controller.population_size", "controller.rollouts", "controller.eval_every",
        "controller.eval_rollouts", "controller.max_steps", "evaluate.episodes", "vae.shuffle_buffer_episodes",
        "iterate.episodes", "iterate.generations", "iterate.eval_episodes", "iterate.siblings",
        "mdnrnn.reward_optimism",
    ]
    if min(config.iterate.rounds, config.iterate.mdnrnn_epochs) < 0:
        raise UserError("iterate.rounds and iterate.mdnrnn_epochs must be >= 0")
    if config.iterate.temperature < 0:
        raise UserError(f"iterate.temperature={config.iterate.temperature} must be >= 0 (0 = controller.temperature)")
    for key in ("iterate.exploration", "collect.long_holds", "iterate.abandon", "collect.driver_fraction",
                "collect.driver_exploration"):
        if not 0.0 <= flat[key] <= 1.0:
            raise UserError(f"{key}={flat[key]} must lie in [0, 1]")
    for key in ("mdnrnn.input_dropout", "mdnrnn.recurrent_dropout", "controller.dream_dropout"):
        if not 0.0 <= flat[key] < 1.0:
            raise UserError(f"{key}={flat[key]} must lie in [0, 1)")
    if config.iterate.rounds and config.controller.where != "dream":
        raise UserError("iterate.rounds > 0 retrains C in the dream: it needs controller.where=dream")
    for key in positive:
        if flat[key] <= 0:
            raise UserError(f"{key}={flat[key]} must be positive")
    if flat["controller.temperature"] <= 0:
        raise UserError(f"controller.temperature={flat['controller.temperature']} must be positive")
    if config.doom_resolution != Config.doom_resolution and config.env != "doom":
        raise UserError(f"doom_resolution={config.doom_resolution!r} applies to doom only; remove it for {config.env}")
    if config.carracing_backend != Config.carracing_backend and config.env != "carracing":
        raise UserError(f"carracing_backend={config.carracing_backend!r} applies to carracing only; remove it for "
                        f"{config.env}")
    if config.controller.negative_stop < 0:
        raise UserError(f"controller.negative_stop={config.controller.negative_stop} must be >= 0 (0 = never)")
    if config.controller.where == "dream" and not config.mdnrnn.done_head and config.env == "doom":
        raise UserError("controller.where=dream for doom needs mdnrnn.done_head=true")
    if config.controller.where == "dream" and config.env == "carracing" and not config.mdnrnn.reward_head:
        raise UserError(
            "controller.where=dream for carracing needs M's reward head: add --set mdnrnn.reward_head=true "
            "(and mdnrnn.done_head=true)"
        )
    if config.mdnrnn.carry_state and not config.mdnrnn.restart_input:
        raise UserError("mdnrnn.carry_state=true needs mdnrnn.restart_input=true (episodes share streams)")
    return config


def apply_overrides(config: Config, overrides: list[str] | None = None, seed: int | None = None) -> Config:
    """`key=value` overrides (type-checked) and the seed applied to a copy of `config`, validated."""
    config = copy.deepcopy(config)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected key=value, e.g. --set vae.epochs=2")
        _set(config, key.strip(), value.strip())
    if seed is not None:
        config.seed = seed
    return validate(config)


def resolve(preset: str, overrides: list[str] | None = None, seed: int | None = None) -> Config:
    """The config of a preset with `key=value` overrides applied and validated."""
    config = Config()
    for name in _preset_chain(preset):
        for key, value in _flatten(PRESETS[name]["overrides"]).items():
            _set(config, key, value)
    return apply_overrides(config, overrides, seed)


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Rebuild a Config from its dict form (config.yaml), type-checking every value."""
    config = Config()
    if not isinstance(data, dict):
        raise UserError(f"{source} is not a mapping: delete it or rerun with --force")
    for key, value in _flatten(data).items():
        _set(config, key, value)
    return validate(config)


CONFIG_FILE = "config.yaml"


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{path} does not exist: is {run_dir} a run directory? Start one with `worldmodels collect`")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML ({e.__class__.__name__}): fix or delete it") from None
    return from_dict(data, str(path))


def save_run_config(run_dir: Path, config: Config, force: bool = False, write: bool = True,
                    free: tuple[str, ...] = ("evaluate.",)) -> None:
    """Write config.yaml (unless not `write`: check only); refuse to change the config of an existing run
    unless `force`. Keys starting with a `free` prefix may change: evaluate.* changes no artifact of an
    earlier stage (a side measurement that writes nothing may free more, e.g. controller.*)."""
    path = Path(run_dir) / CONFIG_FILE
    if path.is_file() and not force:
        old_flat, new_flat = _flatten(load_run_config(run_dir).to_dict()), _flatten(config.to_dict())
        diffs = [f"{k}: {old_flat[k]!r} -> {new_flat[k]!r}" for k in new_flat
                 if old_flat[k] != new_flat[k] and not k.startswith(free)]
        if diffs:
            raise UserError(
                f"{run_dir} was made with a different config ({'; '.join(diffs)}): use another --run-dir, "
                "or --force to continue with the new config"
            )
        if old_flat == new_flat:
            return
    if write:
        atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def describe_fields() -> str:
    lines = []
    for key, f in field_paths().items():
        lines.append(f"{key} = {f.default!r}\n    {f.metadata.get('doc', '')}")
    return "\n".join(lines)
