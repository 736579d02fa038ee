r"""Per-channel 1-D shapers: where a 3-D LUT spends its lattice points.

A 3-D LUT with :math:`N` points per axis is piecewise linear in cells of width
:math:`1/(N - 1)`, so its error grows with the map's curvature times the cell width squared.
Fitted looks can bend hard near one end of one channel (the default ocean look: output red
climbs from 87 to 171 while input red goes from 0 to 15 of 255, then flattens); at 33 points
two cells hold that bend, and no choice of entries reproduces it within 2/255. A shaper
:math:`s_c` per channel, applied before the 3-D table, places the lattice at
:math:`s_c^{-1}(i / (N - 1))` instead: denser where :math:`s_c` is steep.

Two kinds of shaper:

- :class:`Shaper`, the one-parameter family :math:`s_a(x) = \log(1 + a x) / \log(1 + a)`
  (:math:`a = 0`: the identity), dense near 0 (``"dark"``) or mirrored, dense near 1
  (``"bright"``): for a look that bends near one end of a channel;
- :class:`DensityShaper`, with the lattice density along each channel proportional to how much
  the look bends there (:func:`density_shaper`): for a look that bends in the middle of a
  channel. The chelsea → rocket look has a gain of 6 to 14 where input red is 181 to 202 of 255
  (and nearly grey), which no log curve can make dense (``benchmarks/lut_shapers.py --why``).

Both have bounded slope, so that a reader's own resampling of the shaper stays accurate.
:func:`choose_shaper` picks one by the interpolation error of the node-sampled table on
:func:`natural_colours`: colours spread like a photograph's, near the grey axis, rather than
uniformly over the cube, whose saturated corners few images visit.

Readers see the shaper as a piecewise-linear curve through :attr:`Shaper.knots` points;
:meth:`Shaper.__call__` evaluates that same curve, so what otcolor fits is what they compute.
"""

from __future__ import annotations

__all__ = [
    "IDENTITY",
    "SHAPER_KNOTS",
    "SHAPER_STRENGTHS",
    "DensityShaper",
    "Shaper",
    "bend_profile",
    "choose_shaper",
    "density_shaper",
    "natural_colours",
]

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .lattice import interpolation_matrix, lattice

if TYPE_CHECKING:
    from ..look import Look

#: Knots written for each channel's curve. FFmpeg 5.1's Cinespace reader interpolates a
#: shaper with an unnormalised weight (``x - in[i]`` where ``(x - in[i]) / (in[i+1] - in[i])``
#: belongs), in effect stepping from knot to knot: knots this dense keep that step below a
#: tenth of a cell (measured on the ocean look: 85.6 % of pixels within 2/255 with 256 knots,
#: 99.6 % with 1024, 99.8 % with 4096; OCIO, which interpolates correctly, 100 % with each).
SHAPER_KNOTS = 4096

#: The strengths :math:`a` tried per channel (0 is the identity).
SHAPER_STRENGTHS: tuple[float, ...] = (0.0, 3.0, 10.0, 30.0, 100.0)

SHAPER_SIDES = ("dark", "bright")


@dataclass(frozen=True)
class Shaper:
    r"""Creates a per-channel shaper :math:`s_c(x) = \log(1 + a_c x) / \log(1 + a_c)`.

    Arguments:
        strengths: :math:`a_c` per channel (red, green, blue); 0 is the identity.
        sides: ``"dark"`` (dense near 0) or ``"bright"`` (:math:`1 - s(1 - x)`, dense near 1).
        knots: points of the piecewise-linear curve written to the file.
    """

    strengths: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sides: tuple[str, str, str] = ("dark", "dark", "dark")
    knots: int = SHAPER_KNOTS

    def __post_init__(self) -> None:
        if len(self.strengths) != 3 or len(self.sides) != 3:
            raise ValueError("a shaper has one strength and one side per channel")
        if any(a < 0 or not np.isfinite(a) for a in self.strengths):
            raise ValueError(f"shaper strengths must be finite and >= 0, got {self.strengths}")
        if any(side not in SHAPER_SIDES for side in self.sides):
            raise ValueError(f"shaper sides must be in {SHAPER_SIDES}, got {self.sides}")
        if self.knots < 2:
            raise ValueError("a shaper needs at least 2 knots")

    @property
    def is_identity(self) -> bool:
        return all(a == 0.0 for a in self.strengths)

    def describe(self) -> str:
        r"""One line for the file's comment: the curves written."""

        return f"log(1 + a x) / log(1 + a), a = {self.strengths}, sides {self.sides}"

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        r"""The knots as written to a file.

        Returns:
            The inputs, :math:`(K,)` evenly spaced in :math:`[0, 1]`, and each channel's
            outputs, :math:`(K, 3)`, increasing from 0 to 1.
        """

        x = np.linspace(0.0, 1.0, self.knots)
        out = np.stack(
            [_curve(x, a, side) for a, side in zip(self.strengths, self.sides, strict=True)], 1
        )
        return x, out

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        r"""Shapes colours, :math:`(S, 3) \to (S, 3)`, along the written piecewise-linear curve."""

        x, out = self.curves()
        rgb = np.clip(np.asarray(rgb, np.float64), 0.0, 1.0)
        return np.stack([np.interp(rgb[:, c], x, out[:, c]) for c in range(3)], 1)

    def inverse(self, shaped: np.ndarray) -> np.ndarray:
        r"""The input colours whose shaped values are ``shaped``, :math:`(S, 3) \to (S, 3)`."""

        x, out = self.curves()
        shaped = np.asarray(shaped, np.float64)
        return np.stack([np.interp(shaped[:, c], out[:, c], x) for c in range(3)], 1)


