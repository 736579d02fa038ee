r"""Quality metrics of a colour transfer: closeness to the target, transport cost, smoothness."""

from __future__ import annotations

__all__ = [
    "CostRatio",
    "W2Ratio",
    "amp999",
    "ciede2000",
    "cost_ratio",
    "emd2",
    "evaluate_transfer",
    "mean_ciede2000",
    "quantize",
    "sliced_w2",
    "structure",
    "violations",
    "w2_ratio",
]

from typing import NamedTuple

import numpy as np

from .spaces import srgb_to_lab

#: Pairs of colours closer than this (8 levels of an 8-bit channel) are too close to judge
#: monotonicity on after quantisation, so :func:`violations` skips them.
MIN_PAIR_DISTANCE: float = 8 / 255

#: Slack of the monotonicity test: quantising both images to 8 bits can move
#: :math:`\langle T(x) - T(y), x - y \rangle` by about this much.
MONOTONE_SLACK: float = (2 / 255) ** 2

#: Floor of the colour difference in :func:`amp999`, so that equal or 1-level-apart
#: neighbours do not turn quantisation noise into huge amplification factors.
AMP_FLOOR: float = 2 / 255


class W2Ratio(NamedTuple):
    r"""Exact :math:`W_2` between output and target, relative to the target's own sampling noise.

    Arguments:
        ratio: :math:`W_2(\text{output}, \text{target}) / W_2(\text{target}, \text{target}')`;
            1.0 means the output is as close to the target as another sample of the target is.
        w2: :math:`W_2(\text{output}, \text{target})` on the subsample.
        floor: :math:`W_2` between two disjoint subsamples of the target (the noise floor).
    """

    ratio: float
    w2: float
    floor: float


class CostRatio(NamedTuple):
    r"""Transport cost of a map, relative to the optimal transport cost.

    Arguments:
        ratio: ``cost / ot_cost``; an exact OT map scores about 1, the identity 0.
        cost: :math:`\frac{1}{N} \sum_i \|T(x_i) - x_i\|^2` over all pixels.
        ot_cost: :math:`W_2^2` between subsamples of the source and the target.
    """

    ratio: float
    cost: float
    ot_cost: float


def quantize(img: np.ndarray) -> np.ndarray:
    r"""Rounds values in :math:`[0, 1]` to the 8-bit grid :math:`k / 255`, as saving a PNG does.

    Idempotent, so images already re-read from 8-bit files are unchanged.
    """
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0


