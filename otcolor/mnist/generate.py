r"""``otcolor mnist``'s run: settings, training, scoring and outputs, for one model or all.

The generator (:mod:`otcolor.mnist.latent`) is a monotone map :math:`T = \nabla\varphi` in
whitened PCA coordinates, decoded as :math:`\mu + U \Lambda^{1/2} T(z)` and started at the
closed-form Gaussian (Bures) map; :mod:`otcolor.mnist.fitting` trains it with a loss of
:mod:`otcolor.losses` (the default sliced W2, or the seed's adversarial WGAN-GP);
:mod:`otcolor.mnist.scoring` scores it beside the reference generators and
:mod:`otcolor.mnist.outputs` writes the grid, the map and the samples. :func:`run_mnist` ties
them together; the public names of those modules stay importable from here.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_MODELS",
    "LatentGenerator",
    "MnistConfig",
    "MnistResult",
    "ModelResult",
    "build_generator",
    "evaluate_samples",
    "grid_image",
    "pca_basis",
    "run_mnist",
    "sample",
    "save_samples",
]

import copy
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..device import resolve_device
from ..errors import OutputError, UsageError
from ..fitting.trainers import AdamConfig
from ..io import check_output_path, save_image
from ..losses import LOSSES
from .classifier import ClassifierConfig, class_consistency, load_or_train_classifier, predict
from .data import MnistData, cache_dir, load_mnist
from .fitting import DEFAULT_LR, fit_latent
from .gmm import GaussianMixtureConfig
from .latent import GENERATOR_MODELS, PIXELS, LatentGenerator, build_generator, pca_basis, sample
from .memorisation import nearest_distances
from .outputs import grid_image, output_paths, save_samples
from .outputs import save_model as _save_model
from .scoring import baselines, evaluate_samples

#: ``callback(phase, done, total, info)``: phase is ``download``, ``classifier``, ``train:<model>``
#: or ``evaluate``.
Progress = Callable[[str, int, int, str], None]


@dataclass
class MnistConfig:
    r"""Settings of ``otcolor mnist`` (the README reports what the defaults give on a CPU)."""

    model: str = "cmgn"  # a key of GENERATOR_MODELS, or "all"
    loss: str = "sliced"  # a key of otcolor.losses.LOSSES (see the README for the comparison)
    steps: int = 1200  # Adam steps per model
    batch_size: int = 256
    lr: float | None = None  # None: the loss's DEFAULT_LR (the seed's 1e-4 for wgan)
    device: str = "auto"
    seed: int = 0
    samples: int = 10_000  # generated digits scored (and test digits they are compared with)
    latent: int = 50  # PCA coordinates the map works in (the GMM reference uses the same)
    nonlinear_scale: float = 0.5  # start: the nonlinear Jacobian's size vs the Gaussian map's
    gmm: GaussianMixtureConfig = field(default_factory=GaussianMixtureConfig)
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
        for name in ("steps", "batch_size", "samples", "latent"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name.replace('_', ' ')} must be at least 1")
        if self.batch_size < 2:
            raise UsageError("the batch needs at least 2 digits")
        if self.lr is not None and not self.lr > 0:
            raise UsageError("the learning rate must be positive")
        if self.latent > PIXELS:
            raise UsageError(f"the latent has at most {PIXELS} coordinates")


@dataclass
class ModelResult:
    r"""One trained generator: its metrics, training time and where its grid went."""

    model: str
    metrics: dict[str, float]
    train_seconds: float
    start_metrics: dict[str, float] = field(default_factory=dict)  # the model at step 0
    one_step_metrics: dict[str, float] = field(default_factory=dict)  # after one Adam step
    final_loss: float = float("nan")
    grid: str | None = None
    saved_model: str | None = None


@dataclass
class MnistResult:
    r"""Everything ``otcolor mnist`` reports. ``reference`` holds the metrics of real train
    digits (the floor) and of three baselines (``noise``, ``gaussian``, ``gmm_pca``), computed
    exactly like the models'."""

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
    latent: int = 50
    samples_out: str | None = None
    lr: float | None = None  # the learning rate used


