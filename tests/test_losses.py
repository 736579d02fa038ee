r"""Tests of otcolor.losses: closed forms, zero at a match, each loss decreases when trained."""

import itertools

import pytest
import torch

import otcolor.losses as losses_mod
from otcolor.losses import LOSSES, GaussianKL, SlicedW2, WassersteinGP, build_loss


def test_sliced_w2_known_values() -> None:
    x = torch.randn(5000, 3)
    # Sorted projections of 2w are twice those of w: W2^2 = mean (theta^T w)^2 = 1 on every unit
    # direction when w is whitened (w^T w / N = I).
    w = x.double() @ torch.linalg.inv(torch.linalg.cholesky(x.double().mT @ x.double() / 5000)).mT
    assert torch.isclose(SlicedW2(64)(w, 2 * w), torch.tensor(1.0, dtype=torch.float64), rtol=1e-9)
    # In one dimension the directions are +-1: the exact 1-D W2^2, matching sorted samples.
    a, b = torch.randn(400, 1, dtype=torch.float64), 3 * torch.rand(400, 1, dtype=torch.float64)
    exact = (a.sort(0).values - b.sort(0).values).square().mean()
    assert torch.isclose(SlicedW2(8)(a, b), exact, rtol=1e-9)
    # A shift by v moves each projection by <theta, v>; E <theta, v>^2 = |v|^2 / D.
    shift = torch.tensor([3.0, 0.0, 0.0])
    value = SlicedW2(512, generator=torch.Generator().manual_seed(0))(x, x + shift)
    assert torch.isclose(value, torch.tensor(3.0), rtol=0.15)
    assert SlicedW2(32)(x, x) == 0


def test_sliced_w2_reference_bank_matches_fresh_directions() -> None:
    y = torch.randn(5000, 3) * torch.tensor([1.0, 2.0, 0.5])
    x = torch.randn(3000, 3)
    fresh = torch.stack([SlicedW2(64)(x, y) for _ in range(20)]).mean()
    bank = SlicedW2(64, reference=y, directions=512)
    banked = torch.stack([bank(x) for _ in range(20)]).mean()
    assert torch.isclose(fresh, banked, rtol=0.1)
    assert bank(y[:2500]) < 0.01


def test_kl_zero_on_equal_moments_positive_otherwise() -> None:
    y = torch.randn(1000, 3)
    assert GaussianKL()(y, y).abs() < 1e-5
    assert GaussianKL()(y + 1, y) > 0.4


def test_wgan_estimate_orders_distances() -> None:
    torch.manual_seed(0)
    y = torch.randn(512, 2)
    loss = WassersteinGP(2, critic_steps=200)
    near, far = loss(y + 0.1, y), loss(y + 3.0, y)
    assert far > near and far > 1.0


def test_wgan_critic_warm_up_alone_separates_distributions() -> None:
    torch.manual_seed(0)
    y = torch.randn(512, 2)
    loss = WassersteinGP(2, critic_steps=0)
    loss.train_critic(y + 3.0, y, 200)
    assert loss(y + 3.0, y) > 1.0


def test_colour_wgan_settings_are_loss_arguments() -> None:
    import inspect

    from otcolor.fitting.estimators import _LOSS_KWARGS, LOSS_SETTINGS

    settings = LOSS_SETTINGS["wgan"]
    kwargs = {key: settings[arg] for arg, key in _LOSS_KWARGS if arg in settings}
    assert set(kwargs) <= set(inspect.signature(WassersteinGP).parameters)
    assert isinstance(build_loss("wgan", 3, **kwargs), WassersteinGP)
    # Only the adversarial loss takes these settings; the others' results stay as they were.
    for name in ("sliced", "kl"):
        assert not {arg for arg, _ in _LOSS_KWARGS} & set(LOSS_SETTINGS[name])


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_decreases_when_training_a_shift(name: str) -> None:
    torch.manual_seed(0)
    y = torch.randn(512, 2) * 0.5 + torch.tensor([2.0, -1.0])
    x = torch.randn(512, 2)
    loss = build_loss(name, 2, generator=torch.Generator().manual_seed(0))
    shift = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.Adam([shift], lr=0.05)
    distance = []
    for _ in range(150):
        value = loss(x + shift, y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        distance.append(float((shift.detach() - torch.tensor([2.0, -1.0])).norm()))
    assert distance[-1] < 0.5 * distance[0]


def test_unknown_loss() -> None:
    with pytest.raises(ValueError, match="sliced"):
        build_loss("nope", 3)


def test_ot_assignment_recovers_a_permutation_and_is_optimal() -> None:
    from otcolor.losses import ot_assignment

    x = torch.randn(300, 3)
    perm = torch.randperm(300)
    assert torch.equal(ot_assignment(x, x[perm]), torch.argsort(perm))
    y = torch.randn(300, 3) + 1
    sigma = ot_assignment(x, y)
    assert torch.equal(sigma.sort().values, torch.arange(300))  # each target used once
    # Exact optimality on n = 7: brute force over all 5040 permutations.
    x, y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64) + 1
    cost = (x[:, None] - y[None]).square().sum(-1)
    best = min(float(cost[range(7), list(p)].sum()) for p in itertools.permutations(range(7)))
    assert float(cost[range(7), ot_assignment(x, y)].sum()) == pytest.approx(best, rel=1e-12)


