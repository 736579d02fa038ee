r"""Tests of otcolor.color: exact sRGB <-> CIELAB, looks (strength, luminance), the colour table."""

import numpy as np
import pytest
import torch

from otcolor.color import (
    ColorTable,
    Look,
    apply_look,
    keys_of,
    lab_to_srgb,
    srgb_to_lab,
)
from otcolor.errors import UsageError
from otcolor.fit import COLOR_MODELS
from otcolor.models import ColorMap, build_model


def _map(seed: int = 0) -> ColorMap:
    torch.manual_seed(seed)
    model = build_model("cmgn", 3, **COLOR_MODELS["cmgn"])
    return ColorMap(model, torch.tensor([0.5, 0.4, 0.3]), 0.3).eval()


def test_lab_known_values_and_exact_round_trip() -> None:
    assert np.allclose(srgb_to_lab([1.0, 1.0, 1.0]), [100, 0, 0], atol=1e-12)
    assert np.allclose(srgb_to_lab([0.0, 0.0, 0.0]), [0, 0, 0], atol=1e-12)
    # sRGB red, D65 (Lindbloom's calculator): L 53.24, a 80.09, b 67.20.
    assert np.allclose(srgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.01)
    rgb = np.random.default_rng(0).integers(0, 256, (100_000, 3)) / 255
    assert np.abs(lab_to_srgb(srgb_to_lab(rgb)) - rgb).max() < 1e-12


def test_strength_zero_is_identity_and_one_is_the_map() -> None:
    rgb = np.random.default_rng(1).uniform(0, 1, (5000, 3)).astype(np.float32)
    color_map = _map()
    full = Look(color_map)(rgb)
    with torch.no_grad():
        direct = np.clip(color_map(torch.from_numpy(rgb)).numpy(), 0, 1)
    assert np.array_equal(full, direct)
    assert np.array_equal(Look(color_map, strength=0.0)(rgb), rgb)
    assert np.abs(Look(color_map, "lab", strength=0.0)(rgb) - rgb).max() < 1e-5
    half = Look(color_map, strength=0.5)(rgb)
    with torch.no_grad():
        raw = color_map(torch.from_numpy(rgb)).numpy()
    assert np.allclose(half, np.clip(rgb + 0.5 * (raw - rgb), 0, 1), atol=1e-6)
    with pytest.raises(UsageError):
        Look(color_map, strength=1.5)
    with pytest.raises(UsageError):
        Look(color_map, space="hsv")


def test_lab_look_maps_in_lab_and_preserve_luminance_keeps_lightness() -> None:
    # A map in Lab/100 coordinates that shifts b* by +20: blue goes yellow, L* unchanged.
    shift = torch.nn.Linear(3, 3)
    with torch.no_grad():
        shift.weight.copy_(torch.eye(3))
        shift.bias.copy_(torch.tensor([-0.1, 0.0, 0.2]))
    rgb = np.random.default_rng(2).uniform(0.3, 0.7, (2000, 3)).astype(np.float32)
    lab_in = srgb_to_lab(rgb)
    out = Look(shift, "lab")(rgb)
    in_gamut = (
        lab_to_srgb(lab_in + [-10, 0, 20]).clip(0, 1) == lab_to_srgb(lab_in + [-10, 0, 20])
    ).all(-1)
    assert in_gamut.mean() > 0.5
    assert np.allclose(srgb_to_lab(out)[in_gamut], (lab_in + [-10, 0, 20])[in_gamut], atol=0.05)
    kept = Look(shift, "lab", preserve_luminance=True)(rgb)
    assert np.allclose(srgb_to_lab(kept)[in_gamut, 0], lab_in[in_gamut, 0], atol=0.05)


def test_color_table_is_exact_and_independent_of_other_colours() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)
    look = Look(_map())
    via_table = apply_look(look, image)
    direct = look(image.reshape(-1, 3).astype(np.float32) / 255).reshape(image.shape)
    assert np.array_equal(via_table, direct)
    # The same colours inside another image, with other colours around them: same outputs.
    other = np.concatenate([image, rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)], 1)
    assert np.array_equal(apply_look(look, other)[:, :70], via_table)
    eight = apply_look(look, image, as_uint8=True)
    assert eight.dtype == np.uint8
    assert np.array_equal(eight, np.round(via_table * np.float32(255)).astype(np.uint8))
    table = ColorTable(look)
    apply_look(look, image, table=table)
    seen = table.count
    apply_look(look, image[::-1], table=table)  # nothing new to evaluate
    assert table.count == seen == np.unique(keys_of(image)).size


def test_apply_mask_blends() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (8, 9, 3)).astype(np.float32) / 255
    look = Look(_map())
    full = apply_look(look, rgb)
    mask = np.zeros((8, 9), np.float32)
    mask[:, 3:6] = 0.5
    mask[:, 6:] = 1.0
    out = apply_look(look, rgb, mask=mask)
    assert np.array_equal(out[:, :3], rgb[:, :3])
    assert np.allclose(out[:, 3:6], (rgb[:, 3:6] + full[:, 3:6]) / 2, atol=1e-6)
    assert np.allclose(out[:, 6:], full[:, 6:], atol=1e-7)
    with pytest.raises(UsageError):
        apply_look(look, rgb, mask=mask[:, :5])
