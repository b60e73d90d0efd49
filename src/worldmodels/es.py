"""CMA-ES over pycma with the paper's settings, maximising fitness, with state that checkpoints.

The original (`carracing/es.py` L86-119, estool's wrapper of pycma 2.2) runs
`CMAEvolutionStrategy(N * [0], 0.1, {'popsize': 64})` with every other option at its default (full
covariance), 16 rollouts per candidate averaged, and evaluates the distribution mean every 25
generations on 1024 fixed-seed rollouts (docs/faithfulness.md#cma-es). pycma minimises; returns are maximised. The
one sign flip between the two lives in `CMAES.tell`, and nowhere else.

Not reproduced: estool's "weight decay" (`es.py` L23-25, L114-119) hands pycma
`-fitness - 0.01 * mean(theta**2)` to minimise, which rewards *larger* weights (wrong sign); its size is
below 0.01 and negligible next to returns in the hundreds, so the fitness goes to pycma unchanged.

Shape letters: P population, N parameters, R rollouts per candidate.
"""

from __future__ import annotations

import pickle
from typing import Any

import cma
import numpy as np

from worldmodels.errors import UserError
from worldmodels.seeding import derive_rng

__all__ = ["CMAES", "evaluation_seeds", "paired_seeds"]

SEED_HIGH = 2**31 - 1  # seeds are drawn from [0, 2**31 - 1): valid for every env's seed argument


