"""Which controller iterative training ends with (fast; the stage itself runs in test_pipeline)."""

from __future__ import annotations

import json

from worldmodels.artifacts import controller_dir, round_dir
from worldmodels.config import resolve


def _write_round(run_dir, index, **state):
    round_dir(run_dir, index).mkdir(parents=True)
    (round_dir(run_dir, index) / "round.json").write_text(json.dumps(state))


def test_controller_dir_is_the_last_finished_round_or_the_best_scoring_one(tmp_path):
    last = resolve("doom-quick", ["iterate.rounds=3", "iterate.keep=last"])
    best = resolve("doom-quick", ["iterate.rounds=3", "iterate.keep=best"])
    assert controller_dir(tmp_path, last) == controller_dir(tmp_path, best) == tmp_path / "controller"

    _write_round(tmp_path, 0, real_mean=300.0)  # the first pass, scored before round 1
    _write_round(tmp_path, 1, complete=True, real_mean=500.0)
    _write_round(tmp_path, 2, complete=True, real_mean=200.0)
    _write_round(tmp_path, 3, real_mean=900.0)  # not finished: never chosen
    assert controller_dir(tmp_path, last) == round_dir(tmp_path, 2)
    assert controller_dir(tmp_path, best) == round_dir(tmp_path, 1)