def run_mnist(
    config: MnistConfig,
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    save_model: str | os.PathLike[str] | None = None,
    samples_out: str | os.PathLike[str] | None = None,
    callback: Progress | None = None,
    data: MnistData | None = None,
) -> MnistResult:
    r"""Trains the generator(s) of ``config``, scores them, and writes one grid per model.

    With several models (``model="all"``) the grid ``out.png`` becomes ``out-cmgn.png``,
    ``out-mmgn.png``, ``out-icnn.png`` (and likewise ``save_model`` and ``samples_out``). Every
    output is checked before any training and written atomically.

    Arguments:
        config: the settings.
        output: the grid PNG (``None``: no grid).
        force: overwrite existing outputs.
        save_model: where to save the trained generator(s) (a ``torch.save`` dict with the model
            name, its constructor arguments and its ``state_dict``), or ``None``.
        samples_out: where to write the scored samples (``.npy``, float32, :math:`(N, 784)` in
            :math:`[0, 1]`), or ``None``.
        callback: progress, see :data:`Progress`.
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
    grids = output_paths(Path(output), models) if output is not None else [None] * len(models)
    for grid in grids:
        if grid is not None:
            check_output_path(grid, [], force=force)
            if grid.suffix.lower() != ".png":
                raise UsageError(
                    f"{grid}: the grid is written as PNG", "give an output ending in .png"
                )
    saves = (
        output_paths(Path(save_model), models) if save_model is not None else [None] * len(models)
    )
    dumps = (
        output_paths(Path(samples_out), models)
        if samples_out is not None
        else [None] * len(models)
    )
    for path in [*saves, *dumps]:
        if path is not None:
            if path.exists() and not force:
                raise UsageError(f"{path}: already exists", "pass --force to overwrite it")
            if not path.parent.is_dir():
                raise OutputError(f"{path.parent}: no such folder")
    for path in dumps:
        if path is not None and path.suffix.lower() != ".npy":
            raise UsageError(f"{path}: samples are written as .npy", "give a name ending in .npy")

    def report(phase: str, done: int, total: int, info: str = "") -> None:
        if callback is not None:
            callback(phase, done, total, info)

    if data is None:
        data = load_mnist(
            config.data, config.download, progress=lambda d, t: report("download", d, t)
        )
    train = torch.from_numpy(data.train_images.reshape(-1, PIXELS))
    test = torch.from_numpy(data.test_images.reshape(-1, PIXELS))
    if config.latent > train.shape[0] - 1:
        raise UsageError(f"a latent of {config.latent} needs more than {config.latent} digits")
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
    report("evaluate", 0, 1, "references")
    test_nn = nearest_distances(test_eval, train)

    def score(images: Tensor) -> dict[str, float]:
        return evaluate_samples(images, classifier, test_features, test_np, train, test_nn)

    reference = {
        "train_digits": score(train[torch.randperm(train.shape[0], generator=eval_rng)[:n_eval]]),
        **baselines(train, n_eval, config.latent, config.gmm, config.seed, score),
    }

    results = []
    for name, grid, save, dump in zip(models, grids, saves, dumps, strict=True):
        model = build_generator(
            name, train, config.seed, config.latent, config.nonlinear_scale
        ).to(device)
        latent_fit = fit_latent(model, train, config.loss, config.seed, device)
        report("evaluate", 0, 1, f"{name} at its start")
        start_metrics = score(sample(model, n_eval, config.seed + 3, device))
        lr = config.lr if config.lr is not None else DEFAULT_LR[config.loss]
        fit_config = AdamConfig(
            steps=config.steps, batch_size=config.batch_size, lr=lr, seed=config.seed
        )
        # The one-step row: a copy (generator, and critic for wgan) trained for one step of
        # the same schedule, so the full run below is unaffected.
        one = copy.deepcopy(model)
        latent_fit.run(one, dataclasses.replace(fit_config, steps=1), trial=True)
        one_step_metrics = score(sample(one, n_eval, config.seed + 3, device))
        del one
        phase = f"train:{name}"
        report(phase, 0, config.steps, "")
        began = time.perf_counter()
        history = latent_fit.run(
            model,
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
        metrics = score(images)
        if grid is not None:
            save_image(grid, grid_image(images), overwrite=force)
        if save is not None:
            _save_model(save, model.cpu(), name, overwrite=force)
        if dump is not None:
            save_samples(dump, images, overwrite=force)
        results.append(
            ModelResult(
                model=name,
                metrics=metrics,
                train_seconds=seconds,
                start_metrics=start_metrics,
                one_step_metrics=one_step_metrics,
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
        latent=config.latent,
        lr=config.lr if config.lr is not None else DEFAULT_LR[config.loss],
        samples_out=str(samples_out) if samples_out is not None else None,
    )
