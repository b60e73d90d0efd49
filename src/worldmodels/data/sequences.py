"""Training sequences for M, streamed from the series files written by `encode`.

Two schemes, as the original (docs/faithfulness.md#m):
- `episode_batches` (CarRacing): every step draws `batch_size` random episodes and takes a window of
  `sequence_length` frames from each (the whole 1000-frame episode at the paper's sizes), from zero state.
- `stream_chunks` (Doom): every epoch shuffles the episodes, concatenates them into one stream with a
  restart flag on each episode's first frame, truncates it to a multiple of batch_size * sequence_length,
  splits it into batch_size parallel streams and walks them in chunks of `sequence_length`; the trainer
  carries M's state from one chunk to the next.
Only the episodes a batch needs are in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from worldmodels.data.episodes import episode_length, read_arrays
from worldmodels.errors import UserError

SERIES_KEYS = ("mu", "logvar", "action", "reward", "done")
LOADED_KEYS = (*SERIES_KEYS, "alive")  # what load_series returns


class Sequences(NamedTuple):
    """A batch of B sequences of L frames: M's inputs are frames 0..L-2, its targets frames 1..L-1."""

    mu: np.ndarray  # (B, L, Z) float32
    logvar: np.ndarray  # (B, L, Z) float32
    action: np.ndarray  # (B, L, A) float32
    reward: np.ndarray  # (B, L) float32
    restart: np.ndarray  # (B, L) float32, 1 on the first frame of an episode
    done_target: np.ndarray  # (B, L-1) float32, 1 where the episode ends after step t
    # (B, L-1) float32, 1 where step t's reward and done count: up to and including the episode's first
    # terminal step. CarRacing's episodes run on past it (the original's full_episode) and CarRacing-v3 then
    # returns -100 on every later frame; those are not rewards an agent ever sees, so M's reward and done
    # heads skip them (z is still learnt there, as the original). None when every step counts: always for
    # Doom, whose episodes end there, so that its losses stay the plain means they always were.
    head_mask: np.ndarray | None = None


def load_series(path: Path) -> dict[str, np.ndarray]:
    """An encoded episode's arrays as float32, with `alive`: 1 up to and including the first terminal step."""
    data = {k: np.asarray(v, np.float32) for k, v in read_arrays(path, SERIES_KEYS).items()}
    data["alive"] = (np.cumsum(data["done"]) - data["done"] == 0).astype(np.float32)
    return data


def series_lengths(paths: list[Path]) -> np.ndarray:
    return np.array([episode_length(p) for p in paths])


def _stack(parts: list[dict[str, np.ndarray]], done_targets: list[np.ndarray]) -> Sequences:
    head_mask = np.stack([p["alive"][:-1] for p in parts])
    return Sequences(
        mu=np.stack([p["mu"] for p in parts]),
        logvar=np.stack([p["logvar"] for p in parts]),
        action=np.stack([p["action"].reshape(len(p["action"]), -1) for p in parts]),
        reward=np.stack([p["reward"] for p in parts]),
        restart=np.stack([p["restart"] for p in parts]),
        done_target=np.stack(done_targets),
        head_mask=None if head_mask.all() else head_mask,
    )


def episode_batches(
    paths: list[Path], lengths: np.ndarray, batch_size: int, sequence_length: int, rng: np.random.Generator
) -> Sequences:
    """One CarRacing-style batch: random episodes (`np.random.permutation(N)[:100]`), one window each."""
    eligible = np.flatnonzero(lengths >= sequence_length)
    if len(eligible) == 0:
        raise UserError(
            f"no episode has the {sequence_length} frames of mdnrnn.sequence_length: "
            f"lower it to at most {int(lengths.max())}"
        )
    chosen = rng.permutation(eligible)[:batch_size]
    if len(chosen) < batch_size:  # fewer episodes than the batch: draw with replacement
        chosen = rng.choice(eligible, size=batch_size, replace=True)
    parts, dones = [], []
    for i in chosen:
        data = load_series(paths[i])
        start = int(rng.integers(0, lengths[i] - sequence_length + 1))  # 0 when the window is the whole episode
        window = {k: v[start : start + sequence_length] for k, v in data.items()}
        window["restart"] = np.zeros(sequence_length, np.float32)
        window["restart"][0] = float(start == 0)
        parts.append(window)
        dones.append(window["done"][:-1])
    return _stack(parts, dones)


@dataclass
class _Segment:
    episode: int
    start: int
    stop: int


class _StreamCursor:
    """Walks one of the parallel streams: a list of episode segments, read lazily, one episode cached."""

    def __init__(self, paths: list[Path], segments: list[_Segment]) -> None:
        self.paths, self.segments = paths, segments
        self.cached: tuple[int, dict[str, np.ndarray]] | None = None

    def _episode(self, index: int) -> dict[str, np.ndarray]:
        if self.cached is None or self.cached[0] != index:
            self.cached = (index, load_series(self.paths[index]))
        return self.cached[1]

    def take(self, count: int) -> dict[str, np.ndarray]:
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in (*LOADED_KEYS, "restart")}
        while count > 0:
            seg = self.segments[0]
            n = min(count, seg.stop - seg.start)
            data = self._episode(seg.episode)
            for k in LOADED_KEYS:
                pieces[k].append(data[k][seg.start : seg.start + n])
            restart = np.zeros(n, np.float32)
            restart[0] = float(seg.start == 0)
            pieces["restart"].append(restart)
            seg.start += n
            count -= n
            if seg.start == seg.stop:
                self.segments.pop(0)
        return {k: np.concatenate(v) for k, v in pieces.items()}


def chunks_per_epoch(total_frames: int, batch_size: int, sequence_length: int) -> int:
    return total_frames // (batch_size * sequence_length)


def stream_chunks(
    paths: list[Path], lengths: np.ndarray, batch_size: int, sequence_length: int, rng: np.random.Generator
) -> Iterator[Sequences]:
    """One Doom-style epoch of chunks of `sequence_length` frames from `batch_size` parallel streams.

    As the original (`doomrnn/rnn_train.py`): inputs are frames 0..L-2 of a chunk and targets 1..L-1, so the
    last frame of each chunk is only a target; the done target is the next frame's restart flag.
    """
    chunks = chunks_per_epoch(int(lengths.sum()), batch_size, sequence_length)
    if chunks == 0:
        raise UserError(
            f"{int(lengths.sum())} frames are fewer than one chunk of mdnrnn.batch_size x mdnrnn.sequence_length "
            f"= {batch_size * sequence_length}: collect more episodes or lower those"
        )
    per_stream = chunks * sequence_length
    order = rng.permutation(len(paths))
    cursors: list[_StreamCursor] = []
    segments: list[_Segment] = []
    filled = 0
    for i in order:
        position = 0
        while position < lengths[i] and len(cursors) < batch_size:
            n = min(int(lengths[i]) - position, per_stream - filled)
            segments.append(_Segment(int(i), position, position + n))
            position, filled = position + n, filled + n
            if filled == per_stream:
                cursors.append(_StreamCursor(paths, segments))
                segments, filled = [], 0
        if len(cursors) == batch_size:
            break
    for _ in range(chunks):
        parts = [cursor.take(sequence_length) for cursor in cursors]
        yield _stack(parts, [p["restart"][1:] for p in parts])
