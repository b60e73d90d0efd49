"""Streaming training data: batches are read from episode files as they are needed.

Memory is bounded by a fixed number of episodes in flight, never by the size of the dataset, which is
how a laptop trains on the original's 10M CarRacing frames (the original loaded all of them, ~125 GB).
A background thread reads (and decompresses) the next episodes while the model trains on the current ones.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from worldmodels.data.episodes import read_episode

T = TypeVar("T")


def prefetch(iterator: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run `iterator` in a background thread, `depth` items ahead; exceptions re-raise in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not q.empty():  # unblock the producer so it can see `stop`
            q.get_nowait()


def frame_batches(
    paths: list[Path],
    batch_size: int,
    rng: np.random.Generator,
    buffer_episodes: int,
    load: Callable[[Path], np.ndarray] = lambda p: read_episode(p).obs,
) -> Iterator[np.ndarray]:
    """One epoch of (B, 64, 64, 3) uint8 frame batches, shuffled across episodes.

    Episodes are visited in a random order, `buffer_episodes` at a time; the frames of those episodes are
    shuffled together and cut into batches, and the frames left over join the next group. The last partial
    batch of the epoch is dropped, as in the original (`carracing/vae_train.py`).
    """
    order = rng.permutation(len(paths))
    leftover = np.zeros((0, 64, 64, 3), np.uint8)
    for start in range(0, len(order), buffer_episodes):
        group = [load(paths[i]) for i in order[start : start + buffer_episodes]]
        frames = np.concatenate([leftover, *group])
        frames = frames[rng.permutation(len(frames))]
        usable = len(frames) // batch_size * batch_size
        for b in range(0, usable, batch_size):
            yield frames[b : b + batch_size]
        leftover = frames[usable:]
