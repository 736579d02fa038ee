r"""High-bit-depth TIFF through ``tifffile``: Pillow has no 16-bit RGB mode, so it reads such a
TIFF at 8 bits and cannot read a float one at all.

16-bit TIFF is what Lightroom and Capture One hand to other tools; otcolor reads it at full
precision and writes it back as 16-bit (with its ICC profile, XMP, resolution and the main
EXIF fields of IFD0). 32-bit float TIFF is read too, clipped to :math:`[0, 1]` (scene values
above white cannot be shown by any output otcolor writes; a warning says how many), and
written as 16-bit.
"""

from __future__ import annotations

__all__ = ["TiffPixels", "read_tiff", "write_tiff16"]

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError
from .formats import HINT_CORRUPT, HINT_LIMIT, orient

#: TIFF tags read and written here.
ORIENTATION, ICC, XMP, EXIF_IFD = 274, 34675, 700, 34665

#: EXIF fields that live in IFD0 and are written back as plain TIFF tags (tifffile writes no
#: EXIF sub-IFD, so exposure data is dropped from a 16-bit TIFF, with a note).
IFD0_TEXT_TAGS = {270: "ImageDescription", 271: "Make", 272: "Model", 305: "Software",
                  306: "DateTime", 315: "Artist", 33432: "Copyright"}  # fmt: skip


@dataclass
class TiffPixels:
    r"""Pixels and metadata of a TIFF read by :func:`read_tiff`.

    Attributes:
        rgb: upright, :math:`(H, W, 3)`, float32 in :math:`[0, 1]`.
        alpha: :math:`(H, W)` uint16, or ``None``.
        icc, xmp: the embedded ICC profile and XMP packet, or ``None``.
        orientation: the EXIF orientation that was applied (1: none).
        dpi: the resolution, or ``None``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    icc: bytes | None
    xmp: bytes | None
    orientation: int
    dpi: tuple[float, float] | None


def _tag(page: object, code: int) -> object:
    tag = page.tags.get(code)  # type: ignore[attr-defined]
    return None if tag is None else tag.value


def read_tiff(path: Path, max_pixels: int | None, notes: list[str]) -> TiffPixels:
    r"""Reads the first page of a 16-bit or float RGB(A) or grey TIFF at full precision.

    The size is checked from the page header against ``max_pixels`` before any pixel is read.

    Raises:
        InputError: not such a TIFF, several pages, too large, or corrupt.
    """

    import tifffile  # a dependency only TIFF files need: loaded on the first one

    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:
                raise InputError(
                    f"{path}: multi-page TIFF ({len(tif.pages)} pages)",
                    "export a single page first",
                )
            page = tif.pages[0]
            height, width = page.imagelength, page.imagewidth
            if max_pixels is not None and width * height > max_pixels:
                raise InputError(
                    f"{path}: image is {width}x{height} = {width * height:,} pixels, above the "
                    f"limit of {max_pixels:,}",
                    HINT_LIMIT,
                )
            samples = page.asarray()
            orientation = int(_tag(page, ORIENTATION) or 1)
            icc, xmp = _tag(page, ICC), _tag(page, XMP)
            dpi = _resolution(page)
            extra = page.extrasamples
    except InputError:
        raise
    except Exception as err:  # tifffile raises many types on corrupt data
        raise InputError(f"{path}: cannot decode TIFF image: {err}", HINT_CORRUPT) from err

    if samples.ndim == 2:
        samples = samples[..., None]
    channels = samples.shape[-1]
    if samples.ndim != 3 or channels not in (1, 2, 3, 4):
        raise InputError(f"{path}: TIFF with samples of shape {samples.shape}", HINT_CORRUPT)
    if samples.dtype.kind == "f":
        values = samples.astype(np.float32)
        outside = float(((values < 0) | (values > 1)).any(-1).mean())
        if outside:
            notes.append(f"{path}: {outside:.1%} of the float pixels lie outside [0, 1]; clipped")
        values = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    elif samples.dtype.kind == "u":
        values = samples.astype(np.float32) / np.iinfo(samples.dtype).max
    else:
        raise InputError(f"{path}: TIFF samples of type {samples.dtype}", HINT_CORRUPT)
    values = orient(values, orientation)
    colour = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, axis=2)
    alpha = None
    if channels in (2, 4):
        alpha = np.round(values[..., -1] * 65535).astype(np.uint16)
        if extra and int(extra[0]) == 1:  # associated (premultiplied) alpha
            notes.append(f"{path}: premultiplied alpha read as unassociated")
    return TiffPixels(
        rgb=np.ascontiguousarray(colour, dtype=np.float32),
        alpha=alpha,
        icc=bytes(icc) if isinstance(icc, (bytes, bytearray)) else None,
        xmp=bytes(xmp) if isinstance(xmp, (bytes, bytearray)) else None,
        orientation=orientation,
        dpi=dpi,
    )


def _resolution(page: object) -> tuple[float, float] | None:
    try:
        x, y = _tag(page, 282), _tag(page, 283)
        unit = int(_tag(page, 296) or 2)
        values = [a / b for a, b in (x, y)]  # type: ignore[misc]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if unit == 3:  # per centimetre
        values = [v * 2.54 for v in values]
    return (values[0], values[1]) if all(v > 0 and np.isfinite(v) for v in values) else None


def write_tiff16(
    fp: IO[bytes],
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc: bytes | None,
    xmp: bytes | None,
    dpi: tuple[float, float] | None,
    text_tags: dict[int, str] | None = None,
) -> None:
    r"""Writes a 16-bit RGB(A) TIFF (deflate-compressed, predictor 2) with its metadata.

    Arguments:
        rgb: :math:`(H, W, 3)` uint16.
        alpha: :math:`(H, W)` uint16, or ``None``.
        icc, xmp: the ICC profile (tag 34675) and XMP packet (tag 700), written byte for byte.
        dpi: the resolution in dots per inch.
        text_tags: IFD0 text fields (:data:`IFD0_TEXT_TAGS`) by tag number.
    """

    import tifffile

    pixels = rgb if alpha is None else np.dstack([rgb, alpha])
    extratags = []
    if icc:
        extratags.append((ICC, "B", len(icc), icc, True))
    if xmp:
        extratags.append((XMP, "B", len(xmp), xmp, True))
    for code, text in (text_tags or {}).items():
        extratags.append((code, "s", 0, text, True))
    # tifffile needs a seekable file with a name; the atomic writer's is an unnamed descriptor.
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric="rgb",
        planarconfig="contig",
        extrasamples=None if alpha is None else [2],  # unassociated alpha
        compression="zlib",
        predictor=True,
        resolution=None if dpi is None else (dpi[0], dpi[1]),
        resolutionunit=None if dpi is None else "INCH",
        extratags=extratags,
        metadata=None,
    )
    fp.write(buffer.getbuffer())
