r"""Tests of otcolor.nn: the building blocks' constraints hold by construction, the activations
are non-decreasing with the derivatives they declare, and the PSD helpers are exact."""

import pytest
import torch

from otcolor.nn import (
    ACTIVATIONS,
    CONVEX_ACTIVATIONS,
    DERIVATIVES,
    PositiveLinear,
    PSDLinear,
    activation,
    autograd_jacobian,
    sqrtm_psd,
)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_are_non_decreasing_with_their_declared_derivative(name: str) -> None:
    z = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    values = activation(name)(z)
    assert (values[1:] - values[:-1] >= -1e-12).all()
    # The closed-form derivative the C-MGN Jacobian uses is the true one (away from relu's kink).
    smooth = z.abs() > 1e-3
    z_grad = z.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(activation(name)(z_grad).sum(), z_grad)
    assert torch.allclose(DERIVATIVES[name](z)[smooth], auto[smooth], atol=1e-10)


@pytest.mark.parametrize("name", CONVEX_ACTIVATIONS)
def test_convex_activations_are_convex(name: str) -> None:
    a, b = torch.randn(2, 5000, dtype=torch.float64)
    t = torch.rand(5000, dtype=torch.float64)
    f = activation(name)
    assert (f(t * a + (1 - t) * b) <= t * f(a) + (1 - t) * f(b) + 1e-12).all()


def test_unknown_activation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        activation("swish")


def test_psd_linear_stays_psd_and_symmetric_under_any_parameters(float64: None) -> None:
    layer = PSDLinear(4)
    with torch.no_grad():
        layer.V.copy_(torch.randn(4, 4))  # as training might leave it
    matrix = layer.matrix()
    assert torch.allclose(matrix, matrix.mT)
    assert torch.linalg.eigvalsh(matrix).min() >= -1e-12
    x = torch.randn(7, 4)
    assert torch.allclose(layer(x), x @ matrix.mT)
    target = torch.tensor([[2.0, 0.5, 0, 0], [0.5, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0.0]])
    layer.set_matrix(target)
    assert torch.allclose(layer.matrix(), target, atol=1e-10)


def test_positive_linear_weights_are_non_negative_whatever_the_parameters() -> None:
    layer = PositiveLinear(5, 3)
    with torch.no_grad():
        layer.raw_weight.copy_(-50 * torch.rand(3, 5))  # pushed far negative by a bad step
    assert (layer.weight() >= 0).all()
    z = torch.rand(10, 5)
    assert torch.allclose(layer(z), z @ layer.weight().mT)


def test_sqrtm_psd_is_the_square_root_and_clamps_round_off(float64: None) -> None:
    a = torch.randn(5, 3)
    psd = a @ a.mT  # rank 3 of 5: tiny negative eigenvalues from round-off
    root = sqrtm_psd(psd)
    assert torch.allclose(root, root.mT) and torch.allclose(root @ root, psd, atol=1e-10)
    assert not torch.isnan(root).any()


def test_autograd_jacobian_of_a_linear_map_is_its_matrix(float64: None) -> None:
    m = torch.randn(3, 2)
    x = torch.randn(6, 2)
    jac = autograd_jacobian(lambda v: v @ m.mT, x)
    assert jac.shape == (6, 3, 2) and torch.allclose(jac, m.expand(6, 3, 2))
