"""V: architecture, initialisation, frame conversion and the original's loss (SPEC section 1)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from worldmodels.models.vae import ConvVAE, frames_to_tensor, sample_latent, tensor_to_frames, vae_loss


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("latent_dim", "expected"), [(32, 4_348_547), (64, 4_446_915)])
def test_parameter_count_matches_paper(latent_dim: int, expected: int) -> None:
    assert count(ConvVAE(latent_dim)) == expected


def test_layer_shapes() -> None:
    torch.manual_seed(0)
    model = ConvVAE(32)
    shapes: list[tuple[int, ...]] = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for layer in list(model.encoder) + list(model.decoder)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        recon, mu, logvar = model(x)
    for hook in hooks:
        hook.remove()
    assert shapes == [
        (32, 31, 31),
        (64, 14, 14),
        (128, 6, 6),
        (256, 2, 2),
        (128, 5, 5),
        (64, 13, 13),
        (32, 30, 30),
        (3, 64, 64),
    ]
    assert recon.shape == (2, 3, 64, 64)
    assert mu.shape == logvar.shape == (2, 32)
    assert model.latent_dim == 32
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
    assert model.decode(torch.randn(5, 32)).shape == (5, 3, 64, 64)


@torch.no_grad()
def test_tf_like_initialisation() -> None:
    model = ConvVAE(32)
    conv1 = model.encoder[0]
    limit = math.sqrt(6.0 / (3 * 16 + 32 * 16))  # glorot: fan_in = k*k*in, fan_out = k*k*out
    assert float(conv1.weight.abs().max()) <= limit
    assert float(conv1.weight.abs().max()) > 0.9 * limit  # glorot, not PyTorch's kaiming (limit 1/sqrt(48))
    fc_limit = math.sqrt(6.0 / (1024 + 32))
    assert float(model.fc_mu.weight.abs().max()) <= fc_limit
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(parameter) == 0, name


def test_forward_samples_z() -> None:
    torch.manual_seed(0)
    model = ConvVAE(8)
    x = torch.rand(3, 3, 64, 64)
    first, mu, logvar = model(x)
    second, mu2, _ = model(x)
    assert torch.equal(mu, mu2)
    assert not torch.equal(first, second)  # a fresh eps each call
    # z = mu + exp(logvar/2) * eps with the eps of the generator
    generator = torch.Generator().manual_seed(3)
    z = sample_latent(mu, logvar, generator=generator)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, mu + torch.exp(logvar / 2) * eps)


def test_frame_conversion_layout_and_roundtrip() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert float(x[1, 2, 10, 20]) == pytest.approx(frames[1, 10, 20, 2] / 255.0)
    assert float(x.max()) <= 1.0
    back = tensor_to_frames(x)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    np.testing.assert_array_equal(back, frames)
    np.testing.assert_array_equal(frames_to_tensor(torch.from_numpy(frames)).numpy(), x.numpy())
    with pytest.raises(ValueError):
        frames_to_tensor(frames.astype(np.float32))


def test_loss_against_hand_computation_with_kl_floor() -> None:
    latent_dim = 32
    x = torch.zeros(2, 3, 64, 64)
    recon = torch.full((2, 3, 64, 64), 0.1)
    # Sample 0: mu = 0, logvar = 0 -> KL 0, floored to 0.5 * 32 = 16.
    # Sample 1: mu = 2 -> KL = 0.5 * 4 * 32 = 64.
    mu = torch.zeros(2, latent_dim)
    mu[1] = 2.0
    mu.requires_grad_(True)
    logvar = torch.zeros(2, latent_dim, requires_grad=True)
    result = vae_loss(x, recon, mu, logvar, kl_tolerance=0.5)
    assert float(result.reconstruction.detach()) == pytest.approx(
        3 * 64 * 64 * 0.01, rel=1e-5
    )  # sum, not mean
    assert float(result.kl.detach()) == pytest.approx((16.0 + 64.0) / 2)
    assert float(result.loss.detach()) == pytest.approx(
        float(result.reconstruction.detach()) + 40.0, rel=1e-6
    )
    result.kl.backward()
    # Below the floor the KL has no gradient; above it d/dmu (0.5 mu^2) / B = 2 / 2 = 1.
    assert torch.count_nonzero(mu.grad[0]) == 0
    assert torch.count_nonzero(logvar.grad[0]) == 0
    torch.testing.assert_close(mu.grad[1], torch.ones(latent_dim))


def test_loss_general_formula() -> None:
    torch.manual_seed(1)
    x, recon = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    mu, logvar = torch.randn(3, 4) * 3, torch.randn(3, 4)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
    floor = 0.5 * 4
    expected_kl = torch.where(kl > floor, kl, torch.full_like(kl, floor)).mean()
    expected_rec = ((x - recon) ** 2).reshape(3, -1).sum(1).mean()
    result = vae_loss(x, recon, mu, logvar)
    torch.testing.assert_close(result.kl, expected_kl)
    torch.testing.assert_close(result.reconstruction, expected_rec)
