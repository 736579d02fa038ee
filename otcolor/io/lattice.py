r"""The regular lattice of a 3-D LUT and how readers interpolate it.

A table of :math:`N` points per axis holds :math:`N^3` entries over :math:`[0, 1]^3`, red
fastest. Reading it at a colour is linear in the entries: :func:`interpolation_matrix` gives
that linear map for FFmpeg's tetrahedral and OCIO's trilinear interpolation, so that tables can
be fitted by least squares (:mod:`otcolor.io.lut`, :mod:`otcolor.io.stilllut`).
"""

from __future__ import annotations

__all__ = ["interpolation_matrix", "lattice", "read_table"]

from typing import Any

import numpy as np


def lattice(size: int) -> np.ndarray:
    r"""The nodes of a regular :math:`N^3` lattice on :math:`[0, 1]^3`, :math:`(N^3, 3)`
    float64, in table order: red fastest, then green, then blue."""

    grid = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(grid, grid, grid, indexing="ij")
    return np.stack([r, g, b], -1).reshape(-1, 3)


def read_table(table: np.ndarray, colours: np.ndarray, kind: str = "tetrahedral") -> np.ndarray:
    r"""A table :math:`(N, N, N, 3)` read at ``colours`` :math:`(M, 3)` in :math:`[0, 1]` as a
    reader interpolating by ``kind`` does, :math:`(M, 3)` float64."""

    read = interpolation_matrix(colours, table.shape[0], kind)
    return read @ table.reshape(-1, 3).astype(np.float64)


def interpolation_matrix(points: np.ndarray, size: int, kind: str) -> Any:
    r"""The sparse matrix :math:`B` with :math:`B\,L` = the table :math:`L` read at ``points``.

    Arguments:
        points: sRGB colours, :math:`(S, 3)`, in :math:`[0, 1]`.
        size: :math:`N`, the table's points per axis.
        kind: ``"tetrahedral"`` (FFmpeg's default, 4 corners) or ``"trilinear"`` (8 corners).

    Returns:
        A ``scipy.sparse.csr_matrix`` of shape :math:`(S, N^3)`, columns in the table's flat
        order (red fastest).
    """

    from scipy import sparse

    x = np.clip(np.asarray(points, np.float64), 0.0, 1.0) * (size - 1)
    base = np.minimum(np.floor(x).astype(np.int64), size - 2)
    frac = x - base
    strides = np.array([1, size, size * size], np.int64)
    corner = base @ strides
    if kind == "tetrahedral":
        # The tetrahedron of the cell that holds the point: walk the axes by decreasing fraction.
        order = np.argsort(-frac, axis=1, kind="stable")
        f = np.take_along_axis(frac, order, 1)
        step = strides[order]
        columns = np.stack(
            [corner, corner + step[:, 0], corner + step[:, 0] + step[:, 1], corner + step.sum(1)],
            1,
        )
        weights = np.stack([1 - f[:, 0], f[:, 0] - f[:, 1], f[:, 1] - f[:, 2], f[:, 2]], 1)
    elif kind == "trilinear":
        columns = np.empty((len(corner), 8), np.int64)
        weights = np.empty((len(corner), 8))
        for k in range(8):  # corner k is offset by bit j of k along axis j
            bits = [(k >> axis) & 1 for axis in range(3)]
            columns[:, k] = corner + strides @ bits
            weights[:, k] = np.prod(
                [frac[:, a] if on else 1 - frac[:, a] for a, on in enumerate(bits)], 0
            )
    else:
        raise ValueError(f"unknown interpolation {kind!r}")
    count, width = columns.shape
    return sparse.csr_matrix(
        (
            weights.ravel(),
            columns.ravel().astype(np.int32),
            np.arange(0, count * width + 1, width),
        ),
        shape=(count, size**3),
    )
