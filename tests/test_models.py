r"""Tests of otcolor.models: shapes, gradients, symmetric PSD Jacobians, ICNN convexity, init."""

import pytest
import torch

from otcolor.models import ICNN, MODELS, build_model


def _jacobian(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda p: model(p.unsqueeze(0))[0], x)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("features", [1, 2, 3, 7])
def test_shapes_and_gradients(name: str, features: int) -> None:
    model = build_model(name, features)
    x = torch.randn(16, features)
    y = model(x)
    assert y.shape == (16, features)
    y.square().sum().backward()
    for p_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), p_name


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("features", [2, 3, 5, 16])
def test_jacobian_symmetric_psd(name: str, features: int, float64: None) -> None:
    model = build_model(name, features)
    # Random, not-small weights: the property must hold for any parameters, not only at init.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    for _ in range(5):
        J = _jacobian(model, 2 * torch.randn(features))
        assert torch.allclose(J, J.mT, atol=1e-8)
        assert torch.linalg.eigvalsh((J + J.mT) / 2).min() >= -1e-8


@pytest.mark.parametrize("name", MODELS)
def test_monotone_on_random_pairs(name: str, float64: None) -> None:
    model = build_model(name, 3)
    x, y = torch.randn(2, 500, 3)
    with torch.no_grad():
        inner = ((model(x) - model(y)) * (x - y)).sum(-1)
    assert inner.min() >= -1e-10


def test_icnn_potential_convex_along_segments(float64: None) -> None:
    model = ICNN(4, hidden_features=(16, 16, 16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x, y = torch.randn(2, 200, 4)
    for t in torch.linspace(0.05, 0.95, 7):
        mid = model.potential(t * x + (1 - t) * y)
        chord = t * model.potential(x) + (1 - t) * model.potential(y)
        assert (mid <= chord + 1e-10).all()


def test_icnn_map_is_gradient_of_potential(float64: None) -> None:
    model = ICNN(3)
    x = torch.randn(8, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(model.potential(x).sum(), x)
    with torch.no_grad():
        assert torch.allclose(model.nonlinear(x), grad)


@pytest.mark.parametrize("name", MODELS)
def test_init_linear_holds_psd_map(name: str, float64: None) -> None:
    features = 3
    B = torch.randn(features, features)
    A = B @ B.mT + 0.5 * torch.eye(features)
    shift = torch.randn(features)
    center = torch.randn(features)
    model = build_model(name, features)
    model.init_linear(A, shift, center=center, nonlinear_scale=0.05)
    assert torch.allclose(model(center.unsqueeze(0))[0], A @ center + shift, atol=1e-8)
    assert torch.allclose(_jacobian(model, center), A, atol=1e-6)
    # Near the centre the map stays close to the affine one.
    x = center + 0.1 * torch.randn(32, features)
    with torch.no_grad():
        assert (model(x) - (x @ A.mT + shift)).abs().max() < 0.05


def test_unknown_model() -> None:
    with pytest.raises(ValueError, match="cmgn"):
        build_model("nope", 3)


@pytest.mark.parametrize("activation", ["tanh", "softplus", "sigmoid", "elu"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_cmgn_closed_form_jacobian_matches_autograd(
    activation: str, layers: int, float64: None
) -> None:
    from otcolor.models import CMGN, GradientMap

    model = CMGN(3, hidden_features=16, layers=layers, activation=activation, steepness=2.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(9, 3)
    assert torch.allclose(model.jacobian(x), GradientMap.jacobian(model, x), atol=1e-7)
