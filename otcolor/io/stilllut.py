r"""A LUT of the approved still: the colour function that best reproduces a regrained output.

A regrained look is spatial (:mod:`otcolor.regrain`): the same colour may come out differently in
two places, so no 3-D LUT holds it exactly. The LUT that comes closest is the least-squares fit
of (source pixel → approved output pixel) over the still itself. Fitted plainly it reproduces
the still's colours but amplifies grain where the map is steep (a thin sky's colours are
stretched, as in the pure map); a smoothness prior on the lattice holds that gain down:

.. math::
    \min_L \sum_c n_c \lVert B_c L - \bar o_c \rVert^2
        + \lambda \lVert \Delta L \rVert^2 + \gamma \sum_e f_e \lVert \delta_e L - h\,u_e \rVert^2
        + \mu \lVert L - T(G) \rVert^2

where :math:`c` runs over the source's distinct colours (:math:`n_c` pixels each, approved
output :math:`\bar o_c` averaged over them), :math:`B_c` reads the table at :math:`c`,
:math:`\Delta` is the lattice Laplacian (second differences along the three axes), and the last
term, with a small :math:`\mu`, pins lattice nodes no source colour reaches to the look's pure
colour function :math:`T`. The third limits the table's **gain** where the grain is: along each
lattice edge :math:`e` (difference :math:`\delta_e L`, step :math:`h` along axis :math:`u_e`) it
pulls towards unit slope, weighted by :math:`f_e`, the share of the source's *flat* pixels
(:func:`flat_mask`) whose colours fall at the edge's ends. In flat regions the still keeps its
grain at gain one, so a table that stretched those colours would add the speckle the regrain
removed. Weights are relative to the data's total, so they do not depend on
the image size. docs/luts.md gives the measured trade between closeness and grain.
"""

from __future__ import annotations

__all__ = [
    "MAX_FIT_SIZE",
    "STILL_GAIN",
    "STILL_SIZE",
    "STILL_SMOOTHNESS",
    "fit_still_lut",
    "flat_mask",
    "resample",
]

from typing import Any

import numpy as np

from ..color import keys_of
from ..look import Look
from .lut import bake_lut, interpolation_matrix, lattice, read_table

#: :math:`\lambda` of the module docstring, relative to the data's weight per lattice node.
STILL_SMOOTHNESS = 0.05

#: :math:`\gamma`: the pull towards unit gain where flat regions' colours fall. Measured on the
#: ocean still (33 points, tetrahedral, docs/luts.md): 0 gives mean CIEDE2000 1.78 to the still
#: with 2.37x the source's grain in its flattest blocks, 0.03 gives 1.86 / 2.08, 0.1 gives
#: 2.06 / 1.75; 0.05 sits between, within both of the issue's bars.
STILL_GAIN = 0.05

#: Points per axis of the still LUT a map file keeps (``transfer --save-map``): the ``.cube``
#: default; other sizes are read from it (:func:`resample`).
STILL_SIZE = 33

#: The finest lattice fitted; larger LUTs read it (a 129-point fit took 51 s and 2 GB).
MAX_FIT_SIZE = 65

#: :math:`\mu`: the pull of unreached nodes towards the pure colour function.
_PIN = 1e-3


def _laplacian(size: int) -> Any:
    r"""Second differences along each axis of an :math:`N^3` lattice (red fastest), stacked."""

    from scipy import sparse

    one = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(size - 2, size))
    eye = sparse.identity(size)
    blocks = [
        sparse.kron(sparse.kron(eye, eye), one),  # along red (fastest)
        sparse.kron(sparse.kron(eye, one), eye),  # along green
        sparse.kron(sparse.kron(one, eye), eye),  # along blue
    ]
    return sparse.vstack(blocks).tocsr()


def _differences(size: int) -> Any:
    r"""First differences along each axis of an :math:`N^3` lattice (red fastest), stacked:
    rows for red, then green, then blue edges."""

    from scipy import sparse

    one = sparse.diags([-1.0, 1.0], [0, 1], shape=(size - 1, size))
    eye = sparse.identity(size)
    blocks = [
        sparse.kron(sparse.kron(eye, eye), one),
        sparse.kron(sparse.kron(eye, one), eye),
        sparse.kron(sparse.kron(one, eye), eye),
    ]
    return sparse.vstack(blocks).tocsr()


