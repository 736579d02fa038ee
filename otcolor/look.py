r"""Looks: a fitted colour map with everything that decides the output colours.

A :class:`Look` is the fitted map :math:`T` (in the coordinates of the space it was fitted in)
and its :class:`LookSettings`: that space, the strength :math:`t` of the displacement
interpolation :math:`u + t\,(T(u) - u)`, whether the source's lightness is kept, and the regrain
with its filter settings (:class:`RegrainConfig`; ``None`` for the pure colour map). A map file
stores the look whole (:mod:`otcolor.io.mapfile`), so ``apply``, ``video`` and ``lut`` produce
what ``transfer`` produced without any flag repeated.

Calling a look evaluates its **colour function**, :math:`\mathbb{R}^3 \to \mathbb{R}^3`: what a
LUT can hold, and what ``--no-regrain`` applies. The regrain (:mod:`otcolor.regrain`) is spatial
and runs on top of it; :func:`otcolor.pipeline.render` chooses between the two.

A map runs in fixed blocks of :data:`BLOCK` rows (the last one padded), so the value of a colour
does not depend on which other colours are evaluated with it: ``transfer`` and ``apply`` agree
bit for bit, and one colour gets one output in every frame of a video.
"""

from __future__ import annotations

__all__ = [
    "BLOCK",
    "LEGACY_REGRAIN",
    "REGRAIN",
    "Look",
    "LookSettings",
    "RegrainConfig",
    "evaluate_map",
]

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .device import first_line, is_out_of_memory, release_device_memory
from .errors import OutOfDeviceMemory, TrainingError, UsageError
from .spaces import SPACES, from_space, lab_to_srgb, srgb_to_lab, to_space

#: Rows per forward pass of a map; every pass has exactly this many (see the module docstring).
BLOCK = 4096


def _is_number(value: object) -> bool:
    r"""A real number, not a bool (``True`` would pass as strength 1)."""

    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RegrainConfig:
    r"""Settings of the regrain (:mod:`otcolor.regrain`); radii are in full-resolution pixels.

    Arguments:
        scale: the filters run on the image subsampled by this factor (box means).
        base_radius: :math:`r_b`, the radius of the base-layer filter.
        base_eps: :math:`\epsilon_b`: local variance (in :math:`[0,1]^2` units) below which the
            base layer is flat; :math:`3 \cdot 10^{-3}` is a standard deviation of 14 levels.
        radius: :math:`r`, the radius of the displacement filter.
        eps: :math:`\epsilon`: local variance below which the displacement is constant.
        isotropy: :math:`\kappa \in [0, 1]`: each window's slope :math:`A` of the displacement
            filter moves towards its scalar part, :math:`(1-\kappa) A + \kappa\,
            \tfrac{\mathrm{tr} A}{3} \mathrm{Id}`, so that colour texture keeps its luma
            pattern; 0: off.
        gain_cap: :math:`g`: each window's slope is scaled down to
            :math:`\|A\|_F \le g`, so that the output's local gain :math:`\|\mathrm{Id} + A\|`
            is at most :math:`1 + g` where the map is steeper (grain and fine texture in dark
            smooth regions); the window's model still passes its mean; 0: off.
        spread: :math:`\sigma \in [0, 1]`, used when fitting: the target's colours are drawn
            with a share of its detail (:func:`otcolor.regrain.spread_colours`), so that the
            output, which keeps the source's detail, reaches the target's spread; 0: the
            target's base layer.
    """

    scale: int = 2
    base_radius: int = 8
    base_eps: float = 3e-3
    radius: int = 4
    eps: float = 1e-4
    isotropy: float = 0.0
    gain_cap: float = 2.0
    spread: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale", "base_radius", "radius"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256):
                raise UsageError(f"regrain {name} must be an integer in [1, 256], got {value!r}")
        if min(self.base_radius, self.radius) < self.scale:
            raise UsageError("regrain radii must be at least the scale")
        for name in ("base_eps", "eps"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and 0 < value <= 1):
                raise UsageError(f"regrain {name} must be in (0, 1], got {value!r}")
        for name, top in (("isotropy", 1), ("gain_cap", 256), ("spread", 1)):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and 0 <= value <= top):
                raise UsageError(f"regrain {name} must be in [0, {top}], got {value!r}")

    @property
    def low_radii(self) -> tuple[int, int]:
        r"""The two radii in low-resolution pixels."""

        base = max(1, round(self.base_radius / self.scale))
        return base, max(1, round(self.radius / self.scale))

    @property
    def halo(self) -> int:
        r"""Low-resolution rows a band needs on each side: two box stages per filter, plus one
        for the bilinear upsampling."""

        base, disp = self.low_radii
        return 2 * (base + disp) + 1