def _pixels(x: np.ndarray) -> np.ndarray:
    r"""Flattens ``(..., C)`` to ``(N, C)`` float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])


def emd2(a: np.ndarray, b: np.ndarray) -> float:
    r"""Exact :math:`W_2^2` between uniform empirical measures on ``a`` (n, C) and ``b`` (m, C)."""
    import ot  # lazily, so that ``import otcolor`` works without POT

    cost = ot.dist(a, b, metric="sqeuclidean")
    # numItermax far above POT's default (1e5): 4000 x 4000 problems need a few million pivots.
    return float(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=10_000_000))


def w2_ratio(
    output_pixels: np.ndarray,
    target_pixels: np.ndarray,
    rng: np.random.Generator,
    n: int = 4000,
) -> W2Ratio:
    r"""Exact :math:`W_2` from the output colours to the target's, divided by its noise floor.

    .. math:: \frac{W_2(\hat{O}_n, \hat{Q}_n)}{W_2(\hat{Q}_n, \hat{Q}'_n)}

    where :math:`\hat{O}_n` holds :math:`n` random output pixels and :math:`\hat{Q}_n`,
    :math:`\hat{Q}'_n` are two disjoint :math:`n`-pixel samples of the target. :math:`W_2` is the
    square root of POT's exact ``emd2`` with squared-Euclidean cost and uniform weights. The
    floor is the distance two samples of the *same* image already have, so 1.0 is perfect.
    When the target has fewer than :math:`2n` pixels, :math:`n` shrinks to half of them.

    Arguments:
        output_pixels: transferred colours, shape :math:`(N, C)` or :math:`(H, W, C)`.
        target_pixels: target colours, shape :math:`(M, C)` or :math:`(H, W, C)`.
        rng: source of the random subsamples.
        n: subsample size; exact OT costs :math:`O(n^3)`.
    """
    out, tgt = _pixels(output_pixels), _pixels(target_pixels)
    n = min(n, len(tgt) // 2, len(out))
    if n < 1:
        raise ValueError("w2_ratio needs at least 2 target pixels and 1 output pixel")
    picks = rng.choice(len(tgt), size=2 * n, replace=False)
    tgt_a, tgt_b = tgt[picks[:n]], tgt[picks[n:]]
    out_n = out[rng.choice(len(out), size=n, replace=False)]
    w2 = np.sqrt(emd2(out_n, tgt_a))
    floor = np.sqrt(emd2(tgt_a, tgt_b))
    return W2Ratio(ratio=float(w2 / max(floor, 1e-12)), w2=float(w2), floor=float(floor))


def cost_ratio(
    source_pixels_all: np.ndarray,
    output_pixels_all: np.ndarray,
    target_pixels: np.ndarray,
    rng: np.random.Generator,
    n: int = 4000,
) -> CostRatio:
    r"""Mean squared displacement of the map over all pixels, divided by the optimal cost.

    .. math:: \frac{\frac{1}{N} \sum_{i=1}^N \|T(x_i) - x_i\|^2}{W_2^2(\hat{P}_n, \hat{Q}_n)}

    with :math:`W_2^2` the exact ``emd2`` (squared cost, no square root) between :math:`n`
    random source and :math:`n` random target pixels. A map that reaches the target with
    ratio well above 1 moves colours further than it needs to; the identity scores 0.

    Arguments:
        source_pixels_all: every source colour :math:`x_i`, shape :math:`(N, C)` or
            :math:`(H, W, C)`.
        output_pixels_all: every :math:`T(x_i)`, in the same order and shape.
        target_pixels: target colours, shape :math:`(M, C)` or :math:`(H, W, C)`.
        rng: source of the random subsamples.
        n: subsample size of the optimal cost.
    """
    src, out, tgt = _pixels(source_pixels_all), _pixels(output_pixels_all), _pixels(target_pixels)
    if src.shape != out.shape:
        raise ValueError(f"source {src.shape} and output {out.shape} pixels must match one-to-one")
    cost = float(np.mean(np.sum((out - src) ** 2, axis=1)))
    n_src, n_tgt = min(n, len(src)), min(n, len(tgt))
    ot_cost = emd2(
        src[rng.choice(len(src), size=n_src, replace=False)],
        tgt[rng.choice(len(tgt), size=n_tgt, replace=False)],
    )
    return CostRatio(ratio=cost / max(ot_cost, 1e-12), cost=cost, ot_cost=ot_cost)


def violations(
    source_img: np.ndarray,
    output_img: np.ndarray,
    rng: np.random.Generator,
    pairs: int = 200_000,
) -> float:
    r"""Fraction of random pixel pairs on which the colour map is not monotone.

    Both images are first quantised to 8 bits. Among random pairs :math:`(x, y)` of source
    pixels with :math:`\|x - y\| > 8/255`, it returns the fraction with

    .. math:: \langle T(x) - T(y), x - y \rangle < -(2/255)^2,

    i.e. pairs whose colours the map reorders; a gradient of a convex function has none.
    Returns 0.0 when no pair is far enough apart to judge.

    Arguments:
        source_img: source image, shape :math:`(H, W, C)`, values in :math:`[0, 1]`.
        output_img: transferred image :math:`T(\text{source})`, same shape.
        rng: source of the random pairs.
        pairs: number of random pairs drawn (with replacement).
    """
    src, out = _pixels(quantize(source_img)), _pixels(quantize(output_img))
    if src.shape != out.shape:
        raise ValueError(f"source {src.shape} and output {out.shape} must have the same shape")
    i = rng.integers(len(src), size=pairs)
    j = rng.integers(len(src), size=pairs)
    dx = src[i] - src[j]
    far = np.sum(dx**2, axis=1) > MIN_PAIR_DISTANCE**2
    if not far.any():
        return 0.0
    inner = np.sum((out[i[far]] - out[j[far]]) * dx[far], axis=1)
    return float(np.mean(inner < -MONOTONE_SLACK))


def amp999(source_img: np.ndarray, output_img: np.ndarray) -> float:
    r"""99.9th percentile of the colour-difference amplification between horizontal neighbours.

    .. math:: q_{0.999}\left( \frac{\|T(x) - T(y)\|}{\max(\|x - y\|, 2/255)} \right)

    over all horizontally adjacent pixels :math:`(x, y)` of the 8-bit-quantised images (vertically
    adjacent ones in an image one pixel wide). Values well above the map's typical slope reveal
    banding or noise that the map invents. A single pixel has no neighbours: NaN (``null`` in
    JSON), not an error, so that reports on degenerate images still come out.

    Arguments:
        source_img: source image, shape :math:`(H, W, C)`, values in :math:`[0, 1]`.
        output_img: transferred image :math:`T(\text{source})`, same shape.
    """
    src, out = quantize(source_img), quantize(output_img)
    if src.shape != out.shape or src.ndim != 3:
        raise ValueError(f"expected two (H, W, C) images of one shape: {src.shape}, {out.shape}")
    if src.shape[1] < 2:  # one pixel wide: its only neighbours are vertical
        src, out = src.swapaxes(0, 1), out.swapaxes(0, 1)
    dx = np.linalg.norm(src[:, 1:] - src[:, :-1], axis=-1)
    dt = np.linalg.norm(out[:, 1:] - out[:, :-1], axis=-1)
    if dx.size == 0:
        return float("nan")
    return float(np.percentile(dt / np.maximum(dx, AMP_FLOOR), 99.9))


#: Rec. 709 luma weights of :func:`structure` (on the sRGB-encoded values, as SSIM is used).
LUMA: tuple[float, float, float] = (0.2126, 0.7152, 0.0722)

#: SSIM's structure constant :math:`C_3 = C_2 / 2 = (0.03)^2 / 2` for values in :math:`[0, 1]`.
STRUCTURE_C3: float = 0.03**2 / 2


def structure(source_img: np.ndarray, output_img: np.ndarray, sigma: float = 1.5) -> float:
    r"""Mean SSIM structure term between the luma of the source and of the output.

    .. math:: s = \operatorname{mean}\,
        \frac{\sigma_{xy} + C_3}{\sigma_x \sigma_y + C_3}

    with local moments under a Gaussian window of ``sigma`` pixels (Wang et al. 2004), on the
    8-bit-quantised images. It ignores brightness and contrast, which a colour transfer is
    meant to change, and drops where the output's local pattern is not the source's: grain or
    JPEG blocks the map amplified into sparkle, or detail it flattened. 1 for any output that
    is a local affine function of the source's luma.

    Arguments:
        source_img: source image, shape :math:`(H, W, 3)`, values in :math:`[0, 1]`.
        output_img: transferred image, same shape.
    """

    from scipy.ndimage import gaussian_filter

    src, out = quantize(source_img), quantize(output_img)
    if src.shape != out.shape or src.ndim != 3 or src.shape[-1] != 3:
        raise ValueError(f"expected two (H, W, 3) images of one shape: {src.shape}, {out.shape}")
    a, b = src @ np.asarray(LUMA), out @ np.asarray(LUMA)

    def g(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma, truncate=3.5)

    ma, mb = g(a), g(b)
    va = np.maximum(g(a * a) - ma * ma, 0.0)
    vb = np.maximum(g(b * b) - mb * mb, 0.0)
    cab = g(a * b) - ma * mb
    return float(np.mean((cab + STRUCTURE_C3) / (np.sqrt(va * vb) + STRUCTURE_C3)))


def sliced_w2(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator | None = None,
    n_projections: int = 128,
    n: int | None = 32768,
) -> float:
    r"""Sliced Wasserstein-2 distance between two colour clouds, computed exactly per slice.

    .. math::
        SW_2(a, b) = \Big( \frac{1}{L} \sum_{l=1}^L
        W_2^2(\theta_l^\top a, \theta_l^\top b) \Big)^{1/2}

    for :math:`L` directions :math:`\theta_l` uniform on the sphere. Each 1-D :math:`W_2^2` is
    the mean squared gap between the sorted projections; clouds of different sizes are
    compared through their step quantile functions at :math:`\max(N, M)` mid-levels. Costs
    :math:`O(L (N + M) \log(N + M))` and needs no POT.

    Arguments:
        a: colours, shape :math:`(N, C)` or :math:`(H, W, C)`.
        b: colours, shape :math:`(M, C)` or :math:`(H, W, C)`.
        rng: source of the directions and subsamples; a fixed seed 0 when ``None``.
        n_projections: number of directions :math:`L`.
        n: each cloud is subsampled to at most this many points (``None``: all), since
            sorting every pixel of a megapixel image costs seconds per 100 slices.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).random((1000, 3))
        >>> sliced_w2(x, x)
        0.0
        >>> round(sliced_w2(x, x + 0.1), 2)  # a shift of norm 0.17: about 0.1 per direction
        0.1
    """
    a, b = _pixels(a), _pixels(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} channels but b has {b.shape[1]}")
    rng = np.random.default_rng(0) if rng is None else rng
    if n is not None and len(a) > n:
        a = a[rng.choice(len(a), size=n, replace=False)]
    if n is not None and len(b) > n:
        b = b[rng.choice(len(b), size=n, replace=False)]
    theta = rng.standard_normal((n_projections, a.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    # (L, N) rows: sorting along the contiguous axis is several times faster than along axis 0.
    pa, pb = np.sort(theta @ a.T, axis=1), np.sort(theta @ b.T, axis=1)
    m = max(pa.shape[1], pb.shape[1])
    levels = np.arange(m) + 0.5
    if pa.shape[1] != m:
        # Step quantile function F^{-1}(t) = sorted[floor(t N)] at mid-levels t = (k + 1/2) / m.
        pa = pa[:, (levels * pa.shape[1] / m).astype(np.int64)]
    if pb.shape[1] != m:
        pb = pb[:, (levels * pb.shape[1] / m).astype(np.int64)]
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def evaluate_transfer(
    source_img: np.ndarray,
    output_img: np.ndarray,
    target_img: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    r"""Every metric of this module for one transfer, from a seeded generator.

    Pass outputs re-read from their saved 8-bit files so that every method is judged on what
    the user gets. Keys: ``w2_ratio``, ``w2``, ``w2_floor`` (:func:`w2_ratio`), ``cost_ratio``,
    ``transport_cost``, ``ot_cost`` (:func:`cost_ratio`), ``violations``, ``amp999``, ``structure``
    (:func:`structure`, output against source) and ``sliced_w2`` (output against target).

    ``violations`` and the colour-function checks elsewhere describe a pure map: a regrained
    output (:mod:`otcolor.regrain`) is spatial, so the same colour may legitimately come out
    in two ways and reorder a few pairs.

    Arguments:
        source_img: source image, shape :math:`(H, W, 3)`, values in :math:`[0, 1]`.
        output_img: transferred source image, same shape.
        target_img: target image, shape :math:`(H', W', 3)`, values in :math:`[0, 1]`.
        seed: seed of the ``numpy.random.Generator`` behind every subsample.
    """
    source_img, output_img = np.asarray(source_img), np.asarray(output_img)
    if source_img.shape != output_img.shape:
        raise ValueError(f"source {source_img.shape} and output {output_img.shape} differ")
    rng = np.random.default_rng(seed)
    w2 = w2_ratio(output_img, target_img, rng)
    cost = cost_ratio(source_img, output_img, target_img, rng)
    return {
        "w2_ratio": w2.ratio,
        "w2": w2.w2,
        "w2_floor": w2.floor,
        "cost_ratio": cost.ratio,
        "transport_cost": cost.cost,
        "ot_cost": cost.ot_cost,
        "violations": violations(source_img, output_img, rng),
        "amp999": amp999(source_img, output_img),
        "structure": structure(source_img, output_img),
        "sliced_w2": sliced_w2(output_img, target_img, rng),
    }


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    r"""The CIEDE2000 colour difference :math:`\Delta E_{00}` between CIELAB colours
    (Sharma, Wu & Dalal 2005, with their test data in ``tests/test_metrics.py``).

    Arguments:
        lab1, lab2: colours, with shape :math:`(..., 3)`, :math:`(L^*, a^*, b^*)`.

    Returns:
        :math:`\Delta E_{00}`, with shape :math:`(...)`, float64; about 1 is a just noticeable
        difference.
    """

    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dL, dC = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    L_mean, cp_mean = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180,
            h_sum / 2,
            np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
        ),
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    s_l = 1 + 0.015 * (L_mean - 50) ** 2 / np.sqrt(20 + (L_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    rotation = -2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    rotation *= np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2))))
    terms = (dL / s_l, dC / s_c, dH / s_h)
    return np.sqrt(terms[0] ** 2 + terms[1] ** 2 + terms[2] ** 2 + rotation * terms[1] * terms[2])


def mean_ciede2000(a: np.ndarray, b: np.ndarray) -> float:
    r"""The mean CIEDE2000 between two sRGB images of one shape, pixel by pixel.

    Arguments:
        a, b: :math:`(..., 3)` images, uint8 or floats in :math:`[0, 1]` (each by its dtype).
    """

    lab = [
        srgb_to_lab(np.asarray(x, np.float64).reshape(-1, 3) / (255 if x.dtype == np.uint8 else 1))
        for x in (a, b)
    ]
    return float(ciede2000(lab[0], lab[1]).mean())
