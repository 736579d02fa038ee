r"""MNIST generation with a monotone gradient map: train, sample, score, save.

A map :math:`T = \nabla\varphi` (C-MGN, M-MGN or ICNN, :math:`\mathbb{R}^{784} \to
\mathbb{R}^{784}`) pushes a standard Gaussian latent onto the distribution of MNIST digits; by
Brenier's theorem the monotone map between the two is the optimal transport map. The seed's
experiment trains it with the adversarial Wasserstein loss; :func:`run_mnist` does that for one
or all architectures and scores the samples with :mod:`otcolor.mnist.classifier`.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_MODELS",
    "MnistConfig",
    "MnistResult",
    "ModelResult",
    "build_generator",
    "evaluate_samples",
    "grid_image",
    "run_mnist",
    "sample",
]

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import OutputError, UsageError
from ..image import check_output_path, save_image
from ..losses import LOSSES, build_loss
from ..metrics import sliced_w2
from ..models import ICNN, GradientMap, build_model
from ..train import FitConfig, fit, resolve_device
from .classifier import (
    Classifier,
    ClassifierConfig,
    atomic_torch_save,
    class_consistency,
    frechet_distance,
    load_or_train_classifier,
    predict,
)
from .data import MnistData, cache_dir, load_mnist

#: ``callback(phase, done, total, info)``: phase is ``download``, ``classifier``, ``train:<model>``
#: or ``evaluate``.
Callback = Callable[[str, int, int, str], None]

PIXELS = 28 * 28

#: The architectures at the size used for digits (see the README's MNIST section for the
#: measurements behind them).
GENERATOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 2048, "layers": 2, "activation": "sigmoid"},
    "mmgn": {"hidden_features": 64, "modules": 32},
    "icnn": {"hidden_features": (1024, 64), "activation": "softplus"},
}


@dataclass
class MnistConfig:
    r"""Settings of ``otcolor mnist``; the defaults meet the README's quality bar on a CPU."""

    model: str = "cmgn"  # a key of GENERATOR_MODELS, or "all"
    loss: str = "sliced"  # a key of otcolor.losses.LOSSES (see the README for the comparison)
    steps: int = 1200  # Adam steps per model
    batch_size: int = 256
    lr: float = 1e-3
    device: str = "auto"
    seed: int = 0
    samples: int = 10_000  # generated digits scored (and test digits they are compared with)
    data: Path | None = None  # folder of the IDX files (else $OTCOLOR_DATA, else the cache)
    download: bool = True  # fetch missing files into the cache
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def models(self) -> list[str]:
        return list(GENERATOR_MODELS) if self.model == "all" else [self.model]

    def validate(self) -> None:
        r"""Raises :class:`~otcolor.errors.UsageError` on a bad setting, before any work."""

        if self.model != "all" and self.model not in GENERATOR_MODELS:
            raise UsageError(
                f"unknown model {self.model!r}", f"choose one of {sorted(GENERATOR_MODELS)} or all"
            )
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {sorted(LOSSES)}")
        for name in ("steps", "batch_size", "samples"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name.replace('_', ' ')} must be at least 1")
        if self.batch_size < 2:
            raise UsageError("the batch needs at least 2 digits")
        if not self.lr > 0:
            raise UsageError("the learning rate must be positive")


@dataclass
class ModelResult:
    r"""One trained generator: its metrics, training time and where its grid went."""

    model: str
    metrics: dict[str, float]
    train_seconds: float
    final_loss: float
    grid: str | None = None
    saved_model: str | None = None


@dataclass
class MnistResult:
    r"""Everything ``otcolor mnist`` reports. ``reference`` holds the metrics of real train
    digits (the floor) and of two baselines (``noise``, ``gaussian``), computed exactly like
    the models'."""

    models: list[ModelResult]
    reference: dict[str, dict[str, float]]
    loss: str
    steps: int
    batch_size: int
    device: str
    seed: int
    data: str
    classifier: dict[str, object]
    seconds: float