#: The values of settings added after map files began to record the regrain, that reproduce
#: what those files were made with (a file without the key reads as this).
LEGACY_REGRAIN: dict[str, float] = {"isotropy": 0.0, "gain_cap": 0.0, "spread": 0.0}

#: The default settings, from a prototype sweep on eight photo pairs; the rerunnable figures of
#: the shipped defaults are in docs/regrain.md (``benchmarks/pixels.py --pure``).
REGRAIN = RegrainConfig()


@dataclass(frozen=True)
class LookSettings:
    r"""Everything besides the map that decides a look's output colours.

    Arguments:
        space: ``"rgb"`` (gamma-encoded sRGB in :math:`[0, 1]`) or ``"lab"`` (CIELAB / 100):
            where the map is fitted and applied.
        strength: :math:`t \in [0, 1]`: colours move to :math:`u + t\,(T(u) - u)` (McCann's
            displacement interpolation: still the gradient of a convex function).
        preserve_luminance: keep each pixel's CIELAB lightness :math:`L^*`, take only the
            chroma :math:`(a^*, b^*)` of the mapped colour.
        regrain: the regrain's filter settings: the map is fitted between base layers and
            applied to the base layer, the grain kept (:mod:`otcolor.regrain`); ``None``: the
            pure colour map, fitted and applied pixel by pixel.
    """

    space: str = "rgb"
    strength: float = 1.0
    preserve_luminance: bool = False
    regrain: RegrainConfig | None = REGRAIN

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise UsageError(f"unknown colour space {self.space!r}", f"choose one of {SPACES}")
        strength = self.strength
        if not (_is_number(strength) and 0.0 <= strength <= 1.0):
            raise UsageError(f"strength must be in [0, 1], got {strength!r}")
        if not isinstance(self.preserve_luminance, (bool, np.bool_)):
            raise UsageError(
                f"preserve_luminance must be True or False, got {self.preserve_luminance!r}"
            )
        if self.regrain is not None and not isinstance(self.regrain, RegrainConfig):
            raise UsageError(f"regrain must be a RegrainConfig or None, got {self.regrain!r}")

    def replace(self, **changes: object) -> LookSettings:
        r"""These settings with the given ones changed (validated again)."""

        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(eq=False)
