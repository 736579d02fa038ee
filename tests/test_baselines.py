r"""Tests for otcolor.baselines: closed-form answers for MKL and histogram, smoke tests for POT."""

from __future__ import annotations

import numpy as np
import pytest

from otcolor.baselines import BASELINES, histogram, mkl


def gaussian_image(
    mean: np.ndarray, cov: np.ndarray, shape: tuple[int, int], seed: int
) -> np.ndarray:
    r"""An (H, W, 3) image whose pixels are Gaussian, kept well inside [0, 1] so no clipping."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mean, cov, size=shape)


def test_mkl_matches_target_mean_and_covariance() -> None:
    rng = np.random.default_rng(0)
    root_s, root_t = rng.normal(size=(3, 3)) * 0.03, rng.normal(size=(3, 3)) * 0.04
    src = gaussian_image(np.full(3, 0.4), root_s @ root_s.T, (100, 100), seed=1)
    tgt = gaussian_image(np.array([0.6, 0.5, 0.45]), root_t @ root_t.T, (80, 90), seed=2)
    assert src.min() > 0 and src.max() < 1 and tgt.min() > 0 and tgt.max() < 1
    out = mkl(src, tgt).reshape(-1, 3)
    t = tgt.reshape(-1, 3)
    np.testing.assert_allclose(out.mean(0), t.mean(0), atol=1e-10)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(t, rowvar=False), atol=1e-10)


def test_mkl_is_the_gradient_of_a_convex_quadratic() -> None:
    rng = np.random.default_rng(0)
    src, tgt = rng.uniform(0.3, 0.6, (20, 20, 3)), rng.uniform(0.2, 0.5, (20, 20, 3)) ** 2
    out = mkl(src, tgt)
    # Affine map out = b + A x: recover A by least squares, then check it is symmetric PSD.
    x = np.c_[src.reshape(-1, 3), np.ones(400)]
    a = np.linalg.lstsq(x, out.reshape(-1, 3), rcond=None)[0][:3].T
    np.testing.assert_allclose(a, a.T, atol=1e-8)
    assert np.linalg.eigvalsh(a).min() > 0


def test_mkl_survives_a_grey_source() -> None:
    grey = np.repeat(np.linspace(0.2, 0.8, 100).reshape(10, 10, 1), 3, axis=2)  # rank-1 covariance
    tgt = np.random.default_rng(0).uniform(0.2, 0.8, (10, 10, 3))
    out = mkl(grey, tgt)
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), tgt.reshape(-1, 3).mean(0), atol=0.05)


def test_histogram_matches_per_channel_quantiles() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(size=(50, 60, 3))
    channels = [rng.beta(2, 5, (40, 40)), rng.beta(5, 2, (40, 40)), rng.uniform(size=(40, 40))]
    tgt = np.stack(channels, axis=-1)
    out = histogram(src, tgt).reshape(-1, 3)
    levels = np.linspace(0.02, 0.98, 25)
    for c in range(3):
        np.testing.assert_allclose(
            np.quantile(out[:, c], levels), np.quantile(tgt[..., c], levels), atol=0.01
        )
        # Monotone per channel: the ranks of the source survive.
        order = np.argsort(src.reshape(-1, 3)[:, c])
        assert np.all(np.diff(out[order, c]) >= 0)


def test_histogram_onto_itself_is_close_to_identity() -> None:
    img = np.random.default_rng(0).integers(0, 256, (30, 30, 3)) / 255
    np.testing.assert_allclose(histogram(img, img), img, atol=2 / 255)


@pytest.mark.parametrize("name", ["emd", "sinkhorn"])
def test_pot_baselines_run_on_tiny_images(name: str) -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0.0, 0.5, (12, 15, 3))
    tgt = rng.uniform(0.5, 1.0, (10, 10, 3))
    out = BASELINES[name](src, tgt, 0)
    assert out.shape == src.shape
    assert out.min() >= 0 and out.max() <= 1
    # Every colour moves into the target's range (up to the out-of-sample shifts of emd).
    assert out.reshape(-1, 3).mean(0) == pytest.approx(tgt.reshape(-1, 3).mean(0), abs=0.05)


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_registry_names() -> None:
    assert set(BASELINES) == {"mkl", "histogram", "emd", "sinkhorn"}
    img = np.random.default_rng(0).uniform(size=(6, 7, 3))
    for fn in BASELINES.values():
        assert fn(img, img[::-1], 0).shape == img.shape


def test_rejects_non_images() -> None:
    with pytest.raises(ValueError):
        mkl(np.zeros((10, 3)), np.zeros((10, 3)))
