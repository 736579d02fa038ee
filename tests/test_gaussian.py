r"""Tests of otcolor.gaussian against closed forms."""

import torch

from otcolor.gaussian import bures_map, gaussian_kl, gaussian_w2, moments


def _spd(d: int) -> torch.Tensor:
    B = torch.randn(d, d)
    return B @ B.mT + 0.1 * torch.eye(d)


def test_bures_map_pushes_gaussian_onto_gaussian(float64: None) -> None:
    for d in (1, 2, 3, 8):
        m0, m1 = torch.randn(2, d)
        S0, S1 = _spd(d), _spd(d)
        A, b = bures_map(m0, S0, m1, S1, eps=0.0)
        assert torch.allclose(A, A.mT)
        assert torch.linalg.eigvalsh(A).min() > 0
        assert torch.allclose(A @ S0 @ A.mT, S1, atol=1e-8)
        assert torch.allclose(A @ m0 + b, m1)


def test_bures_map_identity_and_samples(float64: None) -> None:
    S = _spd(3)
    m = torch.randn(3)
    A, b = bures_map(m, S, m, S, eps=0.0)
    assert torch.allclose(A, torch.eye(3), atol=1e-7) and torch.allclose(
        b, torch.zeros(3), atol=1e-7
    )
    x = torch.randn(200_000, 3) @ torch.linalg.cholesky(S).mT + m
    m0, S0 = moments(x)
    A, b = bures_map(m0, S0, torch.zeros(3), torch.eye(3))
    m1, S1 = moments(x @ A.mT + b)
    assert torch.allclose(m1, torch.zeros(3), atol=1e-8)
    assert torch.allclose(S1, torch.eye(3), atol=1e-6)


def test_bures_map_cost_equals_w2(float64: None) -> None:
    # The map is optimal: its transport cost equals the closed-form W2^2.
    m0, m1 = torch.randn(2, 3)
    S0, S1 = _spd(3), _spd(3)
    A, b = bures_map(m0, S0, m1, S1, eps=0.0)
    x = torch.randn(400_000, 3) @ torch.linalg.cholesky(S0).mT + m0
    cost = ((x @ A.mT + b) - x).square().sum(-1).mean()
    w2 = gaussian_w2(m0, S0, m1, S1)
    assert torch.isclose(cost, w2, rtol=2e-2)


def test_w2_of_commuting_gaussians(float64: None) -> None:
    m0, m1 = torch.zeros(2), torch.tensor([3.0, 4.0])
    S0, S1 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([9.0, 1.0]))
    # |m0 - m1|^2 + sum (sqrt(a) - sqrt(b))^2 = 25 + 4 + 1
    assert torch.isclose(gaussian_w2(m0, S0, m1, S1), torch.tensor(30.0))


def test_kl_zero_for_equal_moments_and_closed_form(float64: None) -> None:
    m = torch.randn(3)
    S = _spd(3)
    assert gaussian_kl(m, S, m, S).abs() < 1e-10
    # 1-D: KL(N(0, s0^2) || N(mu, s1^2)) = log(s1/s0) + (s0^2 + mu^2) / (2 s1^2) - 1/2
    s0, s1, mu = 0.7, 1.9, 0.4
    expected = torch.log(torch.tensor(s1 / s0)) + (s0**2 + mu**2) / (2 * s1**2) - 0.5
    got = gaussian_kl(
        torch.zeros(1), torch.tensor([[s0**2]]), torch.tensor([mu]), torch.tensor([[s1**2]])
    )
    assert torch.isclose(got, expected)
    assert gaussian_kl(m, S, m + 1, 2 * S) > 0
