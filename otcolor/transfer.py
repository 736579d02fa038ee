r"""Colour transfer end to end: sample pixels, fit a monotone map, apply it everywhere, save."""

from __future__ import annotations

__all__ = [
    "ColorMap",
    "FittedMap",
    "TransferConfig",
    "TransferResult",
    "apply_color_map",
    "fit_color_map",
    "ot_plan_pairs",
    "transfer",
]

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .errors import UsageError
from .gaussian import bures_map, moments
from .image import DEFAULT_MAX_PIXELS, check_output_path, load_image, sample_pixels, save_image
from .losses import LOSSES, SlicedW2, build_loss, ot_assignment
from .metrics import sliced_w2
from .models import MODELS, AffineMap, build_model
from .train import FitConfig, RegressionConfig, fit, fit_regression, resolve_device

Callback = Callable[[int, dict[str, float]], None]

#: Architectures as the colour task uses them: 3-D, steep saturating activations (measured on
#: the benchmark pairs: tanh(4z) fits sunsets' spread best at width 64, see README).
COLOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 64, "layers": 2, "activation": "tanh", "steepness": 4.0},
    "mmgn": {"hidden_features": 8, "modules": 16},
    "icnn": {"hidden_features": (64, 64), "activation": "softplus"},
}

#: Per-loss training defaults. ``ot`` counts L-BFGS iterations, the others Adam steps; the
#: adversarial loss needs smaller steps than the others.
LOSS_SETTINGS: dict[str, dict[str, float]] = {
    "ot": {"steps": 200},
    "sliced": {"steps": 600, "lr": 5e-2},
    "kl": {"steps": 600, "lr": 1e-2},
    "wgan": {"steps": 600, "lr": 1e-3},
}

#: ``smoothness`` is given to users in units of this weight of the Jacobian penalty.
SMOOTHNESS_UNIT = 1e-4

#: Below this spread (per channel standard deviation) an image is treated as a single colour.
FLAT = 1e-4


