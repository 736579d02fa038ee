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

from .atoms import WeightedColors, source_atoms, target_atoms
from .color import SPACES, Look, apply_look, to_space
from .errors import TrainingError, UsageError
from .estimate import EstimatorConfig, fit_brenier
from .gaussian import bures_map, moments
from .image import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    _all_finite,  # chunked: no full-size temporary on big images
    check_distinct_outputs,
    check_output_path,
    load_image,
    load_mask,
    sample_pixels,
    save_image,
)
from .losses import LOSSES, SlicedW2, WeightedSlicedW2, build_loss, ot_assignment
from .metrics import sliced_w2
from .models import MODELS, AffineMap, build_model
from .regrain import REGRAIN, base_colors, regrain
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
    "ot": {"steps": 250},
    "sliced": {"steps": 600, "lr": 5e-2},
    "kl": {"steps": 600, "lr": 1e-2},
    "wgan": {"steps": 600, "lr": 1e-3},
}

#: Estimators of the OT map for loss ``ot`` (see :mod:`otcolor.estimate`): ``full`` fits the
#: whole weighted colour distributions (the default), ``plan`` regresses onto a sampled exact plan.
ESTIMATORS = {
    "full": "weighted atoms, hm-mkl-hm start, full sliced W2 refinement",
    "plan": "regression onto an exact OT plan of 4 x 1000 sampled pixels",
}

#: Share of the ``ot`` L-BFGS iterations that the ``full`` estimator spends on its start.
START_SHARE = 0.7

#: ``smoothness`` is given to users in units of this weight of the Jacobian penalty.
SMOOTHNESS_UNIT = 1e-4

#: Below this spread (per channel standard deviation) an image is treated as a single colour.
FLAT = 1e-4

#: Out of device memory, :func:`apply_color_map` halves its chunk down to this many pixels.
MIN_APPLY_CHUNK = 1 << 10


#: The default ``smoothness`` with and without the regrain. The regrain keeps the grain out of
#: the map's stretch, so its map can be fitted closer: on five photo pairs 0.3 was closer than
#: 0.6 on every pair and kept amp999 under 5 on all of them, where 0 reached 5.9 on a
#: portrait (``benchmarks/pixels.py --smoothness 0 0.3``, docs/regrain.md). The pure path keeps
#: 0.6, bit for bit what it was.
DEFAULT_SMOOTHNESS: dict[bool, float] = {True: 0.3, False: 0.6}