def build_generator(name: str, data: Tensor, seed: int = 0) -> GradientMap:
    r"""Returns the map ``name`` at its MNIST size, started at a data-dependent point.

    The affine part starts (and stays) at zero and the bias at the mean digit; the units of the
    nonlinear part start from digits: their input directions (a C-MGN's rows of :math:`W`, which
    are also its output directions; an M-MGN's :math:`W_k`; an ICNN's first layer) are centred
    training digits, with a threshold that a latent passes for about 1 % of them. A latent then
    lights up the few units whose digits it points towards, and the map outputs the mean digit
    plus those digits' strokes. Started from the closed-form Gaussian map instead, every model
    kept its full-rank Gaussian noise (FID 546-1038 after 300-1200 steps, see the README).

    Arguments:
        name: a key of :data:`GENERATOR_MODELS`.
        data: training digits, with shape :math:`(N, 784)` in :math:`[0, 1]`.
        seed: seeds the initialisation.
    """

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, PIXELS, **GENERATOR_MODELS[name])
        mean = data.mean(0)
        with torch.no_grad():
            # No affine part (V = 0, frozen): any V^T V z adds full-rank Gaussian noise to every
            # pixel, which is what kept maps started at the Gaussian map noisy.
            model.linear.V.zero_()
            model.linear.V.requires_grad_(False)
            model.bias.copy_(mean)
            if isinstance(model, ICNN):
                first = model.inputs[0]
                first.weight.copy_(_templates(data, first.weight.shape[0], seed))
                first.bias.fill_(-TEMPLATE_THRESHOLD)
            else:  # C-MGN (H, D) and M-MGN (K, H, D) share W's layout in their last two axes
                count = model.W[..., 0].numel()
                model.W.copy_(_templates(data, count, seed).reshape(model.W.shape))
                model.b.fill_(-TEMPLATE_THRESHOLD)
    return model


#: Norm of the digit directions a generator's units start from, and the threshold a unit's
#: input must pass: :math:`w^\top z \sim \mathcal{N}(0, 12^2)` crosses 28 with probability 1 %,
#: so a latent lights up about 1 % of the units, those whose digits it is closest to. The norm
#: is above a centred digit's (7.2 on average), so one unit that fires draws a whole, saturated
#: digit (measured, C-MGN, 1200 WGAN steps: norm 3 / 6 / 9 / 12 gave FID 304 / 258 / 141 / 76 and
#: confidence 0.76 / 0.77 / 0.81 / 0.86).
TEMPLATE_NORM = 12.0
TEMPLATE_THRESHOLD = 28.0


def _templates(data: Tensor, count: int, seed: int) -> Tensor:
    r"""Returns ``count`` centred training digits scaled to norm :data:`TEMPLATE_NORM`,
    :math:`(count, 784)` (drawn with replacement when ``count`` exceeds the data)."""

    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(data.shape[0], (count,), generator=generator)
    digits = data[pick] - data.mean(0)
    return TEMPLATE_NORM * digits / digits.norm(dim=1, keepdim=True).clamp(min=1e-6)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    n: int,
    seed: int,
    device: torch.device | str = "cpu",
    chunk: int = 2000,
) -> Tensor:
    r"""Returns ``n`` digits :math:`T(z)`, :math:`z \sim \mathcal{N}(0, I_{784})` from a seeded
    CPU generator (so a seed gives the same latents on every device), clipped to
    :math:`[0, 1]`, with shape :math:`(n, 784)`, on the CPU."""

    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, PIXELS, generator=generator)
    out = [model(latents[i : i + chunk].to(device)).clamp(0, 1).cpu() for i in range(0, n, chunk)]
    return torch.cat(out)


def evaluate_samples(
    images: Tensor,
    classifier: Classifier,
    test_features: Tensor,
    test_images: np.ndarray,
) -> dict[str, float]:
    r"""Scores digits :math:`(N, 784)` in :math:`[0, 1]` against the test set.

    Returns:
        ``fid`` (Fréchet distance in the classifier's feature space), ``confidence`` (mean
        max-softmax probability), ``class_entropy`` (entropy of the predicted-class histogram,
        nats; :math:`\log 10` is balanced), ``sliced_w2`` (pixel space, 256 fixed directions).
    """

    features, probs = predict(classifier, images)
    confidence, entropy = class_consistency(probs)
    return {
        "fid": frechet_distance(features, test_features),
        "confidence": confidence,
        "class_entropy": entropy,
        "sliced_w2": sliced_w2(
            images.numpy().astype(np.float64),
            test_images,
            rng=np.random.default_rng(0),
            n_projections=256,
            n=None,
        ),
    }


