r"""Tests of otcolor.fitting.brenier (the default estimator): known Brenier maps recovered,
never worse than the closed form."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from otcolor.bench.known import pair_seed, psnr
from otcolor.bench.maps import draw_map
from otcolor.color import apply_look
from otcolor.fitting import FitSettings, fit_color_map
from otcolor.gaussian import bures_map, moments
from otcolor.look import Look

PHOTO = Path(__file__).resolve().parents[1] / "benchmarks" / "images" / "chelsea.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    r"""A small real photo, (N, 3) in [0, 1]: the known answers are only as hard as real colours."""

    img = Image.open(PHOTO).convert("RGB").resize((128, 96), Image.BILINEAR)
    return (np.asarray(img).reshape(-1, 3) / 255.0).astype(np.float32)


def _to8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _recover(src: np.ndarray, tgt8: np.ndarray, **kw: object):  # type: ignore[no-untyped-def]
    settings = FitSettings(device="cpu", **{"smoothness": 0.3, **kw})  # type: ignore[arg-type]
    fitted = fit_color_map(src, (tgt8 / 255.0).astype(np.float32), settings)
    return fitted, _to8(apply_look(Look(fitted.map), src[None])[0])


def test_known_s_curve_is_recovered_where_the_plan_estimator_is_not(photo: np.ndarray) -> None:
    # Measured on this pair: full estimator 52.0 dB, the previous plan regression 40.8 dB.
    known = draw_map("scurve", pair_seed("chelsea.jpg", "scurve"))
    target = _to8(known(photo))
    fitted, out = _recover(photo, target)
    assert not fitted.warnings
    assert psnr(out, target)["psnr"] >= 47.0
    _, old = _recover(photo, target, estimator="plan", smoothness=4.0)
    assert psnr(old, target)["psnr"] < 47.0


def test_an_affine_brenier_map_is_recovered_exactly(photo: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    M = q @ np.diag([0.5, 0.7, 0.9]) @ q.T  # symmetric PD: the gradient of a convex quadratic
    c = 0.5 - M @ np.full(3, 0.5)
    target = _to8(photo @ M.T + c)
    _, out = _recover(photo, target)
    assert psnr(out, target)["psnr"] >= 50.0
    # The learned part stays small: the map is the affine one, not a detour around it.
    assert np.abs(out.astype(int) - target).max() <= 3


def test_near_affine_map_improves_on_the_closed_form_without_falling_back(
    photo: np.ndarray,
) -> None:
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    M = q @ np.diag([0.6, 0.8, 0.7]) @ q.T
    c = 0.5 - M @ np.full(3, 0.5)
    gamma = np.array([0.8, 1.0, 1.25])
    target = _to8(0.85 * (photo @ M.T + c) + 0.15 * np.power(photo, gamma))
    fitted, out = _recover(photo, target)
    assert not fitted.warnings  # no restart needed
    assert fitted.scores["fit_sliced_w2"] <= fitted.scores["gaussian_sliced_w2"]
    x, y = torch.from_numpy(photo).double(), torch.from_numpy(target / 255.0).double()
    A, b = bures_map(*moments(x), *moments(y))
    closed_form = _to8((x @ A.mT + b).numpy())
    assert psnr(out, target)["psnr"] >= psnr(closed_form, target)["psnr"]
    assert type(fitted.map.model).__name__ == "CMGN"  # the learned map, not the closed form


def test_fit_is_repeatable_on_cpu(photo: np.ndarray) -> None:
    target = _to8(draw_map("palette", 3)(photo))
    _, out_a = _recover(photo, target, steps=20, seed=5)
    _, out_b = _recover(photo, target, steps=20, seed=5)
    assert np.array_equal(out_a, out_b)


def test_the_closed_form_to_beat_does_not_depend_on_the_start(photo: np.ndarray) -> None:
    # With --init identity the bar is still the Gaussian map, not the identity.
    target = _to8(draw_map("scurve", 7)(photo))
    a, _ = _recover(photo, target, steps=4, init="gaussian")
    b, _ = _recover(photo, target, steps=4, init="identity")
    assert np.isclose(a.scores["gaussian_sliced_w2"], b.scores["gaussian_sliced_w2"], rtol=1e-6)
    assert b.scores["fit_sliced_w2"] <= b.scores["gaussian_sliced_w2"]
