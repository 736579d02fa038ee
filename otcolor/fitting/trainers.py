r"""The training loops: :func:`train_adam` (minibatch Adam on a loss), :func:`train_lbfgs`
(full-batch L-BFGS on a deterministic objective) and :func:`regress` (least squares by L-BFGS).

Every loop reports through one :data:`Callback` type, ``callback(step, logs)``, and returns one
log schema, :data:`LOG_KEYS`: per step, the objective (``loss``), its fit term without the
penalties (``fit``) and the step size taken (``lr``: Adam's learning rate, or the step length the
L-BFGS line search accepted).
"""

from __future__ import annotations

__all__ = [
    "LOG_KEYS",
    "AdamConfig",
    "Callback",
    "History",
    "LbfgsConfig",
    "regress",
    "train_adam",
    "train_lbfgs",
]

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ..errors import TrainingError
from ..losses import jacobian_penalty

#: ``callback(step, logs)``: called after every step, ``step`` counted from 1 across the stages
#: of one fit, ``logs`` the step's values under :data:`LOG_KEYS`.
Callback = Callable[[int, dict[str, float]], None]

#: The keys of every trainer's logs: the objective, its fit term (penalties excluded), the step.
LOG_KEYS: tuple[str, ...] = ("loss", "fit", "lr")

#: One list per key of :data:`LOG_KEYS`, one entry per step.
History = dict[str, list[float]]


def new_history() -> History:
    r"""An empty :data:`History`."""

    return {key: [] for key in LOG_KEYS}


@dataclass
class AdamConfig:
    r"""How :func:`train_adam` trains.

    The learning rate ramps up linearly over the first ``warmup`` fraction of the steps (Adam's
    first steps move every weight by about ``lr`` whatever its scale, which would wreck a map
    started from the Gaussian one with deliberately small nonlinear weights), then follows a
    cosine schedule down to ``lr * lr_final``: large steps move the map fast, small late steps
    remove the minibatch noise from the final map.
    """

    steps: int = 500  # optimiser steps
    batch_size: int = 4096  # source and target samples per step
    lr: float = 1e-2  # Adam learning rate at step 1
    lr_final: float = 0.05  # final learning rate, as a fraction of lr
    warmup: float = 0.1  # fraction of the steps over which the learning rate ramps up linearly
    transport_cost: float = 0.0  # weight of E|T(x) - x|^2, which favours the cheapest map
    smoothness: float = 0.0  # weight of otcolor.losses.jacobian_penalty (0: off)
    penalty_power: float = 3.0  # its power mean: > 1 leans on the steepest places
    grad_clip: float | None = 10.0  # max gradient norm, None for no clipping
    seed: int = 0  # seeds batch sampling (and the loss's directions when it draws any)


