r"""The default estimator of the Brenier map between two colour distributions.

Three stages, each measured on the known-answer pairs of ``otcolor bench known`` (see README):

1. **Closed form.** The model starts at the Gaussian (Bures) OT map.
2. **Start.** Weighted least squares onto the classic colour-transfer chain evaluated at the
   source atoms: per-channel histogram matching, the Gaussian map between the moments of the
   result and of the target (MKL, Pitié & Kokaram 2007), then histogram matching again. The
   chain is not a gradient map, but it lands close to the answer; fitting it by a monotone
   gradient network keeps what is close and makes it monotone.
3. **Refine.** Full-batch L-BFGS on :class:`otcolor.losses.WeightedSlicedW2`: the source as
   weighted atoms, the target as all of its colours (:mod:`otcolor.atoms`), along the axes and
   fixed random rotations of them. This is the stage that gets non-separable maps (palette
   pulls) right, which no per-channel method can.

The plan-regression estimator that preceded it (exact OT on four random 1000-pixel chunks, then
a regression onto the plan) is kept as ``estimator="plan"`` for comparison: its targets are a
noisy 1000-point sample of the plan, which capped its accuracy at 33-44 dB on the same pairs.

"Never worse than the closed form" holds by construction: the fit term (the weighted sliced
:math:`W_2^2`, penalty excluded) of the result is compared with the Gaussian map's; if it is
worse, the model restarts exactly at the Gaussian map (nonlinear part silenced) and only
refines, and the refinement is kept only if its fit term is no worse than that start's. The
result is always the trained network, never a substituted closed form.
"""

from __future__ import annotations

__all__ = ["EstimatorConfig", "fit_brenier", "hm_mkl_hm"]

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .atoms import WeightedColors
from .gaussian import bures_map
from .losses import WeightedSlicedW2
from .train import RegressionConfig, fit_lbfgs

Callback = Callable[[int, dict[str, float]], None]


@dataclass
class EstimatorConfig:
    r"""Settings of :func:`fit_brenier`."""

    start_steps: int = 150  # L-BFGS iterations of the start regression
    refine_steps: int = 100  # L-BFGS iterations of the sliced refinement
    smoothness: float = 0.0  # weight of otcolor.losses.jacobian_penalty (raw, not user units)
    penalty_power: float = 3.0
    penalty_atoms: bool = False  # penalty on the weighted source atoms instead of `probe`


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
    gaussian: nn.Module,
    config: EstimatorConfig,
    probe: Tensor | None = None,
    callback: Callback | None = None,
    restart: Callable[[], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    r"""Fits ``model`` (started at the Gaussian map) to the OT map from ``source`` to ``loss``'s
    target, in place.

    Arguments:
        model: a monotone gradient map, :math:`(N, D) \to (N, D)`, initialised at ``gaussian``.
        source: the source atoms, on the model's device.
        loss: the weighted sliced :math:`W_2^2` onto the target.
        gaussian: the closed-form Gaussian map, the accuracy to beat.
        config: the settings.
        probe: source pixels where the smoothness penalty is taken, with shape :math:`(P, D)`.
        callback: called after every L-BFGS iteration, steps numbered across both stages.
        restart: re-initialises ``model`` exactly at ``gaussian`` (no nonlinear part), used when
            the fit ends worse than the closed form.

    Returns:
        The logs (``loss``, ``fit`` per iteration) and the scores: the sliced fit term of the
        result (``fit_sliced_w2``) and of the Gaussian map (``gaussian_sliced_w2``), and whether
        the restart from the Gaussian map was needed (``restarted_from_gaussian``, 0 or 1).
    """

    x, w = source.points, source.weights.to(source.points)
    probe_weights = None
    if config.penalty_atoms:
        probe, probe_weights = x, w

    def sliced() -> Tensor:
        return loss(model(x), w)

    def fit_term(module: nn.Module) -> float:
        with torch.no_grad():
            return float(loss(module(x), w))

    start = RegressionConfig(
        steps=config.start_steps, smoothness=config.smoothness, penalty_power=config.penalty_power
    )
    refine = RegressionConfig(
        steps=config.refine_steps, smoothness=config.smoothness, penalty_power=config.penalty_power
    )
    history: dict[str, list[float]] = {"loss": [], "fit": []}

    def extend(logs: dict[str, list[float]]) -> None:
        for key in history:
            history[key] += logs[key]

    if config.start_steps:
        targets = hm_mkl_hm(source, loss).to(x)

        def regression() -> Tensor:
            return ((model(x) - targets).square().sum(-1) * w).sum()

        extend(fit_lbfgs(model, regression, start, probe, callback, 1, probe_weights))

    def refine_in_place() -> None:
        extend(
            fit_lbfgs(
                model, sliced, refine, probe, callback, 1 + len(history["loss"]), probe_weights
            )
        )

    if config.refine_steps:
        refine_in_place()

    # Accuracy is judged on the fit term alone: the penalty may trade closeness for smoothness,
    # but never below the closed form's closeness.
    learned_fit = fit_term(model)
    gaussian_fit = fit_term(gaussian)
    restarted = 0.0
    if not learned_fit <= gaussian_fit and restart is not None:
        restart()
        # The restart is the Gaussian map itself; refinement keeps only what improves on it.
        snapshot = {k: v.clone() for k, v in model.state_dict().items()}
        refine_in_place()
        learned_fit = fit_term(model)
        if not learned_fit <= gaussian_fit:
            model.load_state_dict(snapshot)
            learned_fit = fit_term(model)
        restarted = 1.0
    scores = {
        "fit_sliced_w2": float(learned_fit),
        "gaussian_sliced_w2": float(gaussian_fit),
        "restarted_from_gaussian": restarted,
    }
    return history, scores
