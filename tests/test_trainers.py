r"""Tests of otcolor.fitting.trainers: smoke runs, determinism, non-finite handling, one log schema."""

import pytest
import torch

from otcolor.errors import TrainingError
from otcolor.fitting.trainers import LOG_KEYS, AdamConfig, LbfgsConfig, regress, train_adam
from otcolor.losses import SlicedW2
from otcolor.models import build_model


def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g)
    y = torch.randn(2000, 2, generator=g) * torch.tensor([0.5, 2.0]) + 1.0
    return x, y


def test_adam_reduces_loss_and_calls_back() -> None:
    x, y = _problem()
    model = build_model("cmgn", 2)
    steps = []
    history = train_adam(
        model,
        SlicedW2(16),
        x,
        y,
        AdamConfig(steps=60, batch_size=512, lr=2e-2),
        callback=lambda step, logs: steps.append((step, logs["loss"])),
    )
    assert [s for s, _ in steps] == list(range(1, 61))
    assert len(history["loss"]) == 60
    assert sum(history["loss"][-10:]) < 0.5 * sum(history["loss"][:10])
    assert not model.training


def test_fit_is_deterministic_for_a_seed() -> None:
    x, y = _problem()
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("mmgn", 2)
        train_adam(
            model,
            SlicedW2(8, generator=torch.Generator().manual_seed(2)),
            x,
            y,
            AdamConfig(steps=20, batch_size=256, seed=3),
        )
        results.append(model(x[:50]).detach())
    assert torch.equal(results[0], results[1])


class _NaNAfter(torch.nn.Module):
    def __init__(self, good_calls: int, bad_calls: int) -> None:
        super().__init__()
        self.calls = 0
        self.good_calls, self.bad_calls = good_calls, bad_calls

    def forward(self, mapped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = (mapped.mean(0) - target.mean(0)).square().sum()
        bad = self.good_calls < self.calls <= self.good_calls + self.bad_calls
        return value * float("nan") if bad else value


def test_nonfinite_loss_restores_and_retries_once() -> None:
    x, y = _problem()
    model = build_model("cmgn", 2)
    history = train_adam(model, _NaNAfter(30, 1), x, y, AdamConfig(steps=50, batch_size=64))
    assert len(history["loss"]) == 49  # the bad step is skipped, not recorded
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_persistent_nonfinite_loss_raises() -> None:
    x, y = _problem()
    with pytest.raises(TrainingError, match="diverged"):
        train_adam(
            build_model("cmgn", 2), _NaNAfter(5, 100), x, y, AdamConfig(steps=50, batch_size=64)
        )


def test_regress_converges_and_reports_each_iteration() -> None:

    x = torch.randn(500, 2)
    targets = x @ torch.tensor([[2.0, 0.5], [0.5, 1.0]]) + 0.3 * torch.tanh(3 * x)
    model = build_model("cmgn", 2)
    seen = []
    history = regress(
        model,
        x,
        targets,
        LbfgsConfig(steps=40),
        callback=lambda step, logs: seen.append(step),
    )
    assert seen == list(range(1, len(history["loss"]) + 1)) and 0 < len(seen) <= 40
    assert history["fit"][-1] < 0.01 * history["fit"][0]


def test_regress_smoothness_lowers_the_steepest_jacobians() -> None:
    from otcolor.losses import jacobian_penalty

    x = torch.rand(400, 2) * 2 - 1
    targets = torch.sign(x) * 0.5 + 0.1 * x  # a step: needs a very steep monotone map
    penalties = []
    for smoothness in (0.0, 0.05):
        torch.manual_seed(0)
        model = build_model("cmgn", 2, activation="tanh", steepness=4.0)
        model.init_linear(torch.eye(2), torch.zeros(2), nonlinear_scale=2.0)
        regress(model, x, targets, LbfgsConfig(steps=60, smoothness=smoothness))
        penalties.append(float(jacobian_penalty(model, x).detach()))
    assert penalties[1] < 0.5 * penalties[0]


def test_transport_cost_keeps_the_map_near_the_identity() -> None:
    x, y = _problem()
    moved = []
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        model = build_model("cmgn", 2)
        model.init_linear(torch.eye(2), torch.zeros(2))
        train_adam(
            model,
            SlicedW2(16),
            x,
            y,
            AdamConfig(steps=80, batch_size=512, lr=2e-2, transport_cost=weight),
        )
        with torch.no_grad():
            moved.append(float((model(x) - x).square().sum(-1).mean()))
    assert moved[1] < 0.1 * moved[0]


def test_every_trainer_logs_the_same_keys() -> None:
    x, y = _problem()
    adam = train_adam(
        build_model("cmgn", 2), SlicedW2(16), x, y, AdamConfig(steps=5, batch_size=64)
    )
    seen: list[dict[str, float]] = []
    lbfgs = regress(
        build_model("cmgn", 2),
        x[:200],
        y[:200],
        LbfgsConfig(steps=5),
        seen.append and (lambda s, logs: seen.append(logs)),
    )
    for history in (adam, lbfgs):
        assert tuple(history) == LOG_KEYS
        assert len({len(v) for v in history.values()}) == 1
    assert all(set(logs) == set(LOG_KEYS) for logs in seen)
    assert all(0 < step <= 1 for step in lbfgs["lr"])  # the accepted line-search step
