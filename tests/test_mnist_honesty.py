r"""Tests for the MNIST honesty tools: the memorisation metric and the GMM reference."""

from __future__ import annotations

import torch

from otcolor.mnist.gmm import GaussianMixtureConfig, fit_mixture
from otcolor.mnist.memorisation import memorisation, nearest_distances


def _digits(n: int, generator: torch.Generator) -> torch.Tensor:
    # Ten blurry prototypes plus per-image noise: train and test are different draws.
    protos = torch.rand(10, 784, generator=torch.Generator().manual_seed(5))
    labels = torch.randint(10, (n,), generator=generator)
    return (protos[labels] + 0.3 * torch.randn(n, 784, generator=generator)).clamp(0, 1)


def test_nearest_distances_exact() -> None:
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    x = torch.tensor([[0.0, 0.0], [3.0, 5.0], [1.0, 0.0]])
    expected = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(nearest_distances(x, ref, chunk=2), expected)


def test_memorisation_flags_training_digits() -> None:
    g = torch.Generator().manual_seed(0)
    train, test, fresh = _digits(2000, g), _digits(500, g), _digits(500, g)
    new = memorisation(fresh, train, test)
    assert 0.9 < new["nn_ratio"] < 1.1 and new["near_copies"] < 0.1
    # A "model" that returns (slightly perturbed) training digits is caught on both counts.
    copies = (train[:500] + 0.01 * torch.randn(500, 784, generator=g)).clamp(0, 1)
    copied = memorisation(copies, train, test)
    assert copied["nn_ratio"] < 0.2 and copied["near_copies"] > 0.9


def test_gmm_recovers_separated_clusters() -> None:
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    x = centres[torch.randint(3, (3000,), generator=g)] + 0.5 * torch.randn(3000, 2, generator=g)
    mix = fit_mixture(x, GaussianMixtureConfig(components=3, iterations=20))
    found = mix.means[torch.cdist(centres.double(), mix.means).argmin(1)]
    assert torch.allclose(found, centres.double(), atol=0.1)
    assert torch.allclose(mix.weights.sort().values, torch.full((3,), 1 / 3).double(), atol=0.05)
    draws = mix.sample(3000, torch.Generator().manual_seed(2))
    assert mix.log_likelihood(draws) > mix.log_likelihood(x + 3.0)  # draws lie where the data are
