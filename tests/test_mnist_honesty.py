r"""Tests for the MNIST honesty tools: the memorisation metric and the GMM reference."""

from __future__ import annotations

import pytest
import torch

from otcolor.mnist.autoencoder import AutoencoderConfig, train_autoencoder
from otcolor.mnist.generate import build_generator
from otcolor.mnist.gmm import GaussianMixtureConfig, fit_mixture
from otcolor.mnist.latent import AutoencoderCodec, PCACodec
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


def test_nearest_distances_match_float64_search() -> None:
    # The float32 search with float64 re-measuring must give the float64 brute force's answer,
    # also with near-ties: pairs of rows nudged apart by less than float32 resolves, and
    # queries next to them.
    g = torch.Generator().manual_seed(6)
    ref = torch.rand(3000, 784, generator=g)
    ref[1::2] = ref[::2] + 1e-4 * torch.randn(1500, 784, generator=g)
    x = torch.cat([torch.rand(200, 784, generator=g), ref[:100] + 1e-3])
    brute = torch.cdist(x.double(), ref.double(), compute_mode="donot_use_mm_for_euclid_dist")
    brute = brute.min(1).values
    assert torch.allclose(nearest_distances(x, ref, chunk=64), brute, rtol=0, atol=1e-9)


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


# --- the generator stores no digit -----------------------------------------------------------


def _pixel_directions(model: torch.nn.Module) -> torch.Tensor:
    r"""Every 784-long vector the generator holds or decodes to: its buffers and parameters with
    784 columns, each weight row of the latent map decoded, and the decoder's response to each
    latent axis and to the origin (a stored digit would show up in one of them)."""

    d = model.latent_features
    rows = []
    for _, tensor in [*model.named_parameters(), *model.named_buffers()]:
        t = tensor.detach().float()
        if t.shape[-1] == 784:
            rows.append(t.reshape(-1, 784))
        elif t.dim() >= 2 and t.shape[-1] == d:
            rows.append(model.decode(t.reshape(-1, d)))
    with torch.no_grad():
        probes = torch.cat([torch.zeros(1, d), 3 * torch.eye(d), -3 * torch.eye(d)])
        rows.append(model.decode(probes))
    return torch.cat(rows).detach()


def _max_correlation(directions: torch.Tensor, digits: torch.Tensor) -> float:
    a = directions - directions.mean(1, keepdim=True)
    b = digits - digits.mean(1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return float((a @ b.T).abs().max())


@pytest.mark.parametrize("space", ["pca", "ae"])
@pytest.mark.parametrize("name", ["cmgn", "mmgn", "icnn"])
def test_initial_generator_copies_no_training_digit(name: str, space: str) -> None:
    g = torch.Generator().manual_seed(3)
    train, test = _digits(1000, g), _digits(1000, g)
    if space == "pca":
        codec = PCACodec.fit(train, 20)
    else:
        config = AutoencoderConfig(latent=8, channels=4, epochs=1, batch_size=100)
        codec = AutoencoderCodec.fit(train_autoencoder(train, config), train)
    model = build_generator(name, codec, seed=0)
    directions = _pixel_directions(model)
    # A weight may look like digits in general (the mean, the principal directions, a
    # decoded code), but no more like any one training digit than like one never seen.
    seen, unseen = _max_correlation(directions, train), _max_correlation(directions, test)
    assert seen < 0.99 and seen < unseen + 0.05, (seen, unseen)
    # The check has teeth: a planted training digit is found.
    planted = torch.cat([directions, train[17:18]])
    assert _max_correlation(planted, train) > 0.999 > unseen + 0.05
