r"""Losses between mapped samples :math:`T(x_i)` and target samples :math:`y_j`.

Each is called as ``loss(mapped, target)``.

Each loss is an ``nn.Module`` returning a scalar; lower is better.
"""

from __future__ import annotations

__all__ = [
    "LOSSES",
    "Critic",
    "ExactOT",
    "GaussianKL",
    "SlicedW2",
    "WassersteinGP",
    "WeightedSlicedW2",
    "build_loss",
    "jacobian_penalty",
    "ot_assignment",
]

import numpy as np
import torch
from torch import Tensor, nn

from .adversarial import Critic, WassersteinGP
from .gaussian import gaussian_kl, moments
from .nn import autograd_jacobian


class GaussianKL(nn.Module):
    r"""Creates the closed-form Gaussian KL loss on first and second moments.

    .. math::
        \ell = D_{KL}\big(\mathcal{N}(\hat m, \hat S) \,\|\, \mathcal{N}(m_y, S_y)\big)

    where :math:`(\hat m, \hat S)` and :math:`(m_y, S_y)` are the sample moments of the mapped
    and target batches (plus ``eps`` on the diagonals). It is zero for *any* map whose
    push-forward has the target's mean and covariance: it pins two moments, not the
    distribution, so on its own it cannot beat the closed-form Gaussian map.

    Arguments:
        eps: the covariance regulariser, which keeps flat colours finite.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, mapped: Tensor, target: Tensor) -> Tensor:
        r"""
        Arguments:
            mapped: :math:`T(x)`, with shape :math:`(N, D)`.
            target: :math:`y`, with shape :math:`(M, D)`.

        Returns:
            The KL divergence, a scalar.
        """

        m0, S0 = moments(mapped, self.eps)
        m1, S1 = moments(target, self.eps)
        return gaussian_kl(m0, S0, m1, S1)


class SlicedW2(nn.Module):
    r"""Creates the sliced 2-Wasserstein loss with exact one-dimensional OT along random directions.

    .. math::
        \ell = \frac{1}{P} \sum_{p=1}^{P} \frac{1}{N} \sum_{i=1}^{N}
        \big(\theta_p^\top \hat y_{\pi_p(i)} - F^{-1}_{\theta_p^\top y}(t_i)\big)^2,
        \quad t_i = \tfrac{i - 1/2}{N}

    with :math:`\pi_p` the sorting permutation of the mapped projections and
    :math:`F^{-1}_{\theta^\top y}` the quantile function of the target's projections: in one
    dimension sorting *is* the optimal transport plan, so each term is an exact :math:`W_2^2`.
    Its gradient moves every mapped point towards its matched quantile along each direction,
    which is what spreads the colours of the mapped image to fill the target's distribution.

    Two ways to get the target quantiles:

    * ``reference=None``: :math:`P` fresh directions per call, quantiles of the ``target``
      batch passed to the call (two sorts per direction);
    * ``reference`` given (the whole target sample): a fixed bank of ``directions`` directions
      whose target quantiles are sorted once, here; each call draws :math:`P` of them and sorts
      only the mapped projections. Half the sorting, and quantiles from the full sample rather
      than one batch, so less noise per step; the ``target`` argument is then ignored.

    References:
        | Wasserstein Barycenter and its Application to Texture Mixing
        | Rabin, Peyré, Delon and Bernot, 2011

    Arguments:
        projections: the number of directions :math:`P` per call.
        generator: the random generator of the directions (for reproducibility).
        reference: the target samples, with shape :math:`(M, D)`, or ``None``.
        directions: the size of the direction bank when ``reference`` is given.
    """

    def __init__(
        self,
        projections: int = 64,
        generator: torch.Generator | None = None,
        reference: Tensor | None = None,
        directions: int = 256,
    ) -> None:
        super().__init__()
        self.projections = projections
        self.generator = generator
        self.bank: Tensor | None = None
        self.bank_quantiles: Tensor | None = None
        if reference is not None:
            reference = reference.detach()
            theta = self._random_directions(reference.shape[1], directions, reference)
            self.bank = theta  # (D, B)
            self.bank_quantiles = (reference @ theta).mT.contiguous().sort(dim=-1).values  # (B, M)

    def _random_directions(self, features: int, count: int, like: Tensor) -> Tensor:
        theta = torch.randn(features, count, generator=self.generator, dtype=like.dtype)
        return (theta / theta.norm(dim=0, keepdim=True)).to(like.device)  # (D, count)

    def evaluate(self, mapped: Tensor) -> Tensor:
        r"""Returns the loss over *every* direction of the bank: deterministic, for comparisons.

        Needs a ``reference``. ``mapped`` has shape :math:`(N, D)`; returns a scalar.
        """

        if self.bank is None:
            raise ValueError("SlicedW2.evaluate needs a reference")
        return self._matched(mapped, self.bank, _quantiles(self.bank_quantiles, mapped.shape[0]))

    def forward(self, mapped: Tensor, target: Tensor | None = None) -> Tensor:
        r"""
        Arguments:
            mapped: :math:`T(x)`, with shape :math:`(N, D)`.
            target: :math:`y`, with shape :math:`(M, D)`; ignored when a reference was given.

        Returns:
            The mean squared 1-D transport cost over directions, a scalar.
        """

        n = mapped.shape[0]
        if self.bank is None:
            if target is None:
                raise ValueError("SlicedW2 needs target samples or a reference")
            theta = self._random_directions(mapped.shape[1], self.projections, mapped)
            quantiles = _quantiles((target @ theta).mT.sort(dim=-1).values, n)  # (P, N)
        else:
            pick = torch.randint(
                self.bank.shape[1], (self.projections,), generator=self.generator
            ).to(mapped.device)
            theta = self.bank[:, pick]
            quantiles = _quantiles(self.bank_quantiles[pick], n)  # (P, N)
        return self._matched(mapped, theta, quantiles)

    @staticmethod
    def _matched(mapped: Tensor, theta: Tensor, quantiles: Tensor) -> Tensor:
        projected = (mapped @ theta).mT  # (P, N)
        order = projected.detach().argsort(dim=-1)
        # Scattering the quantiles back to the points' own positions avoids differentiating
        # through sort: each point is compared with the quantile of its rank.
        matched = torch.empty_like(quantiles).scatter_(1, order, quantiles)
        return (projected - matched).square().mean()


def _quantiles(sorted_values: Tensor, n: int) -> Tensor:
    r"""Interpolates ``n`` mid-point quantiles of sorted rows, :math:`(P, M) \to (P, n)`."""

    m = sorted_values.shape[-1]
    if m == n:
        return sorted_values
    step = torch.arange(n, device=sorted_values.device, dtype=sorted_values.dtype)
    position = ((step + 0.5) * (m / n) - 0.5).clamp(0, m - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=m - 1)
    return torch.lerp(sorted_values[:, low], sorted_values[:, high], position - low)


class WeightedSlicedW2(nn.Module):
    r"""Creates the sliced :math:`W_2^2` between weighted atoms and a whole weighted target.

    .. math::
        \ell = \frac{D}{K} \sum_{k=1}^{K} \sum_{i} w_i
        \big(\theta_k^\top T(x_i) - \bar q_{k,i}\big)^2, \quad
        \bar q_{k,i} = \frac{1}{w_i} \int_{a_{k,i}}^{a_{k,i} + w_i} F^{-1}_{\theta_k^\top \nu}(u)\, du

    where atom :math:`i` holds the quantile interval :math:`[a_{k,i}, a_{k,i} + w_i]` of the
    mapped atoms' projections on :math:`\theta_k` (sorting is the 1-D OT plan), and
    :math:`\bar q_{k,i}` is the mean of the target's projections over that interval. Up to a
    constant this is the exact 1-D :math:`W_2^2` between the mapped atoms and the *whole* target
    :math:`\nu`, not a sample of it, and its minimiser along one direction is
    :math:`\bar q`: a semi-discrete sliced loss, with no sampling noise to fit.

    The directions are the axes and ``rotations - 1`` random rotations of them; the factor
    :math:`D/K` makes one rotation's terms add up to a squared distance in :math:`\mathbb{R}^D`.
    The target side (sorted projections, cumulative weights, prefix sums) is built once, on the
    CPU in float64: the interval means subtract prefix sums of up to millions of terms. With
    ``bins``, each direction's target is first gathered into that many equal-width bins of its
    projections, each at its mean: the quantile integrals are then exact up to a bin's width
    (a :math:`2^{-16}` of the range for 65,536 bins), building costs a histogram instead of a
    sort, and every evaluation searches ``bins`` entries instead of every target colour.

    Arguments:
        target: the target atoms, with shape :math:`(M, D)`.
        target_weights: their weights, with shape :math:`(M,)`, summing to one.
        rotations: how many orthonormal bases of directions (the first is the axes).
        generator: draws the random rotations.
        bins: gather each direction's target into this many bins (``None``: exact).
    """

    def __init__(
        self,
        target: Tensor,
        target_weights: Tensor,
        rotations: int = 8,
        generator: torch.Generator | None = None,
        bins: int | None = None,
    ) -> None:
        super().__init__()
        d = target.shape[1]
        bases = [torch.eye(d, dtype=torch.float64)]
        for _ in range(rotations - 1):
            q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
            bases.append(q * torch.sign(torch.diagonal(r)))
        self.theta = torch.cat(bases, 1)  # (D, K), float64 on the CPU
        y = target.detach().cpu().double()
        w = target_weights.detach().cpu().double()
        projected = (y @ self.theta).mT  # (K, M)
        if bins is None:
            values, order = projected.sort(dim=-1)  # (K, M)
            weights = w[order]
        else:
            values, weights = _binned(projected, w, bins)  # (K, B)
        self.values = values
        self.cumulative = weights.cumsum(-1)  # (K, M), inclusive
        self.cumulative[:, -1] = 1.0  # the last quantile ends exactly at one
        prefix = (weights * values).cumsum(-1)  # (K, M)
        # With a leading zero, so that index k - 1 = -1 reads "nothing done yet".
        self._start = nn.functional.pad(self.cumulative, (1, 0))  # (K, M + 1)
        self._done = nn.functional.pad(prefix, (1, 0))  # (K, M + 1)
        self.target_mean = w @ y  # (D,)
        centered = y - self.target_mean
        self.target_covariance = (centered * w[:, None]).mT @ centered  # (D, D)

    def interval_means(
        self, projected: Tensor, weights: Tensor, rows: slice = slice(None)
    ) -> Tensor:
        r"""Returns :math:`\bar q`: the target's mean over each atom's quantile interval.

        Arguments:
            projected: the atoms' projections on directions ``rows``, with shape :math:`(K, N)`.
            weights: the atoms' weights, with shape :math:`(N,)`.
            rows: which directions of the bank ``projected`` holds.

        Returns:
            :math:`\bar q`, with shape :math:`(K, N)`, float64 on the CPU.
        """

        p = projected.detach().cpu().double()
        w = weights.detach().cpu().double()
        order = p.argsort(dim=-1)
        sorted_w = w[order]  # (K, N)
        high = sorted_w.cumsum(-1)
        high = high / high[:, -1:]
        # Atom i's interval ends where atom i+1's begins: one integral per boundary.
        area = torch.diff(
            self._integral(high, rows), dim=-1, prepend=torch.zeros_like(high[:, :1])
        )
        means = area / sorted_w.clamp(min=1e-300)
        return torch.empty_like(means).scatter_(1, order, means)

    def _integral(self, u: Tensor, rows: slice) -> Tensor:
        r"""Returns :math:`\int_0^u F^{-1}(s)\, ds` per direction, :math:`(K, N) \to (K, N)`."""

        values = self.values[rows]
        k = torch.searchsorted(self.cumulative[rows], u.contiguous()).clamp_(
            max=values.shape[1] - 1
        )
        start, done = self._start[rows].gather(1, k), self._done[rows].gather(1, k)
        return done + (u - start) * values.gather(1, k)

    def forward(self, mapped: Tensor, weights: Tensor) -> Tensor:
        r"""
        Arguments:
            mapped: :math:`T(x)`, with shape :math:`(N, D)`.
            weights: :math:`w`, with shape :math:`(N,)`, summing to one.

        Returns:
            The loss :math:`\ell`, a scalar.
        """

        theta = self.theta.to(mapped)
        projected = (mapped @ theta).mT  # (K, N)
        matched = self.interval_means(projected, weights).to(mapped)
        w = weights.to(mapped)
        scale = mapped.shape[1] / theta.shape[1]
        return scale * ((projected - matched).square() * w).sum()


def _binned(projected: Tensor, weights: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    r"""Each row's weighted values gathered into ``bins`` equal-width bins: the bins' mean values
    (the centre for an empty bin) and weights, :math:`(K, M) \to (K, B), (K, B)`."""

    values = torch.empty(projected.shape[0], bins, dtype=projected.dtype)
    mass = torch.empty_like(values)
    # A few directions at a time: the (rows, M) index and product temporaries of all K at
    # once were the fit's memory peak (0.2 GB). Each row's sums are the same either way.
    for top in range(0, projected.shape[0], _BINNED_ROWS):
        rows = slice(top, top + _BINNED_ROWS)
        values[rows], mass[rows] = _binned_rows(projected[rows], weights, bins)
    return values, mass


#: Directions :func:`_binned` gathers at a time.
_BINNED_ROWS = 4


def _binned_rows(projected: Tensor, weights: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    k = projected.shape[0]
    low = projected.min(-1, keepdim=True).values
    width = (projected.max(-1, keepdim=True).values - low).clamp(min=1e-12) / bins
    index = ((projected - low) / width).long().clamp_(0, bins - 1)
    index += torch.arange(k)[:, None] * bins  # one flat histogram for every direction
    flat = index.reshape(-1)
    w = weights.expand_as(projected).reshape(-1)
    mass = torch.bincount(flat, w, k * bins).reshape(k, bins)
    moment = torch.bincount(flat, w * projected.reshape(-1), k * bins).reshape(k, bins)
    centres = low + width * (torch.arange(bins, dtype=projected.dtype) + 0.5)
    values = torch.where(mass > 0, moment / mass.clamp(min=1e-300), centres)
    return values, mass


def ot_assignment(source: Tensor, target: Tensor) -> Tensor:
    r"""Returns the exact optimal transport plan between two equal-size samples, as a permutation.

    With :math:`N` points on each side and uniform weights, the network simplex of POT
    (``ot.emd``) returns a vertex of the Birkhoff polytope, i.e. a permutation: the exact OT
    plan. On pixel colours it is several times faster than a Hungarian-type solver (about
    0.2 s for :math:`N = 1000` on one core), whose running time suffers from the near-ties
    of clustered colours.

    Arguments:
        source: points, with shape :math:`(N, D)`.
        target: points, with shape :math:`(N, D)`.

    Returns:
        :math:`\sigma`, with shape :math:`(N,)`: ``source[i]`` is sent to ``target[sigma[i]]``.
    """

    import ot  # POT is heavy to import, and only the exact-OT paths need it

    a = source.detach().cpu().double().numpy()
    b = target.detach().cpu().double().numpy()
    n = a.shape[0]
    if b.shape[0] != n:
        raise ValueError(f"ot_assignment needs equal sizes, got {n} and {b.shape[0]}")
    weights = np.full(n, 1.0 / n)
    plan = ot.emd(weights, weights, ot.dist(a, b), numItermax=100 * n * n)  # (N, N)
    return torch.from_numpy(plan.argmax(1)).to(source.device)


class ExactOT(nn.Module):
    r"""Creates the minibatch exact OT loss: :math:`W_2^2` between the two batches.

    .. math::
        \ell = \frac1N \sum_{i=1}^N \|\hat y_i - y_{\sigma(i)}\|^2, \quad
        \sigma = \arg\min_\sigma \sum_i \|\hat y_i - y_{\sigma(i)}\|^2

    with :math:`\sigma` from :func:`ot_assignment` (no gradient through it, by the envelope
    theorem the gradient of :math:`W_2^2` is the gradient at the optimal plan). Batches of
    different sizes use their first :math:`\min(N, M)` points.

    References:
        | Learning with minibatch Wasserstein: asymptotic and gradient properties
        | Fatras, Zine, Flamary, Gribonval and Courty, AISTATS 2020
    """

    def forward(self, mapped: Tensor, target: Tensor) -> Tensor:
        r"""
        Arguments:
            mapped: :math:`T(x)`, with shape :math:`(N, D)`.
            target: :math:`y`, with shape :math:`(M, D)`.

        Returns:
            The minibatch :math:`W_2^2`, a scalar.
        """

        n = min(mapped.shape[0], target.shape[0])
        mapped, target = mapped[:n], target[:n]
        sigma = ot_assignment(mapped, target)
        return (mapped - target[sigma]).square().sum(-1).mean()


def jacobian_penalty(
    model: nn.Module, x: Tensor, power: float = 3.0, weights: Tensor | None = None
) -> Tensor:
    r"""Returns the power mean of the squared Frobenius norms of the map's Jacobians.

    .. math::
        R = \Big(\frac1N \sum_i \|J_T(x_i)\|_F^{2p}\Big)^{1/p}

    With :math:`p > 1` the mean leans towards the largest Jacobians, which are where a colour
    map amplifies small differences (noise, JPEG blocks) into speckle or banding; :math:`p = 1`
    penalises the average stretch, which costs much more closeness for the same smoothness.

    Arguments:
        model: the map, :math:`(N, D) \to (N, D)`; its ``jacobian(x)`` method is used when it
            has one (see :meth:`otcolor.models.GradientMap.jacobian`).
        x: points, with shape :math:`(N, D)`.
        power: :math:`p \geq 1`.
        weights: weights of the points summing to one (weighted atoms); uniform by default.
    """

    # Closed form where the model has one (C-MGN), autograd otherwise.
    jacobian = model.jacobian(x) if hasattr(model, "jacobian") else autograd_jacobian(model, x)
    frobenius = jacobian.square().sum((1, 2))  # (N,)
    if weights is None:
        return frobenius.pow(power).mean().pow(1 / power)
    return (frobenius.pow(power) * weights.to(frobenius)).sum().pow(1 / power)


def _sliced(features: int, generator: torch.Generator | None = None, **kwargs: object) -> SlicedW2:
    return SlicedW2(generator=generator, **kwargs)


def _kl(features: int, generator: torch.Generator | None = None, **kwargs: object) -> GaussianKL:
    return GaussianKL(**kwargs)


def _ot(features: int, generator: torch.Generator | None = None, **kwargs: object) -> ExactOT:
    return ExactOT(**kwargs)


def _wgan(
    features: int, generator: torch.Generator | None = None, **kwargs: object
) -> WassersteinGP:
    return WassersteinGP(features, generator=generator, **kwargs)


#: Loss builders by name, each called as ``LOSSES[name](features, generator=..., **kwargs)``.
LOSSES = {"ot": _ot, "sliced": _sliced, "kl": _kl, "wgan": _wgan}


def build_loss(
    name: str, features: int, generator: torch.Generator | None = None, **kwargs: object
) -> nn.Module:
    r"""Returns a new loss ``LOSSES[name](features, generator=generator, **kwargs)``.

    Raises:
        ValueError: if ``name`` is not a key of :data:`LOSSES`.
    """

    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](features, generator=generator, **kwargs)
