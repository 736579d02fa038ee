r"""Tests of otcolor.look: the colour function (strength, Lab, lightness), the settings a look
holds, and the block evaluation that makes a colour's value independent of the others."""

import numpy as np
import pytest
import torch

from otcolor.errors import UsageError
from otcolor.fitting.colour import COLOR_MODELS
from otcolor.look import BLOCK, REGRAIN, Look, LookSettings, RegrainConfig, evaluate_map
from otcolor.models import ColorMap, ConstantMap, build_model
from otcolor.spaces import lab_to_srgb, srgb_to_lab


def _map(seed: int = 0) -> ColorMap:
    torch.manual_seed(seed)
    model = build_model("cmgn", 3, **COLOR_MODELS["cmgn"])
    return ColorMap(model, torch.tensor([0.5, 0.4, 0.3]), 0.3).eval()


def test_strength_zero_is_identity_and_one_is_the_map() -> None:
    rgb = np.random.default_rng(1).uniform(0, 1, (5000, 3)).astype(np.float32)
    color_map = _map()
    full = Look(color_map)(rgb)
    with torch.no_grad():
        direct = np.clip(color_map(torch.from_numpy(rgb)).numpy(), 0, 1)
    assert np.array_equal(full, direct)
    assert np.array_equal(Look(color_map, LookSettings(strength=0.0))(rgb), rgb)
    assert np.abs(Look(color_map, LookSettings("lab", strength=0.0))(rgb) - rgb).max() < 1e-5
    half = Look(color_map, LookSettings(strength=0.5))(rgb)
    with torch.no_grad():
        raw = color_map(torch.from_numpy(rgb)).numpy()
    assert np.allclose(half, np.clip(rgb + 0.5 * (raw - rgb), 0, 1), atol=1e-6)
    with pytest.raises(UsageError):
        LookSettings(strength=1.5)
    with pytest.raises(UsageError):
        LookSettings(space="hsv")


def test_lab_look_maps_in_lab_and_preserve_luminance_keeps_lightness() -> None:
    # A map in Lab/100 coordinates that shifts b* by +20: blue goes yellow, L* unchanged.
    shift = torch.nn.Linear(3, 3)
    with torch.no_grad():
        shift.weight.copy_(torch.eye(3))
        shift.bias.copy_(torch.tensor([-0.1, 0.0, 0.2]))
    rgb = np.random.default_rng(2).uniform(0.3, 0.7, (2000, 3)).astype(np.float32)
    lab_in = srgb_to_lab(rgb)
    out = Look(shift, LookSettings("lab"))(rgb)
    in_gamut = (
        lab_to_srgb(lab_in + [-10, 0, 20]).clip(0, 1) == lab_to_srgb(lab_in + [-10, 0, 20])
    ).all(-1)
    assert in_gamut.mean() > 0.5
    assert np.allclose(srgb_to_lab(out)[in_gamut], (lab_in + [-10, 0, 20])[in_gamut], atol=0.05)
    kept = Look(shift, LookSettings("lab", preserve_luminance=True))(rgb)
    assert np.allclose(srgb_to_lab(kept)[in_gamut, 0], lab_in[in_gamut, 0], atol=0.05)


def test_a_look_holds_its_regrain_and_a_constant_map_never_regrains() -> None:
    look = Look(_map())
    assert look.regrain == REGRAIN  # the product's default: what transfer ships
    assert Look(_map(), LookSettings(regrain=None)).regrain is None
    constant = Look(ConstantMap(torch.tensor([0.2, 0.4, 0.6])))
    assert constant.settings.regrain == REGRAIN and constant.regrain is None
    custom = RegrainConfig(scale=1, base_radius=4, radius=2)
    assert Look(_map(), LookSettings(regrain=custom)).regrain is custom


def test_settings_are_validated_and_replaced_not_mutated() -> None:
    for bad in (
        dict(scale=0),
        dict(radius=1, scale=2),
        dict(eps=0.0),
        dict(base_eps=float("nan")),
    ):
        with pytest.raises(UsageError):
            RegrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        LookSettings(regrain="yes")  # type: ignore[arg-type]
    look = Look(_map())
    half = look.with_strength(0.5)
    assert half.strength == 0.5 and look.strength == 1.0 and half.map is look.map
    assert look.with_strength(None) is look
    with pytest.raises(UsageError):
        look.with_settings(space="hsv")


def test_a_colour_does_not_depend_on_the_other_colours_evaluated_with_it() -> None:
    color_map = _map()
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 1, (BLOCK + 7, 3)).astype(np.float32)
    alone = evaluate_map(color_map, points[:7])
    together = evaluate_map(color_map, points)
    assert np.array_equal(alone, together[:7])
    assert np.array_equal(evaluate_map(color_map, points[::-1].copy())[::-1], together)
