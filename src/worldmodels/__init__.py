"""World Models (Ha & Schmidhuber, 2018) in PyTorch: V (ConvVAE), M (MDN-RNN), C (linear controller, CMA-ES)."""

__version__ = "0.1.0"
