"""`worldmodels train-vae`: V, the ConvVAE, on the collected frames (docs/faithfulness.md#v).

Adam 1e-4, batch 100, summed squared error + KL floored at kl_tolerance * Z nats per sample, frames
streamed from the episode files and shuffled across episodes. Checkpoints (model, optimiser, position in
the epoch, RNG) at every epoch end and every few minutes; running the command again resumes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from worldmodels.artifacts import VAE_DIR, require_episodes, vae_checkpoint
from worldmodels.checkpoint import load_checkpoint, save_checkpoint
from worldmodels.data.episodes import episode_length, read_episode
from worldmodels.data.streams import frame_batches, prefetch
from worldmodels.errors import UserError
from worldmodels.logger import MetricsLog, plot_metrics, progress_bar, read_metrics
from worldmodels.media import frame_grid, save_png
from worldmodels.models.vae import ConvVAE, frames_to_tensor, tensor_to_frames, vae_loss
from worldmodels.runtime import Runtime, warn_if_slow_bf16
from worldmodels.seeding import derive_rng, derive_seed
from worldmodels.training import Every, autocast, count_parameters, training_status

LOG_EVERY = 20  # steps between metric lines


def run(rt: Runtime) -> None:
    """Train V for vae.epochs on the collected random episodes (the first vae.max_episodes, if set)."""
    cfg, vcfg = rt.config, rt.config.vae
    target = vcfg.epochs
    out = rt.run_dir / VAE_DIR
    path = vae_checkpoint(rt.run_dir)
    episodes = require_episodes(rt.run_dir, rt.config)
    if vcfg.max_episodes:
        episodes = episodes[: vcfg.max_episodes]
    device = rt.torch_device
    warn_if_slow_bf16(device, "vae.precision", vcfg.precision)

    # setup
    torch.manual_seed(derive_seed(cfg.seed, "vae"))
    model = ConvVAE(vcfg.latent_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=vcfg.learning_rate)
    epoch, batch_in_epoch, step = 0, 0, 0

    # restore
    if path.is_file():
        state = load_checkpoint(path, "vae", map_location=device)
        if state["complete"] and state["epoch"] >= target:
            print(f"train-vae: done ({state['epoch']} epochs, {state['step']} steps) in {path}")
            return
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, batch_in_epoch, step = state["epoch"], state["batch_in_epoch"], state["step"]
        torch.set_rng_state(state["torch_rng"])
        print(f"train-vae: resuming at epoch {epoch}, step {step}")
    log = MetricsLog(out / "metrics.jsonl", resume_step=step if step else None)

    def save(complete: bool = False, **figures: Any) -> None:
        save_checkpoint(path, "vae", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "model_args": {"latent_dim": vcfg.latent_dim}, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
            "step": step, "torch_rng": torch.get_rng_state(), "complete": complete,
            "parameters": count_parameters(model), **figures,
        })

    # loop
    frames_per_epoch = sum(episode_length(p) for p in episodes)
    batches = frames_per_epoch // vcfg.batch_size
    if batches == 0:
        raise UserError(f"only {frames_per_epoch} frames for batches of {vcfg.batch_size}: "
                        "collect more episodes or lower vae.batch_size")
    checkpoint_due = Every()
    with progress_bar(target * batches, "train-vae", unit="batch", initial=epoch * batches + batch_in_epoch,
                      quiet=rt.quiet) as bar:
        while epoch < target:
            rng = derive_rng(cfg.seed, "vae", epoch)  # the epoch's order depends on the epoch only: resumable
            stream = frame_batches(episodes, vcfg.batch_size, rng, vcfg.shuffle_buffer_episodes)
            tic, seen = time.perf_counter(), 0
            for i, frames in enumerate(prefetch(stream)):
                if i < batch_in_epoch:
                    continue  # resuming mid-epoch: these batches were trained on before the kill
                x = frames_to_tensor(frames, device)
                with autocast(device, vcfg.precision):
                    recon, mu, logvar = model(x)
                losses = vae_loss(x, recon.float(), mu.float(), logvar.float(), vcfg.kl_tolerance)  # loss in fp32
                optimizer.zero_grad(set_to_none=True)
                losses.loss.backward()
                optimizer.step()
                step, batch_in_epoch, seen = step + 1, batch_in_epoch + 1, seen + len(frames)
                bar.update()
                if step % LOG_EVERY == 0 or batch_in_epoch == batches:
                    rate = seen / (time.perf_counter() - tic)
                    log.log(step, epoch=epoch, **{
                        "losses/total": losses.loss.item(), "losses/reconstruction": losses.reconstruction.item(),
                        "losses/kl": losses.kl.item(), "charts/images_per_s": rate,
                    })
                    bar.set_postfix(loss=f"{losses.loss.item():.1f}", img_s=f"{rate:.0f}")
                if checkpoint_due():
                    save()
            epoch, batch_in_epoch = epoch + 1, 0
            save()

    # save
    last = read_metrics(out / "metrics.jsonl")[-1]
    save(complete=True, losses={k: v for k, v in last.items() if k.startswith("losses/")})
    plot_metrics(out / "metrics.jsonl", out / "loss.png",
                 ["losses/total", "losses/reconstruction", "losses/kl"], "V: ConvVAE training")
    write_reconstructions(model, episodes[0], out / "reconstructions.png", device)
    print(f"train-vae: done, {step} steps; {out / 'reconstructions.png'}")


@torch.no_grad()
def write_reconstructions(model: ConvVAE, episode: Path, out: Path, device, count: int = 10) -> None:
    """Real frames (top row) above V's reconstructions from mu (bottom row)."""
    obs = read_episode(episode).obs
    frames = obs[torch.linspace(0, len(obs) - 1, count).long().numpy()]
    mu, _ = model.encode(frames_to_tensor(frames, device))
    save_png(out, frame_grid([frames, tensor_to_frames(model.decode(mu))]))


def status(run_dir: Path, config) -> dict[str, Any]:
    return training_status(vae_checkpoint(run_dir), "vae", config.vae.epochs)
