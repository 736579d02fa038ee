r"""Per-channel 1-D shapers: where a 3-D LUT spends its lattice points.

A 3-D LUT with :math:`N` points per axis is piecewise linear in cells of width
:math:`1/(N - 1)`, so its error grows with the map's curvature times the cell width squared.
Fitted looks can bend hard near one end of one channel (the default ocean look: output red
climbs from 87 to 171 while input red goes from 0 to 15 of 255, then flattens); at 33 points
two cells hold that bend, and no choice of entries reproduces it within 2/255. A shaper
:math:`s_c` per channel, applied before the 3-D table, places the lattice at
:math:`s_c^{-1}(i / (N - 1))` instead: denser where :math:`s_c` is steep.

The shapers are the one-parameter family :math:`s_a(x) = \log(1 + a x) / \log(1 + a)`
(:math:`a = 0`: the identity), dense near 0 (``"dark"``) or mirrored, dense near 1
(``"bright"``): bounded slope (at most :math:`a / \log(1 + a)`), so that a reader's own
resampling of the shaper stays accurate. :func:`otcolor.io.lut.choose_shaper` picks :math:`a` and the side
per channel, by the interpolation error of the node-sampled table over the whole cube.

Readers see the shaper as a piecewise-linear curve through :attr:`Shaper.knots` points;
:meth:`Shaper.__call__` evaluates that same curve, so what otcolor fits is what they compute.
"""

from __future__ import annotations

__all__ = ["IDENTITY", "SHAPER_KNOTS", "SHAPER_STRENGTHS", "Shaper"]

from dataclasses import dataclass

import numpy as np

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
