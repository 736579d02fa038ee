r"""The regrain (otcolor.regrain): grain kept, edges unhaloed, bands seamless, pure path intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import otcolor.regrain as regrain_mod
from otcolor.color import ColorTable, apply_look
from otcolor.fitting import FitSettings
from otcolor.look import Look, LookSettings
from otcolor.models import ConstantMap
from otcolor.regrain import RegrainConfig, base_colors, guided_filter, regrain
from otcolor.transfer import TransferConfig, transfer


def _config(regrain: bool, steps: int = 5) -> TransferConfig:
    look = LookSettings(regrain=RegrainConfig() if regrain else None)
    return TransferConfig(fit=FitSettings(steps=steps, samples=500, device="cpu"), look=look)


class Stretch(nn.Module):
    r""":math:`T(x) = c + k\,(x - c)`: a pure map amplifying every difference :math:`k` times."""

    def __init__(self, centre: float, gain: float) -> None:
        super().__init__()
        self.centre, self.gain = centre, gain

    def forward(self, x: Tensor) -> Tensor:
        return self.centre + self.gain * (x - self.centre)


class Curve(nn.Module):
    r"""A nonlinear monotone map, :math:`T(x) = x^2` per channel (for :math:`x \ge 0`)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=0) ** 2


def test_flat_noisy_region_keeps_its_grain_level() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(0.5 + 0.01 * rng.standard_normal((96, 128, 3)), 0, 1).astype(np.float32)
    look = Look(Stretch(0.5, 6.0))
    pure = apply_look(look, image, bit_depth=16)
    out = regrain(look, image)
    grain, pure_grain, out_grain = image.std(), pure.std(), out.std()
    assert pure_grain > 4 * grain  # the pure map amplifies the grain ...
    assert out_grain < 1.3 * grain  # ... the regrain keeps its level
    # and keeps the grain itself, not a blurred copy: output noise follows the input's
    assert np.corrcoef(out.ravel(), image.ravel())[0, 1] > 0.9


def test_step_edge_is_not_haloed() -> None:
    image = np.zeros((40, 64, 3), np.float32)
    image[:, :32] = (0.2, 0.3, 0.6)
    image[:, 32:] = (0.8, 0.7, 0.3)
    look = Look(Curve())
    expected = apply_look(look, image, bit_depth=16)
    out = regrain(look, image)
    # A two-colour step is affine in the guide, so the filtered displacement is exact there:
    # no overshoot, no ringing, no bleeding across the edge.
    assert np.abs(out - expected).max() < 1.5 / 255
    lo, hi = expected.min(axis=(0, 1)), expected.max(axis=(0, 1))
    assert (out >= lo - 1 / 255).all() and (out <= hi + 1 / 255).all()  # under one level


@pytest.mark.parametrize("rows", [1, 5, 16])
def test_bands_agree_at_their_seams(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:75, 0:90] / 90.0
    image = np.stack([xx, yy, 0.5 * (xx + yy)], -1) + 0.03 * rng.standard_normal((75, 90, 3))
    image = np.clip(image, 0, 1).astype(np.float32)
    look = Look(Curve())
    whole = regrain(look, image)
    monkeypatch.setattr(regrain_mod, "BAND_ROWS", rows)
    banded = regrain(look, image)
    assert np.array_equal(whole, banded)  # every value from the same window, the same way
    assert np.array_equal(base_colors(image), base_colors(image, RegrainConfig()))


def test_guided_filter_keeps_an_affine_signal_and_flattens_noise() -> None:
    rng = np.random.default_rng(2)
    guide = torch.from_numpy(rng.uniform(0, 1, (3, 30, 40)).astype(np.float32))
    affine = 0.3 * guide[0:1] - 0.2 * guide[2:3] + 0.1
    assert torch.allclose(guided_filter(guide, affine, 3, 1e-6), affine, atol=1e-3)
    flat = torch.full((3, 30, 40), 0.5) + 0.002 * torch.randn(3, 30, 40)
    noise = torch.randn(1, 30, 40)
    assert guided_filter(flat, noise, 3, 1e-2).std() < 0.2 * noise.std()


