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
import struct
import warnings
from typing import BinaryIO

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
                    if orientation is None:
                        orientation = _png_orientation(fp)
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
    r"""The EXIF orientation the header gives (1 without EXIF), or ``None`` for a PNG whose
    EXIF Pillow has not met yet (``getexif()`` would decode the pixels to find it)."""

    if im.format == "TIFF":
        return int(getattr(im, "tag_v2", {}).get(ORIENTATION, 1))
    raw = im.info.get("exif")
    if raw is None:
        return None if im.format == "PNG" else 1
    return _exif_orientation(raw)


#: Chunks :func:`_png_orientation` walks at most: past that, the orientation stays unknown.
_MAX_CHUNKS = 10_000


def _png_orientation(fp: BinaryIO) -> int | None:
    r"""The orientation in a PNG's ``eXIf`` chunk, found by walking the chunk headers (seeks,
    no decompression); 1 when there is none, ``None`` when the walk gives up."""

    fp.seek(8)
    for _ in range(_MAX_CHUNKS):
        head = fp.read(8)
        if len(head) < 8:
            return 1
        length, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            return _exif_orientation(fp.read(min(length, 1 << 20)))
        if kind == b"IEND":
            return 1
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = fp.read(min(length, len(_RAW_EXIF)))
            if keyword == _RAW_EXIF:  # ImageMagick's EXIF in text: only a decode reads it
                return None
            length -= len(keyword)
        fp.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return None


#: The text chunk keyword under which ImageMagick stores EXIF in a PNG (Pillow reads it).
_RAW_EXIF = b"Raw profile type exif\x00"


def _exif_orientation(raw: bytes) -> int:
    exif = Image.Exif()
    try:
        exif.load(raw)
        value = exif.get(ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, EOFError, KeyError, TypeError, IndexError):
        return 1
    return int(value) if isinstance(value, int) else 1
