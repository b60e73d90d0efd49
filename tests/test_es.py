import numpy as np
import pytest

from worldmodels.checkpoint import load_checkpoint, save_checkpoint
from worldmodels.errors import UserError
from worldmodels.es import CMAES, evaluation_seeds, paired_seeds

N, P = 10, 16
TARGET = np.linspace(-1.0, 1.0, N)


def fitness_of(candidates: np.ndarray) -> np.ndarray:
    return -np.sum((candidates - TARGET) ** 2, axis=1)  # higher is better, peak 0 at TARGET


def run(es: CMAES, generations: int) -> list[np.ndarray]:
    asked = []
    for _ in range(generations):
        x = es.ask()
        asked.append(x)
        es.tell(x, fitness_of(x))
    return asked


def test_ask_shape_and_defaults():
    es = CMAES(N, population_size=P, seed=3)
    x = es.ask()
    assert x.shape == (P, N) and x.dtype == np.float64
    assert es.sigma == pytest.approx(0.1)
    np.testing.assert_array_equal(es.mean, np.zeros(N))
    assert es.generation == 0 and es.best_params is None and es.best_fitness == -np.inf


def test_seed_determines_candidates_and_global_rng_does_not():
    a = CMAES(N, population_size=P, seed=5).ask()
    np.random.seed(123)
    es = CMAES(N, population_size=P, seed=5)
    np.random.rand(7)  # other code drawing from the global RNG must not move the candidates
    np.testing.assert_array_equal(a, es.ask())
    assert not np.array_equal(a, CMAES(N, population_size=P, seed=6).ask())
    CMAES(N, population_size=P, seed=0).ask()  # seed 0 is a valid seed, not "random"


def test_resume_equals_uninterrupted(tmp_path):
    full = CMAES(N, population_size=P, seed=7)
    asked_full = run(full, 6)

    first = CMAES(N, population_size=P, seed=7)
    asked_first = run(first, 3)
    save_checkpoint(tmp_path / "es.pt", "es", first.state_dict())
    del first
    np.random.rand(11)  # disturb the global RNG between save and resume
    resumed = CMAES.from_state_dict(load_checkpoint(tmp_path / "es.pt", "es"))
    assert resumed.generation == 3
    asked_second = run(resumed, 3)

    for a, b in zip(asked_full, asked_first + asked_second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full.mean, resumed.mean)
    assert full.sigma == resumed.sigma
    assert full.best_fitness == resumed.best_fitness
    np.testing.assert_array_equal(full.best_params, resumed.best_params)
    assert full.history == resumed.history
    assert [h["generation"] for h in resumed.history] == list(range(6))


def test_maximises():
    es = CMAES(N, population_size=P, sigma0=0.5, seed=1)
    start = fitness_of(es.mean[None])[0]
    run(es, 30)
    means = [h["mean"] for h in es.history]
    assert fitness_of(es.mean[None])[0] > start / 2, "the distribution mean moved away from the maximum"
    assert np.mean(means[-5:]) > np.mean(means[:5])
    assert es.best_fitness == max(h["best"] for h in es.history)
    assert fitness_of(es.best_params[None])[0] == pytest.approx(es.best_fitness)
    h = es.history[-1]
    assert h["worst"] <= h["mean"] <= h["best"] and h["sigma"] == es.sigma


def test_tell_validates():
    es = CMAES(N, population_size=P)
    x = es.ask()
    with pytest.raises(ValueError, match="fitness must have shape"):
        es.tell(x, np.zeros(P - 1))
    with pytest.raises(ValueError, match="finite"):
        es.tell(x, np.full(P, np.nan))
    with pytest.raises(ValueError, match="candidates must have shape"):
        es.tell(x[:, :-1], np.zeros(P))


def test_foreign_state_is_user_error():
    with pytest.raises(UserError, match="missing"):
        CMAES.from_state_dict({"generation": 1})


def test_shared_seeds_give_every_candidate_the_same_tracks():
    s = paired_seeds(0, 4, population_size=6, rollouts=3, shared=True)
    assert s.shape == (6, 3) and (s == s[0]).all() and len(set(s[0].tolist())) == 3
    assert not (paired_seeds(0, 5, 6, 3, shared=True) == s).all()  # other tracks in the next generation


def test_paired_seeds():
    s = paired_seeds(0, 4, population_size=64, rollouts=16)
    assert s.shape == (64, 16) and s.dtype == np.int64
    np.testing.assert_array_equal(s[:32], s[32:])
    assert len(np.unique(s[:32])) == 32 * 16  # no accidental repeats within the half
    assert s.min() >= 0 and s.max() < 2**31 - 1
    np.testing.assert_array_equal(s, paired_seeds(0, 4, 64, 16))
    assert not np.array_equal(s, paired_seeds(0, 5, 64, 16))
    assert not np.array_equal(s, paired_seeds(1, 4, 64, 16))
    odd = paired_seeds(0, 4, population_size=5, rollouts=3)
    assert odd.shape == (5, 3) and len(np.unique(odd)) == 15  # odd P: no pairing


def test_evaluation_seeds():
    e = evaluation_seeds(0, 1024)
    assert e.shape == (1024,) and e.dtype == np.int64
    np.testing.assert_array_equal(e, evaluation_seeds(0, 1024))
    np.testing.assert_array_equal(e[:10], evaluation_seeds(0, 10))
    assert not np.array_equal(e, evaluation_seeds(1, 1024))
