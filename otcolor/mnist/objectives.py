r"""The objectives that train the latent map :math:`T = \nabla\varphi`, and the loop that runs
them.

Each objective is a module called as ``objective(transport, z, index)`` on a batch of Gaussian
latents :math:`z` and of indices into the whitened training codes :math:`c` it holds; it
returns a scalar to minimise.

* ``semidual`` (default): the semi-dual of optimal transport with the map's closed-form
  potential (:mod:`otcolor.mnist.potentials`),

  .. math::
      \min_\varphi \; \mathbb{E}_z\, \varphi(z) + \mathbb{E}_c\, \varphi^*(c), \qquad
      \varphi^*(c) = \langle x_c, c\rangle - \varphi(x_c), \; x_c = T^{-1}(c),

  whose minimiser is the Brenier potential. By the envelope theorem the gradient of
  :math:`\varphi^*(c)` in the parameters is :math:`-\partial_\theta\varphi(x_c)` at the fixed
  :math:`x_c`, so the loss is :math:`\mathbb{E}\,\varphi(z) - \mathbb{E}\,\varphi(x_c)`.
  :math:`x_c` comes from Newton's method, warm-started from the last :math:`x_c` found for the
  same code (a table over the training codes: the map moves little between two visits, so
  two Newton steps keep the residual :math:`|T(x_c) - c|` near 1e-3). The table is training
  state, never part of the model.
* ``sliced``, ``ot``, ``kl``, ``wgan``: the pushforward losses of :mod:`otcolor.losses`,
  ``loss(T(z), c)``; ``wgan`` is the seed's adversarial dual-Wasserstein loss (WGAN-GP).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "OBJECTIVES",
    "LatentTrainingConfig",
    "Pushforward",
    "SemiDual",
    "build_objective",
    "train_map",
]

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import TrainingError
from ..losses import LOSSES, build_loss
from ..models import GradientMap
from .potentials import invert, potential


class SemiDual(nn.Module):
    r"""Creates the semi-dual objective :math:`\mathbb{E}_z \varphi(z) - \mathbb{E}_c
    \varphi(T^{-1}(c))` over the whitened training codes ``targets``.

    Arguments:
        targets: :math:`c`, with shape :math:`(N, d)`.
        newton: Newton steps per visit of a code.
    """

    def __init__(self, targets: Tensor, newton: int = 2) -> None:
        super().__init__()
        self.newton = newton
        self.register_buffer("targets", targets.detach().clone())
        # T starts near the identity, so the codes themselves are the first guesses.
        self.register_buffer("inverses", targets.detach().clone())

    def residual(self, transport: GradientMap, index: Tensor) -> Tensor:
        r"""Returns :math:`|T(x_c) - c|` for the codes ``index``, :math:`(B,)`: how far the
        stored inverses are from exact."""

        with torch.no_grad():
            return (transport(self.inverses[index]) - self.targets[index]).norm(dim=-1)

    def forward(self, transport: GradientMap, z: Tensor, index: Tensor) -> Tensor:
        codes = self.targets[index]
        inverses = invert(transport, codes, self.inverses[index], self.newton)
        self.inverses[index] = inverses
        return potential(transport, z).mean() - potential(transport, inverses).mean()


class Pushforward(nn.Module):
    r"""Creates ``loss(T(z) R, c R)``: a loss of :mod:`otcolor.losses` on the mapped latents
    and the codes, both seen through the matrix ``view`` :math:`R` :math:`(d, d)`.

    ``view`` is the identity, or the codec's un-whitening (``wgan`` in PCA space, where the
    critic's gradient penalty otherwise treats the near-Gaussian trailing directions like
    the leading ones that tell digits apart).
    """

    def __init__(self, loss: nn.Module, targets: Tensor, view: Tensor) -> None:
        super().__init__()
        self.loss = loss
        self.register_buffer("view", view.detach().clone())
        self.register_buffer("targets", (targets @ view).detach())

    def forward(self, transport: GradientMap, z: Tensor, index: Tensor) -> Tensor:
        return self.loss(transport(z) @ self.view, self.targets[index])


#: Objectives by name: ``semidual`` and every loss of :data:`otcolor.losses.LOSSES`.
OBJECTIVES: tuple[str, ...] = ("semidual", *LOSSES)

#: Adam's learning rate per objective when none is given (docs/mnist.md has the sweeps).
DEFAULT_LR: dict[str, float] = {
    "semidual": 1e-2,
    "sliced": 1e-3,
    "ot": 1e-3,
    "kl": 1e-3,
    "wgan": 3e-3,
}

#: Steps and batch per objective when none are given: the semi-dual has converged by 1,000
#: steps of 1,024; the adversarial loss first drifts away from its start and needs the
#: schedule's long tail (2,000 steps of 512, docs/mnist.md).
DEFAULT_STEPS: dict[str, tuple[int, int]] = {"semidual": (1000, 1024), "wgan": (2000, 512)}

#: Whether the pushforward loss sees un-whitened codes (``view`` of :class:`Pushforward`).
UNWHITENED: dict[str, bool] = {"wgan": True}

#: Settings of the pushforward losses (arguments of :func:`otcolor.losses.build_loss`).
LOSS_OPTIONS: dict[str, dict[str, object]] = {}


def build_objective(
    name: str,
    targets: Tensor,
    unwhiten: Tensor,
    seed: int,
    *,
    unwhitened: bool | None = None,
    **options: object,
) -> nn.Module:
    r"""Returns the objective ``name`` (a key of :data:`OBJECTIVES`) on the whitened codes
    ``targets`` :math:`(N, d)`; ``unwhiten`` :math:`(d, d)` maps whitened codes back to the
    latent's own scale. Losses that draw randomness (directions, the critic) are seeded by
    ``seed``. ``unwhitened`` overrides :data:`UNWHITENED`; ``options`` override
    :data:`LOSS_OPTIONS` and go to :func:`otcolor.losses.build_loss`."""

    if name == "semidual":
        return SemiDual(targets)
    if name not in LOSSES:
        raise ValueError(f"unknown objective {name!r}; choose one of {list(OBJECTIVES)}")
    if unwhitened is None:
        unwhitened = UNWHITENED.get(name, False)
    view = unwhiten if unwhitened else torch.eye(targets.shape[1]).to(targets)
    options = {**LOSS_OPTIONS.get(name, {}), **options}
    seen = targets @ view
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # the critic's initialisation (wgan)
        loss = build_loss(
            name,
            targets.shape[1],
            generator=torch.Generator().manual_seed(seed + 1),
            **({"reference": seen.detach()} if name == "sliced" else {}),
            **options,
        )
    return Pushforward(loss, targets, view).to(targets.device)


@dataclass
class LatentTrainingConfig:
    r"""How :func:`train_map` trains: Adam with a linear warm-up over ``warmup`` of the steps,
    then a cosine down to ``lr_final`` of the rate; gradients clipped to ``grad_clip``."""

    steps: int = 2000
    batch_size: int = 1024
    lr: float = 3e-3
    lr_final: float = 0.05
    warmup: float = 0.1
    grad_clip: float = 10.0
    seed: int = 0


def _rate(step: int, config: LatentTrainingConfig) -> float:
    warmup = max(int(config.warmup * config.steps), 1)
    if step <= warmup:
        return config.lr * step / warmup
    progress = (step - warmup) / max(config.steps - warmup, 1)
    return config.lr * (
        config.lr_final + (1 - config.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def train_map(
    transport: GradientMap,
    objective: nn.Module,
    codes: int,
    config: LatentTrainingConfig,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    r"""Trains ``transport`` in place on ``objective``.

    Each step draws ``batch_size`` latents :math:`z \sim \mathcal{N}(0, I_d)` and as many
    code indices (with replacement) from a CPU generator seeded by ``config.seed``, so a seed
    gives the same run on every device. A non-finite loss restores the last good parameters
    (kept every 25 steps) and halves the rate, once; a second one raises.

    Arguments:
        transport: :math:`T`, on the objective's device.
        objective: from :func:`build_objective`.
        codes: the number of training codes the objective holds.
        config: the settings.
        callback: ``callback(step, loss)`` after every step.

    Returns:
        The loss of every step.

    Raises:
        TrainingError: the loss stayed non-finite.
    """

    device = transport.bias.device
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in transport.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    good = copy.deepcopy(transport.state_dict())
    scale, retried, history = 1.0, False, []
    d = transport.features
    transport.train()
    for step in range(1, config.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = scale * _rate(step, config)
        z = torch.randn(config.batch_size, d, generator=generator).to(device)
        index = torch.randint(codes, (config.batch_size,), generator=generator).to(device)
        value = objective(transport, z, index)
        if not torch.isfinite(value):
            if retried:
                raise TrainingError(
                    f"training diverged at step {step} (loss={float(value)})",
                    "try a lower --lr or another --loss",
                )
            retried, scale = True, scale / 2
            transport.load_state_dict(good)
            optimizer = torch.optim.Adam(params, lr=config.lr * scale)
            continue
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if step % 25 == 0 and all(torch.isfinite(p).all() for p in params):
            good = copy.deepcopy(transport.state_dict())
        history.append(float(value.detach()))
        if callback is not None:
            callback(step, history[-1])
    if not all(torch.isfinite(p).all() for p in params):
        transport.load_state_dict(good)
    transport.eval()
    return history
