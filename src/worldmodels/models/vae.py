"""V: the convolutional variational autoencoder of World Models (docs/faithfulness.md#v).

Layer for layer as `carracing/vae/vae.py` L34-56 (identical in `doomrnn/doomrnn.py` L97-119), with the loss of
`carracing/vae/vae.py` L65-79. The original is TF 1.8 with NHWC tensors; this module is NCHW like the rest of
PyTorch, so `frames_to_tensor` / `tensor_to_frames` convert at the boundary.

Shape letters: B batch, Z latent.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "ConvVAE",
    "VAELoss",
    "frames_to_tensor",
    "sample_latent",
    "tensor_to_frames",
    "vae_loss",
]

FRAME_SIZE = 64
"""Height and width of the frames V encodes."""

# Encoder: (out_channels, kernel) of the four stride-2 'valid' convolutions, 64 -> 31 -> 14 -> 6 -> 2.
_ENCODER_LAYERS = ((32, 4), (64, 4), (128, 4), (256, 4))
# Decoder: (out_channels, kernel) of the four stride-2 'valid' transposed convs, 1 -> 5 -> 13 -> 30 -> 64.
_DECODER_LAYERS = ((128, 5), (64, 5), (32, 6), (3, 6))
_FLAT_SIZE = 2 * 2 * 256  # 1024


def _tf_default_init(module: nn.Module) -> None:
    """TF `tf.layers` defaults: glorot-uniform kernels, zero biases (PyTorch's defaults differ).

    `nn.init.xavier_uniform_` computes fan_in/fan_out from (out, in, k, k) for Conv2d and (in, out, k, k) for
    ConvTranspose2d; glorot's limit sqrt(6 / (fan_in + fan_out)) is symmetric in the two, so the limits equal
    TF's for its (k, k, in, out) conv and (k, k, out, in) transposed-conv kernels.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ConvVAE(nn.Module):
    """The ConvVAE of the paper: 4 conv layers, a Gaussian latent of size Z, 4 transposed-conv layers.

    Parameters: 4,348,547 for Z = 32 (CarRacing) and 4,446,915 for Z = 64 (Doom), as in the paper's tables.
    """

    def __init__(self, latent_dim: int = 32) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.latent_dim = latent_dim

        encoder: list[nn.Module] = []
        in_channels = 3
        for out_channels, kernel in _ENCODER_LAYERS:
            # padding=0 is TF's 'valid' (`tf.layers.conv2d` default); ReLU as `carracing/vae/vae.py` L36-39.
            encoder += [nn.Conv2d(in_channels, out_channels, kernel, stride=2, padding=0), nn.ReLU()]
            in_channels = out_channels
        self.encoder = nn.Sequential(*encoder)

        # Note on flatten order: TF flattens the NHWC (2, 2, 256) activation in (H, W, C) order, this module
        # flattens NCHW in (C, H, W) order. Porting the original's `enc_fc_mu` / `enc_fc_log_var` kernels (and
        # `dec_fc`'s output, reshaped to 1x1x1024 so no permute is needed there) needs the rows of those two
        # kernels permuted from (H, W, C) to (C, H, W) order. Training from scratch is unaffected.
        self.fc_mu = nn.Linear(_FLAT_SIZE, latent_dim)
        self.fc_logvar = nn.Linear(_FLAT_SIZE, latent_dim)

        # `dec_fc` is linear (no activation) in the original (`carracing/vae/vae.py` L49), reshaped 1x1x1024.
        self.decoder_fc = nn.Linear(latent_dim, _FLAT_SIZE)
        decoder: list[nn.Module] = []
        in_channels = _FLAT_SIZE
        for index, (out_channels, kernel) in enumerate(_DECODER_LAYERS):
            decoder.append(nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, padding=0))
            # ReLU on the hidden layers, sigmoid on the output (`carracing/vae/vae.py` L52-56).
            decoder.append(nn.Sigmoid() if index == len(_DECODER_LAYERS) - 1 else nn.ReLU())
            in_channels = out_channels
        self.decoder = nn.Sequential(*decoder)

        _tf_default_init(self)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode frames to the latent Gaussian's parameters.

        Args:
            x: (B, 3, 64, 64) float frames in [0, 1].

        Returns:
            mu (B, Z) and logvar (B, Z), the log-variance (sigma = exp(logvar / 2)).
        """
        features = self.encoder(x).flatten(
            start_dim=1
        )  # (B, 1024), (C, H, W) order: see the note in __init__
        return self.fc_mu(features), self.fc_logvar(features)

    def decode(self, z: Tensor) -> Tensor:
        """Decode latents to frames.

        Args:
            z: (B, Z) latents.

        Returns:
            (B, 3, 64, 64) frames in [0, 1].
        """
        hidden = self.decoder_fc(z).reshape(-1, _FLAT_SIZE, 1, 1)
        return self.decoder(hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encode, sample z = mu + exp(logvar / 2) * eps, decode.

        Args:
            x: (B, 3, 64, 64) float frames in [0, 1].

        Returns:
            recon (B, 3, 64, 64) in [0, 1], mu (B, Z), logvar (B, Z).
        """
        mu, logvar = self.encode(x)
        z = sample_latent(mu, logvar)
        return self.decode(z), mu, logvar


