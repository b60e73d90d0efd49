"""Gymnasium CarRacing-v3 as the original saw CarRacing-v0: crop the indicator bar, 64x64 frames.

`carracing/env.py` L11-15 of the original: crop rows 0:84 (the bottom 12 of 96 rows are the speed, ABS,
steering and gyro bars), resize 84x96 -> 64x64 (aspect squashed). The zoom-in intro frames are kept
(docs/faithfulness.md#environments). Gymnasium renders state pixels headless with pygame; no X server is needed.
"""

from __future__ import annotations

from typing import SupportsFloat

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
