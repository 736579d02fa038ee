r"""The default estimator of the Brenier map between two colour distributions.

Three stages, each measured on the known-answer pairs of ``otcolor bench known`` (see README):

1. **Closed form.** The model starts at the Gaussian (Bures) OT map.
2. **Start.** Weighted least squares onto the classic colour-transfer chain evaluated at the
   source atoms: per-channel histogram matching, the Gaussian map between the moments of the
   result and of the target (MKL, Pitié & Kokaram 2007), then histogram matching again. The
   chain is not a gradient map, but it lands close to the answer; fitting it by a monotone
   gradient network keeps what is close and makes it monotone.
3. **Refine.** Full-batch L-BFGS on :class:`otcolor.losses.WeightedSlicedW2`: the source as
   weighted atoms, the target as all of its colours (:mod:`otcolor.fitting.atoms`), along the axes and
   fixed random rotations of them. This is the stage that gets non-separable maps (palette
   pulls) right, which no per-channel method can.

The plan-regression estimator that preceded it (exact OT on four random 1000-pixel chunks, then
a regression onto the plan) is kept as ``estimator="plan"`` for comparison: its targets are a
noisy 1000-point sample of the plan, which capped its accuracy at 33-44 dB on the same pairs.

"Never worse than the closed form" is the fit's policy, not this module's
(:func:`otcolor.fitting.colour.fit_color_map`): it judges the result by the fit term of the
weighted sliced :math:`W_2^2` (penalty excluded) and, when the Gaussian map does better,
restarts the model at the Gaussian map and runs :func:`refine` again.
"""

from __future__ import annotations

__all__ = ["BrenierConfig", "fit_brenier", "hm_mkl_hm", "refine"]

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..gaussian import bures_map
from ..losses import WeightedSlicedW2
from .atoms import WeightedColors
from .trainers import Callback, History, LbfgsConfig, new_history, train_lbfgs


@dataclass
class BrenierConfig:
    r"""Settings of :func:`fit_brenier` (raw units: the steps of each stage, the penalty's
    weight)."""

    start_steps: int = 150  # L-BFGS iterations of the start regression
    refine_steps: int = 100  # L-BFGS iterations of the sliced refinement
    smoothness: float = 0.0  # weight of otcolor.losses.jacobian_penalty (raw, not user units)
    penalty_power: float = 3.0
    penalty_atoms: bool = False  # penalty on the weighted source atoms instead of `probe`
    tolerance: float = 0.0  # each stage stops on a plateau of this relative decrease (0: off)
    patience: int = 10  # ... over this many iterations


def hm_mkl_hm(source: WeightedColors, loss: WeightedSlicedW2) -> Tensor:
    r"""Returns where histogram matching, MKL and histogram matching again send each atom.

    Arguments:
        source: the source atoms, :math:`N` of them in :math:`D` dimensions.
        loss: holds the target; its first :math:`D` directions are the axes.

    Returns:
        The targets, with shape :math:`(N, D)`, float32.
    """

    d = source.points.shape[1]
    axes = slice(0, d)
    weights = source.weights

    def match(points: Tensor) -> Tensor:
        return loss.interval_means(points.mT, weights, axes).mT  # (N, D) float64

    matched = match(source.points.double())
    w = weights.double()
    m0 = w @ matched
    centered = matched - m0
    S0 = (centered * w[:, None]).mT @ centered
    m1, S1 = loss.target_mean, loss.target_covariance
    eps = 1e-6 * float(torch.trace(S0) + torch.trace(S1)) / d + 1e-12
    eye = torch.eye(d, dtype=torch.float64)
    A, b = bures_map(m0, S0 + eps * eye, m1, S1 + eps * eye, eps=eps)
    return match(matched @ A.mT + b).float()


def fit_brenier(
    model: nn.Module,
    source: WeightedColors,
    loss: WeightedSlicedW2,
    config: BrenierConfig,
    probe: Tensor | None = None,
    callback: Callback | None = None,
) -> History:
    r"""Fits ``model`` (started at the Gaussian map) to the OT map from ``source`` to ``loss``'s
    target, in place: the regression onto :func:`hm_mkl_hm`, then :func:`refine`.

    Arguments:
        model: a monotone gradient map, :math:`(N, D) \to (N, D)`.
        source: the source atoms, on the model's device.
        loss: the weighted sliced :math:`W_2^2` onto the target.
        config: the settings.
        probe: source pixels where the smoothness penalty is taken, with shape :math:`(P, D)`.
        callback: called after every L-BFGS iteration, steps numbered across both stages.

    Returns:
        The logs of both stages (:data:`otcolor.fitting.trainers.LOG_KEYS`).
    """

    x, w = source.points, source.weights.to(source.points)
    probe, probe_weights = _probe(source, config, probe)
    history = new_history()
    if config.start_steps:
        targets = hm_mkl_hm(source, loss).to(x)

        def regression() -> Tensor:
            return ((model(x) - targets).square().sum(-1) * w).sum()

        start = _lbfgs(config, config.start_steps)
        _extend(history, train_lbfgs(model, regression, start, probe, callback, 1, probe_weights))
    if config.refine_steps:
        _extend(
            history, refine(model, source, loss, config, probe, callback, 1 + len(history["loss"]))
        )
    return history


def refine(
    model: nn.Module,
    source: WeightedColors,
    loss: WeightedSlicedW2,
    config: BrenierConfig,
    probe: Tensor | None = None,
    callback: Callback | None = None,
    first_step: int = 1,
) -> History:
    r"""The refinement stage alone: ``config.refine_steps`` L-BFGS iterations on the weighted
    sliced :math:`W_2^2` (plus the smoothness penalty), in place.

    Returns:
        Its logs; the callback's steps start at ``first_step``.
    """

    x, w = source.points, source.weights.to(source.points)
    probe, probe_weights = _probe(source, config, probe)

    def sliced() -> Tensor:
        return loss(model(x), w)

    settings = _lbfgs(config, config.refine_steps)
    return train_lbfgs(model, sliced, settings, probe, callback, first_step, probe_weights)


def _probe(
    source: WeightedColors, config: BrenierConfig, probe: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    if config.penalty_atoms:
        return source.points, source.weights.to(source.points)
    return probe, None


def _lbfgs(config: BrenierConfig, steps: int) -> LbfgsConfig:
    return LbfgsConfig(
        steps=steps,
        smoothness=config.smoothness,
        penalty_power=config.penalty_power,
        tolerance=config.tolerance,
        patience=config.patience,
    )


def _extend(history: History, logs: History) -> None:
    for key in history:
        history[key] += logs[key]
