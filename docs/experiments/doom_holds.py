"""Doom random-policy statistics of a run's collected episodes: how long actions are held, how long episodes
last, how many too-short ones were dropped.

    python docs/experiments/doom_holds.py RUN_DIR [RUN_DIR ...]

Holds are runs of equal consecutive actions, counted on the stored float16 actions (the last hold of an
episode, cut short by its end, is left out).
"""

import json
import sys
from pathlib import Path

import numpy as np

from worldmodels.artifacts import EPISODES_DIR
from worldmodels.data.episodes import list_episodes, read_arrays


def holds(actions: np.ndarray) -> np.ndarray:
    change = np.flatnonzero(np.diff(actions) != 0)
    return np.diff(np.concatenate([[0], change + 1, [len(actions)]]))[:-1]


for run_dir in map(Path, sys.argv[1:]):
    lengths, tries, runs = [], [], []
    for path in list_episodes(run_dir / EPISODES_DIR):
        data = read_arrays(path, ("action", "meta"))
        lengths.append(len(data["action"]))
        tries.append(data["meta"]["tries"] if "tries" in data["meta"] else data["meta"]["attempts"])
        runs.append(holds(data["action"][:, 0].astype(np.float32)))
    h, n, t = np.concatenate(runs), np.array(lengths), np.array(tries)
    print(json.dumps({"run": str(run_dir), "episodes": len(n), "hold_mean": round(float(h.mean()), 2),
                      "one_frame_holds": round(float(np.mean(h == 1)), 3),
                      "length_mean": round(float(n.mean()), 1), "length_std": round(float(n.std()), 1),
                      "dropped": int((t - 1).sum()), "tries": int(t.sum())}))