@dataclass
class TransferConfig:
    r"""Settings of a colour transfer; the defaults are tuned on photographs in general."""

    model: str = "cmgn"  # a key of otcolor.models.MODELS
    loss: str = "ot"  # a key of otcolor.losses.LOSSES
    steps: int | None = None  # None: the loss's default (LOSS_SETTINGS); independent of image size
    samples: int = 1 << 20  # pixels drawn from each image (all of them up to a megapixel)
    estimator: str = "full"  # loss "ot": a key of ESTIMATORS
    atoms: int = 4000  # estimator "full": at most this many weighted source atoms
    penalty_atoms: bool = False  # estimator "full": smoothness penalty on the weighted atoms
    penalty_power: float = 3.0  # estimator "full": power mean of the smoothness penalty
    rotations: int = 12  # estimator "full": bases of sliced directions (the axes + random ones)
    pairs: int = 4000  # estimator "plan": source/target pairs of the exact OT plan
    chunk: int = 1000  # estimator "plan": the plan is solved exactly on chunks of this many pairs
    batch_size: int = 4096  # pixels per step (Adam losses)
    # Trades closeness to the target for a smoother map (see README); None: DEFAULT_SMOOTHNESS
    # of the path (`regrain` on or off), resolved when the config is made.
    smoothness: float | None = None
    init: str = "gaussian"  # "gaussian" (closed-form OT map) or "identity"
    fallback: bool = True  # use the closed-form Gaussian map when the learned one fits worse
    strict: bool = False  # a fit worse than the Gaussian map is an error, not a refit/fallback
    lr: float | None = None  # None: the loss's default (LOSS_SETTINGS)
    device: str = "auto"  # auto, cpu, cuda or mps
    seed: int = 0  # seeds pixel sampling, initialisation and training
    quality: int = 95  # JPEG/WebP quality of the output
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # refuse larger inputs (decompression bombs)
    chunk_size: int = 1 << 18  # pixels per forward pass when applying, bounds memory
    space: str = "rgb"  # fit and apply in "rgb" (sRGB) or "lab" (CIELAB)
    strength: float = 1.0  # t in x + t (T(x) - x): 0 is the identity, 1 the full map
    preserve_luminance: bool = False  # keep each pixel's CIELAB lightness
    regrain: bool = True  # fit on the base layer, keep the grain (otcolor.regrain); off: pure map

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}", f"choose one of {sorted(MODELS)}")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {sorted(LOSSES)}")
        if self.estimator not in ESTIMATORS:
            raise UsageError(
                f"unknown estimator {self.estimator!r}", f"choose one of {sorted(ESTIMATORS)}"
            )
        if self.init not in ("gaussian", "identity"):
            raise UsageError(f"unknown init {self.init!r}", "choose gaussian or identity")
        for name in ("steps", "samples", "atoms", "pairs", "chunk", "batch_size", "chunk_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        if self.smoothness is None:
            self.smoothness = DEFAULT_SMOOTHNESS[self.regrain]
        if self.smoothness < 0:
            raise UsageError(f"smoothness must be >= 0, got {self.smoothness}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if self.space not in SPACES:
            raise UsageError(f"unknown space {self.space!r}", f"choose one of {list(SPACES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be in [0, 1], got {self.strength}")

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
    saved_map: Path | None = None  # --save-map
    lut: Path | None = None  # --lut


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

    #: Nothing to regrain: every pixel goes to one colour (otcolor.regrain applies it pure).
    constant = True

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

    Raises:
        TrainingError: training diverged, ran out of device memory, or (with ``strict``) the
            learned map fits worse than the closed-form Gaussian map.
    """

    config = config or TransferConfig()
    try:
        return _fit_color_map(source, target, config, callback)
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not _is_out_of_memory(err):
            raise
        _release_device_memory()
        raise TrainingError(
            f"out of device memory while fitting ({_first_line(err)})",
            "use fewer --samples or --device cpu",
        ) from err


def _fit_color_map(
    source: np.ndarray, target: np.ndarray, config: TransferConfig, callback: Callback | None
) -> FittedMap:
    r"""The body of :func:`fit_color_map`, which turns running out of memory into an error."""

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
    m1, S1 = moments(ys.cpu().double())
    # A regulariser relative to the spread: a grey or near-grey source has (almost) no
    # variance across the grey axis, and an absolute eps would stretch it a thousandfold.
    # Added to both covariances, so that equal inputs still give exactly the identity.
    eps = 1e-3 * float(torch.trace(S0)) / 3 + 1e-9
    GA, Gb = bures_map(m0, S0, m1, S1 + eps * torch.eye(3, dtype=S1.dtype), eps=eps)
    if config.init == "gaussian":
        A, b = GA, Gb
    else:
        A, b = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    model.init_linear(A.float(), b.float(), center=m0.float(), nonlinear_scale=2.0)
    model = model.to(device)

    generator = torch.Generator().manual_seed(config.seed + 1)
    smoothness = config.smoothness * SMOOTHNESS_UNIT
    # The closed form to beat, whatever the start was.
    gaussian = AffineMap(GA.float().to(device), Gb.float().to(device))
    if config.loss == "ot" and config.estimator == "full":
        rng = np.random.default_rng(config.seed)
        source_set = source_atoms(xs.cpu().numpy(), config.atoms, rng)
        target_set = target_atoms(ys.cpu().numpy())
        loss_full = WeightedSlicedW2(
            target_set.points, target_set.weights, config.rotations, generator=generator
        )
        source_set = WeightedColors(source_set.points.to(device), source_set.weights.to(device))
        steps = config.total_steps
        estimator = EstimatorConfig(
            start_steps=round(START_SHARE * steps),
            refine_steps=steps - round(START_SHARE * steps),
            smoothness=smoothness,
            penalty_atoms=config.penalty_atoms,
            penalty_power=config.penalty_power,
        )

        def restart() -> None:
            model.init_linear(GA.float(), Gb.float(), center=m0.float(), nonlinear_scale=0.0)

        history, scores = fit_brenier(
            model, source_set, loss_full, gaussian, estimator, xs[:1000], callback, restart
        )
        if scores["restarted_from_gaussian"]:
            if config.strict:
                raise TrainingError(
                    "the learned map fits worse than the closed-form Gaussian map",
                    "drop --strict to refit from the Gaussian map, or try more --steps",
                )
            warnings.append(
                "the first fit was worse than the closed-form Gaussian map; "
                "it was refitted starting from the Gaussian map"
            )
        color_map = ColorMap(model, center, scale).to(device)
        color_map.eval()
        return FittedMap(color_map, device, history, time.perf_counter() - start, warnings, scores)
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
    judge = SlicedW2(
        generator=torch.Generator().manual_seed(0), reference=ys[:16384], directions=128
    )
    probe = xs[:16384]
    with torch.no_grad():
        learned_score = float(judge.evaluate(model(probe)))
        gaussian_score = float(judge.evaluate(gaussian(probe)))
    chosen: nn.Module = model
    worse = not learned_score <= gaussian_score  # NaN counts as worse
    comparison = f"sliced W2^2 {learned_score:.3g} > {gaussian_score:.3g}"
    if worse and config.strict:
        raise TrainingError(
            f"the learned map fits worse than the closed-form Gaussian map ({comparison})",
            "drop --strict to fall back to the Gaussian map, or try more --steps or another --loss",
        )
    if worse and config.fallback:
        warnings.append(
            f"the learned map fits worse than the closed-form Gaussian map ({comparison}); "
            "using the Gaussian map"
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

    Out of device memory, the chunk is halved and the same pixels retried, down to
    :data:`MIN_APPLY_CHUNK`; a map is applied pixel by pixel, so the result does not depend on
    the chunk size.

    Arguments:
        color_map: the map, :math:`(N, 3) \to (N, 3)`.
        rgb: the image, with shape :math:`(H, W, 3)`, in :math:`[0, 1]`.

    Returns:
        The mapped image, with shape :math:`(H, W, 3)`, float32, clipped to :math:`[0, 1]`.

    Raises:
        TrainingError: out of device memory even with the smallest chunk.
    """

    pixels = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)  # (H W, 3)
    out = np.empty_like(pixels)
    begin = 0
    with torch.no_grad():
        while begin < pixels.shape[0]:
            end = begin + chunk_size
            try:
                chunk = torch.from_numpy(pixels[begin:end]).to(device)
                out[begin:end] = color_map(chunk).cpu().numpy()
            except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if not _is_out_of_memory(err):
                    raise
                chunk = None  # drop the reference so the retry can reuse its memory
                _release_device_memory()
                if chunk_size <= MIN_APPLY_CHUNK:
                    raise TrainingError(
                        f"out of device memory applying the map, even {chunk_size} pixels "
                        f"at a time ({_first_line(err)})",
                        "use --device cpu",
                    ) from err
                chunk_size = max(chunk_size // 2, MIN_APPLY_CHUNK)
                continue
            begin = end
    np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(rgb.shape)


def _rms_distance(a: np.ndarray, b: np.ndarray, rows: int = 1 << 20) -> float:
    r"""The root mean squared distance between the pixels of two images, chunk by chunk."""

    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    total = 0.0
    for i in range(0, a.shape[0], rows):
        total += float(np.square(a[i : i + rows] - b[i : i + rows]).sum(dtype=np.float64))
    return float(np.sqrt(total / max(a.shape[0], 1)))


def _subsample(
    pixels: np.ndarray, alpha: np.ndarray | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    r"""At most ``n`` pixels with non-zero alpha, drawn as :func:`otcolor.metrics.sliced_w2`
    draws them (same generator calls), without copying the whole image first."""

    flat = pixels.reshape(-1, pixels.shape[-1])
    eligible = None if alpha is None else np.flatnonzero(alpha.reshape(-1) > 0)
    count = flat.shape[0] if eligible is None else eligible.size
    if count <= n:
        return flat if eligible is None else flat[eligible]
    picks = rng.choice(count, size=n, replace=False)
    return flat[picks if eligible is None else eligible[picks]]


def _is_out_of_memory(err: BaseException) -> bool:
    r"""Whether torch ran out of device memory (CUDA's own error, or MPS/ROCm's message)."""

    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(err, oom) or "out of memory" in str(err).lower()


def _release_device_memory() -> None:
    r"""Returns cached CUDA blocks to the driver, so that a smaller retry can use them."""

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def sample_base(
    image: LoadedImage,
    mask: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
    device: torch.device,
    base: np.ndarray | None = None,
) -> np.ndarray:
    r"""Draws pixels of an image's base layer (:func:`otcolor.regrain.base_colors`, or ``base``
    when the caller computed it to regrain with later); alpha and the mask are read at the base
    layer's pixels."""

    scale = REGRAIN.scale
    base = LoadedImage(
        base_colors(image.rgb, REGRAIN, device) if base is None else base,
        alpha=None if image.alpha is None else image.alpha[::scale, ::scale],
        path=image.path,
    )
    return sample_pixels(base, n, rng, mask=None if mask is None else mask[::scale, ::scale])


def transfer(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: TransferConfig | None = None,
    *,
    force: bool = False,
    callback: Callback | None = None,
    source_mask: str | os.PathLike[str] | None = None,
    target_mask: str | os.PathLike[str] | None = None,
    apply_mask: str | os.PathLike[str] | None = None,
    save_map: str | os.PathLike[str] | None = None,
    lut: str | os.PathLike[str] | None = None,
    lut_size: int | None = None,
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
        source_mask, target_mask: only pixels where these masks (grey images of each image's
            size) are at least 0.5 are sampled for fitting.
        apply_mask: where the map applies: pixels become :math:`x + m (T(x) - x)`.
        save_map: also write the look as a map file (:mod:`otcolor.mapfile`).
        lut: also write the look as a 3-D LUT (``.cube``, or ``.png`` for a HaldCLUT).
        lut_size: the LUT's points per axis (default 33 for ``.cube``, 64 for Hald).

    Raises:
        OtcolorError: a subclass with the exit code of the failure (see ``otcolor.errors``).
    """

    from .lut import check_lut, export_lut
    from .mapfile import fingerprint
    from .mapfile import save_map as write_map

    config = config or TransferConfig()
    start = time.perf_counter()
    resolve_device(config.device)  # fail on an unavailable device before any decoding
    # The output is checked before decoding (a 50-megapixel decode takes seconds), and once
    # more for its format's alpha support when the source turns out to have alpha.
    inputs = [p for p in (source, target, source_mask, target_mask, apply_mask) if p is not None]
    check_distinct_outputs([output, save_map, lut], inputs)  # masks are inputs too
    check_output_path(output, inputs, force=force)
    for extra in (save_map, lut):
        if extra is not None:
            check_output_path(extra, [*inputs, output], force=force, image=False)
    if lut is not None:
        check_lut(lut, None, lut_size)
    source_image = load_image(source, max_pixels=config.max_pixels)
    target_image = load_image(target, max_pixels=config.max_pixels)
    has_alpha = source_image.alpha is not None
    if has_alpha:
        check_output_path(output, inputs, force=force, has_alpha=True)
    warnings = [*source_image.warnings, *target_image.warnings]

    rng = np.random.default_rng(config.seed)
    masks = {
        "source": None if source_mask is None else load_mask(source_mask, source_image.size),
        "target": None if target_mask is None else load_mask(target_mask, target_image.size),
        "apply": None if apply_mask is None else load_mask(apply_mask, source_image.size),
    }
    # Hashed now, not after the fit: the map must name the masks that were used.
    mask_prints = {
        name: fingerprint(path)
        for name, path in (("source_mask", source_mask), ("target_mask", target_mask))
        if path is not None and save_map is not None
    }
    if config.regrain:
        # Both sides are fitted as base layers: the map moves the images' structure colours,
        # not their grain, and an image onto itself stays the identity (otcolor.regrain).
        device = resolve_device(config.device)
        # Kept: the regrain below filters the same base layer again otherwise.
        source_base = base_colors(source_image.rgb, REGRAIN, device)
        x = sample_base(source_image, masks["source"], config.samples, rng, device, source_base)
        y = sample_base(target_image, masks["target"], config.samples, rng, device)
    else:
        x = sample_pixels(source_image, config.samples, rng, mask=masks["source"])
        y = sample_pixels(target_image, config.samples, rng, mask=masks["target"])
    space = config.space
    fitted = fit_color_map(to_space(x, space), to_space(y, space), config, callback)
    warnings += fitted.warnings

    # One route for every consumer (apply, LUTs, video): see otcolor.color.
    look = Look(fitted.map, space, config.strength, config.preserve_luminance, fitted.device)

    def apply(look: Look) -> np.ndarray:
        if config.regrain:
            return regrain(
                look, source_image.rgb, REGRAIN, mask=masks["apply"], base=source_base
            )
        return apply_look(
            look, source_image.rgb, bit_depth=source_image.bit_depth, mask=masks["apply"]
        )

    try:
        mapped = apply(look)
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not _is_out_of_memory(err):
            raise
        if str(look.device) == "cpu":
            raise TrainingError(
                f"out of memory applying the map ({_first_line(err)})", "use a smaller image"
            ) from err
        # The map is small: the device is full of something else. Finish on the CPU.
        _release_device_memory()
        warnings.append(
            f"out of device memory applying the map ({_first_line(err)}); applied on the CPU"
        )
        look = Look(fitted.map.cpu(), space, config.strength, config.preserve_luminance, "cpu")
        mapped = apply(look)
    if not _all_finite(mapped):
        raise TrainingError(
            "the fitted map gives non-finite colours; nothing was written",
            "try another --seed, --loss or --smoothness",
        )
    warnings += save_image(
        output,
        mapped,
        alpha=source_image.alpha,
        like=source_image,
        quality=config.quality,
        overwrite=force,
    )
    if save_map is not None:
        fit_settings = {
            k: getattr(config, k)
            for k in (
                "model", "loss", "estimator", "steps", "samples", "smoothness", "init", "seed",
                "regrain",
            )
        }
        info = {
            "fit": fit_settings,
            "source": fingerprint(source, source_image.size, source_image.sha256),
            "target": fingerprint(target, target_image.size, target_image.sha256),
        }
        info.update(mask_prints)
        write_map(save_map, look, info, overwrite=force)
    if lut is not None:
        export_lut(look, lut, lut_size, overwrite=force)

    if config.regrain:
        # The fit saw base layers; the summary compares the images themselves.
        summary_rng = np.random.default_rng(config.seed)
        x = sample_pixels(source_image, config.samples, summary_rng, mask=masks["source"])
        y = sample_pixels(target_image, config.samples, summary_rng, mask=masks["target"])

    def summary_sw2(a: np.ndarray, alpha: np.ndarray | None = None) -> float:
        # A quick summary, not the benchmark: 64 directions on 16384 pixels take ~0.1 s.
        rng = np.random.default_rng(config.seed)
        return sliced_w2(_subsample(a, alpha, 16384, rng), y, rng, n_projections=64, n=16384)

    metrics = {
        "sliced_w2": summary_sw2(mapped, source_image.alpha),
        "sliced_w2_before": summary_sw2(x),
        "rms_displacement": _rms_distance(mapped, source_image.rgb),
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
        saved_map=None if save_map is None else Path(save_map),
        lut=None if lut is None else Path(lut),
    )