def sample_latent(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterised sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    The original always uses such a sample of z, never mu, downstream: controller input and M's inputs and
    targets (`carracing/model.py` L87-96, `carracing/rnn_train.py`), so this is exposed for those uses too.

    Args:
        mu: (..., Z) means.
        logvar: (..., Z) log-variances.
        generator: optional random generator on mu's device, for reproducible draws.

    Returns:
        (..., Z) samples, differentiable with respect to mu and logvar.
    """
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def frames_to_tensor(frames: np.ndarray | Tensor, device: torch.device | str | None = None) -> Tensor:
    """uint8 NHWC frames to V's float NCHW input in [0, 1].

    As the original's `obs.astype(float) / 255.0` (`carracing/vae_train.py` L89).

    Args:
        frames: (B, 64, 64, 3) uint8 numpy array or tensor (any number of leading dimensions is accepted).
        device: where to put the result; None keeps a tensor's device (CPU for numpy).

    Returns:
        (B, 3, 64, 64) float32 tensor in [0, 1].
    """
    tensor = torch.as_tensor(frames)
    if tensor.dim() < 3 or tensor.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (..., H, W, 3), got {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames (0..255), got {tensor.dtype}")
    tensor = tensor.to(device=device)
    # Convert after the move so that only uint8 bytes are copied between devices.
    return tensor.movedim(-1, -3).to(torch.float32).div_(255.0)


def tensor_to_frames(x: Tensor) -> np.ndarray:
    """V's float NCHW output in [0, 1] to uint8 NHWC frames, for images and videos.

    Args:
        x: (B, 3, 64, 64) float tensor, values in [0, 1] (clamped if outside).

    Returns:
        (B, 64, 64, 3) uint8 numpy array (rounded, not truncated).
    """
    frames = x.detach().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).movedim(-3, -1)
    return frames.cpu().numpy()


class VAELoss(NamedTuple):
    """V's loss and its two terms, each a scalar tensor (batch means)."""

    loss: Tensor
    reconstruction: Tensor
    kl: Tensor


def vae_loss(x: Tensor, recon: Tensor, mu: Tensor, logvar: Tensor, kl_tolerance: float = 0.5) -> VAELoss:
    """The original's loss (`carracing/vae/vae.py` L65-79): summed squared error plus a floored KL, beta = 1.

    reconstruction = mean over the batch of the SUM of squared errors over all 3 * 64 * 64 values (not a mean,
    not BCE). kl = per-sample KL(N(mu, sigma^2) || N(0, I)) summed over Z, clamped from below at
    kl_tolerance * Z nats (16 for Z = 32), then averaged over the batch. The floor is on the per-sample total,
    not per dimension, and below it the KL has zero gradient (as `tf.maximum`).

    Args:
        x: (B, 3, 64, 64) target frames in [0, 1].
        recon: (B, 3, 64, 64) reconstructions.
        mu: (B, Z) encoder means.
        logvar: (B, Z) encoder log-variances.
        kl_tolerance: the floor, as a fraction of Z nats.

    Returns:
        VAELoss(loss, reconstruction, kl), scalars.
    """
    reconstruction = (x - recon).square().flatten(start_dim=1).sum(dim=1).mean()
    kl_per_sample = -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=-1)
    kl = torch.clamp(kl_per_sample, min=kl_tolerance * mu.shape[-1]).mean()
    return VAELoss(loss=reconstruction + kl, reconstruction=reconstruction, kl=kl)
