"""World Models (Ha & Schmidhuber, 2018) in PyTorch: V (ConvVAE), M (MDN-RNN), C (linear controller, CMA-ES).

Importing the package registers M's dream with Gymnasium as `worldmodels/Dream-v0`.
"""

__version__ = "0.1.0"


def _register_dream() -> None:
    from gymnasium.envs.registration import register, registry

    if "worldmodels/Dream-v0" not in registry:
        register(
            id="worldmodels/Dream-v0",
            entry_point="worldmodels.envs.dream:DreamEnv",
            vector_entry_point="worldmodels.envs.dream:DreamVectorEnv",
        )


_register_dream()
