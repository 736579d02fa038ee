r"""Tests of otcolor.io.stilllut: the LUT of a regrained still reproduces a colour function it
could hold, and its unit-gain term keeps a flat region's grain where a plain fit stretches it."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from otcolor.io.lut import interpolation_matrix
from otcolor.io.stilllut import fit_still_lut, flat_mask
from otcolor.look import Look, LookSettings
from otcolor.regrain import regrain


class Stretch(nn.Module):
    r""":math:`T(x) = c + k (x - c)` per channel: amplifies every difference k times."""

    def __init__(self, centre: float, gain: float) -> None:
        super().__init__()
        self.centre, self.gain = centre, gain

    def forward(self, x: Tensor) -> Tensor:
        return self.centre + self.gain * (x - self.centre)


def _read(table: np.ndarray, image: np.ndarray) -> np.ndarray:
    read = interpolation_matrix(image.reshape(-1, 3), table.shape[0], "tetrahedral")
    return (read @ table.reshape(-1, 3).astype(np.float64)).reshape(image.shape)


def test_a_still_that_is_a_colour_function_is_reproduced() -> None:
    # The still of a pure affine look is a colour function: the fitted table must give it back.
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3)).astype(np.float32) / 255
    look = Look(Stretch(0.5, 0.8), LookSettings(regrain=None))
    still = look(image.reshape(-1, 3)).reshape(image.shape)
    table = fit_still_lut(look, image, still, 17, gain=0.0)
    assert np.abs(_read(table, image) - still).max() < 2 / 255


def test_the_gain_term_keeps_a_flat_regions_grain() -> None:
    # A flat, grainy patch beside a ramp, through a map that stretches colours 4 times: the
    # regrained still keeps the grain; a plain least-squares table stretches it, the table
    # with the unit-gain term less.
    rng = np.random.default_rng(1)
    flat = 0.5 + 0.006 * rng.standard_normal((64, 64, 3))
    ramp = np.repeat(np.linspace(0.3, 0.7, 64)[None, :, None], 64, 0).repeat(3, 2)
    image = np.clip(np.concatenate([flat, ramp], 1), 0, 1).astype(np.float32)
    image = np.round(image * 255) / 255
    assert flat_mask(image)[:, 8:56].mean() > 0.9 and not flat_mask(image)[:, 72:120].any()
    look = Look(Stretch(0.5, 4.0))
    still = regrain(look, image.astype(np.float32))
    grain = lambda a: float(a[8:56, 8:56].std())  # noqa: E731
    plain = _read(fit_still_lut(look, image, still, 33, gain=0.0), image)
    held = _read(fit_still_lut(look, image, still, 33, gain=1.0), image)
    assert grain(still) < 1.5 * grain(image)
    assert grain(held) < 0.85 * grain(plain)  # measured: 0.77