def flat_mask(source: np.ndarray, radius: int = 3, threshold: float = 2.0 / 255) -> np.ndarray:
    r"""The pixels of flat regions, where what varies is grain: the local standard deviation of
    the luma smoothed at ``radius`` is under ``threshold``, :math:`(H, W)` bool."""

    from scipy.ndimage import uniform_filter

    luma = np.asarray(source, np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    if source.dtype == np.uint8:
        luma = luma / 255
    smooth = uniform_filter(luma, 2 * radius + 1)
    spread = np.sqrt(
        np.maximum(
            uniform_filter(smooth**2, 2 * radius + 1)
            - uniform_filter(smooth, 2 * radius + 1) ** 2,
            0,
        )
    )
    return spread < threshold


def fit_still_lut(
    look: Look,
    source: np.ndarray,
    still: np.ndarray,
    size: int,
    *,
    smoothness: float = STILL_SMOOTHNESS,
    gain: float = STILL_GAIN,
    kinds: tuple[str, ...] = ("tetrahedral", "trilinear"),
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""The :math:`N^3` table that best reproduces ``still`` from ``source`` (module docstring).

    Sizes above :data:`MAX_FIT_SIZE` are fitted at that size and read at the asked one
    (:func:`resample`): the system grows as :math:`N^3` and a finer lattice holds no more of a
    still than its distinct colours allow.

    Arguments:
        look: the look that made the still (its pure colour function fills unreached nodes).
        source: the source image, :math:`(H, W, 3)`, sRGB in :math:`[0, 1]` (uint8 or float).
        still: the approved output, same shape, float in :math:`[0, 1]` or uint8.
        size: :math:`N`, the points per axis.
        smoothness: :math:`\lambda`.
        gain: :math:`\gamma`.
        kinds: the readers' interpolations to fit for (FFmpeg reads tetrahedrally, OCIO's
            default is trilinear): the data term is summed over them.
        mask: where the look was applied, :math:`(H, W)` in :math:`[0, 1]` (``--apply-mask``):
            each pixel's equation is weighted by it, so that untouched pixels do not pull the
            table towards the identity.

    The source's colours are taken at 8 bits (a 16-bit source's equations are merged per
    8-bit colour); the still keeps its precision in their means.

    Returns:
        The table, :math:`(N, N, N, 3)` indexed ``[b, g, r]``, float32 in :math:`[0, 1]`.
    """

    from scipy import sparse

    if size > MAX_FIT_SIZE:
        table = fit_still_lut(look, source, still, MAX_FIT_SIZE, smoothness=smoothness,
                              gain=gain, kinds=kinds, mask=mask)  # fmt: skip
        return resample(table, size)
    # One equation per distinct 8-bit source colour, weighted by its pixels: the mean output.
    keys = keys_of(source.reshape(-1, 3))
    unique, inverse = np.unique(keys, return_inverse=True)
    unique = unique.astype(np.int64)
    pixel_weight = None if mask is None else np.asarray(mask, np.float64).reshape(-1)
    counts = np.bincount(inverse, pixel_weight, unique.size)
    flat = np.asarray(still).reshape(-1, 3)
    sums = np.stack(
        [
            np.bincount(
                inverse, flat[:, c] if mask is None else flat[:, c] * pixel_weight, unique.size
            )  # fmt: skip
            for c in range(3)
        ],
        1,
    )
    if flat.dtype == np.uint8:  # the saved 8-bit still
        sums /= 255
    reached = counts > 0
    if not reached.any():  # the mask is empty: nothing was approved but the pure look
        return bake_lut(look, size)
    unique, counts = unique[reached], counts[reached]
    outputs = sums[reached] / counts[:, None]
    colours = np.stack([unique & 255, (unique >> 8) & 255, unique >> 16], 1) / 255.0
    weights = counts / counts.sum()

    nodes = size**3
    pure = bake_lut(look, size).reshape(-1, 3).astype(np.float64)
    laplacian = _laplacian(size)
    # Relative weights: the data term sums to one per reader; the priors are per node.
    normal = (smoothness / nodes) * (laplacian.T @ laplacian) + (_PIN / nodes) * sparse.identity(
        nodes
    )
    rhs = (_PIN / nodes) * pure
    for kind in kinds:
        read = interpolation_matrix(colours, size, kind)
        weighted = read.multiply(weights[:, None]).tocsr()
        normal = normal + (read.T @ weighted) / len(kinds)
        rhs = rhs + (weighted.T @ outputs) / len(kinds)
    if gain:
        # Unit gain along every axis where flat regions' colours fall: there the still keeps
        # the grain as it was (the regrain's gain is one), so the table should not stretch it.
        flat = flat_mask(source).reshape(-1)
        if mask is not None:
            flat &= pixel_weight > 0
        present = np.isin(unique, keys[flat].astype(np.int64))
        density = np.asarray(
            interpolation_matrix(colours[present], size, "trilinear").T @ weights[present]
        ).ravel()  # flat pixels' weight per node
        edges = _differences(size)
        # An edge's weight: the flat density at its two ends.
        edge_weight = np.abs(edges) @ density / 2
        step = np.zeros((edges.shape[0], 3))
        per_axis = size * size * (size - 1)
        for axis in range(3):
            step[axis * per_axis : (axis + 1) * per_axis, axis] = 1.0 / (size - 1)
        weighted = edges.multiply((gain * edge_weight)[:, None]).tocsr()
        normal = normal + edges.T @ weighted
        rhs = rhs + weighted.T @ step
    table = _solve(normal.tocsr(), rhs, start=pure)
    return np.clip(table, 0.0, 1.0).astype(np.float32).reshape(size, size, size, 3)


def _solve(normal: Any, rhs: np.ndarray, start: np.ndarray) -> np.ndarray:
    r"""Solves the symmetric positive definite ``normal @ x = rhs`` per column by conjugate
    gradients, Jacobi-preconditioned, from ``start``. A direct sparse factorisation of the 33³
    lattice's bi-Laplacian fills in to 4-6e7 entries and takes a minute on one core; CG reaches
    the same table (within 0.001 of an 8-bit level at rtol 1e-7) in about a second."""

    from scipy import sparse
    from scipy.sparse.linalg import cg

    jacobi = sparse.diags(1.0 / normal.diagonal())
    columns = []
    for c in range(rhs.shape[1]):
        x, info = cg(normal, rhs[:, c], x0=start[:, c], M=jacobi, rtol=1e-7, maxiter=20000)
        if info != 0:
            raise RuntimeError(f"the still LUT's solve did not converge ({info} iterations)")
        columns.append(x)
    return np.stack(columns, 1)


def resample(table: np.ndarray, size: int) -> np.ndarray:
    r"""A table read at the nodes of an :math:`M^3` lattice (tetrahedral interpolation, as
    FFmpeg reads it): the same colour function at another size, :math:`(M, M, M, 3)`."""

    if table.shape[0] == size:
        return table
    values = read_table(table, lattice(size), "tetrahedral")
    return np.clip(values, 0, 1).astype(np.float32).reshape(size, size, size, 3)
