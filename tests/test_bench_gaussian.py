r"""Tests of the Gaussian benchmark: metrics on known answers, the Bures map, a short run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otcolor.bench.common import expand_losses, expand_models
from otcolor.bench.gaussian import (
    GaussianBenchConfig,
    displacement_cosine,
    l2_uvp,
    random_gaussian_problem,
    run_gaussian,
)
from otcolor.errors import UsageError
from otcolor.gaussian import moments


@pytest.mark.parametrize("dim", [1, 2, 16, 64])
def test_l2_uvp_of_the_identity_against_the_bures_map_is_the_closed_form_w2(dim: int) -> None:
    # x has exactly the source's mean and covariance, so E|x - T*(x)|^2 is the closed-form
    # W2^2 = |m0 - m1|^2 + tr S0 + tr S1 - 2 tr (S0^1/2 S1 S0^1/2)^1/2 (numpy, not otcolor).
    problem = random_gaussian_problem(dim, seed=3)
    z = torch.randn(4000, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.mT @ z / len(z))).mT
    x = problem.m0 + z @ torch.linalg.cholesky(problem.S0).mT

    def sqrtm(S):
        w, v = np.linalg.eigh(S)
        return (v * np.sqrt(w)) @ v.T

    m0, S0, m1, S1 = (t.numpy() for t in (problem.m0, problem.S0, problem.m1, problem.S1))
    root = sqrtm(S0)
    cross = np.trace(sqrtm(root @ S1 @ root))
    w2 = np.sum((m0 - m1) ** 2) + np.trace(S0) + np.trace(S1) - 2 * cross
    expected = 100 * w2 / np.trace(S1)
    assert expected > 1.0
    value = l2_uvp(x, problem.optimal(x), problem.target_variance)
    assert value == pytest.approx(expected, rel=1e-9)


def test_bures_map_pushes_source_samples_to_target_moments() -> None:
    problem = random_gaussian_problem(4, seed=1)
    x, _ = problem.sample(200_000, torch.Generator().manual_seed(0))
    m, S = moments(problem.optimal(x.double()))
    assert torch.allclose(m, problem.m1, atol=0.02)
    assert torch.allclose(S, problem.S1, atol=0.05)


def test_random_covariances_are_well_conditioned_and_seeded() -> None:
    a, b = random_gaussian_problem(16, seed=0), random_gaussian_problem(16, seed=0)
    assert torch.equal(a.S0, b.S0) and torch.equal(a.m1, b.m1)
    assert not torch.equal(a.S0, random_gaussian_problem(16, seed=1).S0)
    eig = torch.linalg.eigvalsh(a.S1)
    assert eig.min() >= 0.25 - 1e-9 and eig.max() <= 2.5 + 1e-9


def test_l2_uvp_of_a_constant_shift() -> None:
    # T = T* + c everywhere: l2_uvp = 100 |c|^2 / Var.
    optimal = torch.randn(500, 3, dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4, 0.0], dtype=torch.float64)
    assert l2_uvp(optimal + shift, optimal, 2.0) == pytest.approx(100 * 0.25 / 2.0)


def test_l2_uvp_of_the_target_mean_map_is_100() -> None:
    # Sending everything to the target mean leaves the whole target variance unexplained.
    problem = random_gaussian_problem(3, seed=2)
    x, _ = problem.sample(100_000, torch.Generator().manual_seed(1))
    mean_map = problem.m1.expand(x.shape[0], -1)
    value = l2_uvp(mean_map, problem.optimal(x.double()), problem.target_variance)
    assert value == pytest.approx(100, rel=0.02)


def test_displacement_cosine_known_answers() -> None:
    x = torch.randn(100, 2, dtype=torch.float64)
    optimal = x + torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert displacement_cosine(x, x + torch.tensor([2.0, 0.0]), optimal) == pytest.approx(1.0)
    assert displacement_cosine(x, x + torch.tensor([0.0, 1.0]), optimal) == pytest.approx(0.0)
    assert displacement_cosine(x, x - torch.tensor([1.0, 0.0]), optimal) == pytest.approx(-1.0)
    diagonal = x + torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert displacement_cosine(x, diagonal, optimal) == pytest.approx(1 / math.sqrt(2))


def test_all_expands_in_table_order_and_bad_names_fail() -> None:
    assert expand_models("all") == ["cmgn", "mmgn", "icnn"]
    assert expand_losses("all") == ["kl", "wgan", "sliced"]
    assert expand_losses(["sliced", "all"]) == ["sliced", "kl", "wgan"]
    with pytest.raises(UsageError):
        expand_models("mlp")
    with pytest.raises(UsageError):
        expand_losses("ot")  # a real loss, but not one this benchmark compares


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError):
        GaussianBenchConfig(dim=0)
    with pytest.raises(UsageError):
        GaussianBenchConfig(steps=0)


def test_short_run_end_to_end_in_dimension_3() -> None:
    config = GaussianBenchConfig(dim=3, steps=30, device="cpu", train_samples=2000, evaluations=5)
    report = run_gaussian("all", ["kl", "sliced"], config)
    assert [(r.model, r.loss) for r in report.results] == [
        ("cmgn", "kl"), ("mmgn", "kl"), ("icnn", "kl"),
        ("cmgn", "sliced"), ("mmgn", "sliced"), ("icnn", "sliced"),
    ]  # fmt: skip
    identity = report.reference["identity"]["l2_uvp"]
    # The identity's l2_uvp is 100 W2^2 / Var(Q) up to sampling (not the Bures map against itself).
    w2, variance = report.reference["w2_optimal"], report.reference["target_variance"]
    assert identity == pytest.approx(100 * w2**2 / variance, rel=0.05)
    for result in report.results:
        assert result.settings["init"].startswith("identity")
        assert [step for step, _ in result.settings["curve"]] == [6, 12, 18, 24, 30]
        # 30 steps of KL already beat the identity start by far
        if result.loss == "kl":
            assert result.metrics["l2_uvp"] < identity / 2
        assert -1 <= result.metrics["cos"] <= 1 and result.seconds > 0
    assert set(report.to_json()) >= {"benchmark", "results"}
    row = report.to_json()["results"][0]
    assert {"model", "loss", "seconds", "l2_uvp", "cos", "w2", "steps_to_1pct"} <= set(row)


def test_runs_are_repeatable_on_cpu() -> None:
    config = GaussianBenchConfig(dim=2, steps=10, device="cpu", train_samples=1000, evaluations=2)
    a = run_gaussian("cmgn", "sliced", config).results[0].metrics
    b = run_gaussian("cmgn", "sliced", config).results[0].metrics
    assert a == b
