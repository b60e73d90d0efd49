"""train-vae, encode and train-mdnrnn on doom-smoke with the real environment's frames.

One copy of the session's collected run directory is trained once (`vm_run`); the resume and error
tests work on their own copies.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import (
    CLI,
    DOOM_EPISODES,
    DOOM_SETS,
    assert_user_error,
    copy_run,
    kill_group,
    ok,
    run_cli,
    sets,
    start_cli,
    subprocess_env,
)
from worldmodels.artifacts import load_vae
from worldmodels.checkpoint import load_checkpoint
from worldmodels.cli import main
from worldmodels.data.episodes import episode_length, list_episodes, read_arrays, read_episode
from worldmodels.logger import read_metrics
from worldmodels.models.vae import frames_to_tensor

pytestmark = [pytest.mark.slow, pytest.mark.realenv]  # one real collection, then V and M trained

V_PARAMETERS = 4_446_915  # ConvVAE with z = 64 (the paper's Doom count)
M_PAPER_PARAMETERS = 1_678_785  # MDN-RNN 512 units, 961 outputs (the paper's count, TF's single LSTM bias)
M_EPOCHS = int(next(s for s in DOOM_SETS if s.startswith("mdnrnn.epochs=")).split("=")[1])


@pytest.fixture(scope="module")
def vm_run(doom_run, tmp_path_factory):
    """The session's 4 Doom episodes, trained through V, encode and M with the run directory's config."""
    run_dir = copy_run(doom_run.path, tmp_path_factory.mktemp("vm") / "run")
    outputs = {}
    for stage in ("train-vae", "encode", "train-mdnrnn"):
        outputs[stage] = ok(run_cli(stage, "--run-dir", run_dir, "--quiet", timeout=600)).stdout
    return run_dir, outputs


def _mean(rows, key, part):
    values = [r[key] for r in rows if key in r]
    n = max(1, len(values) // 4)
    return float(np.mean(values[:n] if part == "early" else values[-n:])), values


def test_vae_trains_and_its_loss_falls(vm_run):
    run_dir, outputs = vm_run
    rows = read_metrics(run_dir / "vae" / "metrics.jsonl")
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps))  # each step once, in order
    frames = sum(episode_length(p) for p in list_episodes(run_dir / "episodes")[:2])  # vae.max_episodes=2
    assert steps[-1] == 3 * (frames // 32)  # vae.epochs x batches; the last partial batch is dropped
    early, values = _mean(rows, "losses/total", "early")
    late, _ = _mean(rows, "losses/total", "late")
    assert late < 0.8 * early, values
    recon_early, _ = _mean(rows, "losses/reconstruction", "early")
    recon_late, _ = _mean(rows, "losses/reconstruction", "late")
    assert recon_late < recon_early
    # the KL is floored at kl_tolerance * z = 32 nats per sample
    assert all(r["losses/kl"] >= 32.0 - 1e-3 for r in rows)
    assert f"done, {steps[-1]} steps" in outputs["train-vae"]


def test_mdnrnn_trains_and_its_loss_falls(vm_run):
    run_dir, outputs = vm_run
    rows = read_metrics(run_dir / "mdnrnn" / "metrics.jsonl")
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, len(steps) + 1))
    frames = sum(episode_length(p) for p in list_episodes(run_dir / "episodes"))
    assert len(steps) == M_EPOCHS * (frames // (4 * 100))  # epochs x chunks of batch 4 x 100 frames
    early, values = _mean(rows, "losses/z", "early")
    late, _ = _mean(rows, "losses/z", "late")
    assert late < early - 0.05, values
    assert {"losses/loss", "losses/z", "losses/done"} <= set(rows[-1])  # Doom: the done head is trained
    # the decayed learning rate of the original: (1e-3 - 1e-5) * 0.99999**step + 1e-5
    assert rows[1]["lr"] == pytest.approx((1e-3 - 1e-5) * 0.99999 + 1e-5)


def test_pictures_are_written(vm_run):
    run_dir, _ = vm_run
    for name in ("vae/reconstructions.png", "vae/loss.png", "mdnrnn/loss.png", "mdnrnn/open_loop.png"):
        path = run_dir / name
        assert path.is_file(), name
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 200 and height >= 128, (name, image.size)
    for name in ("vae/reconstructions.png", "mdnrnn/open_loop.png"):  # two rows of 64x64 frames, 10 wide
        with Image.open(run_dir / name) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[1] >= 10 * 64 and pixels.shape[0] >= 2 * 64
        top, bottom = pixels[: pixels.shape[0] // 2], pixels[pixels.shape[0] // 2 :]
        assert top.std() > 5 and bottom.std() > 1  # real frames above, a decoded picture below


def test_inspect_reports_the_paper_parameter_counts(vm_run):
    run_dir, _ = vm_run
    report = json.loads(ok(run_cli("inspect", run_dir, "--json")).stdout)
    stages = report["stages"]
    assert [stages[s]["status"] for s in ("collect", "train-vae", "encode", "train-mdnrnn")] == ["done"] * 4
    assert stages["train-vae"]["parameters"] == V_PARAMETERS
    assert stages["train-vae"]["epochs"] == "3/3"
    assert stages["train-mdnrnn"]["paper_parameters"] == M_PAPER_PARAMETERS
    assert stages["train-mdnrnn"]["parameters"] == M_PAPER_PARAMETERS + 4 * 512  # PyTorch's second LSTM bias
    assert stages["train-mdnrnn"]["epochs"] == f"{M_EPOCHS}/{M_EPOCHS}"
    assert stages["encode"]["episodes"] == DOOM_EPISODES


def test_encode_stores_vs_statistics_for_every_frame(vm_run):
    run_dir, _ = vm_run
    series = sorted(p.name for p in (run_dir / "series").iterdir())
    assert series == [f"{i:06d}.npz" for i in range(DOOM_EPISODES)] + ["initial_z.npz"]
    vae = load_vae(run_dir)
    firsts = []
    for i, path in enumerate(list_episodes(run_dir / "episodes")):
        episode = read_episode(path)
        data = read_arrays(run_dir / "series" / path.name, ("mu", "logvar", "action", "done", "meta"))
        T = len(episode.obs)
        assert data["mu"].shape == data["logvar"].shape == (T, 64) and data["mu"].dtype == np.float16
        np.testing.assert_array_equal(data["action"], episode.action)
        np.testing.assert_array_equal(data["done"], episode.done)
        assert data["meta"]["index"] == i
        with torch.no_grad():
            mu, logvar = vae.encode(frames_to_tensor(episode.obs[:5]))
        for name, value in (("mu", mu), ("logvar", logvar)):
            stored = data[name][:5].astype(np.float32)
            np.testing.assert_allclose(stored, value.numpy(), atol=2e-2, rtol=2e-3)
        firsts.append(data["mu"][0])
    initial = read_arrays(run_dir / "series" / "initial_z.npz", ("mu", "logvar"))
    assert initial["mu"].shape == (DOOM_EPISODES, 64)
    np.testing.assert_array_equal(initial["mu"], np.stack(firsts))  # where dream episodes start


def test_finished_stages_are_skipped(vm_run, capsys):
    run_dir, _ = vm_run
    paths = [run_dir / "vae/checkpoint.pt", run_dir / "mdnrnn/checkpoint.pt", run_dir / "series/000000.npz"]
    before = [p.stat().st_mtime_ns for p in paths]
    for stage in ("train-vae", "encode", "train-mdnrnn"):
        assert main([stage, "--run-dir", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train-vae: done (3 epochs" in out
    assert f"train-mdnrnn: done ({M_EPOCHS} epochs" in out
    assert [p.stat().st_mtime_ns for p in paths] == before


@pytest.mark.slow
def test_train_vae_resumes_after_a_kill(doom_run, tmp_path):
    run_dir = copy_run(doom_run.path, tmp_path / "resume", parts=("episodes",))
    epochs, batch = 4, 16
    args = ("train-vae", "--preset", "doom-smoke", "--run-dir", run_dir, "--quiet",
            *sets(f"collect.episodes={DOOM_EPISODES}", "vae.max_episodes=1", f"vae.batch_size={batch}",
                  f"vae.epochs={epochs}"))
    batches = episode_length(run_dir / "episodes" / "000000.npz") // batch
    checkpoint = run_dir / "vae" / "checkpoint.pt"
    proc = start_cli(*args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not checkpoint.exists():
        time.sleep(0.02)
    finished_before_kill = proc.poll() is not None
    kill_group(proc)
    assert not finished_before_kill and checkpoint.exists()
    state = load_checkpoint(checkpoint, "vae")
    assert not state["complete"] and 1 <= state["epoch"] < epochs

    proc = ok(run_cli(*args, timeout=600))
    match = re.search(r"resuming at epoch (\d+), step (\d+)", proc.stdout)
    assert match, proc.stdout
    epoch, step = map(int, match.groups())
    assert epoch >= 1 and step == epoch * batches  # it went on from the checkpoint, not from scratch
    final = load_checkpoint(checkpoint, "vae")
    assert final["complete"] and final["epoch"] == epochs
    assert final["step"] == epochs * batches  # not a batch more
    steps = [r["step"] for r in read_metrics(run_dir / "vae" / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == epochs * batches  # the log shows no step twice


# --- errors: exit code 2, one line naming the file or saying what to run ---------------------------------
# (through `main()` in this process where a subprocess would only add its start-up time)


def _broken(run_dir, tmp, name, parts=("config.yaml", "episodes")):
    return copy_run(run_dir, tmp / name, parts=parts)


def test_corrupt_checkpoint_exits_2_naming_it(vm_run, tmp_path):
    """As real processes: exit 2, one line naming the file, for train-vae and for encode (which loads V)."""
    run_dir, _ = vm_run
    broken = _broken(run_dir, tmp_path, "bad-checkpoint", ("config.yaml", "episodes", "vae"))
    checkpoint = broken / "vae" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    procs = [
        subprocess.Popen([*CLI, stage, "--run-dir", str(broken), "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=subprocess_env())
        for stage in ("train-vae", "encode")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert_user_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), str(checkpoint))


def _main_error(argv, capsys, *fragments):
    code = main(argv)
    captured = capsys.readouterr()
    return assert_user_error(subprocess.CompletedProcess(argv, code, captured.out, captured.err), *fragments)


def test_corrupt_episode_exits_2_naming_it(vm_run, tmp_path, capsys):
    run_dir, _ = vm_run
    broken = _broken(run_dir, tmp_path, "bad-episode")
    path = broken / "episodes" / "000001.npz"  # one of the two episodes V trains on (vae.max_episodes=2)
    path.write_bytes(path.read_bytes()[:5000])
    _main_error(["train-vae", "--run-dir", str(broken), "--quiet"], capsys, str(path), "corrupt or truncated")
    assert not (broken / "vae" / "checkpoint.pt").exists()
    # garbage in an episode that encode reads
    garbage = _broken(run_dir, tmp_path, "garbage-episode", ("config.yaml", "episodes", "vae"))
    path = garbage / "episodes" / "000003.npz"
    path.write_bytes(b"\x00" * 3000)
    _main_error(["encode", "--run-dir", str(garbage), "--quiet"], capsys, str(path))


@pytest.mark.parametrize(
    "stage, parts, fragments",
    [
        ("train-mdnrnn", ("config.yaml", "episodes", "vae"), ["series", "run `worldmodels encode` first"]),
        ("encode", ("config.yaml", "episodes"), ["checkpoint.pt", "run `worldmodels train-vae` first"]),
        ("train-vae", ("config.yaml",), ["episodes", "run `worldmodels collect` first"]),
    ],
)
def test_a_missing_artifact_says_what_to_run(vm_run, tmp_path, capsys, stage, parts, fragments):
    run_dir, _ = vm_run
    broken = _broken(run_dir, tmp_path, "missing", parts)
    _main_error([stage, "--run-dir", str(broken), "--quiet"], capsys, *fragments)
