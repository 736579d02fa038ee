r"""Tests of otcolor.io.stilllut: the LUT of a regrained still reproduces a colour function it
could hold, and its unit-gain term keeps a flat region's grain where a plain fit stretches it."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from otcolor.io.lut import read_table
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
    return read_table(table, image.reshape(-1, 3)).reshape(image.shape)


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


def test_the_iterative_solve_matches_a_direct_one() -> None:
    # CG replaces a direct factorisation that takes a minute at 33: on a small lattice both are
    # cheap, and they must give the same table.
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    from otcolor.io.stilllut import _laplacian, _solve

    rng = np.random.default_rng(2)
    laplacian = _laplacian(9)
    data = sparse.diags(rng.uniform(0, 1, 9**3) * (rng.uniform(size=9**3) < 0.3))
    normal = (0.05 * laplacian.T @ laplacian + 1e-3 * sparse.identity(9**3) + data).tocsr()
    rhs = rng.standard_normal((9**3, 3))
    direct = np.stack([spsolve(normal.tocsc(), rhs[:, c]) for c in range(3)], 1)
    iterative = _solve(normal, rhs, start=np.zeros_like(rhs))
    assert np.abs(iterative - direct).max() < 1e-5 * np.abs(direct).max()


def test_an_apply_mask_weights_the_fit_to_where_the_look_was_applied() -> None:
    # The same colours on both halves; the look applied on the left only (--apply-mask): the
    # table must hold the look, not its average with the untouched right half.
    rng = np.random.default_rng(3)
    half = rng.integers(0, 256, (40, 30, 3)).astype(np.float32) / 255
    image = np.concatenate([half, half], 1)
    look = Look(Stretch(0.5, 0.6), LookSettings(regrain=None))
    mapped = look(half.reshape(-1, 3)).reshape(half.shape)
    still = np.concatenate([mapped, half], 1)
    mask = np.concatenate([np.ones((40, 30)), np.zeros((40, 30))], 1)
    held = _read(fit_still_lut(look, image, still, 17, gain=0.0, mask=mask), half)
    diluted = _read(fit_still_lut(look, image, still, 17, gain=0.0), half)
    assert np.abs(held - mapped).max() < 2 / 255
    assert np.abs(diluted - (mapped + half) / 2).max() < 2 / 255  # what the mask prevents


def test_a_large_lut_is_fitted_at_the_largest_fitted_size_and_read_there() -> None:
    from otcolor.io.stilllut import MAX_FIT_SIZE, resample

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (30, 40, 3)).astype(np.float32) / 255
    look = Look(Stretch(0.5, 0.8), LookSettings(regrain=None))
    still = look(image.reshape(-1, 3)).reshape(image.shape)
    big = fit_still_lut(look, image, still, MAX_FIT_SIZE + 8, gain=0.0)
    fitted = fit_still_lut(look, image, still, MAX_FIT_SIZE, gain=0.0)
    assert big.shape == (MAX_FIT_SIZE + 8,) * 3 + (3,)
    assert np.array_equal(big, resample(fitted, MAX_FIT_SIZE + 8))