class Look:
    r"""A fitted colour map with the settings that say how it is applied.

    Arguments:
        map: :math:`T`, :math:`(N, 3) \to (N, 3)`, in the coordinates of ``settings.space``.
        settings: space, strength, lightness and regrain (:class:`LookSettings`).
        device: where the map runs.
    """

    map: nn.Module
    settings: LookSettings = LookSettings()
    device: torch.device | str = "cpu"

    @property
    def space(self) -> str:
        return self.settings.space

    @property
    def strength(self) -> float:
        return self.settings.strength

    @property
    def preserve_luminance(self) -> bool:
        return self.settings.preserve_luminance

    @property
    def regrain(self) -> RegrainConfig | None:
        r"""The regrain's settings, or ``None`` for the pure colour map. A constant map has no
        grain to keep: it is always applied pure."""

        return None if getattr(self.map, "constant", False) else self.settings.regrain

    def with_settings(self, **changes: object) -> Look:
        r"""The same map with some settings changed (:meth:`LookSettings.replace`)."""

        return Look(self.map, self.settings.replace(**changes), self.device) if changes else self

    def with_strength(self, strength: float | None) -> Look:
        r"""The same look at another strength (``None``: unchanged)."""

        return self if strength is None else self.with_settings(strength=float(strength))

    def to(self, device: torch.device | str) -> Look:
        r"""The same look with its map on ``device``."""

        return Look(self.map.to(device), self.settings, device)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        r"""Maps sRGB colours through the look's colour function (no regrain).

        Arguments:
            rgb: colours, with shape :math:`(N, 3)`, in :math:`[0, 1]`.

        Returns:
            The output colours, with shape :math:`(N, 3)`, float32, clipped to :math:`[0, 1]`.

        Raises:
            TrainingError: the map gives a non-finite colour. Clipping would turn infinities
                into plausible-looking 0s and 1s (a black image from a map with a tiny
                ``scale``), so every consumer (apply, LUTs, video) refuses here instead.
        """

        space, strength = self.space, self.strength
        # Overflow is reported below as one error, not as numpy RuntimeWarnings.
        with np.errstate(all="ignore"):
            u = to_space(rgb, space)  # (N, 3) float32
            if strength == 0.0:
                v: np.ndarray = u
            else:
                v = evaluate_map(self.map, u, self.device)
                if strength != 1.0:
                    u64 = u.astype(np.float64)
                    v = (u64 + strength * (v.astype(np.float64) - u64)).astype(np.float32)
            out = from_space(v, space)
            if self.preserve_luminance:
                lab = srgb_to_lab(np.clip(out, 0.0, 1.0))
                lab[:, 0] = srgb_to_lab(rgb)[:, 0]
                out = lab_to_srgb(lab)
        if not (np.isfinite(v).all() and np.isfinite(out).all()):
            raise TrainingError(
                "the map gives non-finite colours; nothing was written",
                "refit it, or try another --seed, --loss or --smoothness",
            )
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def evaluate_map(
    color_map: nn.Module, points: np.ndarray, device: torch.device | str = "cpu"
) -> np.ndarray:
    r"""Evaluates a map in blocks of exactly :data:`BLOCK` rows (the last padded).

    CPU matrix kernels round differently for different row counts (measured: one colour in
    300,000 changes in the last bit between batches of 7 and of 300,000 rows); with one block
    shape the value of a point does not depend on the other points.

    Arguments:
        color_map: the map, :math:`(N, 3) \to (N, 3)`.
        points: with shape :math:`(N, 3)`, float32.

    Returns:
        :math:`T(x)`, with shape :math:`(N, 3)`, float32, unclipped.
    """

    points = np.ascontiguousarray(points, dtype=np.float32)
    out = np.empty_like(points)
    padded = np.zeros((BLOCK, points.shape[1]), np.float32)
    with torch.no_grad():
        for begin in range(0, points.shape[0], BLOCK):
            part = points[begin : begin + BLOCK]
            padded[: part.shape[0]] = part
            padded[part.shape[0] :] = part[-1]
            value = _evaluate_block(color_map, padded, device)
            out[begin : begin + part.shape[0]] = value[: part.shape[0]]
    return out


def _evaluate_block(
    color_map: nn.Module, block: np.ndarray, device: torch.device | str
) -> np.ndarray:
    r"""One :data:`BLOCK` through the map. Out of device memory, the cached blocks are released
    and the block retried once: the block never shrinks, since its shape fixes the rounding
    (see :func:`evaluate_map`), and a map of a few thousand weights that cannot run on
    :data:`BLOCK` rows means the device is full of something else."""

    for attempt in range(2):
        try:
            return color_map(torch.from_numpy(block).to(device)).cpu().numpy()
        except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(err):
                raise
            release_device_memory()
            if attempt:
                raise OutOfDeviceMemory(
                    f"out of device memory applying the map ({first_line(err)})"
                ) from err
    raise AssertionError("unreachable")  # pragma: no cover
