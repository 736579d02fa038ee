r"""3-D LUT export: a look baked into an Adobe/Resolve ``.cube`` file or a HaldCLUT PNG.

The table's domain is gamma-encoded sRGB in :math:`[0, 1]`, whatever space the map works in:
the whole chain (sRGB to the map's space, the map at its strength, back to sRGB, lightness
kept if asked, clipping) is baked in. Entry :math:`(r, g, b)` holds the look's output at
:math:`(r, g, b) / (N - 1)`; rows are written with red changing fastest, then green, then blue
(the order of the Adobe Cube LUT specification 1.0, Resolve, OCIO and FFmpeg's ``lut3d``).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_SIZES",
    "LUT_FORMATS",
    "bake_lut",
    "check_lut",
    "export_lut",
    "read_cube",
    "write_cube",
    "write_hald",
]

import math
import os
from pathlib import Path
from typing import IO

import numpy as np

from .color import Look
from .errors import InputError, UsageError
from .image import LoadedImage, save_image, write_atomically

#: LUT formats and their file extensions.
LUT_FORMATS: dict[str, tuple[str, ...]] = {"cube": (".cube",), "hald": (".png",)}

#: Default table sizes :math:`N` (points per axis): 33 for ``.cube`` (the grading default),
#: 64 for Hald (level 8, a 512 x 512 image).
DEFAULT_SIZES: dict[str, int] = {"cube": 33, "hald": 64}


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
                "use .cube, or .png for a HaldCLUT",
            )
        fmt = by_suffix
    if fmt not in LUT_FORMATS:
        raise UsageError(f"unknown LUT format {fmt!r}", "choose cube or hald")
    if by_suffix != fmt:
        raise UsageError(
            f"{path}: a {fmt} LUT needs the extension {LUT_FORMATS[fmt][0]}",
            "change the extension or --format",
        )
    size = DEFAULT_SIZES[fmt] if size is None else int(size)
    if fmt == "cube" and not 2 <= size <= 129:
        raise UsageError(f"a .cube LUT has 2 to 129 points per axis, not {size}", "17, 33 or 65")
    if fmt == "hald":
        level = math.isqrt(size)
        if level * level != size or not 2 <= level <= 16:
            raise UsageError(
                f"a HaldCLUT has a square number of points per axis (level squared), not {size}",
                "16, 36, 64 (level 8, 512x512) or 144",
            )
    return fmt, size


def bake_lut(look: Look, size: int) -> np.ndarray:
    r"""Evaluates a look on a regular :math:`N^3` grid of sRGB colours.

    Arguments:
        look: the look.
        size: :math:`N`, the points per axis.

    Returns:
        The table, with shape :math:`(N, N, N, 3)` indexed ``[b, g, r]`` (so that a C-order
        flattening has red fastest), float32 in :math:`[0, 1]`.
    """

    grid = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(grid, grid, grid, indexing="ij")
    points = np.stack([r, g, b], -1).reshape(-1, 3).astype(np.float32)  # red fastest
    return look(points).reshape(size, size, size, 3)


def write_cube(path: str | os.PathLike[str], table: np.ndarray, comment: str = "") -> None:
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

    write_atomically(Path(path), write)


def read_cube(path: str | os.PathLike[str]) -> np.ndarray:
    r"""Reads a 3-D ``.cube`` file (default domain) into a table indexed ``[b, g, r]``.

    Raises:
        InputError: the file is not a well-formed 3-D ``.cube``.
    """

    size = None
    rows: list[list[float]] = []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "LUT_3D_SIZE":
            size = int(words[1])
        elif words[0] in ("TITLE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"):
            continue
        else:
            try:
                rows.append([float(w) for w in words[:3]])
            except ValueError as err:
                raise InputError(f"{path}:{number}: not a LUT row: {line!r}") from err
    if size is None or len(rows) != size**3:
        raise InputError(f"{path}: expected LUT_3D_SIZE N and N^3 rows, got {len(rows)} rows")
    return np.asarray(rows, np.float32).reshape(size, size, size, 3)


def write_hald(path: str | os.PathLike[str], table: np.ndarray) -> None:
    r"""Writes a table of :func:`bake_lut` as a 16-bit HaldCLUT PNG of level
    :math:`L = \sqrt{N}` (an :math:`L^3 \times L^3` image, pixels in the table's order)."""

    size = table.shape[0]
    level = math.isqrt(size)
    image = table.reshape(level**3, level**3, 3)
    carrier = LoadedImage(rgb=image[:1, :1], bit_depth=16)  # asks save_image for 16 bits
    save_image(path, image, like=carrier)


def export_lut(
    look: Look, path: str | os.PathLike[str], size: int | None = None, fmt: str | None = None
) -> tuple[str, int]:
    r"""Bakes a look and writes it as a ``.cube`` or HaldCLUT file.

    Returns:
        The format and size written.
    """

    fmt, size = check_lut(path, fmt, size)
    table = bake_lut(look, size)
    if fmt == "cube":
        comment = (
            f"otcolor look: space {look.space}, strength {look.strength:g}, "
            f"preserve luminance {look.preserve_luminance}\nsRGB in [0, 1], red fastest"
        )
        write_cube(path, table, comment)
    else:
        write_hald(path, table)
    return fmt, size
