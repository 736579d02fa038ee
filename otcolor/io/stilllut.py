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

__all__ = ["STILL_GAIN", "STILL_SMOOTHNESS", "fit_still_lut", "flat_mask"]

from typing import Any

import numpy as np

from ..color import keys_of
from ..look import Look
from .lut import bake_lut, interpolation_matrix

#: :math:`\lambda` of the module docstring, relative to the data's weight per lattice node.
STILL_SMOOTHNESS = 0.05

#: :math:`\gamma`: the pull towards unit gain where flat regions' colours fall. Measured on the
#: ocean still (33 points, tetrahedral, docs/luts.md): 0 gives mean CIEDE2000 1.78 to the still
#: with 2.37x the source's grain in its flattest blocks, 0.03 gives 1.86 / 2.08, 0.1 gives
#: 2.06 / 1.75; 0.05 sits between, within both of the issue's bars.
STILL_GAIN = 0.05

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

    luma = np.asarray(source, np.float64) @ np.array([0.2126, 0.7152, 0.0722])
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
) -> np.ndarray:
    r"""The :math:`N^3` table that best reproduces ``still`` from ``source`` (module docstring).

    Arguments:
        look: the look that made the still (its pure colour function fills unreached nodes).
        source: the source image, :math:`(H, W, 3)`, sRGB in :math:`[0, 1]` (uint8 or float).
        still: the approved output, same shape, float in :math:`[0, 1]`.
        size: :math:`N`, the points per axis.
        smoothness: :math:`\lambda`.
        gain: :math:`\gamma`.
        kinds: the readers' interpolations to fit for (FFmpeg reads tetrahedrally, OCIO's
            default is trilinear): the data term is summed over them.

    Returns:
        The table, :math:`(N, N, N, 3)` indexed ``[b, g, r]``, float32 in :math:`[0, 1]`.
    """

    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    # One equation per distinct 8-bit source colour, weighted by its pixels: the mean output.
    keys = keys_of(source.reshape(-1, 3)).astype(np.int64)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    flat = np.asarray(still, np.float64).reshape(-1, 3)
    sums = np.stack([np.bincount(inverse, flat[:, c], unique.size) for c in range(3)], 1)
    outputs = sums / counts[:, None]
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
        flat_keys = keys_of(source.reshape(-1, 3)[flat]).astype(np.int64)
        present = np.isin(unique, flat_keys)
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
    normal = normal.tocsc()
    table = np.stack([spsolve(normal, rhs[:, c]) for c in range(3)], 1)
    return np.clip(table, 0.0, 1.0).astype(np.float32).reshape(size, size, size, 3)
