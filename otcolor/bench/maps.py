r"""Known Brenier maps on the colour cube, to build transfer pairs whose answer is known.

Each family draws a map :math:`T^* = \nabla \phi` with :math:`\phi` convex that sends
:math:`[0, 1]^3` into itself (no clipping, which would break the gradient structure). For a photo
:math:`S`, the target :math:`T^*(S)` then has :math:`T^*` as its OT map from :math:`S`'s colours
(Brenier), so a perfect colour transfer of :math:`T^*(S)` onto :math:`S` returns :math:`T^*(S)`.

* ``separable``: per-channel power curves :math:`x_c^{\gamma_c}` mixed with a PSD affine map;
* ``scurve``: per-channel normalised logistic S-curves, mixed with a PSD affine map;
* ``palette``: palette pulls
  :math:`\nabla \tfrac1\beta \log \sum_k e^{\beta (p_k^\top x + c_k)}
  = \operatorname{softmax}(\beta (P x + c))^\top P`
  (a convex combination of palette colours :math:`p_k \in [0, 1]^3`), mixed with a PSD affine map.
"""

from __future__ import annotations

__all__ = ["FAMILIES", "KnownMap", "draw_map"]

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class KnownMap:
    r"""A known Brenier map :math:`[0, 1]^3 \to [0, 1]^3`: ``apply((N, 3)) -> (N, 3)``."""

    family: str
    apply: Callable[[np.ndarray], np.ndarray]
    params: dict[str, object]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.apply(np.asarray(x, dtype=np.float64))


def _psd_affine(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""A random PSD :math:`M` and :math:`c` with :math:`Mx + c \in [0, 1]^3` on the cube."""

    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    M = q @ np.diag(rng.uniform(0.2, 1.2, 3)) @ q.T
    # The image of the cube is centred on 1/2 and shrunk until it fits inside the cube.
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) - 0.5
    reach = np.abs(corners @ M.T).max()
    M = M * min(1.0, 0.5 / reach)
    c = 0.5 - M @ np.full(3, 0.5)
    return M, c


def _separable(rng: np.random.Generator) -> KnownMap:
    gamma = np.exp(rng.uniform(np.log(0.33), np.log(3.0), 3))
    M, c = _psd_affine(rng)
    w = rng.uniform(0.1, 0.4)

    def apply(x: np.ndarray) -> np.ndarray:
        return (1 - w) * np.power(np.clip(x, 0, 1), gamma) + w * (x @ M.T + c)

    return KnownMap("separable", apply, {"gamma": gamma.tolist(), "w": w})


def _scurve(rng: np.random.Generator) -> KnownMap:
    k = rng.uniform(6.0, 14.0, 3)
    mid = rng.uniform(0.35, 0.65, 3)
    M, c = _psd_affine(rng)
    w = rng.uniform(0.05, 0.3)

    def logistic(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    low, high = logistic(-k * mid), logistic(k * (1 - mid))

    def apply(x: np.ndarray) -> np.ndarray:
        curve = (logistic(k * (x - mid)) - low) / (high - low)
        return (1 - w) * curve + w * (x @ M.T + c)

    return KnownMap("scurve", apply, {"k": k.tolist(), "mid": mid.tolist(), "w": w})


def _palette(rng: np.random.Generator) -> KnownMap:
    count = int(rng.integers(3, 7))
    P = rng.uniform(0.05, 0.95, (count, 3))
    # Palette colours as directions: p_k^T x grows fastest towards p_k, so pixels are pulled
    # to the palette colour they resemble; c_k sets how much of the cube each colour claims.
    c = rng.normal(0, 0.15, count) - 0.5 * (P * P).sum(1)
    beta = rng.uniform(8.0, 20.0)
    M, m = _psd_affine(rng)
    w = rng.uniform(0.2, 0.5)

    def apply(x: np.ndarray) -> np.ndarray:
        z = beta * (x @ P.T + c)
        z -= z.max(1, keepdims=True)
        soft = np.exp(z)
        soft /= soft.sum(1, keepdims=True)
        return (1 - w) * soft @ P + w * (x @ M.T + m)

    return KnownMap("palette", apply, {"palette": P.tolist(), "beta": beta, "w": w})


#: Map families by name, each drawing one map from a generator.
FAMILIES: dict[str, Callable[[np.random.Generator], KnownMap]] = {
    "separable": _separable,
    "scurve": _scurve,
    "palette": _palette,
}


def draw_map(family: str, seed: int) -> KnownMap:
    r"""Returns the map of ``family`` drawn with ``seed``.

    Raises:
        ValueError: unknown family.
    """

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[family](np.random.default_rng(seed))
