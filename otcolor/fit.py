r"""Fitting a colour map in memory: pixels in, a monotone map out (no files).

:func:`fit_color_map` is what ``otcolor transfer`` runs between loading and applying: the
closed-form Gaussian start, the chosen loss and estimator, and the check against the Gaussian
map. Its settings and tuned tables live here too.
"""

from __future__ import annotations

__all__ = [
    "COLOR_MODELS",
    "DEFAULT_SMOOTHNESS",
    "ESTIMATORS",
    "INITS",
    "LOSS_SETTINGS",
    "FittedMap",
    "FitSettings",
    "fit_color_map",
    "ot_plan_pairs",
    "sample_pixels",
]

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import Tensor, nn

from .atoms import WeightedColors, source_atoms, target_atoms
from .device import first_line, is_out_of_memory, release_device_memory, resolve_device
from .errors import InputError, TrainingError, UsageError
from .estimate import EstimatorConfig, fit_brenier
from .gaussian import bures_map, moments
from .io import LoadedImage
from .losses import LOSSES, SlicedW2, WeightedSlicedW2, build_loss, ot_assignment
from .models import MODELS, AffineMap, ColorMap, ConstantMap, build_model
from .train import FitConfig, RegressionConfig, fit, fit_regression

Callback = Callable[[int, dict[str, float]], None]

#: Architectures as the colour task uses them: 3-D, steep saturating activations (measured on
#: the benchmark pairs: tanh(4z) fits sunsets' spread best at width 64, see README).
COLOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 64, "layers": 2, "activation": "tanh", "steepness": 4.0},
    "mmgn": {"hidden_features": 8, "modules": 16},
    "icnn": {"hidden_features": (64, 64), "activation": "softplus"},
}

#: Per-loss training defaults. ``ot`` counts L-BFGS iterations, the others Adam steps; the
#: adversarial loss needs smaller steps than the others. Its critic (the seed's 3-layer MLP) is
#: tuned for colours here only, so the benchmarks' WassersteinGP defaults stay: a gradient
#: penalty of 0.3 (not 10), a critic lr of 3e-3 and 200 critic steps on the Gaussian start
#: before the map moves took the ocean pair's w2 ratio from 5.3 to about 3.5 (issue 14).
LOSS_SETTINGS: dict[str, dict[str, float]] = {
    "ot": {"steps": 250},
    "sliced": {"steps": 600, "lr": 5e-2},
    "kl": {"steps": 600, "lr": 1e-2},
    "wgan": {"steps": 600, "lr": 1e-3, "penalty": 0.3, "critic_lr": 3e-3, "critic_warmup": 200},
}

#: Estimators of the OT map for loss ``ot`` (see :mod:`otcolor.estimate`): ``full`` fits the
#: whole weighted colour distributions (the default), ``plan`` regresses onto a sampled exact plan.
ESTIMATORS = {
    "full": "weighted atoms, hm-mkl-hm start, full sliced W2 refinement",
    "plan": "regression onto an exact OT plan of 4 x 1000 sampled pixels",
}

#: Starting points of the map: the closed-form Gaussian OT map, or the identity.
INITS: tuple[str, ...] = ("gaussian", "identity")

#: Share of the ``ot`` L-BFGS iterations that the ``full`` estimator spends on its start.
START_SHARE = 0.7

#: ``smoothness`` is given to users in units of this weight of the Jacobian penalty.
SMOOTHNESS_UNIT = 1e-4

#: Below this spread (per channel standard deviation) an image is treated as a single colour.
FLAT = 1e-4

#: The default ``smoothness`` with and without the regrain. The regrain keeps the grain out of
#: the map's stretch, so its map can be fitted closer: on five photo pairs 0.3 was closer than
#: 0.6 on every pair and kept amp999 under 5 on all of them, where 0 reached 5.9 on a
#: portrait (``benchmarks/pixels.py --smoothness 0 0.3``, docs/regrain.md). The pure path keeps
#: 0.6, bit for bit what it was.
DEFAULT_SMOOTHNESS: dict[bool, float] = {True: 0.3, False: 0.6}


