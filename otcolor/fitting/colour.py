r"""Fitting a colour map in memory: colours in, a monotone map out (no files, no images).

:func:`fit_color_map` normalises the two samples, starts the model at the closed-form Gaussian
map, runs the chosen estimator (:mod:`otcolor.fitting.estimators`) and applies the one policy
that keeps the result no worse than that closed form. Its settings, :class:`FitSettings`, say
only how the map is fitted; how it is sampled and applied is :mod:`otcolor.pipeline`'s.
"""

from __future__ import annotations

__all__ = [
    "COLOR_MODELS",
    "DEFAULT_SMOOTHNESS",
    "INITS",
    "FitSettings",
    "FittedMap",
    "default_smoothness",
    "fit_color_map",
]

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..device import first_line, is_out_of_memory, release_device_memory, resolve_device
from ..errors import TrainingError, UsageError
from ..gaussian import bures_map, moments
from ..losses import LOSSES
from ..models import MODELS, AffineMap, ColorMap, ConstantMap, build_model
from .estimators import ESTIMATORS, LOSS_SETTINGS, Estimator, Problem
from .trainers import Callback, History, new_history

#: Architectures as the colour task uses them: 3-D, steep saturating activations (measured on
#: the benchmark pairs: tanh(4z) fits sunsets' spread best at width 64, see README).
COLOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 64, "layers": 2, "activation": "tanh", "steepness": 4.0},
    "mmgn": {"hidden_features": 8, "modules": 16},
    "icnn": {"hidden_features": (64, 64), "activation": "softplus"},
}

#: Starting points of the map: the closed-form Gaussian OT map, or the identity.
INITS: tuple[str, ...] = ("gaussian", "identity")

#: ``smoothness`` is given to users in units of this weight of the Jacobian penalty.
SMOOTHNESS_UNIT = 1e-4

#: Below this spread (per channel standard deviation) an image is treated as a single colour.
FLAT = 1e-4

#: The default ``smoothness``, by what the map is fitted on: base layers (the regrain) or pixels
#: (the pure map). The regrain keeps the grain out of the map's stretch, so its map can be
#: fitted closer: on five photo pairs 0.3 was closer than 0.6 on every pair and kept amp999
#: under 5 on all of them, where 0 reached 5.9 on a portrait (``benchmarks/pixels.py
#: --smoothness 0 0.3``, docs/regrain.md). The pure path keeps 0.6.
DEFAULT_SMOOTHNESS: dict[str, float] = {"regrain": 0.3, "pure": 0.6}

#: Seeds the model's random start (its nonlinear part), whatever ``--seed`` is.
INIT_SEED = 0

#: The most training steps a fit accepts (a typo of a few zeros must not hang for days).
MAX_STEPS = 1_000_000


def default_smoothness(regrain: bool) -> float:
    r"""The default ``smoothness`` of a map fitted for a regrained look or a pure one: the one
    place this default is decided (:data:`DEFAULT_SMOOTHNESS`)."""

    return DEFAULT_SMOOTHNESS["regrain" if regrain else "pure"]