class CMAES:
    """pycma's CMAEvolutionStrategy with the paper's settings; maximises fitness (one sign flip, here only).

    Usage, one generation:  `x = es.ask()` (P, N); score each row; `es.tell(x, fitness)` (P,).

    Randomness: pycma samples through its `randn` option, which by default is the *global*
    `np.random.randn` (and its `seed` option reseeds the global numpy RNG). Here it gets a private
    `np.random.RandomState(seed)` instead, so that other code drawing from `np.random` between
    generations cannot change the candidates, and so that the RNG is pickled with the strategy: a
    run resumed from `state_dict` asks exactly the candidates the uninterrupted run would have.
    """

    def __init__(
        self,
        num_params: int,
        population_size: int = 64,
        sigma0: float = 0.1,
        seed: int = 0,
        x0: np.ndarray | None = None,
    ) -> None:
        if num_params < 1:
            raise ValueError(f"num_params must be >= 1, got {num_params}")
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not sigma0 > 0:
            raise ValueError(f"sigma0 must be > 0, got {sigma0}")
        if x0 is None:
            x0 = np.zeros(num_params)  # the original starts from N * [0]
        x0 = np.asarray(x0, dtype=np.float64)
        if x0.shape != (num_params,):
            raise ValueError(f"x0 must have shape ({num_params},), got {x0.shape}")
        self.num_params = int(num_params)
        self.population_size = int(population_size)
        self.sigma0 = float(sigma0)
        self.seed = int(seed)
        rng = np.random.RandomState(self.seed)  # private; see the class docstring
        options = {
            "popsize": self.population_size,
            "randn": rng.randn,
            "seed": np.nan,  # "do not touch the global numpy RNG"; the private rng above is already seeded
            "verbose": -9,
            "verb_log": 0,  # no outcmaes/ files
            "verb_disp": 0,
        }
        self._es = cma.CMAEvolutionStrategy(x0, self.sigma0, options)
        self.generation = 0  # completed generations (calls to `tell`)
        self.best_params: np.ndarray | None = None
        self.best_fitness = -np.inf
        self.history: list[dict[str, float]] = []

    @property
    def mean(self) -> np.ndarray:
        """(N,) the distribution mean: what the original evaluates every 25 generations (`es.result[5]`)."""
        return np.array(self._es.result.xfavorite, dtype=np.float64)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    def ask(self) -> np.ndarray:
        """(P, N) float64 candidates of this generation."""
        candidates = np.array(self._es.ask(), dtype=np.float64)
        assert candidates.shape == (self.population_size, self.num_params), candidates.shape
        return candidates

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        """Update the distribution from candidates (P, N) and their fitness (P,), higher is better."""
        candidates = np.asarray(candidates, dtype=np.float64)
        fitness = np.asarray(fitness, dtype=np.float64)
        if candidates.shape != (self.population_size, self.num_params):
            expected = (self.population_size, self.num_params)
            raise ValueError(f"candidates must have shape {expected}, got {candidates.shape}")
        if fitness.shape != (self.population_size,):
            raise ValueError(f"fitness must have shape ({self.population_size},), got {fitness.shape}")
        if not np.all(np.isfinite(fitness)):
            raise ValueError(f"fitness must be finite, got {fitness[~np.isfinite(fitness)]} among the values")
        # The one sign flip: pycma minimises, fitness is maximised.
        self._es.tell(list(candidates), (-fitness).tolist())
        best = int(np.argmax(fitness))
        if fitness[best] > self.best_fitness:
            self.best_fitness = float(fitness[best])
            self.best_params = candidates[best].copy()
        self.history.append(
            {
                "generation": self.generation,  # the index used for this generation's seeds
                "best": float(fitness.max()),
                "mean": float(fitness.mean()),
                "worst": float(fitness.min()),
                "sigma": self.sigma,
            }
        )
        self.generation += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; the pickled pycma object carries its private RNG."""
        return {
            "num_params": self.num_params,
            "population_size": self.population_size,
            "sigma0": self.sigma0,
            "seed": self.seed,
            "cma_version": cma.__version__,
            "cma_pickle": pickle.dumps(self._es),
            "generation": self.generation,
            "best_params": None if self.best_params is None else self.best_params.copy(),
            "best_fitness": self.best_fitness,
            "history": [dict(h) for h in self.history],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> CMAES:
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise UserError(f"CMA-ES state is missing {missing}: the checkpoint is not from this worldmodels")
        try:
            es = pickle.loads(state["cma_pickle"])
        except Exception as e:  # noqa: BLE001 - a pycma whose classes changed since the checkpoint
            raise UserError(
                f"cannot restore the CMA-ES state written with cma {state['cma_version']} under cma "
                f"{cma.__version__} ({type(e).__name__}: {e}): install cma=={state['cma_version']}"
            ) from None
        self = cls.__new__(cls)
        self.num_params = int(state["num_params"])
        self.population_size = int(state["population_size"])
        self.sigma0 = float(state["sigma0"])
        self.seed = int(state["seed"])
        self._es = es
        self.generation = int(state["generation"])
        best = state["best_params"]
        self.best_params = None if best is None else np.array(best, dtype=np.float64)
        self.best_fitness = float(state["best_fitness"])
        self.history = [dict(h) for h in state["history"]]
        return self


_STATE_KEYS = (
    "num_params",
    "population_size",
    "sigma0",
    "seed",
    "cma_version",
    "cma_pickle",
    "generation",
    "best_params",
    "best_fitness",
    "history",
)


def paired_seeds(base_seed: int, generation: int, population_size: int, rollouts: int,
                 shared: bool = False) -> np.ndarray:
    """(P, R) int64 environment seeds for one generation, in [0, 2**31 - 1).

    Derived only from (base_seed, generation), so every executor and every resumed run gives the same
    seeds. With an even P, candidates i and i + P/2 share their R seeds: the original's `antithetic`
    pairing (`train.py` L302-308: 32 seeds per generation for P = 64, duplicated), which makes the
    comparison within a pair less noisy. With an odd P there is no pairing: every candidate gets its
    own seeds. `shared` (config `controller.shared_seeds`): every candidate gets the same R seeds.

    The original gives each candidate one seed and runs its 16 episodes back to back from it; here
    each rollout has its own seed, so rollouts can run as separate tasks in any order.
    """
    if population_size < 1 or rollouts < 1:
        raise ValueError(f"population_size and rollouts must be >= 1, got {population_size} and {rollouts}")
    if base_seed < 0 or generation < 0:
        raise ValueError(f"base_seed and generation must be >= 0, got {base_seed} and {generation}")
    rng = derive_rng(base_seed, "cmaes", generation)
    if shared:
        row = rng.integers(0, SEED_HIGH, size=(1, rollouts), dtype=np.int64)
        return np.repeat(row, population_size, axis=0)
    if population_size % 2 == 0:
        half = rng.integers(0, SEED_HIGH, size=(population_size // 2, rollouts), dtype=np.int64)
        return np.concatenate([half, half], axis=0)  # row i and row i + P/2 are equal
    return rng.integers(0, SEED_HIGH, size=(population_size, rollouts), dtype=np.int64)


def evaluation_seeds(base_seed: int, count: int) -> np.ndarray:
    """(count,) int64 fixed seeds for evaluating the distribution mean, the same at every evaluation.

    The original runs seeds 0..63 x 16 episodes = 1024 rollouts every 25 generations (`train.py`
    L354-372); here `count` seeds (1024 for the paper) drawn from a stream of their own.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if base_seed < 0:
        raise ValueError(f"base_seed must be >= 0, got {base_seed}")
    return derive_rng(base_seed, "cmaes-evaluation").integers(0, SEED_HIGH, size=count, dtype=np.int64)
