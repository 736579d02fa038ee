r"""Saving images: the output format from the suffix, 8- or 16-bit, converted from the
working space into the output's colour profile and tagged with it, with the source's metadata
(XMP, EXIF, DPI) and alpha, written atomically.
"""

from __future__ import annotations

__all__ = ["all_finite", "save_image", "writes_8bit_as_is"]

import os
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

from ..errors import OutputError
from .decode import LoadedImage
from .files import write_atomically
from .formats import ALPHA_FORMATS, SIXTEEN_BIT_FORMATS, XMP_FORMATS, output_format
from .png16 import write_png16, xmp_itxt
from .profiles import ColourProfile, from_working
from .tiff import IFD0_TEXT_TAGS, write_tiff16


def save_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    like: LoadedImage | None = None,
    quality: int = 95,
    overwrite: bool = True,
    profile: ColourProfile | None = None,
) -> list[str]:
    r"""Writes working-space RGB pixels atomically in the output's colour profile, restoring
    alpha and the metadata of ``like``.

    The file is written to a temporary ``.<name>.otcolor-tmp-XXXX`` in the same directory,
    synced, then renamed over ``path``, so ``path`` holds either its old contents or the
    complete new file. Samples are 16-bit when ``like.bit_depth == 16`` and the format holds
    16-bit RGB (PNG, TIFF), 8-bit otherwise. The pixels are converted from the working space
    (sRGB) into ``profile``, or into the profile ``like`` was read from, and the file is tagged
    with the profile its numbers are in; an untagged sRGB source gives an untagged output.

    Arguments:
        path: the output file; its extension picks the format.
        rgb: the pixels, with shape :math:`(H, W, 3)`, float in :math:`[0, 1]` (clipped), or
            uint8 samples, written as they are (no float copy of a large image).
        alpha: the alpha channel to restore, with shape :math:`(H, W)`, uint8 or uint16.
        like: the image whose colour profile, XMP, EXIF, DPI and bit depth are carried over.
        quality: the JPEG and WebP quality, from 1 to 100.
        overwrite: whether an existing ``path`` may be replaced. ``False`` is what the command
            line uses without ``--force``: a file created at ``path`` since it was checked is
            kept and :class:`UsageError` raised.
        profile: the output's colour space (:mod:`otcolor.io.profiles`); ``None``: ``like``'s.

    Returns:
        What was lost while writing, one line each (e.g. 16-bit reduced to 8-bit).

    Raises:
        UsageError: unsupported extension.
        OutputError: the pixels are not finite, or the file cannot be written.
    """

    path = Path(path)
    fmt = output_format(path)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected rgb with shape (H, W, 3), got {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"expected alpha with shape {rgb.shape[:2]}, got {alpha.shape}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255 if like is not None and like.bit_depth == 16 else rgb
    if rgb.dtype != np.uint8 and not all_finite(rgb):
        raise OutputError(f"{path}: refusing to write non-finite pixel values")
    if alpha is not None and fmt not in ALPHA_FORMATS:
        raise OutputError(f"{path}: {fmt} cannot hold an alpha channel", "use .png/.webp/.tiff")

    notes: list[str] = []
    rgb, icc = _into_profile(rgb, like, profile)
    exif = like.exif if like is not None else None
    dpi = like.dpi if like is not None else None
    xmp = like.xmp if like is not None else None
    if xmp is not None and fmt not in XMP_FORMATS:
        notes.append(f"{path}: {fmt} has no place for the XMP metadata; dropped")
        xmp = None
    sixteen = (like is not None and like.bit_depth == 16) or (
        alpha is not None and alpha.dtype == np.uint16
    )
    if sixteen and fmt not in SIXTEEN_BIT_FORMATS:
        sixteen = False
        notes.append(f"{path}: 16-bit input written as 8-bit {fmt}")
    icc, exif = _fitting_metadata(path, fmt, icc, exif, notes)

    if sixteen:
        rgb16 = _quantize(rgb, np.uint16)
        alpha16 = None if alpha is None else _alpha_as(alpha, np.uint16)
        tags = _tiff_text_tags(path, exif, notes) if fmt == "TIFF" else {}

        def write(fp: IO[bytes]) -> None:
            if fmt == "TIFF":
                write_tiff16(fp, rgb16, alpha16, icc=icc, xmp=xmp, dpi=dpi, text_tags=tags)
            else:
                write_png16(fp, rgb16, alpha16, icc=icc, exif=exif, dpi=dpi, xmp=xmp)

    else:
        pixels = rgb if rgb.dtype == np.uint8 else _quantize(rgb, np.uint8)  # (H, W, 3)
        if alpha is not None:
            pixels = np.dstack([pixels, _alpha_as(alpha, np.uint8)])  # (H, W, 4)
        im = Image.fromarray(pixels)
        params = _save_params(fmt, quality=quality, icc=icc, exif=exif, dpi=dpi, xmp=xmp)
        if fmt == "GIF":
            notes.append(f"{path}: GIF output is quantised to 256 colours")

        def write(fp: IO[bytes]) -> None:
            im.save(fp, format=fmt, **params)

    write_atomically(path, write, overwrite)
    return notes


def writes_8bit_as_is(like: LoadedImage, profile: ColourProfile | None = None) -> bool:
    r"""Whether :func:`save_image` writes ``like``'s output as 8-bit working-space samples,
    unconverted: then a renderer may hand it uint8 pixels (the same bytes as its float
    pixels' rounding) and save a float copy of the image. Otherwise the output is 16-bit or
    converted into another profile, which needs the float pixels."""

    target = profile if profile is not None else like.profile
    return like.bit_depth == 8 and (target is None or target.is_working)


def _into_profile(
    rgb: np.ndarray, like: LoadedImage | None, profile: ColourProfile | None
) -> tuple[np.ndarray, bytes | None]:
    r"""The pixels in the output profile, and the ICC profile to tag them with."""

    target = profile if profile is not None else (like.profile if like is not None else None)
    if target is None:  # an untagged sRGB source: untagged sRGB out, as it came
        return rgb, like.icc_profile if like is not None else None
    if target.is_working:  # no conversion; tag with the source's own sRGB bytes if it had them
        keep = profile is None and like is not None and like.icc_profile is not None
        return rgb, like.icc_profile if keep else target.icc  # type: ignore[union-attr]
    values = rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb
    return from_working(values, target), target.icc


def _tiff_text_tags(path: Path, exif: bytes | None, notes: list[str]) -> dict[int, str]:
    r"""The IFD0 text fields of an EXIF block, as plain TIFF tags (see :mod:`otcolor.io.tiff`)."""

    if not exif:
        return {}
    parsed = Image.Exif()
    try:
        parsed.load(exif)
    except Exception:  # unreadable EXIF costs only itself
        return {}
    tags = {
        code: str(parsed[code]) for code in IFD0_TEXT_TAGS if isinstance(parsed.get(code), str)
    }
    if 0x8769 in parsed or 0x8825 in parsed:
        notes.append(f"{path}: 16-bit TIFF keeps the main EXIF fields only (no camera EXIF IFD)")
    return tags


def all_finite(a: np.ndarray, rows: int = 1 << 20) -> bool:
    r"""``np.isfinite(a).all()`` without a full-size boolean temporary (big images)."""

    flat = a.reshape(-1, a.shape[-1])
    return all(np.isfinite(flat[i : i + rows]).all() for i in range(0, flat.shape[0], rows))


def _quantize(rgb: np.ndarray, dtype: type[np.unsignedinteger], rows: int = 1 << 20) -> np.ndarray:
    r"""``round(clip(rgb, 0, 1) * max)`` as integers, chunk by chunk.

    The same numbers as the whole-array expression, without its three full-size float
    temporaries (clip, scale, round): 1.8 GB for a 50-megapixel image.
    """

    top = np.iinfo(dtype).max
    flat = rgb.reshape(-1, rgb.shape[-1])
    out = np.empty(flat.shape, dtype)
    for i in range(0, flat.shape[0], rows):
        part = np.clip(flat[i : i + rows], 0.0, 1.0)
        part *= top
        out[i : i + rows] = np.round(part, out=part)
    return out.reshape(rgb.shape)


def _alpha_as(alpha: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    r"""Converts alpha between 8 and 16 bits exactly (8-bit values map to multiples of 257)."""

    if alpha.dtype == dtype:
        return alpha
    if dtype == np.uint16:
        return alpha.astype(np.uint16) * 257
    return np.round(alpha.astype(np.float64) / 257).astype(np.uint8)


def _save_params(
    fmt: str,
    *,
    quality: int,
    icc: bytes | None,
    exif: bytes | None,
    dpi: tuple[float, float] | None,
    xmp: bytes | None = None,
) -> dict[str, object]:
    r"""Pillow save options per format, metadata included (JPEG and WebP drop it otherwise)."""

    params: dict[str, object] = {}
    if fmt == "JPEG":
        params.update(quality=quality, subsampling=0)
    elif fmt in ("WEBP", "AVIF", "HEIF"):
        params.update(quality=quality)
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"):
        if icc:
            params["icc_profile"] = icc
        if exif:
            params["exif"] = exif
    if dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        params["dpi"] = dpi
    if xmp:
        if fmt == "PNG":  # Pillow writes no XMP for PNG: the iTXt chunk, byte for byte
            info = PngImagePlugin.PngInfo()
            info.add(b"iTXt", xmp_itxt(xmp))
            params["pnginfo"] = info
        elif fmt == "TIFF":
            directory = TiffImagePlugin.ImageFileDirectory_v2()
            directory[700] = xmp
            directory.tagtype[700] = TiffTags.BYTE
            params["tiffinfo"] = directory
        else:
            params["xmp"] = xmp
    return params


#: Metadata that a format cannot hold, or that readers refuse: PNG readers (Pillow among them)
#: refuse an ICC profile over 1 MiB, a JPEG APP1 segment holds at most 65,533 bytes of EXIF,
#: and an ICC profile spans at most 255 JPEG APP2 segments of 65,519 bytes.
_MAX_ICC = {"PNG": 1 << 20, "JPEG": 255 * 65519}


_MAX_EXIF = {"JPEG": 65533}


def _fitting_metadata(
    path: Path, fmt: str, icc: bytes | None, exif: bytes | None, notes: list[str]
) -> tuple[bytes | None, bytes | None]:
    r"""Drops, with a note, metadata the output format cannot carry faithfully.

    Dropping is better than both alternatives: failing after the fit, or writing a file that
    the next program (Pillow itself, for a big iCCP chunk) refuses to read.
    """

    if icc is not None and len(icc) > _MAX_ICC.get(fmt, 1 << 62):
        notes.append(f"{path}: ICC profile of {len(icc):,} bytes is too large for {fmt}; dropped")
        icc = None
    if exif is not None and len(exif) > _MAX_EXIF.get(fmt, 1 << 62):
        notes.append(f"{path}: EXIF block of {len(exif):,} bytes is too large for {fmt}; dropped")
        exif = None
    return icc, exif
