"""The two real tasks behind one `make_env(name, seed)`, and the learned dream environment.

Both real environments return 64x64x3 uint8 frames, take a numpy action in the task's continuous
action space (CarRacing: steer, gas, brake; Doom: one value in [-1, 1]) and run headless.
"""

from __future__ import annotations

from worldmodels.config import CARRACING_BACKENDS
from worldmodels.envs.base import FRAME_SHAPE, TASKS, FrameEnv, TaskSpec
from worldmodels.errors import UserError


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UserError(f"unknown environment {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def make_env(name: str, seed: int | None = None, doom_resolution: str | None = None,
             backend: str = "gymnasium") -> FrameEnv:
    """A headless real environment by name ('carracing' or 'doom'); `seed` seeds its first reset;
    `doom_resolution`: what ViZDoom renders at (config `doom_resolution`; None: the scenario's); `backend`:
    CarRacing's engine (config `carracing_backend`), Gymnasium's or EnvPool's."""
    task_spec(name)
    if name == "carracing":
        from worldmodels.envs.carracing import CarRacingEnv, EnvPoolCarRacingEnv

        if backend not in CARRACING_BACKENDS:
            raise UserError(f"unknown CarRacing backend {backend!r}; choose one of: {', '.join(CARRACING_BACKENDS)}")
        if backend == "envpool":
            require_envpool()
        env: FrameEnv = EnvPoolCarRacingEnv() if backend == "envpool" else CarRacingEnv()
    else:
        from worldmodels.envs.doom import DoomEnv

        env = DoomEnv(doom_resolution)
    env.default_seed = seed
    return env


def require_envpool() -> None:
    """A UserError when the envpool backend is asked for and the package is missing."""
    try:
        import envpool  # noqa: F401
    except ImportError:
        raise UserError("carracing_backend=envpool needs EnvPool: pip install 'worldmodels[envpool]' "
                        "(or --set carracing_backend=gymnasium)") from None


__all__ = [
    "CARRACING_BACKENDS", "FRAME_SHAPE", "FrameEnv", "TASKS", "TaskSpec", "make_env", "require_envpool", "task_spec",
]
