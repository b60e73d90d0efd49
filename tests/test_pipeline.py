"""End to end with the real environments: `worldmodels run` on the smoke presets, then a rerun that does nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realenv]


def worldmodels(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldmodels", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("preset", ["doom-smoke", "carracing-smoke"])
def test_run_smoke_preset_end_to_end(preset, tmp_path):
    run_dir = tmp_path / preset
    first = worldmodels("run", "--preset", preset, "--run-dir", str(run_dir), "--workers", "2", "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]

    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["episodes"] == len(evaluation["returns"]) == len(evaluation["seeds"]) > 0
    assert abs(evaluation["mean"] - sum(evaluation["returns"]) / evaluation["episodes"]) < 1e-6
    for picture in ("vae/reconstructions.png", "vae/loss.png", "mdnrnn/loss.png", "mdnrnn/open_loop.png",
                    "controller/fitness.png"):
        assert (run_dir / picture).stat().st_size > 1000, picture
    if preset == "carracing-smoke":  # C trained in the real environment: its learning curve, with env steps
        assert (run_dir / "controller" / "learning_curve.png").stat().st_size > 1000
        rows = [json.loads(line) for line in (run_dir / "controller" / "metrics.jsonl").read_text().splitlines()]
        steps = [row["charts/env_steps"] for row in rows]
        assert 0 < steps[0] < steps[-1] and all(row["charts/minutes"] > 0 for row in rows)

    report = json.loads(worldmodels("inspect", str(run_dir), "--json").stdout)
    assert {s["status"] for s in report["stages"].values()} == {"done"}, report["stages"]

    tic = time.monotonic()
    second = worldmodels("run", "--run-dir", str(run_dir))
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - tic < 30  # nothing to do: it only checks the artifacts
    assert second.stdout.count("is done, skipped") == 7, second.stdout


def test_iterative_training_dream_video_and_evaluate_video(tmp_path):
    """doom-smoke with one round of iterative training over two sibling Ms; then `dream` and
    `evaluate --video` write GIFs."""
    run_dir = tmp_path / "doom"
    rounds = ["--set", "iterate.rounds=1", "--set", "iterate.episodes=2", "--set", "iterate.generations=1",
              "--set", "iterate.mdnrnn_epochs=1", "--set", "iterate.eval_episodes=2", "--set", "iterate.siblings=2",
              "--set", "iterate.temperature=1.3",
              "--set", "iterate.warm_start=false", "--set", "iterate.keep=best", "--set", "collect.long_holds=0.5"]
    result = worldmodels("run", "--preset", "doom-smoke", "--run-dir", str(run_dir), "--quiet", "--workers", "2",
                         "--set", "controller.generations=1", "--set", "controller.eval_every=1", *rounds)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(worldmodels("inspect", str(run_dir), "--json").stdout)
    iterate = report["stages"]["iterate"]
    assert iterate["status"] == "done" and "round_1" in iterate and "first_pass" in iterate
    first, last = (json.loads((run_dir / "rounds" / r / "round.json").read_text())["real_mean"] for r in ("00", "01"))
    kept = "controller" if first >= last else "rounds/01"  # keep=best
    assert iterate["controller"] == kept
    # each controller keeps the M it was trained with, and is evaluated with it
    snapshots = [(run_dir / d / "mdnrnn.pt").read_bytes() for d in ("controller", "rounds/01")]
    assert snapshots[0] != snapshots[1]  # the first pass's M, then round 1's fine-tuned one
    assert json.loads((run_dir / "eval.json").read_text())["controller"]["mdnrnn"] == f"{kept}/mdnrnn.pt"
    episodes = sorted((run_dir / "episodes").glob("*.npz"))
    assert len(episodes) == 6 + 2  # the round's agent episodes continue the numbering
    round_meta = json.loads(str(np.load(episodes[-1])["meta"]))
    assert round_meta["policy"] == "agent"
    assert json.loads((run_dir / "eval.json").read_text())["controller"]["trained_in"] == "dream"
    # the round kept the sibling with the best real score: its C, and its M as the round's and the run's M
    round_1 = run_dir / "rounds" / "01"
    state = json.loads((round_1 / "round.json").read_text())
    assert [s["sibling"] for s in state["siblings"]] == [0, 1]
    assert state["real_mean"] == max(s["real_mean"] for s in state["siblings"])
    winner = round_1 / "siblings" / str(state["sibling"])
    assert (round_1 / "best.npz").read_bytes() == (winner / "best.npz").read_bytes()
    meta = [json.loads(str(np.load(run_dir / d / "best.npz")["meta"])) for d in ("controller", "rounds/01")]
    # the round's C trained at iterate.temperature
    assert [m["temperature"] for m in meta] == [1.15, 1.3]
    m_bytes = [(round_1 / "siblings" / s / "mdnrnn" / "checkpoint.pt").read_bytes() for s in ("0", "1")]
    assert m_bytes[0] != m_bytes[1]  # each sibling's own data order and z noise
    assert (round_1 / "mdnrnn.pt").read_bytes() == (run_dir / "mdnrnn" / "checkpoint.pt").read_bytes() \
        == m_bytes[state["sibling"]]

    dream = worldmodels("dream", str(run_dir), "--steps", "30", "--out", str(tmp_path / "dream.gif"))
    assert dream.returncode == 0, dream.stderr
    assert (tmp_path / "dream.gif").stat().st_size > 1000
    video = worldmodels("evaluate", "--run-dir", str(run_dir), "--episodes", "1", "--video", "--quiet")
    assert video.returncode == 0, video.stderr
    assert (run_dir / "eval.gif").stat().st_size > 1000
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 1

    # a second set of seeds as a side measurement: its own file, the run's config and eval.json untouched
    config_before = (run_dir / "config.yaml").read_bytes()
    eval_before = (run_dir / "eval.json").read_bytes()
    side = worldmodels("evaluate", "--run-dir", str(run_dir), "--episodes", "2", "--set", "evaluate.seed=20000",
                       "--out", str(tmp_path / "second.json"), "--quiet")
    assert side.returncode == 0, side.stderr
    assert json.loads((tmp_path / "second.json").read_text())["seeds"] == [20000, 20001]
    assert (run_dir / "config.yaml").read_bytes() == config_before
    assert (run_dir / "eval.json").read_bytes() == eval_before
    refused = worldmodels("evaluate", "--run-dir", str(run_dir), "--set", "mdnrnn.epochs=9",
                          "--out", str(tmp_path / "third.json"), "--quiet")
    assert refused.returncode == 2 and "different config" in refused.stderr


def test_iterative_training_ends_with_the_last_round(tmp_path):
    """keep=last: the run ends with the last round's controller and its M, whatever the first pass scored."""
    run_dir = tmp_path / "doom"
    result = worldmodels("run", "--preset", "doom-smoke", "--run-dir", str(run_dir), "--quiet", "--workers", "2",
                         "--set", "controller.generations=1", "--set", "controller.eval_every=1",
                         "--set", "iterate.rounds=1", "--set", "iterate.episodes=2", "--set", "iterate.generations=1",
                         "--set", "iterate.mdnrnn_epochs=1", "--set", "iterate.eval_episodes=2",
                         "--set", "iterate.keep=last")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(worldmodels("inspect", str(run_dir), "--json").stdout)["stages"]
    assert report["iterate"]["controller"] == "rounds/01" and "first_pass" not in report["iterate"]
    assert json.loads((run_dir / "eval.json").read_text())["controller"]["mdnrnn"] == "rounds/01/mdnrnn.pt"
