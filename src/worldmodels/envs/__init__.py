"""The two real tasks behind one `make_env(name, seed)`, and the learned dream environment.

Both real environments return 64x64x3 uint8 frames, take a numpy action in the task's continuous
action space (CarRacing: steer, gas, brake; Doom: one value in [-1, 1]) and run headless.
"""

from __future__ import annotations

from worldmodels.envs.base import FRAME_SHAPE, TASKS, FrameEnv, TaskSpec
from worldmodels.errors import UserError


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UserError(f"unknown environment {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def make_env(name: str, seed: int | None = None, doom_resolution: str | None = None) -> FrameEnv:
    """A headless real environment by name ('carracing' or 'doom'); `seed` seeds its first reset;
    `doom_resolution`: what ViZDoom renders at (config `doom_resolution`; None: the scenario's)."""
    task_spec(name)
    if name == "carracing":
        from worldmodels.envs.carracing import CarRacingEnv

        env: FrameEnv = CarRacingEnv()
    else:
        from worldmodels.envs.doom import DoomEnv

        env = DoomEnv(doom_resolution)
    env.default_seed = seed
    return env


__all__ = ["FRAME_SHAPE", "FrameEnv", "TASKS", "TaskSpec", "make_env", "task_spec"]