@dataclass(frozen=True)
class FitSettings:
    r"""How a colour map is fitted (:func:`fit_color_map`); the defaults are tuned on
    photographs in general. Validated once, when made.

    Arguments:
        model: a key of :data:`otcolor.models.MODELS`.
        loss: a key of :data:`otcolor.losses.LOSSES`.
        estimator: a key of :data:`~otcolor.fitting.estimators.ESTIMATORS` that trains
            ``loss``; ``None``: ``full`` for ``ot``, ``minibatch`` for the others.
        options: the estimator's settings (an instance of its ``Settings``); ``None``: its
            defaults.
        steps: training steps; ``None``: the loss's default (``LOSS_SETTINGS``).
        samples: pixels the pipeline draws from each image (all of them up to a megapixel).
        smoothness: trades closeness to the target for a smoother map (see README); ``None``:
            :func:`default_smoothness` of the pure map (the pipeline passes the regrain's).
        init: ``"gaussian"`` (the closed-form OT map) or ``"identity"``.
        never_worse: when the result fits worse than the closed-form Gaussian map (by the
            estimator's own fit term), restart the model at the Gaussian map and refine it.
        strict: a result worse than the Gaussian map is an error instead.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        seed: seeds sampling, initialisation and training.
    """

    model: str = "cmgn"
    loss: str = "ot"
    estimator: str | None = None
    options: object | None = None
    steps: int | None = None
    samples: int = 1 << 20
    smoothness: float | None = None
    init: str = "gaussian"
    never_worse: bool = True
    strict: bool = False
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}", f"choose one of {sorted(MODELS)}")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}", f"choose one of {sorted(LOSSES)}")
        estimator = self.estimator_class  # checks the name
        if self.loss not in estimator.losses:
            raise UsageError(
                f"estimator {self.estimator!r} does not train loss {self.loss!r}",
                f"it trains {', '.join(estimator.losses)}",
            )
        if self.options is not None and not isinstance(self.options, estimator.Settings):
            raise UsageError(
                f"options for estimator {self.estimator_name!r} must be a "
                f"{estimator.Settings.__name__}, got {type(self.options).__name__}"
            )
        if self.init not in INITS:
            raise UsageError(f"unknown init {self.init!r}", "choose gaussian or identity")
        for name, top in (("steps", MAX_STEPS), ("samples", 1 << 40)):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and 1 <= value <= top):
                raise UsageError(f"{name} must be an integer in [1, {top:,}], got {value!r}")
        smoothness = self.smoothness
        if smoothness is not None and not (_is_real(smoothness) and 0 <= smoothness < 1e6):
            raise UsageError(f"smoothness must be finite and >= 0, got {smoothness!r}")
        if not (_is_int(self.seed) and 0 <= self.seed < 2**32):
            raise UsageError(f"seed must be an integer in [0, 2^32), got {self.seed!r}")

    @property
    def estimator_name(self) -> str:
        r"""The estimator that runs: ``estimator``, or the loss's default."""

        if self.estimator is not None:
            return self.estimator
        return "full" if self.loss == "ot" else "minibatch"

    @property
    def estimator_class(self) -> type[Estimator]:
        name = self.estimator_name
        if name not in ESTIMATORS:
            raise UsageError(f"unknown estimator {name!r}", f"choose one of {sorted(ESTIMATORS)}")
        return ESTIMATORS[name]

    @property
    def estimator_options(self) -> object:
        r"""The estimator's settings: ``options``, or its defaults."""

        return self.options if self.options is not None else self.estimator_class.Settings()

    @property
    def total_steps(self) -> int:
        r"""The number of training steps this config runs (``steps`` or the loss's default)."""

        return int(self.steps if self.steps is not None else LOSS_SETTINGS[self.loss]["steps"])

    def replace(self, **changes: object) -> FitSettings:
        r"""These settings with the given ones changed (validated again)."""

        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def for_look(self, regrain: bool) -> FitSettings:
        r"""These settings with the default smoothness of a regrained or pure look filled in."""

        if self.smoothness is not None:
            return self
        return self.replace(smoothness=default_smoothness(regrain))

    def describe(self) -> dict[str, object]:
        r"""The settings as plain values, for a map file's provenance and ``--json``."""

        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["estimator"] = self.estimator_name
        values["options"] = dataclasses.asdict(self.estimator_options)  # type: ignore[call-overload]
        values["steps"] = self.total_steps
        return values


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(value)


@dataclass
class FittedMap:
    r"""A fitted colour map and how it was fitted.

    Attributes:
        map: :math:`(N, 3) \to (N, 3)`, on ``device``.
        history: the logs (:data:`otcolor.fitting.trainers.LOG_KEYS`), one entry per step.
        scores: the estimator's fit term of the result (``fit_sliced_w2``) and of the Gaussian
            map (``gaussian_sliced_w2``), and whether the policy restarted the model at the
            Gaussian map (``restarted_from_gaussian``, 0 or 1).
    """

    map: nn.Module
    device: torch.device
    history: History
    seconds: float
    warnings: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def fit_color_map(
    source: np.ndarray,
    target: np.ndarray,
    settings: FitSettings | None = None,
    callback: Callback | None = None,
    *,
    device: torch.device | None = None,
) -> FittedMap:
    r"""Fits a monotone map pushing the ``source`` colours onto the ``target`` colours.

    Single-colour inputs take the exact closed form instead of training: onto one colour, every
    colour goes to it; out of one colour, no deterministic map can split it, so it goes to the
    target mean (a warning says so).

    **Never worse than the closed form.** The result is judged by the estimator's fit term
    against the closed-form Gaussian map's. If it is worse, ``strict`` makes that an error;
    otherwise (with ``never_worse``) the model restarts exactly at the Gaussian map (nonlinear
    part silenced) and the estimator refines it, keeping the refinement only if it is no worse
    than that start. The result is always the trained network, never a substituted closed form.

    Arguments:
        source: source colours, with shape :math:`(N, 3)`, in :math:`[0, 1]`.
        target: target colours, with shape :math:`(M, 3)`, in :math:`[0, 1]`.
        settings: how to fit.
        callback: called as ``callback(step, logs)`` after every training step.
        device: the device, already resolved (default: ``settings.device`` resolved here).

    Raises:
        TrainingError: training diverged, ran out of device memory, or (with ``strict``) the
            learned map fits worse than the closed-form Gaussian map.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> day, sunset = rng.random((2000, 3)), rng.random((2000, 3)) ** 2  # sunset: darker
        >>> fitted = fit_color_map(day, sunset, FitSettings(steps=20, device="cpu"))
        >>> mapped = fitted.map(torch.from_numpy(day).float()).detach().numpy()
        >>> bool(abs(mapped.mean() - sunset.mean()) < 0.02)  # the mean moves to the target's
        True
    """

    settings = settings or FitSettings()
    device = device if device is not None else resolve_device(settings.device)
    try:
        return _fit(source, target, settings, callback, device)
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        release_device_memory()
        raise TrainingError(
            f"out of device memory while fitting ({first_line(err)})",
            "use fewer --samples or --device cpu",
        ) from err


