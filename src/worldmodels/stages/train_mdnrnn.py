"""`worldmodels train-mdnrnn`: M, the MDN-RNN, on the encoded episodes (docs/faithfulness.md#m).

z is resampled from the stored (mu, logvar) every batch. CarRacing: random whole episodes from zero state.
Doom: parallel streams of concatenated episodes in 500-frame chunks with the state carried across chunks,
the restart input and the x10-weighted done loss. Adam with the original's decayed learning rate,
gradients clipped by value at 1. Checkpoints at every epoch end; running the command again resumes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import SERIES_DIR, load_vae, mdnrnn_checkpoint
from worldmodels.checkpoint import load_checkpoint, save_checkpoint
from worldmodels.config import Config
from worldmodels.data.episodes import episode_path, list_episodes, read_episode
from worldmodels.data.sequences import (
    Sequences,
    chunks_per_epoch,
    episode_batches,
    load_series,
    series_lengths,
    stream_chunks,
)
from worldmodels.data.streams import prefetch
from worldmodels.envs import task_spec
from worldmodels.errors import UserError
from worldmodels.logger import MetricsLog, plot_metrics, progress_bar, read_metrics
from worldmodels.media import frame_grid, save_png
from worldmodels.models.mdnrnn import (
    MDNRNN,
    MDNLoss,
    State,
    StepWeights,
    dropout_mask,
    head_step,
    lstm_step,
    mdnrnn_loss,
    paper_parameter_count,
)
from worldmodels.models.vae import tensor_to_frames
from worldmodels.runtime import Runtime, warn_if_slow_bf16
from worldmodels.seeding import derive_rng, derive_seed
from worldmodels.training import autocast, count_parameters, training_status


def model_args(config: Config) -> dict[str, Any]:
    m = config.mdnrnn
    return {
        "latent_dim": config.vae.latent_dim, "action_dim": task_spec(config.env).action_dim,
        "hidden_size": m.hidden_size, "num_mixtures": m.num_mixtures, "restart_input": m.restart_input,
        "done_head": m.done_head, "reward_head": m.reward_head,
    }


def require_series(rt: Runtime, count: int | None = None) -> list[Path]:
    """The first `count` encoded episodes (default: the collected ones), or a UserError saying what to run."""
    count = count or rt.config.collect.episodes
    paths = list_episodes(rt.run_dir / SERIES_DIR)[:count]
    if len(paths) < count:
        raise UserError(f"{rt.run_dir / SERIES_DIR} holds {len(paths)} of {count} "
                        "encoded episodes: run `worldmodels encode` first")
    return paths


def epoch_batches(config: Config, paths: list[Path], lengths: np.ndarray, epoch: int) -> Iterator[Sequences]:
    """The batches of one epoch; their order depends only on (seed, epoch), so a resumed run sees the same."""
    m = config.mdnrnn
    if m.carry_state:
        yield from stream_chunks(paths, lengths, m.batch_size, m.sequence_length,
                                 derive_rng(config.seed, "mdnrnn", epoch))
        return
    for i in range(steps_per_epoch(config, lengths)):
        yield episode_batches(paths, lengths, m.batch_size, m.sequence_length,
                              derive_rng(config.seed, "mdnrnn", epoch, i))


def steps_per_epoch(config: Config, lengths: np.ndarray) -> int:
    m = config.mdnrnn
    if m.carry_state:
        return chunks_per_epoch(int(lengths.sum()), m.batch_size, m.sequence_length)
    return max(1, len(lengths) // m.batch_size)  # 10,000 / 100 = 100 steps; 4000 steps = 40 epochs


def train_step(model: MDNRNN, batch: Sequences, state: State | None, generator: torch.Generator,
               device: torch.device | str, restart_factor: float, precision: str = "float32",
               dropout: tuple[float, float] = (0.0, 0.0), reward_optimism: float = 1.0) -> tuple[MDNLoss, State]:
    """Teacher-forced step on one batch; returns (losses, final state). Under `precision` 'bfloat16' the
    forward's products run in bf16; the outputs, the carried state and the loss are fp32. `dropout`: the
    rates on M's z input and recurrent h (`mdnrnn.input_dropout`, `mdnrnn.recurrent_dropout`), a mask per
    sequence of the batch. `reward_optimism`: see `mdnrnn_loss`."""
    t = {k: torch.from_numpy(v).to(device) for k, v in batch._asdict().items() if v is not None}
    # z resampled from V's statistics every batch (docs/faithfulness.md#m)
    eps = torch.randn(t["mu"].shape, generator=generator).to(device)
    z = t["mu"] + torch.exp(t["logvar"] / 2) * eps
    restart = t["restart"][:, :-1] if model.restart_input else None
    input_mask, recurrent_mask = (
        dropout_mask(torch.rand(z.shape[0], width, generator=generator), rate).to(device) if rate else None
        for width, rate in zip((model.latent_dim, model.hidden_size), dropout)
    )
    with autocast(device, precision):
        out, _, state = model(z[:, :-1], t["action"][:, :-1], restart, state, input_mask, recurrent_mask)
    if precision != "float32":
        out = type(out)(*(None if x is None else x.float() for x in out))
        h, c = state
        state = h.float(), c.float()
    losses = mdnrnn_loss(out, z[:, 1:], t["done_target"], t["reward"][:, :-1], restart_factor, t.get("head_mask"),
                         reward_optimism)
    return losses, state


def run(rt: Runtime, episodes: int | None = None, epochs: int | None = None, path: Path | None = None) -> None:
    """Train M to `epochs` (default mdnrnn.epochs) on the first `episodes` series (default: collected ones).

    Iterative training calls this again with more episodes and more epochs: M is then fine-tuned from its
    checkpoint on all the data; `path` is another checkpoint than the run's (a round's sibling M), whose
    metrics and pictures go beside it.
    """
    cfg, m = rt.config, rt.config.mdnrnn
    target = epochs or m.epochs
    path = path or mdnrnn_checkpoint(rt.run_dir)
    out = path.parent
    paths = require_series(rt, episodes)
    lengths = series_lengths(paths)
    device = rt.torch_device
    warn_if_slow_bf16(device, "mdnrnn.precision", m.precision)

    # setup
    torch.manual_seed(derive_seed(cfg.seed, "mdnrnn"))
    model = MDNRNN(**model_args(cfg)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=m.learning_rate)
    epoch, step = 0, 0

    # restore
    if path.is_file():
        saved = load_checkpoint(path, "mdnrnn", map_location=device)
        if saved["complete"] and saved["epoch"] >= target:
            print(f"train-mdnrnn: done ({saved['epoch']} epochs, {saved['step']} steps) in {path}")
            return
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        epoch, step = saved["epoch"], saved["step"]
        print(f"train-mdnrnn: resuming at epoch {epoch}, step {step} ({len(paths)} episodes)")
    log = MetricsLog(out / "metrics.jsonl", resume_step=step if step else None)

    def save(complete: bool = False, **figures: Any) -> None:
        save_checkpoint(path, "mdnrnn", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "model_args": model_args(cfg),
            "epoch": epoch, "step": step, "complete": complete, "parameters": count_parameters(model),
            "paper_parameters": paper_parameter_count(model), **figures,
        })

    # loop
    per_epoch = steps_per_epoch(cfg, lengths)
    with progress_bar(target * per_epoch, "train-mdnrnn", unit="batch", initial=epoch * per_epoch,
                      quiet=rt.quiet) as bar:
        while epoch < target:
            state: State | None = None  # zero state at the start of every epoch
            tic, frames = time.perf_counter(), 0
            for batch in prefetch(epoch_batches(cfg, paths, lengths, epoch)):
                lr = (m.learning_rate - m.min_learning_rate) * m.learning_rate_decay**step + m.min_learning_rate
                for group in optimizer.param_groups:
                    group["lr"] = lr
                generator = torch.Generator().manual_seed(derive_seed(cfg.seed, "mdnrnn-z", step))
                losses, state = train_step(model, batch, state, generator, device, m.restart_factor,
                                           m.precision, (m.input_dropout, m.recurrent_dropout), m.reward_optimism)
                optimizer.zero_grad(set_to_none=True)
                losses.loss.backward()
                torch.nn.utils.clip_grad_value_(model.parameters(), m.grad_clip)
                optimizer.step()
                if m.carry_state:  # truncated BPTT: the state flows on, its gradient stops here
                    h, c = state
                    state = h.detach(), c.detach()
                else:
                    state = None
                step, frames = step + 1, frames + batch.done_target.size
                bar.update()
                rate = frames / (time.perf_counter() - tic)
                values = {f"losses/{k}": v.item() for k, v in losses._asdict().items() if v is not None}
                log.log(step, epoch=epoch, lr=lr, **values, **{"charts/frames_per_s": rate})
                bar.set_postfix(loss=f"{losses.loss.item():.3f}", frames_s=f"{rate:.0f}")
            epoch += 1
            save()

    # save
    last = read_metrics(out / "metrics.jsonl")[-1]
    save(complete=True, losses={k: v for k, v in last.items() if k.startswith("losses/")})
    keys = [k for k in ("losses/loss", "losses/z", "losses/done", "losses/reward") if k in last]
    plot_metrics(out / "metrics.jsonl", out / "loss.png", keys, "M: MDN-RNN training")
    write_open_loop(rt, model, out / "open_loop.png")
    print(f"train-mdnrnn: done, {step} steps; {out / 'loss.png'}")


@torch.no_grad()
def write_open_loop(rt: Runtime, model: MDNRNN, out: Path, context: int = 10, count: int = 10, stride: int = 4) -> None:
    """Real frames (top) vs M's open-loop prediction decoded by V (bottom).

    M reads the first `context` real frames, then runs on its own predictions (the most likely component's
    mean per dimension) under the real actions, so the bottom row shows how far M's world drifts from the real one.
    """
    device = next(model.parameters()).device
    series = load_series(episode_path(rt.run_dir / SERIES_DIR, 0))
    obs = read_episode(episode_path(rt.run_dir / "episodes", 0)).obs
    steps = min(len(obs) - 1, context + count * stride)
    vae = load_vae(rt.run_dir, device)
    action = torch.from_numpy(series["action"].reshape(len(obs), -1)).to(device)
    z = torch.from_numpy(series["mu"][0:1]).to(device)
    restart = torch.ones(1, device=device) if model.restart_input else None
    weights, K = StepWeights(model), model.num_mixtures
    (h, c), predicted = model.initial_state(1), []
    for t in range(steps):
        if t < context:
            z = torch.from_numpy(series["mu"][t : t + 1]).to(device)
        h, c = lstm_step(weights, z, action[t : t + 1], restart, h, c)
        _, mixture = head_step(weights, h)  # (1, Z, 3K) rows [logits, mu, log sigma]
        restart = torch.zeros(1, device=device) if model.restart_input else None
        best = mixture[..., :K].argmax(-1, keepdim=True)
        z = mixture.gather(-1, best + K).squeeze(-1)
        predicted.append(z)
    shown = list(range(context, steps, stride))[:count]
    dreamed = tensor_to_frames(vae.decode(torch.cat([predicted[t - 1] for t in shown])))
    save_png(out, frame_grid([obs[shown], dreamed]))


def status(run_dir: Path, config) -> dict[str, Any]:
    return training_status(mdnrnn_checkpoint(run_dir), "mdnrnn", config.mdnrnn.epochs, "paper_parameters")
