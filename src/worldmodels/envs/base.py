"""What both real environments share: 64x64 uint8 frames, a step cap, a continuous action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import SupportsFloat

import numpy as np
from PIL import Image

FRAME_SHAPE = (64, 64, 3)


@dataclass(frozen=True)
class TaskSpec:
    """Facts about a task that every stage needs."""

    name: str
    action_dim: int  # A: CarRacing 3 (steer, gas, brake), Doom 1 (continuous a in [-1, 1])
    max_steps: int  # episode cap: CarRacing 1000 (gym's v0 limit), Doom 2100 (ppaquette's episode_timeout)
    min_frames: int  # collection keeps episodes longer than this (Doom: > 100, docs/faithfulness.md#data-collection)
    ignore_done: bool  # collection runs full episodes regardless of done (CarRacing's full_episode=True)


TASKS: dict[str, TaskSpec] = {
    "carracing": TaskSpec(name="carracing", action_dim=3, max_steps=1000, min_frames=0, ignore_done=True),
    "doom": TaskSpec(name="doom", action_dim=1, max_steps=2100, min_frames=100, ignore_done=False),
}


def resize_frame(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (64, 64, 3) uint8 with PIL's bilinear resize (the original's imresize used PIL).

    The original's `scipy.misc.imresize` on floats also min-max stretched every frame to 0..255; that is an
    accident of an old API and is not reproduced (docs/faithfulness.md#environments).
    """
    image = Image.fromarray(np.ascontiguousarray(frame)).resize((64, 64), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)  # a writable copy (torch warns on read-only arrays)


class FrameEnv:
    """A real environment seen through 64x64 frames.

    reset(seed) -> frame; step(action) -> (frame, reward, terminated, truncated). `truncated` is True when
    the step cap is reached. After `terminated` the frame returned is the last valid one (Doom's terminal
    state has no screen); callers stop there unless the task ignores done (CarRacing collection).
    """

    spec: TaskSpec
    default_seed: int | None = None
    # True: `send` starts the step in the engine's own threads and `receive` waits for it, so the caller's
    # thread is free meanwhile (EnvPool); False: the step runs in `receive`.
    asynchronous = False

    def __init__(self) -> None:
        self.steps = 0
        self.action = np.zeros(0, dtype=np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.steps = 0
        return self._reset(self.default_seed if seed is None else seed)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        self.send(action)
        return self.receive()

    def send(self, action: np.ndarray) -> None:
        """Start a step with `action`; `receive` gives its outcome."""
        self.action = np.asarray(action, dtype=np.float32).reshape(self.spec.action_dim)
        if self.asynchronous:
            self._send(self.action)

    def receive(self) -> tuple[np.ndarray, float, bool, bool]:
        """(frame, reward, terminated, truncated) of the step `send` started."""
        frame, reward, terminated = self._receive() if self.asynchronous else self._step(self.action)
        self.steps += 1
        return frame, float(reward), bool(terminated), self.steps >= self.spec.max_steps

    def _reset(self, seed: int | None) -> np.ndarray:
        raise NotImplementedError

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool]:
        """(frame, reward, terminated); `step` converts the reward (gymnasium's SupportsFloat) to float."""
        raise NotImplementedError

    def _send(self, action: np.ndarray) -> None:  # asynchronous envs: start the step
        raise NotImplementedError

    def _receive(self) -> tuple[np.ndarray, SupportsFloat, bool]:  # asynchronous envs: `_step`'s outcome
        raise NotImplementedError

    def close(self) -> None:
        pass