def test_constant_map_is_applied_pure() -> None:
    image = np.random.default_rng(3).uniform(0, 1, (20, 30, 3)).astype(np.float32)
    look = Look(ConstantMap(torch.tensor([0.2, 0.4, 0.6])))
    assert np.allclose(regrain(look, image), [0.2, 0.4, 0.6], atol=1e-6)


def test_config_rejects_bad_settings() -> None:
    from otcolor.errors import UsageError

    bad_settings = (
        dict(scale=0),
        dict(radius=1, scale=2),
        dict(eps=0.0),
        dict(isotropy=1.5),
        dict(gain_cap=-1.0),
        dict(spread=True),
    )
    for bad in bad_settings:
        with pytest.raises(UsageError):
            RegrainConfig(**bad)


def _pair(tmp: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    src = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.2 * xx * yy], -1)
    src = np.clip(src + 0.02 * rng.standard_normal(src.shape), 0, 1)
    tgt = rng.uniform([0.5, 0.2, 0.1], [0.95, 0.6, 0.4], (48, 64, 3))
    paths = tmp / "src.png", tmp / "tgt.png"
    for path, img in zip(paths, (src, tgt), strict=True):
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    return paths


def test_no_regrain_output_is_a_colour_function_and_the_regrain_is_not(tmp_path: Path) -> None:
    # The pure route gives one output per input colour wherever it is; the regrain is spatial.
    # (A regrain leaking into --no-regrain, or a pure map sneaking into the default, fails.)
    src, tgt = _pair(tmp_path)
    source = np.asarray(Image.open(src)).reshape(-1, 3)
    keys = source[:, 0].astype(np.int64) << 16 | source[:, 1].astype(np.int64) << 8 | source[:, 2]
    spread = {}
    for flag in (False, True):
        out = tmp_path / f"out_{flag}.png"
        transfer(src, tgt, out, _config(flag))
        mapped = np.asarray(Image.open(out)).reshape(-1, 3).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        k, m = keys[order], mapped[order]
        first = np.r_[True, k[1:] != k[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(k.size), 0))
        spread[flag] = int(np.abs(m - m[start]).max())  # largest difference within a colour
    assert spread[False] == 0
    assert spread[True] > 0


def test_regrain_output_is_cleaner_than_the_pure_map(tmp_path: Path) -> None:
    src, tgt = _pair(tmp_path)
    grains = {}
    for flag in (True, False):
        out = tmp_path / f"out_{flag}.png"
        transfer(src, tgt, out, _config(flag, steps=30))
        img = np.asarray(Image.open(out)).astype(float)
        grains[flag] = np.abs(np.diff(img, axis=1)).mean()  # neighbour differences
    assert grains[True] < grains[False]


