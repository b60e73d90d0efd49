"""Gymnasium CarRacing-v3 as the original saw CarRacing-v0: crop the indicator bar, 64x64 frames.

`carracing/env.py` L11-15 of the original: crop rows 0:84 (the bottom 12 of 96 rows are the speed, ABS,
steering and gyro bars), resize 84x96 -> 64x64 (aspect squashed). The zoom-in intro frames are kept
(docs/faithfulness.md#environments). Gymnasium renders state pixels headless with pygame; no X server is needed.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import numpy as np

from worldmodels.envs.base import TASKS, FrameEnv, resize_frame

CROP_ROWS = 84  # 96 - 12: the indicator bar is the lower 5*H/40 = 12 rows


def preprocess(frame: np.ndarray) -> np.ndarray:
    """(96, 96, 3) uint8 state pixels -> (64, 64, 3) uint8, without the indicator bar."""
    if frame.shape != (96, 96, 3):
        raise ValueError(f"expected a (96, 96, 3) CarRacing frame, got shape {frame.shape}")
    return resize_frame(frame[:CROP_ROWS])


class CarRacingEnv(FrameEnv):
    def __init__(self) -> None:
        super().__init__()
        import gymnasium as gym

        self.spec = TASKS["carracing"]
        # .unwrapped: no TimeLimit (our own cap, like the original's rollout loop) and no order enforcing,
        # so collection can keep driving after `terminated` exactly as full_episode=True did.
        self.env = gym.make("CarRacing-v3").unwrapped

    def _reset(self, seed: int | None) -> np.ndarray:
        frame, _ = self.env.reset(seed=seed)
        return preprocess(frame)

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool]:
        frame, reward, terminated, _, _ = self.env.step(action)
        return preprocess(frame), reward, terminated

    def close(self) -> None:
        self.env.close()


class EnvPoolCarRacingEnv(FrameEnv):
    """CarRacing-v3 from EnvPool (a C++ port of Gymnasium's Box2D CarRacing, ~7x faster per step here;
    BENCHMARKS.md). A training backend (config `carracing_backend`); `evaluate` always scores in Gymnasium.

    A seed draws the same track every time, but not Gymnasium's track for that seed: EnvPool's C++ random
    generator differs from numpy's, so its tracks are other tracks of the same kind (tests/test_envs.py
    measures how alike the frames are). EnvPool seeds an env when the pool is made, so each reset makes a
    pool of one env (under a millisecond). After `terminated` (lap complete or off the playfield) EnvPool would
    start a new episode on the next step; this env instead repeats the last frame with reward 0, so that
    collection, which drives on past done, never records frames of another track.

    Asynchronous: the pool's C++ thread steps the car while the agent computes other envs' actions. A Python
    thread calling the blocking `step` must win the GIL back after every step, against the agent's thread
    (BENCHMARKS.md: `benchmarks/carracing_rollouts.py` measures both ways).
    """

    asynchronous = True

    def __init__(self) -> None:
        super().__init__()
        import envpool

        self.envpool = envpool
        self.spec = TASKS["carracing"]
        self.pool: Any = None
        self.frame: np.ndarray | None = None
        self.over = False

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        # our own step cap ends episodes (FrameEnv.step); EnvPool's must never cut one short
        self.pool = self.envpool.make("CarRacing-v3", env_type="gymnasium", num_envs=1, num_threads=1,
                                      seed=int(seed), max_episode_steps=10 * self.spec.max_steps)
        frames, _ = self.pool.reset()
        self.frame, self.over = preprocess(frames[0]), False
        return self.frame

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool]:  # with asynchronous = False
        self._send(action)
        return self._receive()

    def _send(self, action: np.ndarray) -> None:
        if not self.over:
            self.pool.send(action[None])

    def _receive(self) -> tuple[np.ndarray, SupportsFloat, bool]:
        if self.over:
            assert self.frame is not None
            return self.frame, 0.0, True
        frames, rewards, terminated, _, _ = self.pool.recv()
        self.frame, self.over = preprocess(frames[0]), bool(terminated[0])
        return self.frame, float(rewards[0]), self.over

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
