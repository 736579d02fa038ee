r"""GMM benchmark: the seed's two-component source mapped onto a three-component target.

No closed form exists here, so maps are judged by how close their push-forward is to the target
(exact :math:`W_2` over the sampling noise floor) and how cheap their transport is compared
with discrete optimal transport between samples (the OT optimality gap).
"""

from __future__ import annotations

__all__ = [
    "GMM_SETTINGS",
    "GMMBenchConfig",
    "GaussianMixture",
    "run_gmm",
    "seed_mixtures",
]

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..device import resolve_device
from ..errors import UsageError
from ..fitting.colour import MAX_STEPS
from ..fitting.trainers import AdamConfig, train_adam
from ..gaussian import bures_map, moments
from ..losses import SlicedW2, build_loss

# The exact W2^2 solver the pixel metrics use (POT's network simplex, imported lazily there).
from ..metrics import emd2
from ..models import AffineMap, build_model
from .common import (
    BenchReport,
    BenchResult,
    Progress,
    expand_losses,
    expand_models,
    machine_info,
    warm_up,
)

#: Per-loss training settings (Adam through :func:`otcolor.fitting.trainers.train_adam`, cosine schedule). The
#: sliced loss needs the long, fast run: the map has to grow a sharp ridge inside each source
#: component to split it between two target components, and 1500 steps at 1e-2 stopped short
#: of it (C-MGN w2_ratio 1.67 → 1.28 at seed 0; ~20-30 s a row on one core).
GMM_SETTINGS: dict[str, dict[str, Any]] = {
    "kl": {"steps": 400, "lr": 2e-2, "batch_size": 2048},
    "sliced": {"steps": 4000, "lr": 2e-2, "batch_size": 1024, "projections": 32},
    "wgan": {"steps": 1500, "lr": 2e-3, "batch_size": 512},
}

#: Architectures for the mixture: the split of a source component between two target
#: components needs a steep ridge, so the MGNs use steep saturating activations.
GMM_MODELS: dict[str, dict[str, Any]] = {
    "cmgn": {"hidden_features": 64, "layers": 2, "activation": "tanh", "steepness": 4.0},
    "mmgn": {"hidden_features": 16, "modules": 8},
    "icnn": {"hidden_features": (64, 64)},
}


@dataclass
class GaussianMixture:
    r"""A mixture of isotropic Gaussians :math:`\sum_k w_k \mathcal{N}(\mu_k, s_k^2 I)`.

    Arguments:
        weights: :math:`w_k`, summing to 1, shape :math:`(K,)`.
        means: :math:`\mu_k`, shape :math:`(K, D)`.
        stds: :math:`s_k`, shape :math:`(K,)`.
    """

    weights: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]
    stds: tuple[float, ...]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        r"""Returns ``n`` samples, float32 :math:`(n, D)` (components drawn with their weights)."""

        weights = torch.tensor(self.weights, dtype=torch.float64)
        means = torch.tensor(self.means, dtype=torch.float64)
        stds = torch.tensor(self.stds, dtype=torch.float64)
        k = torch.multinomial(weights, n, replacement=True, generator=generator)
        z = torch.randn(n, means.shape[1], generator=generator, dtype=torch.float64)
        return (means[k] + stds[k, None] * z).float()


def seed_mixtures(std: float = 0.5) -> tuple[GaussianMixture, GaussianMixture]:
    r"""The seed slides' setup: source at :math:`(-2, 0), (2, 0)`, target at :math:`(-3, 1),
    (0, -1), (3, 1)`; equal weights and isotropic standard deviation ``std`` (our choice: the
    slides give only the means)."""

    source = GaussianMixture((0.5, 0.5), ((-2.0, 0.0), (2.0, 0.0)), (std, std))
    target = GaussianMixture(
        (1 / 3, 1 / 3, 1 / 3), ((-3.0, 1.0), (0.0, -1.0), (3.0, 1.0)), (std, std, std)
    )
    return source, target


@dataclass
class GMMBenchConfig:
    r"""Settings of :func:`run_gmm`; ``steps=None`` takes the per-loss defaults."""

    steps: int | None = None
    seed: int = 0
    device: str = "auto"
    std: float = 0.5  # standard deviation of every mixture component
    train_samples: int = 20_000
    eval_samples: int = 3000  # points per side of the exact W2 and EMD cost (POT network simplex)
    init_scale: float = 0.5  # nonlinear Jacobian at the start, relative to the identity's

    def __post_init__(self) -> None:
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise UsageError(f"--steps must be in [1, {MAX_STEPS:,}], got {self.steps}")
        if not self.std > 0:
            raise UsageError(f"the component std must be positive, got {self.std}")


