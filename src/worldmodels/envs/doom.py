"""ViZDoom's VizdoomTakeCover-v1 as the original's DoomTakeCover-v0: 64x64 frames, thirds action map.

The v1 scenario renders 320x240 with the HUD off, so the whole frame is resized (the original cropped
the 80-row status bar of its 640x480 HUD frame instead). The scenario's own skill 4 is kept: with
ViZDoom 1.3 it matches the original's random-policy episode lengths (docs/faithfulness.md#environments). The v1
registration has no time limit; the 2100-step cap is ours (ppaquette's episode_timeout).
"""

from __future__ import annotations

from typing import SupportsFloat

import numpy as np

from worldmodels.envs.base import TASKS, FrameEnv, resize_frame

SCENARIO_RESOLUTION = "320x240"  # take_cover.cfg's screen_resolution (config doom_resolution's default)
NOOP, RIGHT, LEFT = 0, 1, 2  # Discrete(3) of VizdoomTakeCover-v1: button_map [(0,0), (0,1), (1,0)]
THIRD = 1.0 / 3.0


def discrete_action(a: float) -> int:
    """Continuous a in [-1, 1] -> LEFT / no-op / RIGHT by thirds (`doomrnn/doomreal.py` L90-97)."""
    if a < -THIRD:
        return LEFT
    if a > THIRD:
        return RIGHT
    return NOOP


def preprocess(screen: np.ndarray) -> np.ndarray:
    """(240, 320, 3) uint8 screen -> (64, 64, 3) uint8, whole frame (no HUD to crop)."""
    if screen.ndim != 3 or screen.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) Doom screen, got shape {screen.shape}")
    return resize_frame(screen)


class DoomEnv(FrameEnv):
    def __init__(self, resolution: str | None = None) -> None:
        """`resolution`: what ViZDoom renders at (default: the scenario's 320x240). At 160x120 the game (its
        logic does not depend on the resolution) steps ~2x faster and the 64x64 frames differ from
        320x240's by resampling only (~2.5 of 255 on average: docs/doom-resolution.md)."""
        super().__init__()
        import gymnasium as gym
        import vizdoom
        import vizdoom.gymnasium_wrapper  # noqa: F401  (registers the Vizdoom* ids)
        from vizdoom.gymnasium_wrapper.base_gymnasium_env import VizdoomEnv

        self.spec = TASKS["doom"]
        env = gym.make("VizdoomTakeCover-v1").unwrapped
        assert isinstance(env, VizdoomEnv)  # the registered scenario env, which holds the game
        self.env = env
        # the game starts at the first reset, so the setting still applies (the wrapper's observation_space
        # keeps saying 320x240; this class reads the screen buffer directly)
        resolution = (resolution or SCENARIO_RESOLUTION).upper()
        self.env.game.set_screen_resolution(getattr(vizdoom.ScreenResolution, f"RES_{resolution}"))
        self.last_frame = np.zeros((64, 64, 3), np.uint8)

    def _reset(self, seed: int | None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self.last_frame = preprocess(obs["screen"])
        return self.last_frame

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool]:
        obs, reward, terminated, _, _ = self.env.step(discrete_action(float(action[0])))
        if not terminated:  # the terminal state has no screen; the death frame is never recorded
            self.last_frame = preprocess(obs["screen"])
        return self.last_frame, reward, terminated

    def close(self) -> None:
        self.env.close()
