r"""Colour spaces a look can be fitted and applied in: gamma-encoded sRGB and CIELAB (D65).

Conversions run in float64 and are exact inverses of each other, so that a map fitted in Lab
and applied back to sRGB round-trips colours it does not move.
"""

from __future__ import annotations

__all__ = ["SPACES", "from_space", "lab_to_srgb", "srgb_to_lab", "to_space"]

import numpy as np

from .errors import UsageError

#: Colour spaces a map can be fitted and applied in.
SPACES: tuple[str, ...] = ("rgb", "lab")

# sRGB (D65) to CIE XYZ, IEC 61966-2-1. The white point is taken as M @ (1, 1, 1), so that
# sRGB white is L = 100, a = b = 0 exactly, and the inverse is the exact matrix inverse.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ.sum(1)
_DELTA = 6 / 29

# Lab coordinates are divided by this for fitting, so that they are of the order of sRGB's
# [0, 1] (the fit itself is invariant to the scale, its tolerances are not).
_LAB_UNIT = 100.0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    r"""Converts gamma-encoded sRGB to CIELAB (D65), in float64.

    Arguments:
        rgb: colours, with shape :math:`(..., 3)`, in :math:`[0, 1]` (values outside are
            extended linearly below 0.04045 and by the power law above 1).

    Returns:
        :math:`(L^*, a^*, b^*)`, with shape :math:`(..., 3)`; :math:`L^* \in [0, 100]` in gamut.
    """

    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    r"""Converts CIELAB (D65) to gamma-encoded sRGB, in float64, unclipped (the exact inverse of
    :func:`srgb_to_lab`).

    Arguments:
        lab: colours, with shape :math:`(..., 3)`.

    Returns:
        sRGB, with shape :math:`(..., 3)`; outside :math:`[0, 1]` for out-of-gamut colours.
    """

    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE
    linear = xyz @ _XYZ_TO_RGB.T
    return np.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
    )


def to_space(rgb: np.ndarray, space: str) -> np.ndarray:
    r"""sRGB colours :math:`(N, 3)` in the coordinates a map of ``space`` works in, float32."""

    if space == "rgb":
        return np.asarray(rgb, dtype=np.float32)
    if space == "lab":
        return (srgb_to_lab(rgb) / _LAB_UNIT).astype(np.float32)
    raise UsageError(f"unknown colour space {space!r}", f"choose one of {', '.join(SPACES)}")


def from_space(points: np.ndarray, space: str) -> np.ndarray:
    r"""The inverse of :func:`to_space`: sRGB, unclipped (float32 for ``rgb``, else float64)."""

    if space == "rgb":
        return points
    return lab_to_srgb(np.asarray(points, dtype=np.float64) * _LAB_UNIT)