@dataclass
class FitSettings:
    r"""How a colour map is fitted (:func:`fit_color_map`); the defaults are tuned on photographs
    in general. File, look and apply settings are :class:`otcolor.transfer.TransferConfig`'s,
    which extends this class."""

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
    # Trades closeness to the target for a smoother map (see README); None: the pure map's
    # DEFAULT_SMOOTHNESS (TransferConfig picks the regrain's when it regrains).
    smoothness: float | None = None
    init: str = "gaussian"  # "gaussian" (closed-form OT map) or "identity"
    fallback: bool = True  # use the closed-form Gaussian map when the learned one fits worse
    strict: bool = False  # a fit worse than the Gaussian map is an error, not a refit/fallback
    lr: float | None = None  # None: the loss's default (LOSS_SETTINGS)
    device: str = "auto"  # auto, cpu, cuda or mps
    seed: int = 0  # seeds pixel sampling, initialisation and training

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}", f"choose one of {sorted(MODELS)}")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {sorted(LOSSES)}")
        if self.estimator not in ESTIMATORS:
            raise UsageError(
                f"unknown estimator {self.estimator!r}", f"choose one of {sorted(ESTIMATORS)}"
            )
        if self.init not in INITS:
            raise UsageError(f"unknown init {self.init!r}", "choose gaussian or identity")
        for name in ("steps", "samples", "atoms", "pairs", "chunk", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        if self.smoothness is None:
            self.smoothness = DEFAULT_SMOOTHNESS[False]
        if self.smoothness < 0:
            raise UsageError(f"smoothness must be >= 0, got {self.smoothness}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"lr must be positive, got {self.lr}")

    @property
    def total_steps(self) -> int:
        r"""The number of training steps this config runs (``steps`` or the loss's default)."""

        return int(self.steps if self.steps is not None else LOSS_SETTINGS[self.loss]["steps"])

    @property
    def fit(self) -> FitSettings:
        r"""The fit settings alone (a :class:`FitSettings`, also of a subclass's instance)."""

        return FitSettings(**{f.name: getattr(self, f.name) for f in fields(FitSettings)})


def sample_pixels(
    image: LoadedImage,
    n: int,
    generator: np.random.Generator,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""Draws distinct pixels of an image, ignoring fully transparent ones.

    Arguments:
        image: the image.
        n: the number of pixels wanted.
        generator: the random generator, for reproducibility.
        mask: only pixels where this :math:`(H, W)` mask is at least 0.5 are drawn.

    Returns:
        The colours, with shape :math:`(N', 3)`, float32, where :math:`N' = \min(n, M)` and
        :math:`M` is the number of pixels with non-zero alpha.

    Raises:
        InputError: every pixel is fully transparent.
    """

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")

    colours = image.rgb.reshape(-1, 3)  # (H W, 3)
    if image.alpha is None and mask is None:
        eligible = None
        count = colours.shape[0]
    else:
        keep = np.ones(colours.shape[0], bool)
        if image.alpha is not None:
            keep &= image.alpha.reshape(-1) > 0
        if mask is not None:
            keep &= mask.reshape(-1) >= 0.5
        eligible = np.flatnonzero(keep)
        count = eligible.size
    if count == 0:
        if mask is not None:
            raise InputError(f"{image.path}: the mask selects no visible pixel", "nothing to fit")
        raise InputError(f"{image.path}: every pixel is fully transparent", "nothing to fit")

    picks = generator.choice(count, size=min(n, count), replace=False)
    if eligible is not None:
        picks = eligible[picks]
    return colours[picks].astype(np.float32, copy=False)


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
    config: FitSettings | None = None,
    callback: Callback | None = None,
) -> FittedMap:
    r"""Fits a monotone map pushing the ``source`` colours onto the ``target`` colours.

    Single-colour inputs take the exact closed form instead of training: onto one colour, every
    colour goes to it; out of one colour, no deterministic map can split it, so it goes to the
    target mean (a warning says so).

    Arguments:
        source: source colours, with shape :math:`(N, 3)`, in :math:`[0, 1]`.
        target: target colours, with shape :math:`(M, 3)`, in :math:`[0, 1]`.
        config: the fit settings (model, loss, steps, ...). A
            :class:`~otcolor.transfer.TransferConfig` is read as its :attr:`~FitSettings.fit`;
            one with a non-sRGB ``space`` is refused rather than silently fitted in sRGB.
        callback: called as ``callback(step, logs)`` after every training step.

    Raises:
        UsageError: ``config`` has a ``space`` other than ``"rgb"``.
        TrainingError: training diverged, ran out of device memory, or (with ``strict``) the
            learned map fits worse than the closed-form Gaussian map.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> day, sunset = rng.random((2000, 3)), rng.random((2000, 3)) ** 2  # sunset: darker
        >>> fitted = fit_color_map(day, sunset, FitSettings(steps=20, samples=2000, device="cpu"))
        >>> mapped = fitted.map(torch.from_numpy(day).float()).detach().numpy()
        >>> bool(abs(mapped.mean() - sunset.mean()) < 0.02)  # the mean moves to the target's
        True
    """

    config = config or FitSettings()
    if getattr(config, "space", "rgb") != "rgb":  # a TransferConfig: its look is not for fitting
        raise UsageError(
            f"fit_color_map fits the colours it is given; it cannot honour space={config.space!r}",
            "convert both with otcolor.color.to_space and pass config.fit, or call transfer()",
        )
    config = config.fit
    try:
        return _fit_color_map(source, target, config, callback)
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        release_device_memory()
        raise TrainingError(
            f"out of device memory while fitting ({first_line(err)})",
            "use fewer --samples or --device cpu",
        ) from err


def _fit_color_map(
    source: np.ndarray, target: np.ndarray, config: FitSettings, callback: Callback | None
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
        settings = LOSS_SETTINGS[config.loss]
        if config.loss == "sliced":
            loss: nn.Module = SlicedW2(projections=16, generator=generator, reference=ys)
        else:
            loss_kwargs = {key: settings[arg] for arg, key in _LOSS_KWARGS if arg in settings}
            loss = build_loss(config.loss, 3, generator=generator, **loss_kwargs)
            warm = int(settings.get("critic_warmup", 0))
            if warm:
                _warm_up_critic(loss, model, xs, ys, warm, config.batch_size, config.seed)
        fit_config = FitConfig(
            steps=config.total_steps,
            batch_size=config.batch_size,
            lr=config.lr if config.lr is not None else settings["lr"],
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


#: LOSS_SETTINGS keys that are the loss's own arguments (setting name, argument name).
_LOSS_KWARGS = (("critic_steps", "critic_steps"), ("critic_lr", "lr"), ("penalty", "penalty"))


def _warm_up_critic(
    loss: nn.Module, model: nn.Module, xs: Tensor, ys: Tensor, steps: int, batch: int, seed: int
) -> None:
    r"""Trains the adversarial loss's critic alone on the start map, one fresh batch a step, so
    that the map's first steps follow a critic that already separates the two distributions."""

    generator = torch.Generator().manual_seed(seed + 2)
    for _ in range(steps):
        x = xs[torch.randint(xs.shape[0], (batch,), generator=generator).to(xs.device)]
        y = ys[torch.randint(ys.shape[0], (batch,), generator=generator).to(ys.device)]
        with torch.no_grad():
            mapped = model(x)
        loss.train_critic(mapped, y, 1)


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