#: No shaper: the lattice evenly spaced, as in a plain ``.cube``.
IDENTITY = Shaper()


def _curve(x: np.ndarray, a: float, side: str) -> np.ndarray:
    if a == 0.0:
        return x.copy()
    if side == "dark":
        return np.log1p(a * x) / np.log1p(a)
    return 1.0 - np.log1p(a * (1.0 - x)) / np.log1p(a)


@dataclass(frozen=True)
class DensityShaper(Shaper):
    r"""Creates a shaper whose lattice density along each channel follows ``density``.

    :math:`s_c(x) = \int_0^x \rho_c / \int_0^1 \rho_c`, with :math:`\rho_c` interpolated
    linearly between the bin centres :math:`(j + 1/2) / B`. A table of :math:`N` points then has
    cells of width :math:`1 / ((N - 1) \rho_c(x))` in sRGB (with :math:`\rho_c` normalised to
    mean 1).

    Arguments:
        density: :math:`\rho`, three tuples (red, green, blue) of :math:`B` positive numbers.
        knots: points of the piecewise-linear curve written to the file.
    """

    density: tuple[tuple[float, ...], ...] = ((1.0,), (1.0,), (1.0,))

    def __post_init__(self) -> None:
        super().__post_init__()
        values = np.asarray(self.density, np.float64)
        if values.ndim != 2 or len(values) != 3 or not (np.isfinite(values) & (values > 0)).all():
            raise ValueError("a density shaper has B > 0 finite positive densities per channel")

    @property
    def is_identity(self) -> bool:
        return bool(np.ptp(np.asarray(self.density), axis=1).max() == 0)

    def describe(self) -> str:
        ratio = np.asarray(self.density).max(1) / np.asarray(self.density).min(1)
        return (
            "lattice density following the look's bend, densest/sparsest "
            + ", ".join(f"{r:.2f}" for r in ratio)
            + " (red, green, blue)"
        )

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.linspace(0.0, 1.0, self.knots)
        density = np.asarray(self.density, np.float64)
        centres = (np.arange(density.shape[1]) + 0.5) / density.shape[1]
        out = np.empty((self.knots, 3))
        for channel in range(3):
            rho = np.interp(x, centres, density[channel])
            area = np.concatenate([[0.0], np.cumsum((rho[1:] + rho[:-1]) / 2)])
            out[:, channel] = area / area[-1]
        return x, out


#: Bins per channel of :func:`bend_profile` and :class:`DensityShaper`.
BEND_BINS = 64

#: The densest cell of a :class:`DensityShaper` over its sparsest: the lattice spent on a bend
#: comes from the rest of the channel, whose cells grow (a ratio of 8 follows chelsea's bend a
#: little better and loses rocket's colours under the same look: ``benchmarks/lut_shapers.py``).
DENSITY_RATIO = 4.0


def natural_colours(count: int, seed: int = 0) -> np.ndarray:
    r"""Random colours spread like a photograph's: the grey level uniform in :math:`[0, 1]`,
    each channel's offset from it normal with :math:`\sigma = 0.12`, clipped; a quarter of the
    colours uniform over the cube, so that saturated colours still count.

    Returns:
        :math:`(\text{count}, 3)` float32 sRGB colours in :math:`[0, 1]`.
    """

    rng = np.random.default_rng(seed)
    grey = rng.random((count, 1))
    offset = rng.normal(0.0, 0.12, (count, 3))
    offset -= offset.mean(1, keepdims=True)  # away from the grey axis only
    colours = np.clip(grey + offset, 0.0, 1.0)
    uniform = rng.random(count) < 0.25
    colours[uniform] = rng.random((int(uniform.sum()), 3))
    return colours.astype(np.float32)


