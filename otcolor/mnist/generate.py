r"""``otcolor mnist``'s run: settings, checks, training, scoring and outputs, for one model or
all.

The generator (:mod:`otcolor.mnist.latent`) is a monotone map :math:`T = \nabla\varphi` from a
standard Gaussian onto the whitened codes of a latent space, the autoencoder's
(:mod:`otcolor.mnist.autoencoder`, default) or PCA's, decoded to pixels;
:mod:`otcolor.mnist.objectives` trains it (the semi-dual by default, or a pushforward loss such
as the seed's WGAN-GP); :mod:`otcolor.mnist.scoring` scores it beside the reference generators
and :mod:`otcolor.mnist.outputs` writes the grid, the model and the samples. :func:`run_mnist`
ties them together.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_MODELS",
    "MAX_BATCH",
    "MAX_STEPS",
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

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..device import resolve_device
from ..errors import UsageError
from ..io import check_distinct_outputs, check_output_path, save_image
from .autoencoder import AutoencoderConfig, load_or_train_autoencoder
from .classifier import ClassifierConfig, class_consistency, load_or_train_classifier, predict
from .data import FILES, MnistData, cache_dir, find_data, load_mnist
from .gmm import GaussianMixtureConfig
from .latent import (
    GENERATOR_MODELS,
    PIXELS,
    SPACES,
    AutoencoderCodec,
    LatentGenerator,
    PCACodec,
    build_generator,
    pca_basis,
    sample,
)
from .objectives import (
    DEFAULT_LR,
    DEFAULT_STEPS,
    OBJECTIVES,
    LatentTrainingConfig,
    build_objective,
    train_map,
)
from .outputs import grid_image, output_paths, save_samples
from .outputs import save_model as _save_model
from .scoring import Scorer, autoencoder_references, evaluate_samples, pixel_references

#: ``callback(phase, done, total, info)``: phase is ``download``, ``classifier``,
#: ``autoencoder``, ``train:<model>`` or ``evaluate``.
Progress = Callable[[str, int, int, str], None]

#: The most Adam steps per model: about an hour of training on two CPU cores.
MAX_STEPS = 100_000

#: The largest batch: latents and codes per step (the training codes are 60,000).
MAX_BATCH = 65_536


@dataclass
class MnistConfig:
    r"""Settings of ``otcolor mnist`` (docs/mnist.md reports what the defaults give on a CPU)."""

    model: str = "cmgn"  # a key of GENERATOR_MODELS, or "all"
    loss: str = "semidual"  # a name of otcolor.mnist.objectives.OBJECTIVES
    space: str = "ae"  # a key of SPACES: the autoencoder's latent, or PCA's
    steps: int | None = None  # Adam steps per model; None: DEFAULT_STEPS of the loss
    batch_size: int | None = None  # None: DEFAULT_STEPS of the loss
    lr: float | None = None  # None: DEFAULT_LR of the loss
    device: str = "auto"
    seed: int = 0  # seeds the autoencoder, the map's start, its training and the samples
    samples: int = 10_000  # generated digits scored (and test digits they are compared with)
    latent: int | None = None  # the latent's dimension; None: SPACES[space]
    nonlinear_share: float = 0.5  # the start's nonlinear Jacobian, relative to the identity
    check_samples: int = 2000  # samples per row in the memorisation and energy checks
    gmm: GaussianMixtureConfig = field(default_factory=GaussianMixtureConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    data: Path | None = None  # folder of the IDX files (else $OTCOLOR_DATA, else the cache)
    download: bool = True  # fetch missing files into the cache
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def models(self) -> list[str]:
        return list(GENERATOR_MODELS) if self.model == "all" else [self.model]

    @property
    def latent_features(self) -> int:
        return SPACES.get(self.space, 1) if self.latent is None else self.latent

    @property
    def training(self) -> LatentTrainingConfig:
        r"""The map's training settings, the loss's defaults filling what is ``None``."""

        steps, batch = DEFAULT_STEPS.get(self.loss, (1000, 1024))
        return LatentTrainingConfig(
            steps=steps if self.steps is None else self.steps,
            batch_size=batch if self.batch_size is None else self.batch_size,
            lr=DEFAULT_LR.get(self.loss, 1e-3) if self.lr is None else self.lr,
            seed=self.seed,
        )

    def validate(self) -> None:
        r"""Raises :class:`~otcolor.errors.UsageError` on a bad setting, before any work."""

        if self.model != "all" and self.model not in GENERATOR_MODELS:
            raise UsageError(
                f"unknown model {self.model!r}", f"choose one of {sorted(GENERATOR_MODELS)} or all"
            )
        if self.loss not in OBJECTIVES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {list(OBJECTIVES)}")
        if self.space not in SPACES:
            raise UsageError(f"unknown space {self.space!r}", f"choose one of {list(SPACES)}")
        training = self.training
        bounds = {
            "steps": (training.steps, 1, MAX_STEPS),
            "batch_size": (training.batch_size, 2, MAX_BATCH),
            "samples": (self.samples, 2, 10**9),
            "check_samples": (self.check_samples, 2, 10**9),
            "latent": (self.latent_features, 1, PIXELS),
        }
        for name, (value, low, high) in bounds.items():
            if not low <= value <= high:
                raise UsageError(
                    f"{name.replace('_', ' ')} must be between {low} and {high} (got {value})"
                )
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError("the learning rate must be a positive finite number")
        if not 0 <= self.nonlinear_share < 1:
            raise UsageError("the nonlinear share of the start must be in [0, 1)")
        if not 0 <= self.seed < 2**63:
            raise UsageError("the seed must be between 0 and 2**63 - 1")


@dataclass
class ModelResult:
    r"""One trained generator: its metrics, training time and where its outputs went."""

    model: str
    metrics: dict[str, float]
    train_seconds: float
    start_metrics: dict[str, float] = field(default_factory=dict)  # the model at step 0
    final_loss: float = float("nan")
    grid: str | None = None
    saved_model: str | None = None
    samples_out: str | None = None


@dataclass
class MnistResult:
    r"""Everything ``otcolor mnist`` reports. ``reference`` holds the metrics of real training
    digits (copies: the floor of FID, the ceiling of memorisation) and of the reference
    generators (pixel noise, the pixel Gaussian, PCA's GMM and reconstructions, and with
    ``space="ae"`` the autoencoder's reconstructions, Gaussian and GMM), computed exactly
    like the models'."""

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
    space: str = "ae"
    latent: int = 16
    autoencoder: dict[str, object] = field(default_factory=dict)
    samples_out: str | None = None
    lr: float | None = None  # the learning rate used
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


def _input_files(folder: str | os.PathLike[str] | None) -> list[Path]:
    r"""The IDX files a run reads (or would download), so that no output can replace one."""

    found = find_data(folder)
    where = found if found is not None else cache_dir() / "mnist"
    return [where / f"{name}{suffix}" for name, _, _ in FILES.values() for suffix in ("", ".gz")]


def _check_outputs(
    config: MnistConfig,
    output: str | os.PathLike[str] | None,
    save_model: str | os.PathLike[str] | None,
    samples_out: str | os.PathLike[str] | None,
    force: bool,
) -> tuple[list[Path | None], list[Path | None], list[Path | None]]:
    r"""Every output path, per model, checked before any work: formats, folders, ``force``,
    no output on an input IDX file and no two outputs on one file."""

    models = config.models

    def expand(path: str | os.PathLike[str] | None) -> list[Path | None]:
        return output_paths(Path(path), models) if path is not None else [None] * len(models)

    grids, saves, dumps = expand(output), expand(save_model), expand(samples_out)
    for grid in grids:
        if grid is not None and grid.suffix.lower() != ".png":
            raise UsageError(
                f"{grid}: the grid is written as PNG", "give an output ending in .png"
            )
    for dump in dumps:
        if dump is not None and dump.suffix.lower() != ".npy":
            raise UsageError(f"{dump}: samples are written as .npy", "give a name ending in .npy")
    inputs = _input_files(config.data)
    outputs = [*grids, *saves, *dumps]
    check_distinct_outputs(outputs, inputs)
    for path in outputs:
        if path is not None:
            check_output_path(path, inputs, force=force, image=path in grids)
    return grids, saves, dumps


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
    output is checked before any work: against the input IDX files and every other output
    (with or without ``force``), and each is written atomically.

    Arguments:
        config: the settings.
        output: the grid PNG (``None``: no grid).
        force: overwrite existing outputs.
        save_model: where to save the trained generator(s) (a ``torch.save`` dict with the model
            name, its constructor arguments, the latent space and the ``state_dict`` of the
            map and its decoder), or ``None``.
        samples_out: where to write the scored samples (``.npy``, float32, :math:`(N, 784)` in
            :math:`[0, 1]`), or ``None``.
        callback: progress, see :data:`Progress`.
        data: already loaded digits (tests); read with :func:`load_mnist` otherwise.

    Raises:
        UsageError: a bad setting, an output on an input or on another output, or an
            existing output without ``force``.
        InputError: missing or corrupt data that cannot be downloaded.
        OutputError: an output cannot be written.
        TrainingError: training diverged.
    """

    start = time.perf_counter()
    timings: dict[str, float] = {}
    config.validate()
    device = resolve_device(config.device)
    grids, saves, dumps = _check_outputs(config, output, save_model, samples_out, force)

    def report(phase: str, done: int, total: int, info: str = "") -> None:
        if callback is not None:
            callback(phase, done, total, info)

    def timed(name: str, began: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

    began = time.perf_counter()
    if data is None:
        data = load_mnist(
            config.data, config.download, progress=lambda d, t: report("download", d, t)
        )
    train = torch.from_numpy(data.train_images.reshape(-1, PIXELS))
    test = torch.from_numpy(data.test_images.reshape(-1, PIXELS))
    latent = config.latent_features
    if config.space == "pca" and latent > train.shape[0] - 1:
        raise UsageError(f"a latent of {latent} needs more than {latent} digits")
    timed("data", began)

    began = time.perf_counter()
    classifier, classifier_trained = load_or_train_classifier(
        train,
        torch.from_numpy(data.train_labels),
        data.fingerprint,
        cache_dir(),
        config.classifier,
        callback=lambda d, t: report("classifier", d, t),
    )
    classifier_seconds = time.perf_counter() - began
    timed("classifier", began)

    began = time.perf_counter()
    n_eval = min(config.samples, test.shape[0])
    eval_rng = torch.Generator().manual_seed(config.seed + 7)
    test_eval = test[torch.randperm(test.shape[0], generator=eval_rng)[:n_eval]]
    _, test_probs = predict(classifier, test_eval)
    accuracy = float(
        (predict(classifier, test)[1].argmax(-1) == torch.from_numpy(data.test_labels))
        .double()
        .mean()
    )
    report("evaluate", 0, 1, "references")
    score = Scorer.build(classifier, test_eval, train, config.check_samples)
    train_draw = train[torch.randperm(train.shape[0], generator=eval_rng)[:n_eval]]
    reference = {
        "train_digits": score(train_draw),
        **pixel_references(
            train, test_eval, n_eval, SPACES["pca"], config.gmm, config.seed, score
        ),
    }
    timed("references", began)

    autoencoder_info: dict[str, object] = {}
    if config.space == "ae":
        began = time.perf_counter()
        ae_config = dataclasses.replace(config.autoencoder, latent=latent, seed=config.seed)
        autoencoder, ae_trained = load_or_train_autoencoder(
            train,
            data.fingerprint,
            cache_dir(),
            ae_config,
            device,
            callback=lambda d, t: report("autoencoder", d, t),
        )
        codec: PCACodec | AutoencoderCodec = AutoencoderCodec.fit(autoencoder, train)
        autoencoder_info = {
            "trained_now": ae_trained,
            "seconds": time.perf_counter() - began,
            **dataclasses.asdict(ae_config),
        }
        timed("autoencoder", began)
        began = time.perf_counter()
        reference.update(
            autoencoder_references(codec, train, test_eval, n_eval, config.gmm, config.seed, score)
        )
        timed("references", began)
    else:
        codec = PCACodec.fit(train, latent)
    with torch.no_grad():
        codes = codec.encode(train)
    unwhitening = codec.unwhitening

    train_config = config.training
    results = []
    for name, grid, save, dump in zip(config.models, grids, saves, dumps, strict=True):
        began = time.perf_counter()
        model = build_generator(name, codec, config.seed, config.nonlinear_share)
        model = model.to(device)
        objective = build_objective(
            config.loss, codes.to(device), unwhitening.to(device), config.seed
        )
        report("evaluate", 0, 1, f"{name} at its start")
        start_metrics = score(sample(model, n_eval, config.seed + 3, device))
        timed("scoring", began)

        phase = f"train:{name}"
        report(phase, 0, train_config.steps, "")
        began = time.perf_counter()
        history = train_map(
            model.map,
            objective,
            codes.shape[0],
            train_config,
            lambda step, loss, phase=phase: report(
                phase, step, train_config.steps, f"loss {loss:.4g}"
            ),
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        timed("training", began)

        began = time.perf_counter()
        report("evaluate", 0, 1, name)
        images = sample(model, n_eval, config.seed + 3, device)
        metrics = score(images)
        timed("scoring", began)
        if grid is not None:
            save_image(grid, grid_image(images), overwrite=force)
        if save is not None:
            _save_model(save, model.cpu(), name, config.space, overwrite=force)
        if dump is not None:
            save_samples(dump, images, overwrite=force)
        results.append(
            ModelResult(
                model=name,
                metrics=metrics,
                train_seconds=seconds,
                start_metrics=start_metrics,
                final_loss=history[-1] if history else float("nan"),
                grid=str(grid) if grid is not None else None,
                saved_model=str(save) if save is not None else None,
                samples_out=str(dump) if dump is not None else None,
            )
        )

    return MnistResult(
        models=results,
        reference=reference,
        loss=config.loss,
        steps=train_config.steps,
        batch_size=train_config.batch_size,
        device=str(device),
        seed=config.seed,
        data=str(data.folder),
        classifier={
            "test_accuracy": accuracy,
            "trained_now": classifier_trained,
            "seconds": classifier_seconds,  # training (first run) or loading the cache
            "test_confidence": class_consistency(test_probs)[0],
        },
        seconds=time.perf_counter() - start,
        space=config.space,
        latent=latent,
        autoencoder=autoencoder_info,
        lr=train_config.lr,
        samples_out=str(samples_out) if samples_out is not None else None,
        timings=timings,
    )
