r"""Image headers without pixels: the cheap check a batch runs on every input before decoding any.

:func:`probe_size` reads only what Pillow's ``Image.open`` reads (the header), through
:func:`otcolor.io.files.open_regular`. It gives no verdict of its own on a bad file: when the
header cannot be read or is over the pixel limit it returns ``None``, and the caller asks
:func:`otcolor.io.load_image`, whose refusal (from the header too) is the one every command
prints.
"""

from __future__ import annotations

__all__ = ["probe_size"]

import os
import warnings

from PIL import Image

from .files import open_regular
from .formats import ALLOWED_FORMATS, ORIENTATION

# As decode opens them: MPO has no opener of its own (the JPEG one returns MPO files).
_OPEN_FORMATS = tuple(f for f in ALLOWED_FORMATS if f != "MPO")

#: EXIF orientations that turn the image a quarter: the upright size swaps width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def probe_size(
    path: str | os.PathLike[str], max_pixels: int | None
) -> frozenset[tuple[int, int]] | None:
    r"""The upright sizes ``(width, height)`` an image may have, from its header alone.

    One size when the orientation is known from the header; both orders when it is not (a PNG
    may carry its EXIF after the pixels, where only a full decode finds it).

    Returns:
        The possible sizes, or ``None`` when the header is unreadable, of a format not
        allowed, or above ``max_pixels``: :func:`otcolor.io.load_image` then says why.

    Raises:
        InputError: the path is not a regular file (:func:`open_regular`).
    """

    with open_regular(path, what="image") as fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(fp, formats=_OPEN_FORMATS) as im:
                    width, height = im.size
                    orientation = _orientation(im)
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            IndexError,
            TypeError,
            KeyError,
            ZeroDivisionError,
            MemoryError,
            OverflowError,
            NotImplementedError,
            Image.DecompressionBombError,
        ):
            return None
    if width < 1 or height < 1 or (max_pixels is not None and width * height > max_pixels):
        return None
    if orientation is None:
        return frozenset({(width, height), (height, width)})
    return frozenset({(height, width) if orientation in _QUARTER_TURNS else (width, height)})


def _orientation(im: Image.Image) -> int | None:
    r"""The EXIF orientation the header gives (1 without EXIF), or ``None`` when only decoding
    the pixels would tell (``getexif()`` on a PNG loads them)."""

    if im.format == "TIFF":
        return int(getattr(im, "tag_v2", {}).get(ORIENTATION, 1))
    raw = im.info.get("exif")
    if raw is None:
        return None if im.format == "PNG" else 1
    exif = Image.Exif()
    try:
        exif.load(raw)
        value = exif.get(ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, EOFError, KeyError, TypeError, IndexError):
        return 1
    return int(value) if isinstance(value, int) else 1