def test_jacobian_penalty_of_linear_maps() -> None:
    from otcolor.losses import jacobian_penalty

    x = torch.randn(50, 3)
    assert torch.isclose(jacobian_penalty(lambda z: 2 * z, x), torch.tensor(12.0))
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.isclose(jacobian_penalty(lambda z: z @ A, x, power=1.0), torch.tensor(14.0))


def _brute_interval_means(loss, projected, weights, grid: int = 200_000):
    r"""q̄ by brute force: the target's quantile function on a fine grid, averaged per interval."""

    s = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    out = torch.empty(projected.shape, dtype=torch.float64)
    for k in range(projected.shape[0]):
        quantile = loss.values[k][
            torch.searchsorted(loss.cumulative[k], s).clamp(max=loss.values.shape[1] - 1)
        ]
        order = projected[k].double().argsort()
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), weights.double()[order].cumsum(0)])
        edges = edges / edges[-1]
        for i, atom in enumerate(order):
            inside = (s >= edges[i]) & (s < edges[i + 1])
            out[k, atom] = quantile[inside].mean()
    return out


def test_weighted_sliced_interval_means_match_brute_force() -> None:
    from otcolor.losses import WeightedSlicedW2

    g = torch.Generator().manual_seed(0)
    target, tw = torch.rand(300, 3, generator=g), torch.rand(300, generator=g)
    loss = WeightedSlicedW2(target, tw / tw.sum(), rotations=2, generator=g)
    atoms, w = torch.rand(40, 3, generator=g), torch.rand(40, generator=g)
    w = w / w.sum()
    projected = (atoms.double() @ loss.theta).mT
    fast = loss.interval_means(projected, w)
    assert torch.allclose(fast, _brute_interval_means(loss, projected, w), atol=2e-3)


def test_weighted_sliced_is_zero_at_the_target_and_moves_towards_it() -> None:
    from otcolor.losses import WeightedSlicedW2

    g = torch.Generator().manual_seed(1)
    target, tw = torch.rand(500, 3, generator=g), torch.rand(500, generator=g)
    tw = tw / tw.sum()
    loss = WeightedSlicedW2(target, tw, rotations=4, generator=g)
    assert loss(target, tw) < 1e-12
    # A shift by v adds |v|^2 (D/K scaling: each basis contributes one squared distance).
    shift = torch.tensor([0.1, -0.2, 0.05])
    assert torch.isclose(loss(target + shift, tw), shift.square().sum(), rtol=1e-5)
    moved = (target + shift).requires_grad_()
    loss(moved, tw).backward()
    # The gradient points back along the shift.
    assert torch.cosine_similarity(-moved.grad.sum(0), -shift, dim=0) > 0.99


def test_binning_a_few_directions_at_a_time_gives_the_same_bins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = torch.Generator().manual_seed(0)
    projected = torch.randn(9, 3000, generator=generator, dtype=torch.float64)
    weights = torch.rand(3000, generator=generator, dtype=torch.float64)
    chunked = losses_mod._binned(projected, weights / weights.sum(), 64)
    monkeypatch.setattr(losses_mod, "_BINNED_ROWS", 9)
    whole = losses_mod._binned(projected, weights / weights.sum(), 64)
    assert all(torch.equal(a, b) for a, b in zip(chunked, whole, strict=True))
    # The bins hold the weights: each direction's mass sums to one.
    assert torch.allclose(whole[1].sum(-1), torch.ones(9, dtype=torch.float64))
