r"""Image formats otcolor reads and writes, the EXIF tags it handles, and the hints its errors give."""

from __future__ import annotations

__all__ = [
    "ALLOWED_FORMATS",
    "ALPHA_FORMATS",
    "OUTPUT_FORMATS",
    "SIXTEEN_BIT_FORMATS",
    "orient",
    "output_format",
]

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError

#: Formats that :func:`load_image` decodes. MPO (multi-picture JPEG, as written by many phone
#: cameras) comes in through the JPEG plugin. EPS, PDF and the rest are refused: EPS runs
#: Ghostscript, and none of them is a photo format worth the attack surface.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF")


# TIFF keeps its EXIF tags in the image IFD itself, next to the tags that describe the pixel
# layout; those must not travel into another file.
STRUCTURAL_TAGS = frozenset(
    {
        256,
        257,
        258,
        259,
        262,
        266,
        273,
        277,
        278,
        279,
        284,
        317,
        320,
        322,
        323,
        324,
        325,
        338,
        339,
        347,
        34675,
    }
)


ORIENTATION = 0x0112


HINT_CORRUPT = "the file may be truncated or corrupt; re-export it"


HINT_FORMATS = "allowed formats: " + ", ".join(ALLOWED_FORMATS)


HINT_LIMIT = "if you trust this file, raise the limit with --max-pixels"


HINT_PATH = "check the path and choose a shorter or simpler one"


HINT_READ = "check that the file exists and is readable"


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    r"""Applies an EXIF orientation to an :math:`(H, W, C)` array, as ``exif_transpose`` does."""

    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


#: Formats that :func:`save_image` writes.
OUTPUT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")


# Formats whose alpha channel survives a save byte for byte (BMP is read back without alpha
# by Pillow, GIF keeps only one transparent palette entry).
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


# Formats that hold 16-bit RGB. Pillow has no 16-bit RGB image mode, so PNG goes through a
# small writer of our own and TIFF falls back to 8 bits.
SIXTEEN_BIT_FORMATS = ("PNG",)


def output_format(path: Path) -> str:
    r"""The Pillow format for an output path, from its extension."""

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in OUTPUT_FORMATS:
        shown = path.suffix or "(none)"
        raise UsageError(
            f"{path}: unsupported output extension {shown}",
            "use .png, .jpg, .webp, .tif, .bmp or .gif",
        )
    return fmt


HINT_WRITABLE = "check the folder's permissions or choose another one"
