r"""Tests for otcolor.metrics: known answers for identity, order-reversing and scaling maps."""

from __future__ import annotations

import numpy as np
import pytest

from otcolor.metrics import (
    amp999,
    ciede2000,
    cost_ratio,
    evaluate_transfer,
    mean_ciede2000,
    quantize,
    sliced_w2,
    structure,
    violations,
    w2_ratio,
)
from otcolor.spaces import srgb_to_lab


def image(shape: tuple[int, int] = (40, 50), seed: int = 0, high: float = 1.0) -> np.ndarray:
    r"""A random 8-bit image in [0, high], shape (H, W, 3)."""
    rng = np.random.default_rng(seed)
    return quantize(rng.uniform(0.0, high, (*shape, 3)))


def test_w2_ratio_of_target_against_itself_is_about_one() -> None:
    tgt = image((60, 60))
    res = w2_ratio(tgt, tgt, np.random.default_rng(0), n=500)
    assert res.floor > 0
    assert 0.7 < res.ratio < 1.3
    assert res.ratio == pytest.approx(res.w2 / res.floor)


def test_w2_ratio_is_large_for_a_shifted_output() -> None:
    tgt = image((60, 60), high=0.5)
    res = w2_ratio(tgt + 0.5, tgt, np.random.default_rng(0), n=300)
    assert res.w2 == pytest.approx(0.5 * np.sqrt(3), rel=0.05)  # a translation costs its length
    assert res.ratio > 5


def test_cost_ratio_of_identity_is_zero() -> None:
    src, tgt = image(seed=0), image(seed=1)
    res = cost_ratio(src, src, tgt, np.random.default_rng(0), n=300)
    assert res.ratio == 0.0
    assert res.ot_cost > 0


def test_cost_ratio_of_a_translation_onto_its_target_is_one() -> None:
    src = image((60, 60), high=0.5)
    shift = np.array([0.3, -0.1, 0.2])
    # A translation is the OT map onto its image, so cost = W2^2 up to subsampling noise.
    res = cost_ratio(src, src + shift, src + shift, np.random.default_rng(0), n=1000)
    assert res.cost == pytest.approx(np.sum(shift**2))
    assert res.ratio == pytest.approx(1.0, rel=0.1)


def test_identity_has_no_violations_and_unit_amplification() -> None:
    src = image()
    assert violations(src, src, np.random.default_rng(0), pairs=20_000) == 0.0
    assert amp999(src, src) <= 1.0


def test_order_reversing_map_violates_monotonicity() -> None:
    src = image()
    # <(1 - x) - (1 - y), x - y> = -|x - y|^2 < -(2/255)^2 on every judged pair.
    assert violations(src, 1.0 - src, np.random.default_rng(0), pairs=20_000) == 1.0


def test_partial_reversal_gives_the_reversed_fraction() -> None:
    src = image((20, 2000))
    out = src.copy()
    out[..., 0] = 1 - src[..., 0]  # reverses one channel only: monotone iff the others win
    frac = violations(src, out, np.random.default_rng(0), pairs=20_000)
    assert 0.05 < frac < 0.95


def test_amp999_of_a_doubling_map_is_two() -> None:
    src = image(high=0.5)
    assert amp999(src, 2 * src) == pytest.approx(2.0, abs=1e-9)


def test_amp999_ignores_sub_floor_differences() -> None:
    src = np.zeros((4, 10, 3))
    out = src.copy()
    out[:, ::2] = 2 / 255  # a 2-level grey ripple on a flat source: |dT| = sqrt(3) * 2/255
    assert amp999(src, out) == pytest.approx(np.sqrt(3))


def test_sliced_w2_known_answers() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3000, 3))
    assert sliced_w2(a, a, rng) == 0.0
    # A translation by v projects to a 1-D shift <theta, v>, and E<theta, v>^2 = |v|^2 / d.
    v = np.array([0.3, 0.0, 0.0])
    sw = sliced_w2(a, a + v, rng, n_projections=2000)
    assert sw == pytest.approx(0.3 / np.sqrt(3), rel=0.05)
    # Unequal sizes compare quantile functions: a repeated cloud is the same distribution.
    assert sliced_w2(a, np.concatenate([a, a]), rng, n=None) == pytest.approx(0.0, abs=1e-12)


def test_evaluate_transfer_keys_and_determinism() -> None:
    src, tgt = image((30, 40), seed=0), image((30, 30), seed=1, high=0.6)
    a = evaluate_transfer(src, src, tgt, seed=3)
    b = evaluate_transfer(src, src, tgt, seed=3)
    assert a == b
    assert set(a) == {
        "w2_ratio", "w2", "w2_floor", "cost_ratio", "transport_cost", "ot_cost",
        "violations", "amp999", "structure", "sliced_w2",
    }  # fmt: skip
    assert all(isinstance(v, float) and np.isfinite(v) for v in a.values())
    assert a["cost_ratio"] == 0.0 and a["violations"] == 0.0


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError):
        amp999(image((10, 10)), image((10, 11)))
    with pytest.raises(ValueError):
        violations(image((10, 10)), image((11, 10)), np.random.default_rng(0))


def test_structure_ignores_contrast_and_flags_invented_grain() -> None:
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    smooth = np.stack([0.2 + 0.5 * xx, 0.3 + 0.2 * yy, 0.4 + 0.3 * xx * yy], -1)
    assert structure(smooth, smooth) == pytest.approx(1.0)
    # A brighter, higher-contrast copy keeps every local pattern: still about 1.
    assert structure(smooth, 0.1 + 1.3 * smooth * 0.7) > 0.99
    # Grain the source does not have breaks the local correlation.
    grainy = smooth + np.random.default_rng(0).normal(0, 0.03, smooth.shape)
    assert structure(smooth, grainy) < 0.9
    with pytest.raises(ValueError):
        structure(smooth, smooth[:, :10])


def test_ciede2000_matches_sharma_wu_dalal() -> None:
    from otcolor.metrics import ciede2000

    # Pairs 1, 2, 3, 7, 13, 17, 25 and 34 of Sharma, Wu & Dalal (2005), table 1.
    table = np.array(
        [
            [50, 2.6772, -79.7751, 50, 0, -82.7485, 2.0425],
            [50, 3.1571, -77.2803, 50, 0, -82.7485, 2.8615],
            [50, 2.8361, -74.0200, 50, 0, -82.7485, 3.4412],
            [50, 0, 0, 50, -1, 2, 2.3669],
            [50, 2.49, -0.001, 50, -2.49, 0.0009, 7.1792],
            [50, 2.5, 0, 73, 25, -18, 27.1492],
            [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
            [2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082],
        ]
    )
    assert np.allclose(ciede2000(table[:, :3], table[:, 3:6]), table[:, 6], atol=1e-4)
    assert np.allclose(ciede2000(table[:, 3:6], table[:, :3]), table[:, 6], atol=1e-4)
    assert ciede2000(table[0, :3], table[0, :3]) == 0


def test_mean_ciede2000_reads_uint8_and_float_images_alike() -> None:
    rng = np.random.default_rng(7)
    a, b = (rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(2))
    expected = ciede2000(
        srgb_to_lab(a.reshape(-1, 3) / 255.0), srgb_to_lab(b.reshape(-1, 3) / 255.0)
    )
    assert mean_ciede2000(a, b) == pytest.approx(float(expected.mean()))
    assert mean_ciede2000(a, b) == pytest.approx(mean_ciede2000(a / 255.0, b / 255.0))
    assert mean_ciede2000(a, a) == 0.0
