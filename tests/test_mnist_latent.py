r"""Tests for the latent route of ``otcolor mnist``: the autoencoder (determinism, checksummed
cache), the maps' potentials and inverses, the nonlinear start, and the objectives (each must
improve on its start on a small clustered problem)."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import pytest
import torch

from otcolor.mnist.autoencoder import (
    AutoencoderConfig,
    ConvAutoencoder,
    load_or_train_autoencoder,
    train_autoencoder,
)
from otcolor.mnist.classifier import ClassifierConfig, load_or_train_classifier
from otcolor.mnist.latent import (
    GENERATOR_MODELS,
    AutoencoderCodec,
    LatentGenerator,
    PCACodec,
    build_generator,
    nonlinear_start,
)
from otcolor.mnist.objectives import (
    LatentTrainingConfig,
    SemiDual,
    build_objective,
    train_map,
)
from otcolor.mnist.potentials import invert, jacobian, potential, ridge_slopes
from otcolor.models import build_model
from otcolor.nn import autograd_jacobian

TINY = AutoencoderConfig(latent=4, channels=4, epochs=2, batch_size=32)


def _digits(n: int, seed: int) -> torch.Tensor:
    r"""Ten bar patterns (the row depends on the class) plus noise, :math:`(n, 784)`."""

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (n,), generator=g)
    images = 0.15 * torch.rand(n, 28, 28, generator=g)
    for k, label in enumerate(labels.tolist()):
        images[k, 3 + 2 * label : 5 + 2 * label, 4:24] = 1.0
    return images.reshape(n, 784)


# --- the autoencoder -------------------------------------------------------------------------


def test_autoencoder_shapes_and_range() -> None:
    model = ConvAutoencoder(latent=6, channels=4)
    x = torch.rand(5, 784)
    assert model.encode(x).shape == (5, 6)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (5, 784) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_autoencoder_training_is_deterministic_per_seed() -> None:
    data = _digits(64, 0)
    first = train_autoencoder(data, TINY).state_dict()
    again = train_autoencoder(data, TINY).state_dict()
    other = train_autoencoder(data, AutoencoderConfig(**{**TINY.__dict__, "seed": 1})).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_autoencoder_learns_to_reconstruct() -> None:
    data = _digits(256, 1)
    untrained = ConvAutoencoder(TINY.latent, TINY.channels)
    trained = train_autoencoder(
        data, AutoencoderConfig(**{**TINY.__dict__, "epochs": 5, "lr": 1e-2})
    )
    with torch.no_grad():
        before = (untrained(data) - data).square().mean()
        after = (trained(data) - data).square().mean()
    assert after < 0.5 * before, (float(before), float(after))


def test_autoencoder_cache_is_checked_by_its_checksum(tmp_path: Path) -> None:
    data = _digits(64, 2)
    model, trained = load_or_train_autoencoder(data, "abc", tmp_path, TINY)
    assert trained
    (cached,) = tmp_path.glob("mnist-autoencoder-abc-*.pt")
    assert cached.with_name(cached.name + ".sha256").is_file()
    again, trained = load_or_train_autoencoder(data, "abc", tmp_path, TINY)
    assert not trained
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    # One flipped byte: the checksum catches it, the model is retrained (with a warning).
    raw = bytearray(cached.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    cached.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        _, trained = load_or_train_autoencoder(data, "abc", tmp_path, TINY)
    assert trained
    # Other data (fingerprint) or settings never reuse it.
    _, trained = load_or_train_autoencoder(data, "xyz", tmp_path, TINY)
    assert trained


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_the_cache_is_retrained_over_without_blocking(tmp_path: Path) -> None:
    # A FIFO with no writer where a cache file should be: a blocking read would hang here.
    data, labels = _digits(64, 2), torch.arange(64) % 10
    small = ClassifierConfig(epochs=1)
    load_or_train_autoencoder(data, "abc", tmp_path, TINY)
    load_or_train_classifier(data, labels, "abc", tmp_path, small)
    caches = sorted(tmp_path.glob("mnist-*-abc-*.pt"))
    assert len(caches) == 2
    for cache in caches:
        cache.unlink()
        os.mkfifo(cache)
    _, trained = load_or_train_autoencoder(data, "abc", tmp_path, TINY)
    assert trained
    _, trained = load_or_train_classifier(data, labels, "abc", tmp_path, small)
    assert trained
    assert all(cache.is_file() for cache in caches)  # replaced by regular files


def test_unwritable_autoencoder_cache_warns_and_still_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="not cached"):
        model, trained = load_or_train_autoencoder(_digits(64, 3), "abc", blocker / "cache", TINY)
    assert trained and isinstance(model, ConvAutoencoder)


# --- codecs ----------------------------------------------------------------------------------


def test_codecs_whiten_the_training_codes() -> None:
    data = _digits(400, 4)
    autoencoder = train_autoencoder(data, TINY)
    for codec in (PCACodec.fit(data, 6), AutoencoderCodec.fit(autoencoder, data)):
        with torch.no_grad():
            codes = codec.encode(data).double()
        d = codec.latent_features
        assert torch.allclose(codes.mean(0), torch.zeros(d, dtype=torch.float64), atol=1e-4)
        assert torch.allclose(torch.cov(codes.T), torch.eye(d, dtype=torch.float64), atol=1e-3)
        assert codec.decode(codes[:3].float()).shape == (3, 784)


# --- potentials, inverses, start ---------------------------------------------------------------


MAPS = {
    "cmgn": {"hidden_features": 16, "layers": 1, "activation": "sigmoid", "steepness": 4.0},
    "cmgn-2": {"hidden_features": 16, "layers": 2, "activation": "sigmoid"},
    "cmgn-softplus": {"hidden_features": 16, "layers": 1, "activation": "softplus"},
    "mmgn": {"hidden_features": 8, "modules": 3},
    "icnn": {"hidden_features": (16, 8), "activation": "softplus"},
}


@pytest.mark.parametrize("key", MAPS)
def test_potential_gradient_is_the_map(key: str) -> None:
    torch.manual_seed(0)
    model = build_model(key.split("-")[0], 3, **MAPS[key]).double()
    nonlinear_start(model, seed=0)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(potential(model, x).sum(), x)
    assert torch.allclose(grad, model(x).detach(), atol=1e-6)
    expected = autograd_jacobian(model, x.detach()).detach()
    assert torch.allclose(jacobian(model, x.detach()), expected, atol=1e-6)
    # The potential is convex: above its tangent planes.
    y = torch.randn(20, 3, dtype=torch.float64)
    with torch.no_grad():
        gap = potential(model, y) - potential(model, x) - ((y - x) * grad).sum(-1)
    assert float(gap.min()) > -1e-9


@pytest.mark.parametrize("key", MAPS)
def test_newton_inverts_the_map(key: str) -> None:
    torch.manual_seed(1)
    model = build_model(key.split("-")[0], 4, **MAPS[key])
    nonlinear_start(model, seed=1)
    x = torch.randn(64, 4)
    with torch.no_grad():
        y = model(x)
    found = invert(model, y, torch.zeros_like(y), iterations=12)
    assert torch.allclose(found, x, atol=1e-3), float((found - x).abs().max())


@pytest.mark.parametrize("name", list(GENERATOR_MODELS))
def test_nonlinear_start_is_near_the_identity_yet_nonlinear(name: str) -> None:
    torch.manual_seed(2)
    d = 16
    model = build_model(name, d, **GENERATOR_MODELS[name])
    nonlinear_start(model, seed=2, nonlinear_share=0.5)
    z = torch.randn(4000, d, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mapped = model(z)
    assert mapped.mean(0).abs().max() < 0.1
    full = jacobian(model, z[:500]).mean(0)
    assert torch.allclose(full, torch.eye(d), atol=0.15), full
    if name == "cmgn":
        # Half of the slope comes from the ridges, and they are not linear where the
        # Gaussian has mass: a ridge's slope varies over the samples (a near-linear start
        # stays linear). The start of issue 14 (init_linear) has 0.04 here.
        nonlinear = jacobian(model, z[:500]) - model.linear.matrix().detach()
        assert nonlinear.mean(0).diagonal().mean() == pytest.approx(0.5, abs=0.05)
        slopes = ridge_slopes(model, z)
        assert float((slopes.std(0) / slopes.mean(0)).median()) > 0.2
        old = build_model(name, d, hidden_features=512, layers=2, activation="sigmoid")
        old.init_linear(torch.eye(d), torch.zeros(d), nonlinear_scale=0.5)
        slopes = ridge_slopes(old, z)
        assert float((slopes.std(0) / slopes.mean(0)).median()) < 0.1


def test_generator_weights_are_seeded() -> None:
    codec = PCACodec.fit(_digits(200, 5), 4)
    a, b = (build_generator("cmgn", codec, seed=3) for _ in range(2))
    c = build_generator("cmgn", codec, seed=4)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.map.W, c.map.W)
    assert isinstance(a, LatentGenerator)


# --- objectives ------------------------------------------------------------------------------


def _clusters(n: int, seed: int) -> torch.Tensor:
    r"""Three separated clusters in 2-D, whitened: what a Gaussian start blurs together."""

    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    x = centres[torch.randint(3, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)
    x = x - x.mean(0)
    values, vectors = torch.linalg.eigh(torch.cov(x.T))
    return x @ (vectors / values.sqrt()) @ vectors.T


def _w2(model: torch.nn.Module, target: torch.Tensor) -> float:
    import ot

    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        mapped = model(z).double().numpy()
    return float(ot.emd2([], [], ot.dist(mapped, target[:1000].double().numpy())))


SMALL_CMGN = {**GENERATOR_MODELS["cmgn"], "hidden_features": 64}


@pytest.mark.parametrize(
    ("loss", "lr", "steps", "gain"),
    [
        ("semidual", 1e-2, 300, 0.85),
        pytest.param("wgan", 1e-3, 600, 0.8, marks=pytest.mark.slow),  # 0.71 -> 0.49
        ("sliced", 1e-2, 300, 0.95),
    ],
)
def test_objectives_improve_on_the_start(loss: str, lr: float, steps: int, gain: float) -> None:
    codes, held_out = _clusters(4000, 0), _clusters(1000, 1)
    torch.manual_seed(0)
    transport = build_model("cmgn", 2, **SMALL_CMGN)
    nonlinear_start(transport, seed=0)
    before = _w2(transport, held_out)
    objective = build_objective(loss, codes, torch.eye(2), seed=0)
    history = train_map(
        transport, objective, len(codes), LatentTrainingConfig(steps=steps, batch_size=256, lr=lr)
    )
    after = _w2(transport, held_out)
    assert len(history) == steps and all(math.isfinite(v) for v in history)
    assert after < gain * before, (before, after)


def test_semidual_keeps_its_inverses_accurate() -> None:
    codes = _clusters(2000, 2)
    torch.manual_seed(0)
    transport = build_model("cmgn", 2, **SMALL_CMGN)
    nonlinear_start(transport, seed=0)
    objective = SemiDual(codes)
    train_map(transport, objective, len(codes), LatentTrainingConfig(steps=200, batch_size=500))
    everything = torch.arange(len(codes))
    # Every code was visited; the stored inverses are near-exact where the map is now.
    objective.inverses.copy_(invert(transport, codes, objective.inverses, iterations=2))
    assert float(objective.residual(transport, everything).median()) < 1e-3


def test_training_is_repeatable_per_seed() -> None:
    codes = _clusters(1000, 3)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        transport = build_model("cmgn", 2, **SMALL_CMGN)
        nonlinear_start(transport, seed=0)
        objective = build_objective("semidual", codes, torch.eye(2), seed=seed)
        config = LatentTrainingConfig(steps=20, batch_size=64, seed=seed)
        train_map(transport, objective, len(codes), config)
        return transport.W.detach().clone()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