def test_a_read_only_image_is_regrained_like_a_writable_one(
    recwarn: pytest.WarningsRecorder,
) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    frozen = rgb.copy()
    frozen.setflags(write=False)  # as np.asarray(PIL.Image.open(...)) gives
    look = Look(Curve())
    mask = np.full((40, 50), 0.5)
    mask.setflags(write=False)
    np.testing.assert_array_equal(regrain(look, frozen, mask=mask), regrain(look, rgb, mask=mask))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_a_given_base_layer_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from otcolor.errors import UsageError

    rgb = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    look = Look(Curve())
    own = regrain(look, rgb)
    monkeypatch.setattr(regrain_mod, "BAND_ROWS", 7)  # and for any band size
    np.testing.assert_array_equal(regrain(look, rgb, base=base_colors(rgb)), own)
    with pytest.raises(UsageError):
        regrain(look, rgb, base=base_colors(rgb[:-4]))


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_the_box_filter_is_the_clipped_window_mean(radius: int) -> None:
    # The reference: avg_pool2d without the padding in the count, what _box replaced.
    import torch.nn.functional as F

    from otcolor.regrain import _box

    x = torch.rand(4, 11, 23, generator=torch.Generator().manual_seed(radius))
    k = 2 * radius + 1
    ref = F.avg_pool2d(x[None], (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    ref = F.avg_pool2d(ref, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)[0]
    assert torch.equal(_box(x, radius), ref)


class Sqrt(nn.Module):
    r""":math:`T(x) = \sqrt{x}` per channel: steepest near black (gain 5 at 0.01)."""

    def forward(self, x: Tensor) -> Tensor:
        return (x.clamp(min=0) + 1e-4).sqrt()


def test_a_fine_texture_keeps_its_structure() -> None:
    # A texture of period ~5 pixels (foliage, fabric, halftone): the base layer alone loses it
    # (structure 0.77 measured), the regrain must carry it through a nonlinear map.
    from otcolor.metrics import structure

    yy, xx = np.mgrid[0:96, 0:128]
    texture = 0.5 + 0.15 * np.sin(xx * 1.3) * np.sin(yy * 1.1)
    image = np.stack([texture, 0.9 * texture + 0.05, 0.6 * texture + 0.2], -1).astype(np.float32)
    look = Look(Sqrt())
    assert structure(image, regrain(look, image)) >= 0.98
    coarse = np.repeat(np.repeat(base_colors(image), 2, 0), 2, 1)[:96, :128]
    assert structure(image, apply_look(look, coarse, bit_depth=16)) < 0.9  # the test can tell


def test_a_dark_smooth_patch_keeps_its_grain_level() -> None:
    # Dark cloth or skin in shadow, through a map steep near black: the pure map doubles the
    # grain, the regrain keeps it (amp999 measured 1.56 against 3.01).
    from otcolor.metrics import amp999

    rng = np.random.default_rng(3)
    dark = np.clip(0.06 + 0.01 * rng.standard_normal((96, 128, 3)), 0, 1).astype(np.float32)
    look = Look(Sqrt())
    pure = apply_look(look, dark, bit_depth=16)
    out = regrain(look, dark)
    assert pure.std() > 1.8 * dark.std()
    assert out.std() < 1.2 * dark.std() and amp999(dark, out) < 2.0


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_the_fused_widening_is_the_bilinear_gather(scale: int) -> None:
    from otcolor.regrain import _bilinear, _widen

    coef = torch.rand(12, 9, 13, generator=torch.Generator().manual_seed(scale))
    width = 13 * scale - 1  # cropped, as the image's last block is
    c0, c1, cw = (torch.from_numpy(a) for a in _bilinear(width, 13, scale))
    gathered = coef[:, :, c0] * (1 - cw) + coef[:, :, c1] * cw
    assert torch.allclose(_widen(coef, scale)[:, :, :width], gathered, atol=3e-7, rtol=0)


@pytest.mark.parametrize("rows", [1, 7])
def test_full_resolution_rows_in_any_split_agree(
    monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1, (41, 37, 3)).astype(np.float32)
    look = Look(Curve())
    whole = regrain(look, image)
    monkeypatch.setattr(regrain_mod, "FULL_ROWS", rows)
    assert np.array_equal(regrain(look, image), whole)


def test_uint8_output_is_the_saved_rounding_of_the_float_output() -> None:
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)
    mask = rng.uniform(0, 1, (33, 45)).astype(np.float32)
    constant = Look(ConstantMap(torch.tensor([0.2, 0.5, 0.9])))  # its own route, no filter
    for look, m in [(Look(Curve()), None), (Look(Curve()), mask), (constant, mask)]:
        floats = regrain(look, image, mask=m)
        eight = regrain(look, image, mask=m, as_uint8=True)
        assert eight.dtype == np.uint8
        # save_image's rounding of the float output: the same bytes either way.
        assert np.array_equal(eight, np.round(np.clip(floats, 0, 1) * np.float32(255)))


def test_the_gain_cap_bounds_how_much_a_steep_map_stretches_fine_texture() -> None:
    # A fine grey texture with grain through a map that stretches everything 3x: the
    # displacement filter passes the texture (and the grain on it) with the map's gain, unless
    # each window's slope is capped (measured 2.22x free, 1.50x with cap 0.5).
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:128]
    texture = 0.5 + 0.12 * np.sin(xx * 1.3) * np.sin(yy * 1.1)
    image = np.repeat(texture[..., None], 3, -1) + 0.004 * rng.standard_normal((96, 128, 3))
    image = image.astype(np.float32)
    look = Look(Stretch(0.5, 3.0))
    spread = (image - 0.5).std()
    assert (regrain(look, image) - 0.5).std() > 2.0 * spread  # the test can tell
    capped = regrain(look, image, RegrainConfig(gain_cap=0.5))
    assert (capped - 0.5).std() < 1.55 * spread  # |Id + A| <= 1 + cap