def _fit(
    source: np.ndarray,
    target: np.ndarray,
    settings: FitSettings,
    callback: Callback | None,
    device: torch.device,
) -> FittedMap:
    # The start is fixed, not drawn from --seed: the OT map is unique, and an estimate that
    # moved with the seed would be estimator noise. The seed feeds the stochastic estimators.
    torch.manual_seed(INIT_SEED)
    start = time.perf_counter()
    x = torch.as_tensor(np.ascontiguousarray(source, dtype=np.float32)).to(device)
    y = torch.as_tensor(np.ascontiguousarray(target, dtype=np.float32)).to(device)

    flat_source = bool(x.std(0).max() < FLAT) if x.shape[0] > 1 else True
    flat_target = bool(y.std(0).max() < FLAT) if y.shape[0] > 1 else True
    if flat_target or flat_source:
        warning = (
            "the target has a single colour: every pixel is mapped to it"
            if flat_target
            else "the source has a single colour: no colour map can split it; "
            "it is mapped to the target's mean colour"
        )
        seconds = time.perf_counter() - start
        return FittedMap(ConstantMap(y.mean(0)), device, new_history(), seconds, [warning])

    center = x.mean(0)
    scale = float(x.std(0).mean().clamp(min=FLAT))
    xs, ys = (x - center) / scale, (y - center) / scale

    # Closed forms and initialisation on the CPU, float64 for the 3x3 algebra: MPS has no
    # float64 and lacks some linear algebra (eigh), and none of this is worth a device anyway.
    model = build_model(settings.model, 3, **COLOR_MODELS[settings.model])
    m0, S0 = moments(xs.cpu().double())
    m1, S1 = moments(ys.cpu().double())
    # A regulariser relative to the spread: a grey or near-grey source has (almost) no
    # variance across the grey axis, and an absolute eps would stretch it a thousandfold.
    # Added to both covariances, so that equal inputs still give exactly the identity.
    eps = 1e-3 * float(torch.trace(S0)) / 3 + 1e-9
    GA, Gb = bures_map(m0, S0, m1, S1 + eps * torch.eye(3, dtype=S1.dtype), eps=eps)
    if settings.init == "gaussian":
        A, b = GA, Gb
    else:
        A, b = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    model.init_linear(A.float(), b.float(), center=m0.float(), nonlinear_scale=2.0)
    model = model.to(device)

    smoothness = settings.smoothness
    if smoothness is None:
        smoothness = default_smoothness(regrain=False)
    problem = Problem(
        model=model,
        xs=xs,
        ys=ys,
        gaussian=AffineMap(GA.float().to(device), Gb.float().to(device)),
        steps=settings.total_steps,
        smoothness=smoothness * SMOOTHNESS_UNIT,
        seed=settings.seed,
        generator=torch.Generator().manual_seed(settings.seed + 1),
    )
    estimator = settings.estimator_class(problem, settings.loss, settings.estimator_options)
    history = estimator.fit(callback)

    # The one "never worse than the closed form" policy, on the estimator's own fit term: the
    # penalty may trade closeness for smoothness, never below the closed form's closeness.
    learned, gaussian = estimator.judge(model), estimator.judge(problem.gaussian)
    warnings: list[str] = []
    restarted = 0.0
    worse = not learned <= gaussian  # NaN counts as worse
    if worse and settings.strict:
        raise TrainingError(
            "the learned map fits worse than the closed-form Gaussian map "
            f"(fit term {learned:.3g} > {gaussian:.3g})",
            "drop --strict to refit from the Gaussian map, or try more --steps or another --loss",
        )
    if worse and settings.never_worse:
        model.init_linear(GA.float(), Gb.float(), center=m0.float(), nonlinear_scale=0.0)
        snapshot = {k: v.clone() for k, v in model.state_dict().items()}
        logs = estimator.refine(callback, 1 + len(history["loss"]))
        for key in history:
            history[key] += logs[key]
        learned = estimator.judge(model)
        if not learned <= gaussian:  # the refinement is kept only where it improves
            model.load_state_dict(snapshot)
            learned = estimator.judge(model)
        restarted = 1.0
        warnings.append(
            "the first fit was worse than the closed-form Gaussian map; "
            "it was refitted starting from the Gaussian map"
        )
    color_map = ColorMap(model, center, scale).to(device)
    color_map.eval()
    scores = {
        "fit_sliced_w2": float(learned),
        "gaussian_sliced_w2": float(gaussian),
        "restarted_from_gaussian": restarted,
    }
    return FittedMap(color_map, device, history, time.perf_counter() - start, warnings, scores)