def grid_image(images: Tensor, rows: int = 8, pad: int = 2) -> np.ndarray:
    r"""Tiles the first ``rows²`` digits :math:`(N, 784)` into an RGB image :math:`(H, W, 3)`
    in :math:`[0, 1]`, white digits on black with grey gutters."""

    n = rows * rows
    tiles = images[:n].reshape(-1, 28, 28).numpy()
    size = rows * 28 + (rows + 1) * pad
    grid = np.full((size, size), 0.3, dtype=np.float32)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, rows)
        top, left = pad + r * (28 + pad), pad + c * (28 + pad)
        grid[top : top + 28, left : left + 28] = tile
    return np.repeat(grid[:, :, None], 3, axis=2)


def _output_paths(output: Path, models: list[str]) -> list[Path]:
    if len(models) == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{name}{output.suffix}") for name in models]


def _save_model(path: Path, model: GradientMap, name: str, overwrite: bool = True) -> None:
    payload = {
        "model": name,
        "kwargs": GENERATOR_MODELS[name],
        "features": PIXELS,
        "state_dict": model.state_dict(),
    }
    atomic_torch_save(payload, path, overwrite)


def run_mnist(
    config: MnistConfig,
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    save_model: str | os.PathLike[str] | None = None,
    callback: Callback | None = None,
    data: MnistData | None = None,
) -> MnistResult:
    r"""Trains the generator(s) of ``config``, scores them, and writes one grid per model.

    With several models (``model="all"``) the grid ``out.png`` becomes ``out-cmgn.png``,
    ``out-mmgn.png``, ``out-icnn.png`` (and likewise ``save_model``). Every output is checked
    before any training and written atomically.

    Arguments:
        config: the settings.
        output: the grid PNG (``None``: no grid).
        force: overwrite existing outputs.
        save_model: where to save the trained map(s) (a ``torch.save`` dict with the model name,
            its constructor arguments and its ``state_dict``), or ``None``.
        callback: progress, see :data:`Callback`.
        data: already loaded digits (tests); read with :func:`load_mnist` otherwise.

    Raises:
        UsageError: a bad setting or an existing output without ``force``.
        InputError: missing or corrupt data that cannot be downloaded.
        OutputError: an output cannot be written.
        TrainingError: training diverged.
    """

    start = time.perf_counter()
    config.validate()
    device = resolve_device(config.device)
    models = config.models
    grids = _output_paths(Path(output), models) if output is not None else [None] * len(models)
    for grid in grids:
        if grid is not None:
            check_output_path(grid, [], force=force)
            if grid.suffix.lower() != ".png":
                raise UsageError(
                    f"{grid}: the grid is written as PNG", "give an output ending in .png"
                )
    saves = (
        _output_paths(Path(save_model), models) if save_model is not None else [None] * len(models)
    )
    for path in saves:
        if path is not None:
            if path.exists() and not force:
                raise UsageError(f"{path}: already exists", "pass --force to overwrite it")
            if not path.parent.is_dir():
                raise OutputError(f"{path.parent}: no such folder")

    def report(phase: str, done: int, total: int, info: str = "") -> None:
        if callback is not None:
            callback(phase, done, total, info)

    if data is None:
        data = load_mnist(
            config.data, config.download, progress=lambda d, t: report("download", d, t)
        )
    train = torch.from_numpy(data.train_images.reshape(-1, PIXELS))
    test = torch.from_numpy(data.test_images.reshape(-1, PIXELS))
    began = time.perf_counter()
    classifier, trained_now = load_or_train_classifier(
        train,
        torch.from_numpy(data.train_labels),
        data.fingerprint,
        cache_dir(),
        config.classifier,
        callback=lambda d, t: report("classifier", d, t),
    )

    classifier_seconds = time.perf_counter() - began
    n_eval = min(config.samples, test.shape[0])
    eval_rng = torch.Generator().manual_seed(config.seed + 7)
    test_eval = test[torch.randperm(test.shape[0], generator=eval_rng)[:n_eval]]
    test_features, test_probs = predict(classifier, test_eval)
    accuracy = float(
        (predict(classifier, test)[1].argmax(-1) == torch.from_numpy(data.test_labels))
        .double()
        .mean()
    )
    test_np = test_eval.numpy().astype(np.float64)
    reference = {
        "train_digits": evaluate_samples(
            train[torch.randperm(train.shape[0], generator=eval_rng)[:n_eval]],
            classifier,
            test_features,
            test_np,
        ),
        **_baselines(train, n_eval, config.seed, classifier, test_features, test_np),
    }

    results = []
    for name, grid, save in zip(models, grids, saves, strict=True):
        model = build_generator(name, train, config.seed).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)  # the critic's initialisation (wgan)
            loss = build_loss(
                config.loss,
                PIXELS,
                generator=torch.Generator().manual_seed(config.seed + 1),
                **({"reference": train.to(device)} if config.loss == "sliced" else {}),
            ).to(device)
        latents = torch.randn(
            train.shape[0], PIXELS, generator=torch.Generator().manual_seed(config.seed + 2)
        )
        fit_config = FitConfig(
            steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed
        )
        phase = f"train:{name}"
        report(phase, 0, config.steps, "")
        began = time.perf_counter()
        history = fit(
            model,
            loss,
            latents.to(device),
            train.to(device),
            fit_config,
            lambda step, logs, phase=phase: report(
                phase, step, config.steps, f"loss {logs['loss']:.4g}"
            ),
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        report("evaluate", 0, 1, name)
        images = sample(model, n_eval, config.seed + 3, device)
        metrics = evaluate_samples(images, classifier, test_features, test_np)
        if grid is not None:
            save_image(grid, grid_image(images), overwrite=force)
        if save is not None:
            _save_model(save, model.cpu(), name, overwrite=force)
        results.append(
            ModelResult(
                model=name,
                metrics=metrics,
                train_seconds=seconds,
                final_loss=history["loss"][-1] if history["loss"] else float("nan"),
                grid=str(grid) if grid is not None else None,
                saved_model=str(save) if save is not None else None,
            )
        )

    return MnistResult(
        models=results,
        reference=reference,
        loss=config.loss,
        steps=config.steps,
        batch_size=config.batch_size,
        device=str(device),
        seed=config.seed,
        data=str(data.folder),
        classifier={
            "test_accuracy": accuracy,
            "trained_now": trained_now,
            "seconds": classifier_seconds,  # training (first run) or loading the cache
            "test_confidence": class_consistency(test_probs)[0],
        },
        seconds=time.perf_counter() - start,
    )


def _baselines(
    train: Tensor,
    n: int,
    seed: int,
    classifier: Classifier,
    test_features: Tensor,
    test_np: np.ndarray,
) -> dict[str, dict[str, float]]:
    r"""Two reference generators scored like the models.

    ``noise``: every pixel drawn independently from a Gaussian with that pixel's training mean
    and standard deviation (clipped to [0, 1]): right per-pixel statistics, no structure.
    ``gaussian``: the closed-form Gaussian OT map (the best *affine* monotone map), i.e. digits
    drawn from the Gaussian with the training mean and full covariance.
    """

    from ..gaussian import moments
    from ..nn import sqrtm_psd

    generator = torch.Generator().manual_seed(seed + 11)
    mean, std = train.mean(0), train.std(0)
    noise = (mean + std * torch.randn(n, PIXELS, generator=generator)).clamp(0, 1)
    m, S = moments(train.double())
    gaussian = (
        (m + torch.randn(n, PIXELS, generator=generator, dtype=torch.float64) @ sqrtm_psd(S))
        .float()
        .clamp(0, 1)
    )
    return {
        "noise": evaluate_samples(noise, classifier, test_features, test_np),
        "gaussian": evaluate_samples(gaussian, classifier, test_features, test_np),
    }
