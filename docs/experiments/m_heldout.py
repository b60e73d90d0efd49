"""M on episodes it was not trained on: teacher-forced z NLL, done BCE, and how the dream's done rule fires.

    python docs/experiments/m_heldout.py SERIES_DIR M_CHECKPOINT [M_CHECKPOINT ...]

SERIES_DIR holds encoded episodes (`worldmodels encode` of a run whose V is the one M was trained with).
For each M, every episode is read from its first frame with teacher forcing (z sampled from V's statistics,
the same noise for every M), and the table gives, for the original's done rule (logit > 0) and for logit >
log(10) (M's done loss weighs deaths x10, so that is a death probability of 1/2):
- z NLL: the mixture's negative log-likelihood of the next z, per dimension (M's training loss term);
- done BCE: the unweighted cross-entropy of the done logit against "the episode ends after this step";
- alarm rate: the share of steps that are NOT an episode's last whose done logit is above the threshold (the rule
  would have ended the episode there: a harsh dream);
- hit rate: the share of episodes ending in death whose last step has a done logit above the threshold (the
  dream would end them in time);
- first alarm: the mean, over episodes, of (frame of the first alarm) / (episode length), 1.0 when it
  first fires on the last frame or never.
"""

import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldmodels.artifacts import load_mdnrnn
from worldmodels.data.episodes import list_episodes
from worldmodels.data.sequences import load_series
from worldmodels.models.mdnrnn import mixture_nll


@torch.no_grad()
def read(m_path: Path, series: list[dict[str, np.ndarray]]) -> tuple[float, float, list[tuple[np.ndarray, bool]]]:
    """(z NLL per dimension and frame, done BCE per frame, each episode's done logits and whether it ended
    by death)."""
    model = load_mdnrnn(Path("."), "cpu", m_path).eval()
    nll, bce, episodes = 0.0, 0.0, []
    for i, s in enumerate(series):
        noise = torch.randn(s["mu"].shape, generator=torch.Generator().manual_seed(i))
        z = (torch.from_numpy(s["mu"]) + torch.exp(torch.from_numpy(s["logvar"]) / 2) * noise)[None]
        action = torch.from_numpy(s["action"].reshape(len(s["mu"]), -1))[None]
        restart = torch.zeros(1, len(s["mu"]))
        restart[0, 0] = 1.0  # a new episode: M zeroes its state
        out, _, _ = model(z, action, restart)
        head = [x[:, :-1] for x in (out.log_pi, out.mu, out.log_sigma)]
        nll += mixture_nll(*head, z[:, 1:]).item() * (z.shape[1] - 1)
        # frame t's logit says whether the episode ends after it: only the last frame's should fire
        target = torch.from_numpy(s["done"])  # 1 on the last frame of an episode that ended by death
        bce += F.binary_cross_entropy_with_logits(out.done_logit[0], target, reduction="sum").item()
        episodes.append((out.done_logit[0].numpy(), bool(target[-1] > 0)))
    frames = sum(len(s["mu"]) for s in series)
    return nll / (frames - len(series)), bce / frames, episodes


def rule(episodes: list[tuple[np.ndarray, bool]], threshold: float) -> tuple[float, float, float]:
    """(alarm rate, hit rate, first alarm) of the done rule logit > threshold."""
    alarms = sum(int((logits[:-1] > threshold).sum()) for logits, _ in episodes)
    steps = sum(len(logits) - 1 for logits, _ in episodes)
    deaths = [logits[-1] > threshold for logits, died in episodes if died]
    first = []  # where the rule first fires, as a fraction of the episode (1.0: on the last frame, or never)
    for logits, _ in episodes:
        fired = np.flatnonzero(logits > threshold)
        first.append((fired[0] + 1 if len(fired) else len(logits)) / len(logits))
    return alarms / steps, float(np.mean(deaths)), float(np.mean(first))


if __name__ == "__main__":
    series = [load_series(p) for p in list_episodes(Path(sys.argv[1]))]
    print(f"{len(series)} episodes, mean length {np.mean([len(s['mu']) for s in series]):.0f}")
    print("| M | z NLL | done BCE | alarm rate | hit rate | first alarm | at logit > log 10: alarm | hit | first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in sys.argv[2:]:
        nll, bce, episodes = read(Path(m), series)
        rules = [f"{a:.4f} | {h:.2f} | {f:.3f}" for a, h, f in (rule(episodes, t) for t in (0.0, math.log(10.0)))]
        print(f"| {m} | {nll:.4f} | {bce:.4f} | {rules[0]} | {rules[1]} |", flush=True)