class _Scorer:
    r"""Scores maps on fixed subsamples, so that the noise floor and the EMD cost, shared by
    every map, are solved once (each is an exact OT problem of ``n`` points per side)."""

    def __init__(self, source: np.ndarray, target: np.ndarray, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(target), size=3 * n, replace=False)
        self.source = source[:n]
        self.target_a, self.target_b = target[picks[:n]], target[picks[n : 2 * n]]
        self.floor = float(np.sqrt(emd2(self.target_a, self.target_b)))
        self.emd_cost = emd2(self.source, target[picks[2 * n :]])

    def __call__(self, mapped: np.ndarray) -> dict[str, float]:
        mapped = mapped[: len(self.source)]
        w2 = float(np.sqrt(emd2(mapped, self.target_a)))
        cost = float(np.mean(np.sum((mapped - self.source) ** 2, axis=1)))
        return {
            "w2_ratio": w2 / self.floor,
            "w2": w2,
            "w2_floor": self.floor,
            "cost_ratio": cost / self.emd_cost,
            "transport_cost": cost,
            "emd_cost": self.emd_cost,
        }


def _make_loss(
    name: str, settings: dict[str, Any], generator: torch.Generator, y: Tensor
) -> nn.Module:
    if name == "sliced":
        return SlicedW2(projections=settings["projections"], generator=generator, reference=y)
    return build_loss(name, 2, generator=generator)


def run_gmm(
    models: str | list[str] = "all",
    losses: str | list[str] = "all",
    config: GMMBenchConfig | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    r"""Fits every model × loss from the source mixture to the target mixture and scores it.

    Metrics, on ``eval_samples`` held-out source points and as many target points, the same
    for every map (the definitions of :func:`otcolor.metrics.w2_ratio` and
    :func:`otcolor.metrics.cost_ratio`): ``w2_ratio``, the exact :math:`W_2` from the mapped
    points to the target sample over the :math:`W_2` between two target samples (the noise
    floor), and ``cost_ratio``, the mean :math:`\|T(x) - x\|^2` over the EMD cost
    :math:`W_2^2` between the source points and a third target sample. The closed-form Gaussian
    (Bures) map between the mixtures' moments and the identity are scored as baselines.
    """

    config = config or GMMBenchConfig()
    model_names, loss_names = expand_models(models), expand_losses(losses)
    device = resolve_device(config.device)
    source_gmm, target_gmm = seed_mixtures(config.std)
    generator = torch.Generator().manual_seed(config.seed)
    source = source_gmm.sample(config.train_samples, generator)
    target = target_gmm.sample(config.train_samples, generator)
    probe = source_gmm.sample(config.eval_samples, generator)
    target_eval = target_gmm.sample(4 * config.eval_samples, generator).numpy()
    probe_np = probe.numpy()

    score = _Scorer(probe_np, target_eval, config.eval_samples, config.seed)

    m0, S0 = moments(source.double())
    m1, S1 = moments(target.double())
    A, b = bures_map(m0, S0, m1, S1)
    with torch.no_grad():
        bures_out = AffineMap(A.float(), b.float())(probe).numpy()
    baselines = [
        BenchResult("bures", "-", 0.0, score(bures_out), {"map": "closed-form Gaussian OT map"}),
        BenchResult("identity", "-", 0.0, score(probe_np), {"map": "T(x) = x"}),
    ]

    warm_up()
    results: list[BenchResult] = []
    mapped_all: dict[tuple[str, str], np.ndarray] = {("bures", "-"): bures_out}
    for loss_name in loss_names:
        for model_name in model_names:
            settings = {**GMM_SETTINGS[loss_name]}
            if config.steps is not None:
                settings["steps"] = config.steps
            torch.manual_seed(config.seed)
            model = build_model(model_name, 2, **GMM_MODELS[model_name])
            model.init_linear(torch.eye(2), torch.zeros(2), m0.float(), config.init_scale)
            model = model.to(device)
            loss_gen = torch.Generator().manual_seed(config.seed + 1)
            loss = _make_loss(loss_name, settings, loss_gen, target.to(device)).to(device)
            label = f"{model_name}/{loss_name}"
            steps = settings["steps"]

            def callback(
                step: int, logs: dict[str, float], label: str = label, steps: int = steps
            ) -> None:
                if progress is not None:
                    progress(label, step, steps, f"loss {logs['loss']:.3g}")

            fit_config = AdamConfig(
                steps=steps, batch_size=settings["batch_size"], lr=settings["lr"], seed=config.seed
            )
            start = time.perf_counter()
            train_adam(model, loss, source.to(device), target.to(device), fit_config, callback)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                mapped = model(probe.to(device)).cpu().numpy()
            mapped_all[(model_name, loss_name)] = mapped
            init = f"identity (nonlinear Jacobian {config.init_scale:g} x I at the source mean)"
            record = {**settings, "init": init, "model": GMM_MODELS[model_name]}
            results.append(BenchResult(model_name, loss_name, seconds, score(mapped), record))

    return BenchReport(
        benchmark="gmm",
        config={**asdict(config), "models": model_names, "losses": loss_names},
        results=results,
        baselines=baselines,
        reference={
            "source": asdict(source_gmm),
            "target": asdict(target_gmm),
        },
        machine=machine_info(device),
        samples={
            "source": probe_np,
            "target": target_eval[: config.eval_samples],
            "mapped": mapped_all,
        },
    )
