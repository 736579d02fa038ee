r"""3-D LUT export: a look baked into an Adobe/Resolve ``.cube`` file or a HaldCLUT PNG.

The table's domain is gamma-encoded sRGB in :math:`[0, 1]`, whatever space the map works in:
the whole chain (sRGB to the map's space, the map at its strength, back to sRGB, lightness
kept if asked, clipping) is baked in. Entry :math:`(r, g, b)` holds the look's output at
:math:`(r, g, b) / (N - 1)`; rows are written with red changing fastest, then green, then blue
(the order of the Adobe Cube LUT specification 1.0, Resolve, OCIO and FFmpeg's ``lut3d``).

A reader interpolates between entries, so entries sampled at the grid points (``nodes``) are
exact only there: inside a cell the table is the plane through its corners, off the curved
map by up to :math:`h^2/8` times its curvature. The default ``fit`` instead chooses the
entries that minimise the squared interpolation error over the whole cube (a least-squares
fit on a grid finer than the table, for tetrahedral and trilinear readers at once), which
halves that error or better: measured on the ocean look at 33 points per axis, ffmpeg's
``lut3d`` lands within 2/255 of otcolor's output on 81 % of the source's pixels with node
samples and 97 % with the fit. An affine map is reproduced exactly by both.

That figure was for an earlier, gentler default look. Today's ocean look bends hard near
black in red, and a plain ``.cube`` at 33 points reaches 77 % within 2/255 whatever the
entries (86.5 % even when fitted to the image's own colours). The Cinespace ``.csp`` format
carries a 1-D shaper per channel before the 3-D table, read by both FFmpeg's ``lut3d`` and
OpenColorIO; :mod:`otcolor.io.shaper` chooses one so that the lattice is dense where the look
bends (near an end of a channel, or in its middle), and the fit then runs in shaped
coordinates (figures in ``docs/luts.md``). FFmpeg's ``.cube`` reader ignores a ``LUT_1D``
shaper, hence the format.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_SIZES",
    "LUT_FORMATS",
    "LUT_METHODS",
    "LUT_REGRAIN_NOTE",
    "MAX_CUBE_BYTES",
    "bake_lut",
    "check_lut",
    "choose_shaper",
    "export_lut",
    "fit_lut",
    "interpolation_matrix",
    "lattice",
    "read_cube",
    "read_table",
    "write_csp",
    "write_cube",
    "write_hald",
]

import math
import os
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError, UsageError
from ..look import Look
from .decode import LoadedImage
from .encode import save_image
from .files import read_regular, write_atomically
from .lattice import interpolation_matrix, lattice, read_table
from .shaper import IDENTITY, Shaper, choose_shaper

#: LUT formats and their file extensions.
LUT_FORMATS: dict[str, tuple[str, ...]] = {
    "cube": (".cube",),
    "csp": (".csp",),  # Cinespace: a 1-D shaper per channel, then the 3-D table
    "hald": (".png",),
}

#: Default table sizes :math:`N` (points per axis): 33 for ``.cube`` (the grading default),
#: 64 for Hald (level 8, a 512 x 512 image).
DEFAULT_SIZES: dict[str, int] = {"cube": 33, "csp": 33, "hald": 64}

#: How entries are chosen: least-squares fit of the interpolated table (default), or the
#: look sampled at the grid points.
LUT_METHODS: tuple[str, ...] = ("fit", "nodes")

#: The fit samples the look on a grid of about this many points per axis (a multiple of the
#: table's cells): 129^3 = 2.1 M colours, a second or two of map evaluation.
_FIT_POINTS = 129


#: What a LUT made from a regrained look holds without its still, in one line for the user.
LUT_REGRAIN_NOTE = (
    "this look regrains (spatial) and a LUT holds a colour function only; the map file keeps no "
    "approved still (or not at this strength), so the LUT holds the pure colour map: give "
    "--source (the image the look was approved on) for the function closest to its still"
)


def check_lut(
    path: str | os.PathLike[str], fmt: str | None = None, size: int | None = None
) -> tuple[str, int]:
    r"""Validates a LUT request before any work: the format (from ``fmt`` or the extension)
    and the size.

    Returns:
        The format and the size.

    Raises:
        UsageError: unknown or mismatched format, or a size the format cannot hold.
    """

    suffix = Path(path).suffix.lower()
    by_suffix = next((f for f, exts in LUT_FORMATS.items() if suffix in exts), None)
    if fmt is None:
        if by_suffix is None:
            raise UsageError(
                f"{path}: unknown LUT extension {suffix or '(none)'}",
                "use .cube, .csp (with a shaper), or .png for a HaldCLUT",
            )
        fmt = by_suffix
    if fmt not in LUT_FORMATS:
        raise UsageError(f"unknown LUT format {fmt!r}", "choose cube, csp or hald")
    if by_suffix != fmt:
        raise UsageError(
            f"{path}: a {fmt} LUT needs the extension {LUT_FORMATS[fmt][0]}",
            "change the extension or --format",
        )
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))):
        raise UsageError(f"the LUT size must be an integer, got {size!r}", "17, 33 or 65")
    size = DEFAULT_SIZES[fmt] if size is None else int(size)
    if fmt in ("cube", "csp") and not 2 <= size <= 129:
        raise UsageError(f"a .{fmt} LUT has 2 to 129 points per axis, not {size}", "17, 33 or 65")
    if fmt == "hald":
        level = math.isqrt(size)
        if level * level != size or not 2 <= level <= 16:
            raise UsageError(
                f"a HaldCLUT has a square number of points per axis (level squared), not {size}",
                "16, 36, 64 (level 8, 512x512) or 144",
            )
    return fmt, size


def bake_lut(look: Look, size: int, shaper: Shaper = IDENTITY) -> np.ndarray:
    r"""Evaluates a look on a regular :math:`N^3` grid of sRGB colours (of shaped colours
    with a ``shaper``: entry :math:`i` holds the look at :math:`s^{-1}(i / (N - 1))`).

    Arguments:
        look: the look.
        size: :math:`N`, the points per axis.
        shaper: the 1-D curves the reader applies before the table.

    Returns:
        The table, with shape :math:`(N, N, N, 3)` indexed ``[b, g, r]`` (so that a C-order
        flattening has red fastest), float32 in :math:`[0, 1]`.

    Example:
        >>> from otcolor.color import Look
        >>> from otcolor.models import AffineMap
        >>> table = bake_lut(Look(AffineMap.from_config(3)), 17)  # the zero map: every entry black
        >>> table.shape, float(table.max())
        ((17, 17, 17, 3), 0.0)
    """

    points = lattice(size)
    if not shaper.is_identity:
        points = shaper.inverse(points)
    return look(points.astype(np.float32)).reshape(size, size, size, 3)


def fit_lut(
    look: Look,
    size: int,
    kinds: tuple[str, ...] = ("tetrahedral", "trilinear"),
    points: int = _FIT_POINTS,
    shaper: Shaper = IDENTITY,
) -> np.ndarray:
    r"""The table whose interpolation is closest to the look over the whole sRGB cube.

    Minimises :math:`\sum_k \lVert B_k L - T(P) \rVert^2 + \lambda \lVert L - T(G) \rVert^2`
    over the entries :math:`L`, where :math:`P` is a regular grid of about ``points`` per axis
    (each table cell split evenly), :math:`B_k` reads the table at :math:`P` with each reader
    of ``kinds``, :math:`T(G)` are the node samples of :func:`bake_lut` and :math:`\lambda`
    a tiny weight that only pins entries the fit leaves free. Solved by conjugate gradients
    on the normal equations, started from the node samples.

    Arguments:
        look: the look.
        size: :math:`N`, the points per axis.
        kinds: the interpolations to fit for (both by default: FFmpeg reads tetrahedrally,
            many graders trilinearly).
        points: about this many fitting points per axis.
        shaper: the 1-D curves the reader applies before the table; :math:`P` is then evenly
            spaced in shaped coordinates (the table reads it there), the look evaluated at
            :math:`s^{-1}(P)`.

    Returns:
        The table, :math:`(N, N, N, 3)` indexed ``[b, g, r]``, float32 in :math:`[0, 1]`.
    """

    from scipy import sparse
    from scipy.sparse.linalg import cg

    nodes = bake_lut(look, size, shaper)
    split = max(1, (points - 1) // (size - 1))
    if split == 1:
        return nodes  # samples at the nodes only: the fit is the node samples
    grid = np.linspace(0.0, 1.0, split * (size - 1) + 1, dtype=np.float32)
    count = size**3
    start = nodes.reshape(-1, 3).astype(np.float64)
    # A tiny pull towards the node samples, per entry, relative to the data term.
    pin = 1e-4 * len(kinds) * grid.size**3 / count
    normal = pin * sparse.identity(count, format="csr")
    rhs = pin * start
    # The normal equations are sums over the fitting points: accumulated one blue plane at a
    # time, memory stays at a few hundred MB whatever the table size.
    # With a shaper the points are evenly spaced in shaped coordinates, so that every table
    # cell, small or large in sRGB, holds the same split^3 fitting points.
    g, r = np.meshgrid(grid, grid, indexing="ij")
    plane = np.stack([r.ravel(), g.ravel(), np.zeros(r.size, np.float32)], -1)
    for blue in grid:
        plane[:, 2] = blue
        colours = plane if shaper.is_identity else shaper.inverse(plane).astype(np.float32)
        values = look(colours).astype(np.float64)  # (S, 3)
        for kind in kinds:
            read = interpolation_matrix(plane, size, kind)
            normal = normal + (read.T @ read).tocsr()
            rhs = rhs + read.T @ values
    table = np.empty_like(start)
    for channel in range(3):
        table[:, channel], _ = cg(
            normal, rhs[:, channel], x0=start[:, channel], rtol=1e-9, maxiter=500
        )
    # Entries outside [0, 1] would lower the error a little, but not every reader takes them.
    return np.clip(table, 0.0, 1.0).astype(np.float32).reshape(size, size, size, 3)


def write_cube(
    path: str | os.PathLike[str], table: np.ndarray, comment: str = "", overwrite: bool = True
) -> None:
    r"""Writes a table of :func:`bake_lut` as a ``.cube`` file, atomically.

    Only what every reader accepts: comment lines, ``LUT_3D_SIZE``, then :math:`N^3` rows of
    three floats (no ``TITLE``, which OCIO's Resolve reader rejects; the default domain).
    """

    size = table.shape[0]
    if table.shape != (size, size, size, 3) or not np.isfinite(table).all():
        raise ValueError("expected a finite table with shape (N, N, N, 3)")
    rows = np.clip(table, 0.0, 1.0).reshape(-1, 3)
    lines = [f"# {line}" for line in comment.splitlines()] + [f"LUT_3D_SIZE {size}", ""]
    text = "\n".join(lines)

    def write(fp: IO[bytes]) -> None:
        fp.write(text.encode())
        np.savetxt(fp, rows, fmt="%.6f")

    write_atomically(Path(path), write, overwrite)


def write_csp(
    path: str | os.PathLike[str],
    table: np.ndarray,
    shaper: Shaper,
    comment: str = "",
    overwrite: bool = True,
) -> None:
    r"""Writes a table of :func:`bake_lut` with its shaper as a Cinespace ``.csp``, atomically.

    Layout (read by FFmpeg's ``lut3d`` and OpenColorIO): ``CSPLUTV100``, ``3D``, a metadata
    block, then per channel the number of shaper knots, their inputs and their outputs (one
    line each), the sizes ``N N N`` and :math:`N^3` rows, red fastest.
    """

    size = table.shape[0]
    if table.shape != (size, size, size, 3) or not np.isfinite(table).all():
        raise ValueError("expected a finite table with shape (N, N, N, 3)")
    x, out = shaper.curves()
    lines = ["CSPLUTV100", "3D", "", "BEGIN METADATA"]
    lines += [line for line in comment.splitlines() if line.strip()] + ["END METADATA", ""]
    for channel in range(3):
        lines += [
            str(len(x)),
            " ".join(f"{v:.8f}" for v in x),
            " ".join(f"{v:.8f}" for v in out[:, channel]),
        ]
    lines += ["", f"{size} {size} {size}", ""]
    text = "\n".join(lines)
    rows = np.clip(table, 0.0, 1.0).reshape(-1, 3)

    def write(fp: IO[bytes]) -> None:
        fp.write(text.encode())
        np.savetxt(fp, rows, fmt="%.6f")

    write_atomically(Path(path), write, overwrite)


#: The largest ``.cube`` :func:`read_cube` reads: 256 points per axis (the format's own limit)
#: at about 30 bytes a row.
MAX_CUBE_BYTES = 512 << 20


def read_cube(path: str | os.PathLike[str]) -> np.ndarray:
    r"""Reads a 3-D ``.cube`` file (default domain) into a table indexed ``[b, g, r]``.

    Only a regular file of at most :data:`MAX_CUBE_BYTES` is read
    (:func:`otcolor.io.files.read_regular`).

    Raises:
        InputError: the file is not a well-formed 3-D ``.cube``.
    """

    size = None
    rows: list[list[float]] = []
    data = read_regular(path, MAX_CUBE_BYTES, what="LUT")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: cannot read: not UTF-8 text ({err.reason})") from err
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "LUT_3D_SIZE":
            size = int(words[1]) if len(words) == 2 and words[1].isdigit() else -1
            if not 2 <= size <= 256:
                raise InputError(f"{path}:{number}: LUT_3D_SIZE must be 2 to 256: {line[:80]!r}")
        elif words[0] in ("TITLE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"):
            continue
        else:
            try:
                rows.append([float(w) for w in words[:3]])
            except ValueError as err:
                raise InputError(f"{path}:{number}: not a LUT row: {line[:80]!r}") from err
    if size is None or len(rows) != size**3 or any(len(row) != 3 for row in rows):
        raise InputError(f"{path}: expected LUT_3D_SIZE N and N^3 rows, got {len(rows)} rows")
    return np.asarray(rows, np.float32).reshape(size, size, size, 3)


def write_hald(path: str | os.PathLike[str], table: np.ndarray, overwrite: bool = True) -> None:
    r"""Writes a table of :func:`bake_lut` as a 16-bit HaldCLUT PNG of level
    :math:`L = \sqrt{N}` (an :math:`L^3 \times L^3` image, pixels in the table's order)."""

    size = table.shape[0]
    level = math.isqrt(size)
    image = table.reshape(level**3, level**3, 3)
    carrier = LoadedImage(rgb=image[:1, :1], bit_depth=16)  # asks save_image for 16 bits
    save_image(path, image, like=carrier, overwrite=overwrite)


def export_lut(
    look: Look,
    path: str | os.PathLike[str],
    size: int | None = None,
    fmt: str | None = None,
    method: str = "fit",
    overwrite: bool = True,
    table: np.ndarray | None = None,
) -> tuple[str, int]:
    r"""Bakes a look and writes it as a ``.cube``, ``.csp`` or HaldCLUT file.

    Arguments:
        method: ``"fit"`` (:func:`fit_lut`, the default) or ``"nodes"`` (:func:`bake_lut`).
            A ``.csp`` gets the shaper of :func:`choose_shaper` either way.
        table: entries computed by the caller instead, :math:`(N, N, N, 3)` on the plain
            grid (the approved still's, :func:`otcolor.pipeline.approved_table`).
        overwrite: whether an existing ``path`` may be replaced (see
            :func:`otcolor.io.save_image`).

    Returns:
        The format and size written.
    """

    fmt, size = check_lut(path, fmt, size)
    if method not in LUT_METHODS:
        raise UsageError(f"unknown LUT method {method!r}", f"choose one of {LUT_METHODS}")
    entries = "least-squares fit" if method == "fit" else "node samples"
    if table is not None:
        if table.shape != (size, size, size, 3):
            raise ValueError(f"table of shape {table.shape} for a LUT of size {size}")
        shaper, entries = IDENTITY, "least-squares fit to the approved still (regrained)"
    elif fmt == "csp":
        shaper = choose_shaper(look, size)
    else:
        shaper = IDENTITY
    if table is None:
        table = (
            fit_lut(look, size, shaper=shaper) if method == "fit" else bake_lut(look, size, shaper)
        )
    if fmt == "csp":
        comment = (
            f"otcolor look: space {look.space}, strength {look.strength:g}, "
            f"preserve luminance {look.preserve_luminance}\nsRGB in [0, 1], shaper "
            f"{shaper.describe()}\n"
            f"entries: {entries}"
        )
        write_csp(path, table, shaper, comment, overwrite)
    elif fmt == "cube":
        comment = (
            f"otcolor look: space {look.space}, strength {look.strength:g}, "
            f"preserve luminance {look.preserve_luminance}\nsRGB in [0, 1], red fastest, "
            f"entries: {entries}"
        )
        write_cube(path, table, comment, overwrite)
    else:
        write_hald(path, table, overwrite)
    return fmt, size