def train_adam(
    model: nn.Module,
    loss: nn.Module,
    source: Tensor,
    target: Tensor,
    config: AdamConfig | None = None,
    callback: Callback | None = None,
) -> History:
    r"""Trains ``model`` so that ``model(source)`` is distributed like ``target``.

    Each step draws ``batch_size`` source and target samples (with replacement), minimises
    ``loss(model(x), y) + transport_cost * mean |model(x) - x|^2 + smoothness * R(x)`` (``R`` the
    :func:`~otcolor.losses.jacobian_penalty`) with Adam, and reports
    ``callback(step, {"loss": ..., "fit": ..., "lr": ...})`` (``fit``: the loss term alone). A
    non-finite loss restores the last good parameters and retries at half the learning rate; a
    second one raises.

    Arguments:
        model: the map, :math:`(N, D) \to (N, D)`.
        loss: called as ``loss(mapped, target)``; a scalar.
        source: source samples, with shape :math:`(N, D)`, on the model's device.
        target: target samples, with shape :math:`(M, D)`, on the model's device.
        config: the training settings.
        callback: called after every step with the step (from 1) and its logs.

    Returns:
        The logs (:data:`LOG_KEYS`), one entry per step.

    Raises:
        TrainingError: if the loss is still non-finite after the retry.
    """

    config = config or AdamConfig()
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    lr_scale = 1.0
    retried = False
    good_state = copy.deepcopy(model.state_dict())
    history = new_history()
    n_source, n_target = source.shape[0], target.shape[0]
    batch = config.batch_size

    model.train()
    for step in range(1, config.steps + 1):
        lr = config.lr * lr_scale * _schedule(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr

        x = source[_indices(n_source, batch, generator, source.device)]
        y = target[_indices(n_target, batch, generator, target.device)]
        mapped = model(x)
        fit_term = loss(mapped, y)
        value = fit_term
        if config.transport_cost:
            value = value + config.transport_cost * (mapped - x).square().sum(-1).mean()
        if config.smoothness:
            value = value + config.smoothness * jacobian_penalty(model, x, config.penalty_power)

        if not torch.isfinite(value):
            if retried:
                raise TrainingError(
                    f"training diverged at step {step} (loss={value.item()})",
                    "try a lower --lr or another --loss",
                )
            retried = True
            lr_scale /= 2
            model.load_state_dict(good_state)
            optimizer = torch.optim.Adam(params, lr=config.lr * lr_scale)
            continue

        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()

        if step % 25 == 0 and all(torch.isfinite(p).all() for p in params):
            good_state = copy.deepcopy(model.state_dict())

        logs = {"loss": float(value.detach()), "fit": float(fit_term.detach()), "lr": lr}
        for key in LOG_KEYS:
            history[key].append(logs[key])
        if callback is not None:
            callback(step, logs)

    # The last update can break the parameters with no loss evaluated after it.
    if not all(torch.isfinite(p).all() for p in params):
        model.load_state_dict(good_state)
    model.eval()
    return history


@dataclass
class LbfgsConfig:
    r"""How :func:`train_lbfgs` and :func:`regress` train: full-batch L-BFGS with a backtracking
    line search.

    Regression onto fixed targets is smooth and deterministic, the setting where a quasi-Newton
    method beats Adam by an order of magnitude in steps: 200 iterations on 4000 pairs converge
    where Adam needs thousands of minibatch steps.
    """

    steps: int = 200  # L-BFGS iterations
    smoothness: float = 0.0  # weight of otcolor.losses.jacobian_penalty (0: off)
    penalty_power: float = 3.0  # its power mean: > 1 leans on the steepest places
    history_size: int = 20  # L-BFGS memory
    penalty_points: int | None = None  # penalty on this many of the inputs (None: all)
    # Stop on a plateau: when the objective fell by less than this fraction of its value over
    # the last `patience` iterations (0: run every step).
    tolerance: float = 0.0
    patience: int = 10


def regress(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    config: LbfgsConfig | None = None,
    callback: Callback | None = None,
    weights: Tensor | None = None,
) -> History:
    r"""Fits ``model(inputs) ≈ targets`` in least squares, plus a smoothness penalty.

    Minimises :math:`\sum_i w_i \|T(x_i) - t_i\|^2 + \lambda R(x)` (:math:`w_i = 1/N` unless
    ``weights`` are given) with :math:`R` the :func:`~otcolor.losses.jacobian_penalty`, by
    full-batch L-BFGS, one iteration per step. Used to distil an optimal transport plan
    (``targets[i]`` the point ``inputs[i]`` is sent to) into a monotone map: the least-squares fit
    of a plan by a gradient of a convex function is the natural estimate of its Brenier map.

    Arguments:
        model: the map, :math:`(N, D) \to (N, D)`.
        inputs: :math:`x`, with shape :math:`(N, D)`.
        targets: :math:`t`, with shape :math:`(N, D)`.
        config: the training settings.
        callback: called after every iteration with the step (from 1) and its logs.
        weights: :math:`w`, with shape :math:`(N,)`, summing to one; uniform by default.

    Returns:
        The logs (:data:`LOG_KEYS`), one entry per iteration.

    Raises:
        TrainingError: if the objective is not finite at the starting point.
    """

    config = config or LbfgsConfig()
    probe = inputs[: config.penalty_points]  # a fixed subset keeps the objective deterministic
    w = None if weights is None else weights.to(inputs)

    def mse() -> Tensor:
        squared = (model(inputs) - targets).square().sum(-1)
        return squared.mean() if w is None else (squared * w).sum()

    return train_lbfgs(model, mse, config, probe, callback)


def train_lbfgs(
    model: nn.Module,
    loss: Callable[[], Tensor],
    config: LbfgsConfig,
    probe: Tensor | None = None,
    callback: Callback | None = None,
    first_step: int = 1,
    probe_weights: Tensor | None = None,
) -> History:
    r"""Minimises ``loss()`` :math:`+ \lambda R(\text{probe})` over the model's parameters by
    full-batch L-BFGS (``config.steps`` iterations, :math:`\lambda` = ``config.smoothness``).

    ``loss`` must be a deterministic function of the parameters (full batch, fixed directions):
    the line search compares its values. A trial point where the objective is not finite is
    rejected like one that does not decrease it: the step is halved and the last good
    parameters are kept.

    Arguments:
        model: the map.
        loss: evaluates the fit term at the model's current parameters, a scalar.
        config: the settings (steps, smoothness, L-BFGS memory).
        probe: the points of the smoothness penalty, with shape :math:`(P, D)`.
        callback: called after every iteration with its step and logs.
        first_step: the number the first iteration reports (to chain stages on one bar).
        probe_weights: weights of the probe points (summing to one); uniform by default.

    Returns:
        The logs (:data:`LOG_KEYS`): the objective, its fit term and the accepted step length.

    Raises:
        TrainingError: if the objective is not finite at the start or the parameters end so.
    """

    params = [p for p in model.parameters() if p.requires_grad]
    history = new_history()
    latest: dict[str, float] = {}

    def objective(theta: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            vector_to_parameters(theta, params)
        for p in params:
            p.grad = None
        fit_term = loss()
        value = fit_term
        if config.smoothness and probe is not None:
            value = value + config.smoothness * jacobian_penalty(
                model, probe, config.penalty_power, probe_weights
            )
        if not torch.isfinite(value):
            # Rejected by the line search (NaN fails every comparison); no gradient needed.
            return value.detach(), torch.zeros_like(theta)
        value.backward()
        latest.update(loss=float(value.detach()), fit=float(fit_term.detach()))
        grad = torch.cat([p.grad.reshape(-1) for p in params])
        return value.detach(), grad

    def report(step: int, length: float) -> None:
        # The last evaluation is the one at the point the line search accepted.
        latest["lr"] = length
        for key in LOG_KEYS:
            history[key].append(latest[key])
        if callback is not None:
            callback(first_step + step - 1, dict(latest))

    model.train()
    theta = _lbfgs(
        objective,
        parameters_to_vector(params).detach(),
        config.steps,
        config.history_size,
        report,
        (config.tolerance, config.patience),
    )
    with torch.no_grad():
        vector_to_parameters(theta, params)
    model.eval()
    if not all(torch.isfinite(p).all() for p in params):
        raise TrainingError("the regression left non-finite parameters", "try --smoothness 0")
    return history


def _lbfgs(
    objective: Callable[[Tensor], tuple[Tensor, Tensor]],
    theta: Tensor,
    steps: int,
    memory: int,
    on_step: Callable[[int, float], None],
    plateau: tuple[float, int] = (0.0, 10),
) -> Tensor:
    r"""Minimises a smooth function by L-BFGS with a backtracking (Armijo) line search.

    Written here rather than taken from ``torch.optim.LBFGS`` because the first use of any
    torch optimiser imports ``torch._dynamo``, about 1.1 s, a seventh of a whole colour
    transfer on two cores; the algorithm itself is twenty lines (Nocedal and Wright,
    Numerical Optimization, algorithms 7.4 and 3.1). ``on_step(k, t)`` is called after iteration
    ``k`` (step length ``t``) with the objective last evaluated at the accepted
    point. Stops early when the gradient or the decrease vanishes, or on a plateau: the
    objective fell by less than ``plateau[0]`` of its value over the last ``plateau[1]``
    iterations.
    """

    value, grad = objective(theta)
    if not torch.isfinite(value):
        raise TrainingError(
            "the regression diverged (non-finite loss at the start)",
            "try --smoothness 0 or --init identity",
        )
    steps_s: list[Tensor] = []
    steps_y: list[Tensor] = []
    tolerance, patience = plateau
    values = [float(value)]
    for step in range(1, steps + 1):
        # Two-loop recursion: direction = -H grad, H the L-BFGS inverse Hessian estimate.
        direction = -grad
        alphas = []
        for s, y in zip(reversed(steps_s), reversed(steps_y), strict=True):
            alpha = (s @ direction) / (y @ s)
            direction = direction - alpha * y
            alphas.append(alpha)
        if steps_s:
            s, y = steps_s[-1], steps_y[-1]
            direction = direction * ((s @ y) / (y @ y))
        else:  # first step: L1 length at most 1, as torch.optim.LBFGS does
            direction = direction * min(1.0, 1.0 / float(grad.abs().sum()))
        for (s, y), alpha in zip(
            zip(steps_s, steps_y, strict=True), reversed(alphas), strict=True
        ):
            beta = (y @ direction) / (y @ s)
            direction = direction + s * (alpha - beta)
        slope = grad @ direction
        if slope > -1e-12:  # not a descent direction: forget the curvature pairs
            steps_s.clear()
            steps_y.clear()
            direction = -grad * min(1.0, 1.0 / float(grad.abs().sum()))
            slope = grad @ direction
        # Backtracking until the Armijo condition holds (at most 30 halvings).
        t = 1.0
        for _ in range(30):
            new_theta = theta + t * direction
            new_value, new_grad = objective(new_theta)
            # A non-finite trial point is rejected like one that does not decrease enough.
            if torch.isfinite(new_value) and new_value <= value + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break  # no decrease along the direction: converged as far as float32 allows
        s, y = new_theta - theta, new_grad - grad
        if (s @ y) > 1e-10:  # keep only pairs with positive curvature (keeps H positive)
            steps_s.append(s)
            steps_y.append(y)
            if len(steps_s) > memory:
                steps_s.pop(0)
                steps_y.pop(0)
        decrease = float(value - new_value)
        theta, value, grad = new_theta, new_value, new_grad
        on_step(step, t)
        if grad.abs().max() < 1e-9 or abs(decrease) < 1e-12:
            break
        values.append(float(value))
        if tolerance and len(values) > patience:
            if values[-1 - patience] - values[-1] <= tolerance * abs(values[-1]):
                break
    return theta


def _schedule(step: int, config: AdamConfig) -> float:
    warmup = max(int(config.warmup * config.steps), 1)
    if step <= warmup:
        return step / warmup
    progress = (step - warmup) / max(config.steps - warmup, 1)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr_final + (1 - config.lr_final) * cosine


def _indices(n: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    # Sampling on the CPU generator keeps runs identical across devices for a seed.
    return torch.randint(n, (size,), generator=generator).to(device)