def bend_profile(
    look: Look, bins: int = BEND_BINS, others: int = 400, seed: int = 0
) -> np.ndarray:
    r"""How much a look bends along each channel: :math:`m_c(x)`, the mean over
    :func:`natural_colours` (with channel :math:`c` set to :math:`x`) of the Frobenius norm of
    the Hessian's row :math:`c`, :math:`\lVert \partial_c \nabla T \rVert` (largest output
    channel per entry), by central differences with step 1/64.

    Arguments:
        look: the look.
        bins: values of :math:`x`, the centres :math:`(j + 1/2) / B`.
        others: colours averaged over per value.
        seed: seeds those colours.

    Returns:
        :math:`m`, with shape :math:`(3, B)`, in output units per unit input squared.
    """

    step = 1.0 / 64
    centres = (np.arange(bins) + 0.5) / bins
    eye = np.eye(3) * step
    profile = np.empty((3, bins))

    def at(points: np.ndarray) -> np.ndarray:
        return look(points.astype(np.float32)).astype(np.float64)

    for c in range(3):
        points = np.repeat(natural_colours(others, seed + c)[None].astype(np.float64), bins, 0)
        points[:, :, c] = centres[:, None]
        # Stencils kept inside the cube: one clipped at its edge would see a bend in a straight map.
        points = np.clip(points.reshape(-1, 3), step, 1.0 - step)
        centre = at(points)
        total = np.zeros(len(points))
        for d in range(3):
            if d == c:
                second = at(points + eye[c]) + at(points - eye[c]) - 2 * centre
            else:
                second = (
                    at(points + eye[c] + eye[d])
                    - at(points + eye[c] - eye[d])
                    - at(points - eye[c] + eye[d])
                    + at(points - eye[c] - eye[d])
                ) / 4
            total += (np.abs(second).max(1) / step**2) ** 2
        profile[c] = np.sqrt(total).reshape(bins, others).mean(1)
    return profile


def density_shaper(
    look: Look,
    ratio: float = DENSITY_RATIO,
    exponent: float = 1.0,
    profile: np.ndarray | None = None,
) -> DensityShaper:
    r"""A shaper with the lattice density proportional to the look's bend along each channel.

    :math:`\rho_c = \max(m_c + 0.05\,\bar m,\; \max_x (m_c + 0.05\,\bar m) / \text{ratio})`,
    smoothed over five bins, where :math:`m` is :func:`bend_profile` and :math:`\bar m` its mean
    over all channels. Proportional to the bend, not its square root (the optimal 1-D mesh for
    piecewise-linear interpolation): the profile averages a bend that is local in 3-D over the
    other two channels, which dilutes it; the square root measured worse on chelsea → rocket
    (``benchmarks/lut_shapers.py``, table in ``docs/luts.md``).
    A look that does not bend gets the identity.

    Arguments:
        look: the look.
        ratio: the densest cell over the sparsest, at most.
        exponent: :math:`\rho_c \propto (m_c + 0.05\,\bar m)^{\text{exponent}}` before the cap.
        profile: :func:`bend_profile` of ``look``, if already computed.
    """

    profile = bend_profile(look) if profile is None else profile
    if not profile.max() > 1e-6:
        return DensityShaper()
    # The floor is shared: a channel the look does not bend gets an even lattice, not one that
    # follows rounding noise.
    floor = 0.05 * profile.mean()
    density = []
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    for m in profile:
        rho = (m + floor) ** exponent
        rho = np.maximum(rho, rho.max() / ratio)
        rho = np.convolve(np.pad(rho, 2, mode="edge"), kernel, "valid")
        density.append(tuple(float(v) for v in rho / rho.mean()))
    return DensityShaper(density=tuple(density))


def choose_shaper(
    look: Look, size: int, points: int = 50_000, seed: int = 0, rounds: int = 2
) -> Shaper:
    r"""The shaper that minimises the interpolation error of the node-sampled table of ``look``
    on :func:`natural_colours`: the best of the log family (coordinate descent over channels)
    and :func:`density_shaper`, the simpler on a tie.

    The error is the share of colours more than 1.5/255 off plus the mean squared miss. The
    choice is made with node samples (one map evaluation per entry) rather than the full
    least-squares fit, which is a hundred times dearer; the fit then runs once on the choice.

    Arguments:
        look: the look.
        size: :math:`N`, the table's points per axis.
        points: random colours scoring each candidate.
        seed: seeds those colours, so the choice is reproducible.
        rounds: passes over the three channels.
    """

    sample = natural_colours(points, seed)
    truth = look(sample).astype(np.float64)
    nodes = lattice(size)

    def error(shaper: Shaper) -> float:
        colours = nodes if shaper.is_identity else shaper.inverse(nodes)
        table = look(colours.astype(np.float32)).astype(np.float64)
        read = interpolation_matrix(shaper(sample), size, "tetrahedral")
        miss = np.abs(read @ table - truth).max(1)
        return float(np.mean(miss > 1.5 / 255) + np.mean(miss**2))

    options = [(0.0, "dark")] + [(a, s) for a in SHAPER_STRENGTHS if a > 0 for s in SHAPER_SIDES]
    strengths, sides = [0.0, 0.0, 0.0], ["dark", "dark", "dark"]
    best = error(IDENTITY)
    for _ in range(rounds):
        changed = False
        for channel in range(3):
            for a, side in options:
                trial_a, trial_s = list(strengths), list(sides)
                trial_a[channel], trial_s[channel] = a, side
                trial = Shaper(tuple(trial_a), tuple(trial_s))  # type: ignore[arg-type]
                value = error(trial)
                if value < best * (1 - 1e-6):  # strictly better: ties keep the simpler shaper
                    best, strengths, sides, changed = value, trial_a, trial_s, True
        if not changed:
            break
    chosen = Shaper(tuple(strengths), tuple(sides))  # type: ignore[arg-type]
    bend = density_shaper(look)
    if not bend.is_identity and error(bend) < best * (1 - 1e-6):
        return bend
    return chosen