@dataclass
class TransferConfig:
    r"""Settings of a colour transfer; the defaults are tuned on photographs in general."""

    model: str = "cmgn"  # a key of otcolor.models.MODELS
    loss: str = "ot"  # a key of otcolor.losses.LOSSES
    steps: int | None = None  # None: the loss's default (LOSS_SETTINGS); independent of image size
    samples: int = 50_000  # pixels drawn from each image (moments, sliced losses, final check)
    pairs: int = 4000  # source/target pairs of the exact OT plan (loss "ot")
    chunk: int = 1000  # the plan is solved exactly on chunks of this many pairs
    batch_size: int = 4096  # pixels per step (Adam losses)
    smoothness: float = 4.0  # trades closeness to the target for a smoother map (see README)
    init: str = "gaussian"  # "gaussian" (closed-form OT map) or "identity"
    fallback: bool = True  # use the closed-form Gaussian map when the learned one fits worse
    lr: float | None = None  # None: the loss's default (LOSS_SETTINGS)
    device: str = "auto"  # auto, cpu, cuda or mps
    seed: int = 0  # seeds pixel sampling, initialisation and training
    quality: int = 95  # JPEG/WebP quality of the output
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # refuse larger inputs (decompression bombs)
    chunk_size: int = 1 << 18  # pixels per forward pass when applying, bounds memory

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}", f"choose one of {sorted(MODELS)}")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {sorted(LOSSES)}")
        if self.init not in ("gaussian", "identity"):
            raise UsageError(f"unknown init {self.init!r}", "choose gaussian or identity")
        for name in ("steps", "samples", "pairs", "chunk", "batch_size", "chunk_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        if self.smoothness < 0:
            raise UsageError(f"smoothness must be >= 0, got {self.smoothness}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"lr must be positive, got {self.lr}")

    @property
    def total_steps(self) -> int:
        r"""The number of training steps this config runs (``steps`` or the loss's default)."""

        return int(self.steps if self.steps is not None else LOSS_SETTINGS[self.loss]["steps"])


@dataclass
class TransferResult:
    r"""What a transfer did and how well: the ``--json`` output of ``otcolor transfer``."""

    output: Path
    model: str
    loss: str
    device: str
    seed: int
    steps: int
    seconds: float  # the whole call: load, fit, apply, save
    fit_seconds: float
    final_loss: float
    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)


class ColorMap(nn.Module):
    r"""Creates the colour map :math:`T(x) = c + s\, G\big((x - c) / s\big)` around a model :math:`G`.

    The model works in coordinates centred on the source mean :math:`c` and scaled by one
    scalar :math:`s` (the source's spread), where its default initialisation is well scaled. An
    isotropic change of variables maps OT maps to OT maps, and :math:`T` is the gradient of
    :math:`s^2 \psi((x - c)/s) + \ldots` when :math:`G = \nabla \psi`: still monotone.

    Arguments:
        model: :math:`G`, :math:`(N, 3) \to (N, 3)`.
        center: :math:`c`, with shape :math:`(3,)`.
        scale: :math:`s > 0`.
    """

    def __init__(self, model: nn.Module, center: Tensor, scale: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("center", center.clone())
        self.scale = float(scale)

    def normalize(self, x: Tensor) -> Tensor:
        r"""Returns :math:`(x - c) / s`, :math:`(N, 3) \to (N, 3)`."""

        return (x - self.center) / self.scale

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns :math:`T(x)`, :math:`(N, 3) \to (N, 3)`."""

        return self.center + self.scale * self.model(self.normalize(x))


class ConstantMap(nn.Module):
    r"""Creates :math:`T(x) = c`: the exact OT map onto a single colour (and the barycentric
    map out of one), the gradient of the linear :math:`c^\top x`."""

    def __init__(self, colour: Tensor) -> None:
        super().__init__()
        self.register_buffer("colour", colour.clone())

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns :math:`c` for every point, :math:`(N, 3) \to (N, 3)`."""

        return self.colour.expand(x.shape[0], -1)


@dataclass
class FittedMap:
    r"""A fitted colour map and how it was fitted."""

    map: nn.Module  # (N, 3) -> (N, 3), on `device`
    device: torch.device
    history: dict[str, list[float]]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # fit quality, normalised units


def fit_color_map(
    source: np.ndarray,
    target: np.ndarray,
    config: TransferConfig | None = None,
    callback: Callback | None = None,
) -> FittedMap:
    r"""Fits a monotone map pushing the ``source`` colours onto the ``target`` colours.

    Single-colour inputs take the exact closed form instead of training: onto one colour, every
    colour goes to it; out of one colour, no deterministic map can split it, so it goes to the
    target mean (a warning says so).

    Arguments:
        source: source colours, with shape :math:`(N, 3)`, in :math:`[0, 1]`.
        target: target colours, with shape :math:`(M, 3)`, in :math:`[0, 1]`.
        config: the settings (model, loss, steps, ...).
        callback: called as ``callback(step, logs)`` after every training step.
    """

    config = config or TransferConfig()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    x = torch.as_tensor(np.asarray(source, dtype=np.float32)).to(device)
    y = torch.as_tensor(np.asarray(target, dtype=np.float32)).to(device)
    warnings: list[str] = []

    flat_source = bool(x.std(0).max() < FLAT) if x.shape[0] > 1 else True
    flat_target = bool(y.std(0).max() < FLAT) if y.shape[0] > 1 else True
    if flat_target or flat_source:
        if flat_target:
            warnings.append("the target has a single colour: every pixel is mapped to it")
        else:
            warnings.append(
                "the source has a single colour: no colour map can split it; "
                "it is mapped to the target's mean colour"
            )
        history = {"loss": [], "lr": []}
        fitted = ConstantMap(y.mean(0))
        return FittedMap(fitted, device, history, time.perf_counter() - start, warnings)

    center = x.mean(0)
    scale = float(x.std(0).mean().clamp(min=FLAT))
    xs, ys = (x - center) / scale, (y - center) / scale

    # Closed forms and initialisation on the CPU, float64 for the 3x3 algebra: MPS has no
    # float64 and lacks some linear algebra (eigh), and none of this is worth a device anyway.
    model = build_model(config.model, 3, **COLOR_MODELS[config.model])
    m0, S0 = moments(xs.cpu().double())
    if config.init == "gaussian":
        m1, S1 = moments(ys.cpu().double())
        # A regulariser relative to the spread: a grey or near-grey source has (almost) no
        # variance across the grey axis, and an absolute eps would stretch it a thousandfold.
        # Added to both covariances, so that equal inputs still give exactly the identity.
        eps = 1e-3 * float(torch.trace(S0)) / 3 + 1e-9
        A, b = bures_map(m0, S0, m1, S1 + eps * torch.eye(3, dtype=S1.dtype), eps=eps)
    else:
        A, b = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    model.init_linear(A.float(), b.float(), center=m0.float(), nonlinear_scale=2.0)
    model = model.to(device)

    generator = torch.Generator().manual_seed(config.seed + 1)
    smoothness = config.smoothness * SMOOTHNESS_UNIT
    if config.loss == "ot":
        inputs, targets = ot_plan_pairs(xs, ys, config.pairs, config.chunk, generator)
        # The penalty's tail mean is as good on 1000 fixed points as on 4000, at a third of the
        # cost (measured on the ocean pair: w2 1.91 / amp 9.1 either way).
        regression = RegressionConfig(
            steps=config.total_steps, smoothness=smoothness, penalty_points=1000
        )
        history = fit_regression(model, inputs, targets, regression, callback)
    else:
        if config.loss == "sliced":
            loss: nn.Module = SlicedW2(projections=16, generator=generator, reference=ys)
        else:
            loss = build_loss(config.loss, 3, generator=generator)
        fit_config = FitConfig(
            steps=config.total_steps,
            batch_size=config.batch_size,
            lr=config.lr if config.lr is not None else LOSS_SETTINGS[config.loss]["lr"],
            smoothness=smoothness,
            seed=config.seed,
        )
        history = fit(model, loss.to(device), xs, ys, fit_config, callback)

    # Never return something worse than the closed form: judge both maps on one fixed sliced-W2
    # evaluation (128 directions, 16384 pixels of each) and keep the better.
    gaussian = AffineMap(A.float().to(device), b.float().to(device))
    judge = SlicedW2(
        generator=torch.Generator().manual_seed(0), reference=ys[:16384], directions=128
    )
    probe = xs[:16384]
    with torch.no_grad():
        learned_score = float(judge.evaluate(model(probe)))
        gaussian_score = float(judge.evaluate(gaussian(probe)))
    chosen: nn.Module = model
    if config.fallback and not learned_score <= gaussian_score:
        warnings.append(
            f"the learned map fits worse than the closed-form Gaussian map (sliced W2^2 "
            f"{learned_score:.3g} > {gaussian_score:.3g}); using the Gaussian map"
        )
        chosen = gaussian
    color_map = ColorMap(chosen, center, scale).to(device)
    color_map.eval()
    scores = {"fit_sliced_w2": learned_score, "gaussian_sliced_w2": gaussian_score}
    return FittedMap(color_map, device, history, time.perf_counter() - start, warnings, scores)


def ot_plan_pairs(
    source: Tensor, target: Tensor, pairs: int, chunk: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    r"""Returns ``pairs`` source points and where an exact OT plan sends them.

    Random source and target points are split into chunks of ``chunk`` pairs and each chunk's
    assignment is solved exactly (:func:`otcolor.losses.ot_assignment`): four 1000-point
    problems cost a tenth of one 4000-point problem and, measured on the benchmark pairs, fit
    the map as well. The plan is a permutation, so every target colour is used once: fitted by
    least squares it spreads colours as the target does, where an averaged plan would shrink them.

    Returns:
        The source points and their targets, each with shape :math:`(P, D)`.
    """

    n = min(pairs, source.shape[0], target.shape[0])
    chunk = min(chunk, n)
    n -= n % chunk
    pick_source = torch.randperm(source.shape[0], generator=generator)[:n].to(source.device)
    pick_target = torch.randperm(target.shape[0], generator=generator)[:n].to(target.device)
    x, y = source[pick_source], target[pick_target]
    sent = torch.empty_like(x)
    for begin in range(0, n, chunk):
        part = slice(begin, begin + chunk)
        sent[part] = y[part][ot_assignment(x[part], y[part])]
    return x, sent


def apply_color_map(
    color_map: nn.Module,
    rgb: np.ndarray,
    device: torch.device | str = "cpu",
    chunk_size: int = 1 << 18,
) -> np.ndarray:
    r"""Applies a colour map to every pixel, ``chunk_size`` pixels at a time (bounded memory).

    Arguments:
        color_map: the map, :math:`(N, 3) \to (N, 3)`.
        rgb: the image, with shape :math:`(H, W, 3)`, in :math:`[0, 1]`.

    Returns:
        The mapped image, with shape :math:`(H, W, 3)`, float32, clipped to :math:`[0, 1]`.
    """

    pixels = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)  # (H W, 3)
    out = np.empty_like(pixels)
    with torch.no_grad():
        for begin in range(0, pixels.shape[0], chunk_size):
            chunk = torch.from_numpy(pixels[begin : begin + chunk_size]).to(device)
            out[begin : begin + chunk_size] = color_map(chunk).cpu().numpy()
    np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(rgb.shape)


def transfer(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: TransferConfig | None = None,
    *,
    force: bool = False,
    callback: Callback | None = None,
) -> TransferResult:
    r"""Transfers the colours of ``target`` onto ``source`` and writes ``output``.

    Everything that can be checked cheaply (inputs decode, output is writable, no input is
    overwritten) is checked before training; the output is written atomically.

    Arguments:
        source: the image whose colours change.
        target: the image whose colours are wanted.
        output: where to write the result; its extension picks the format.
        config: the settings.
        force: whether an existing ``output`` may be replaced (an input never is).
        callback: called as ``callback(step, logs)`` after every training step.

    Raises:
        OtcolorError: a subclass with the exit code of the failure (see ``otcolor.errors``).
    """

    config = config or TransferConfig()
    start = time.perf_counter()
    resolve_device(config.device)  # fail on an unavailable device before any decoding
    source_image = load_image(source, max_pixels=config.max_pixels)
    target_image = load_image(target, max_pixels=config.max_pixels)
    has_alpha = source_image.alpha is not None
    check_output_path(output, [source, target], force=force, has_alpha=has_alpha)
    warnings = [*source_image.warnings, *target_image.warnings]

    rng = np.random.default_rng(config.seed)
    x = sample_pixels(source_image, config.samples, rng)
    y = sample_pixels(target_image, config.samples, rng)
    fitted = fit_color_map(x, y, config, callback)
    warnings += fitted.warnings

    mapped = apply_color_map(fitted.map, source_image.rgb, fitted.device, config.chunk_size)
    warnings += save_image(
        output, mapped, alpha=source_image.alpha, like=source_image, quality=config.quality
    )

    mapped_samples = mapped.reshape(-1, 3)
    if has_alpha:
        mapped_samples = mapped_samples[source_image.alpha.reshape(-1) > 0]

    def summary_sw2(a: np.ndarray) -> float:
        # A quick summary, not the benchmark: 64 directions on 16384 pixels take ~0.1 s.
        rng = np.random.default_rng(config.seed)
        return sliced_w2(a, y, rng, n_projections=64, n=16384)

    metrics = {
        "sliced_w2": summary_sw2(mapped_samples),
        "sliced_w2_before": summary_sw2(x),
        "rms_displacement": float(np.sqrt(np.mean(np.sum((mapped - source_image.rgb) ** 2, -1)))),
    }
    losses = fitted.history["loss"]
    return TransferResult(
        output=Path(output),
        model=config.model,
        loss=config.loss,
        device=str(fitted.device),
        seed=config.seed,
        steps=len(losses),
        seconds=time.perf_counter() - start,
        fit_seconds=fitted.seconds,
        final_loss=float(np.mean(losses[-20:])) if losses else 0.0,
        metrics=metrics,
        warnings=warnings,
    )