def test_the_spread_puts_back_the_detail_the_source_lacks() -> None:
    from otcolor.regrain import base_at, detail_power, spread_colours

    rng = np.random.default_rng(6)
    smooth = np.clip(0.5 + 0.002 * rng.standard_normal((64, 96, 3)), 0, 1).astype(np.float32)
    rough = np.clip(0.5 + 0.05 * rng.standard_normal((64, 96, 3)), 0, 1).astype(np.float32)
    config = RegrainConfig(spread=1.0)
    picks = np.arange(64 * 96)
    base = base_colors(rough, config)
    # An image sent onto itself: the base layer, as before.
    same = spread_colours(rough, base, picks, config, detail_power(rough, base, 2))
    assert np.allclose(same, base_at(base, picks, (64, 96), 2), atol=1e-6)
    # A smooth source: nearly all of the rough target's spread comes back.
    wide = spread_colours(rough, base, picks, config, detail_power(smooth, base_colors(smooth), 2))
    assert wide.std() > 0.9 * rough.std() and base.std() < 0.5 * rough.std()
    assert np.array_equal(spread_colours(rough, base, picks, RegrainConfig(), 0.0), same)


def test_the_contraction_is_einsum_bit_for_bit() -> None:
    gen = torch.Generator().manual_seed(3)
    x, a = torch.rand(3, 17, 23, generator=gen), torch.rand(3, 3, 17, 23, generator=gen) - 0.5
    expected = torch.einsum("ihw,ichw->chw", x, a)
    assert torch.equal(regrain_mod._contract(x[:, None], a), expected)
    inv, cross = torch.rand(3, 3, 9, 11, generator=gen), torch.rand(3, 4, 9, 11, generator=gen)
    got = regrain_mod._contract(inv.transpose(0, 1)[:, :, None], cross[:, None])
    assert torch.equal(got, torch.einsum("ijhw,jchw->ichw", inv, cross))


def test_the_box_filter_does_not_depend_on_its_channel_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = torch.rand(2, 7, 30, 41, generator=torch.Generator().manual_seed(4))
    grouped = regrain_mod._box(x, 3)
    monkeypatch.setattr(regrain_mod, "_BOX_CHANNELS", 64)
    assert torch.equal(grouped, regrain_mod._box(x, 3))


def test_the_lattice_is_the_trilinear_table_lookup() -> None:
    look = Look(Curve(), LookSettings())
    table = ColorTable(look)
    colours = np.random.default_rng(5).uniform(0, 1, (500, 3)).astype(np.float32)
    colours[:3] = [[0, 0, 0], [1, 1, 1], [0.5, 1.0, 0.0]]  # the lattice's edges
    got = regrain_mod._map_lattice(table, colours)
    # The same trilinear weights, written plainly: 1 * w_r * w_g * w_b per corner, in order.
    scaled = colours * np.float32(255)
    corner = np.minimum(np.floor(scaled), 254).astype(np.int64)
    frac = (scaled - corner).astype(np.float32)
    expected = np.zeros_like(colours)
    for db in (0, 1):
        for dg in (0, 1):
            for dr in (0, 1):
                w = np.ones(len(colours), np.float32)
                for axis, bit in enumerate((dr, dg, db)):
                    w *= frac[:, axis] if bit else 1 - frac[:, axis]
                at = corner + [dr, dg, db]
                keys = (at[:, 0] | at[:, 1] << 8 | at[:, 2] << 16).astype(np.uint32)
                expected += w[:, None] * table.values()[table.index[keys]]
    assert np.array_equal(got, expected)
    exact = np.round(colours[:3] * 255) / 255  # at the 8-bit colours: the table's own values
    assert np.allclose(
        regrain_mod._map_lattice(table, exact.astype(np.float32)), exact**2, atol=1e-6
    )
