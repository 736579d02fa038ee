r"""Tests of otcolor.spaces: exact sRGB <-> CIELAB."""

import numpy as np
import pytest

from otcolor.errors import UsageError
from otcolor.spaces import from_space, lab_to_srgb, srgb_to_lab, to_space


def test_lab_known_values_and_exact_round_trip() -> None:
    assert np.allclose(srgb_to_lab([1.0, 1.0, 1.0]), [100, 0, 0], atol=1e-12)
    assert np.allclose(srgb_to_lab([0.0, 0.0, 0.0]), [0, 0, 0], atol=1e-12)
    # sRGB red, D65 (Lindbloom's calculator): L 53.24, a 80.09, b 67.20.
    assert np.allclose(srgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.01)
    rgb = np.random.default_rng(0).integers(0, 256, (100_000, 3)) / 255
    assert np.abs(lab_to_srgb(srgb_to_lab(rgb)) - rgb).max() < 1e-12


def test_to_space_and_back() -> None:
    rgb = np.random.default_rng(0).uniform(0, 1, (1000, 3)).astype(np.float32)
    assert to_space(rgb, "rgb") is rgb or np.array_equal(to_space(rgb, "rgb"), rgb)
    assert np.abs(from_space(to_space(rgb, "lab"), "lab") - rgb).max() < 1e-5
    with pytest.raises(UsageError):
        to_space(rgb, "hsv")
