r"""Loading images safely: allowed formats only, decompression-bomb limits, EXIF orientation,
colour management into the working space, CMYK, 16-bit and float sources, XMP, and one clear
error for a file that cannot be read.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS", "LoadedImage", "load_image", "load_mask", "unit_float"]

import contextlib
import os
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, UsageError
from .files import describe_os_error, identity_and_digest
from .formats import (
    ALLOWED_FORMATS,
    HEIF_EXTRA,
    HINT_CORRUPT,
    HINT_FORMATS,
    HINT_LIMIT,
    ORIENTATION,
    dpi_of,
    exif_bytes,
    heif_available,
    hint_unidentified,
    isobmff_brand,
    unidentified,
    upright_xmp,
    xmp_of,
)
from .png16 import check_png_crcs, read_png16
from .probe import probe_size
from .profiles import ColourProfile, cmyk_to_working, declared_profile, into_working
from .tiff import read_tiff

#: Default pixel limit, Pillow's own ``MAX_IMAGE_PIXELS`` (about 89.5 megapixels).
DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS


def _open_formats() -> list[str]:
    r"""Plugins tried by ``Image.open``: the allowed ones that are registered (HEIF only once
    ``pillow-heif`` is loaded); MPO has no opener of its own (the JPEG one returns MPO files)."""

    Image.init()
    return [f for f in ALLOWED_FORMATS if f != "MPO" and f in Image.OPEN]


_TIFF_MAGIC = (b"II*\0", b"MM\0*")

AVIF_HINT = "install a Pillow >= 11.3 wheel, which includes libavif"

# Everything Pillow's loaders are documented or fuzzed to raise on bad input
# (Pillow's Tests/test_fuzzers.py), plus what struct and lookups leak from plugins.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    MemoryError,
    NotImplementedError,
    OverflowError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    struct.error,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    ZeroDivisionError,
)


_bomb_lock = threading.Lock()


def unit_float(pixels: np.ndarray) -> np.ndarray:
    r"""Pixels as float32 in :math:`[0, 1]`: uint8 samples divided by 255, floats as they are
    (not copied)."""

    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    return pixels.astype(np.float32, copy=False)


@dataclass
class LoadedImage:
    r"""An image decoded to float RGB, with what is needed to write a faithful output.

    Arguments:
        rgb: the upright pixels, with shape :math:`(H, W, 3)`, float32 in :math:`[0, 1]`, or
            uint8 when :func:`load_image` was asked to ``keep_8bit``.
        alpha: the alpha channel, with shape :math:`(H, W)` (uint8, or uint16 for 16-bit), or
            ``None`` when the image has no transparency.
        path: where the image was read from.
        format: the Pillow format that decoded it (``"JPEG"``, ``"PNG"``, ...).
        mode: the original Pillow mode (``"RGB"``, ``"P"``, ``"I;16"``, ...).
        icc_profile: the embedded ICC profile, or ``None``.
        profile: the colour space the file declared (``None``: sRGB, untagged); ``rgb`` has
            been converted from it into the working space (:mod:`otcolor.io.profiles`).
        xmp: the XMP packet, byte for byte (its orientation reset once applied), or ``None``.
        exif: the EXIF block after orientation was applied (Orientation removed), or ``None``.
        dpi: the resolution in dots per inch, or ``None``.
        bit_depth: 8, or 16 when the pixels were decoded from 16-bit samples.
        warnings: what was lost or assumed while decoding, one line each.
        sha256: the SHA-256 (hex) of the file's bytes that were decoded, for map fingerprints:
            the file at ``path`` may have changed by the time a fit ends.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    path: Path = field(default_factory=Path)
    format: str = ""
    mode: str = "RGB"
    icc_profile: bytes | None = None
    profile: ColourProfile | None = None
    xmp: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    bit_depth: int = 8
    warnings: list[str] = field(default_factory=list)
    sha256: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        r"""The size :math:`(W, H)`, in Pillow's order."""

        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def n_pixels(self) -> int:
        r"""The number of pixels :math:`H W`."""

        return self.rgb.shape[0] * self.rgb.shape[1]


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    colour_managed: bool = True,
    keep_8bit: bool = False,
) -> LoadedImage:
    r"""Decodes an image file to upright float RGB in the working space, keeping alpha and
    metadata aside.

    Only :data:`ALLOWED_FORMATS` are decoded, the size is checked from the header before any
    pixel is decoded, the whole file is decoded here (so truncation is caught here), EXIF
    orientation is applied, and the pixels are converted from the file's colour profile into
    the working space, sRGB (:mod:`otcolor.io.profiles`).

    Arguments:
        path: the image file.
        max_pixels: the largest accepted :math:`W H`, or ``None`` for no limit.
        colour_managed: convert from the file's profile; ``False`` for data that is not a
            colour (a mask), read as its numbers.
        keep_8bit: leave 8-bit samples that need no conversion (an sRGB or untagged file) as
            uint8, a quarter of the float image's memory, for callers that read ``rgb``
            through :func:`unit_float` or the uint8-aware renderers.

    Returns:
        The decoded image; ``rgb`` has shape :math:`(H, W, 3)`.

    Raises:
        InputError: the file is missing, unreadable, not an allowed image, animated, too
            large, truncated or corrupt.
    """

    path = Path(path)
    _check_input_file(path)
    before, digest = identity_and_digest(path)
    notes: list[str] = []
    prefix = _prefix(path)
    brand = isobmff_brand(prefix)
    if brand == "HEIF" and not heif_available():
        raise InputError(f"{path}: HEIC/HEIF image: reading it needs pillow-heif", HEIF_EXTRA)
    if brand == "AVIF" and "AVIF" not in _open_formats():
        raise InputError(f"{path}: AVIF image: this Pillow has no AVIF codec", AVIF_HINT)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pillow's bomb warning is replaced by our own size check below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        loaded = _open_and_decode(path, prefix, max_pixels, notes, colour_managed, keep_8bit)
    return _finish(loaded, path, before, digest, notes, caught)


def _open_and_decode(
    path: Path,
    prefix: bytes,
    max_pixels: int | None,
    notes: list[str],
    colour_managed: bool,
    keep_8bit: bool = False,
) -> LoadedImage:
    try:
        with _pillow_pixel_limit_lifted():
            im = Image.open(path, formats=_open_formats())
    except UnidentifiedImageError as err:
        if prefix[:4] in _TIFF_MAGIC:  # float samples, which Pillow has no mode for
            return _float_tiff(path, max_pixels, notes, colour_managed)
        raise InputError(f"{path}: {unidentified(path)}", hint_unidentified(path)) from err
    except Image.DecompressionBombError as err:
        raise InputError(f"{path}: image too large: {err}", HINT_LIMIT) from err
    except PermissionError as err:
        raise InputError(f"{path}: permission denied") from err
    except _DECODE_ERRORS as err:
        message = f"{path}: cannot open image: {describe_os_error(err)}"
        raise InputError(message, HINT_CORRUPT) from err

    with im:
        chunks = check_png_crcs(path) if im.format == "PNG" else {}
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise InputError(
                f"{path}: image is {width}x{height} = {width * height:,} pixels, "
                f"above the limit of {max_pixels:,}",
                HINT_LIMIT,
            )
        try:
            return _decode(im, path, notes, chunks, colour_managed, keep_8bit)
        except _DECODE_ERRORS as err:
            raise InputError(
                f"{path}: cannot decode {im.format} image: {describe_os_error(err)}",
                HINT_CORRUPT,
            ) from err


def _finish(
    loaded: LoadedImage,
    path: Path,
    before: tuple[int, ...],
    digest: str,
    notes: list[str],
    caught: list[warnings.WarningMessage] | None,
) -> LoadedImage:
    r"""Reports the decoder's warnings, checks the file did not change, records its digest."""

    for warning in caught or []:
        if issubclass(warning.category, UserWarning):
            notes.append(f"{path}: {warning.message}")
        else:  # deprecations and the like are for developers, not for the user's report
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if identity_and_digest(path, hash_it=False)[0] != before:
        # The digest would describe other bytes than the pixels: refuse rather than record it.
        raise InputError(f"{path}: the file changed while it was being read", "run again")
    loaded.warnings = list(dict.fromkeys(notes))
    loaded.sha256 = digest
    return loaded


def _prefix(path: Path) -> bytes:
    try:
        with path.open("rb") as fp:
            return fp.read(16)
    except OSError:
        return b""  # Pillow's open reports it


def load_mask(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    r"""Reads a mask image: its grey level (times its alpha, if any), in :math:`[0, 1]`.

    Arguments:
        path: the mask image (any format :func:`load_image` reads; white = selected).
        size: the size :math:`(W, H)` it must have, that of the image it masks.

    Returns:
        The mask, with shape :math:`(H, W)`, float32.

    Raises:
        InputError: the mask is unreadable.
        UsageError: its size differs from ``size``.
    """

    # A mask of the wrong size is refused from its header, before decoding what may be a large
    # image (a 99 KB PNG can hold 9000x9000 pixels).
    sizes = probe_size(path, max_pixels)
    if sizes is not None and tuple(size) not in sizes:
        width, height = min(sizes)
        raise UsageError(
            f"{path}: mask is {width}x{height}, the image is {size[0]}x{size[1]}",
            "masks must have the image's size",
        )
    mask = load_image(path, max_pixels=max_pixels, colour_managed=False)
    if mask.size != tuple(size):
        raise UsageError(
            f"{path}: mask is {mask.size[0]}x{mask.size[1]}, the image is {size[0]}x{size[1]}",
            "masks must have the image's size",
        )
    grey = mask.rgb.mean(-1, dtype=np.float32)  # (H, W)
    if mask.alpha is not None:
        grey *= mask.alpha.astype(np.float32) / np.iinfo(mask.alpha.dtype).max
    return grey


def _check_input_file(path: Path) -> None:
    r"""Turns the usual filesystem mistakes into one-line errors before Pillow sees the file."""

    try:
        info = path.stat()
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except PermissionError as err:
        raise InputError(f"{path}: permission denied") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read: {describe_os_error(err)}") from err
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)", HINT_FORMATS)


@contextlib.contextmanager
def _pillow_pixel_limit_lifted() -> Iterator[None]:
    r"""Lifts Pillow's hard pixel limit for one open, so that ``max_pixels`` decides.

    Pillow refuses anything above twice ``MAX_IMAGE_PIXELS`` inside ``Image.open``, with its own
    limit in the message, before we can check the size ourselves. ``Image.open`` reads only
    the header, and :func:`load_image` checks that same header against ``max_pixels`` right
    after, before any pixel is decoded. The global is lifted and restored under a lock.
    """

    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        yield
        return
    with _bomb_lock:
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _decode(
    im: Image.Image,
    path: Path,
    notes: list[str],
    chunks: dict[bytes, bytes],
    colour_managed: bool,
    keep_8bit: bool = False,
) -> LoadedImage:
    r"""Decodes an opened image fully and converts it to float RGB (working space) plus alpha;
    with ``keep_8bit``, 8-bit samples that need no conversion stay uint8."""

    fmt = im.format or ""
    mode = im.mode
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        if fmt == "MPO":
            # Phone cameras write the photo plus previews or depth maps; frame 0 is the photo.
            notes.append(f"{path}: MPO file with {frames} images; using the first")
        else:
            raise InputError(
                f"{path}: animated or multi-page image ({frames} frames)",
                "export a single frame first",
            )
    rawmode = _rawmode(im)
    im.load()
    icc = im.info.get("icc_profile") or None
    dpi = dpi_of(im.info.get("dpi"))
    xmp = xmp_of(im)

    exif: bytes | None = None
    try:
        orientation = im.getexif().get(ORIENTATION, 1)
        upright = ImageOps.exif_transpose(im)
        exif = exif_bytes(upright)
    except Exception as err:  # bad EXIF must not cost the pixels (Pillow's own advice)
        notes.append(f"{path}: unreadable EXIF ignored ({describe_os_error(err)})")
        orientation, upright = 1, im
    if dpi is not None and orientation in (5, 6, 7, 8):
        dpi = (dpi[1], dpi[0])

    alpha: np.ndarray | None = None
    bit_depth = 8
    # Pillow decodes 16-bit colour PNGs to 8 bits (it has no 16-bit RGB mode): read those here.
    sixteen = read_png16(path, orientation) if fmt == "PNG" and ";16" in rawmode else None
    if sixteen is not None:
        samples, alpha = sixteen
        rgb = samples.astype(np.float32)
        del samples
        np.divide(rgb, 65535, out=rgb)
        bit_depth = 16
    elif fmt == "TIFF" and ";16" in rawmode:  # 16-bit RGB(A) TIFF: Pillow would read 8 bits
        tiff = read_tiff(path, None, notes)  # the size was checked from the header
        rgb, alpha, bit_depth = tiff.rgb, tiff.alpha, 16
    elif mode.startswith("I;16") or mode == "I":
        grey = np.asarray(upright).astype(np.float32)
        if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            notes.append(f"{path}: 32-bit integer samples clipped to 16 bits")
        grey = np.clip(grey, 0, 65535) / 65535
        rgb = np.repeat(grey[..., None], 3, axis=2)  # (H, W, 3)
        bit_depth = 16
    elif mode == "F":  # a grey float TIFF that Pillow opens
        tiff = read_tiff(path, None, notes)
        rgb, alpha, bit_depth = tiff.rgb, tiff.alpha, 16
    else:
        if mode == "CMYK":
            upright, icc = cmyk_to_working(upright, icc, path, notes)
        elif ";16" in rawmode:
            notes.append(f"{path}: 16-bit input reduced to 8-bit by Pillow")
        bands = upright.getbands()
        if "A" in bands or "a" in bands or "transparency" in upright.info:
            pixels = np.asarray(upright.convert("RGBA"))  # (H, W, 4)
            alpha = pixels[..., 3].copy()
            pixels = pixels[..., :3]
        else:
            # convert() copies even an RGB image: skip it, a 50-megapixel copy is 200 MB.
            rgb_image = upright if upright.mode == "RGB" else upright.convert("RGB")
            pixels = np.asarray(rgb_image)  # (H, W, 3)
        rgb = pixels
        del pixels

    profile = None
    if colour_managed and mode != "CMYK":  # CMYK was converted into sRGB above
        profile, icc = declared_profile(icc, fmt, im.info, chunks, notes, path)
    if rgb.dtype == np.uint8 and not (keep_8bit and (profile is None or profile.is_working)):
        # In place: the float image is the largest buffer of a transfer (12 bytes a pixel).
        samples = rgb
        rgb = samples.astype(np.float32)
        del samples
        np.divide(rgb, 255, out=rgb)
    if profile is not None:
        rgb = into_working(rgb, profile, bit_depth, notes, path)
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8 if rgb.dtype == np.uint8 else np.float32),
        alpha=alpha,
        path=path,
        format=fmt,
        mode=mode,
        icc_profile=icc,
        profile=profile,
        xmp=upright_xmp(xmp, orientation),
        exif=exif,
        dpi=dpi,
        bit_depth=bit_depth,
    )


def _float_tiff(
    path: Path, max_pixels: int | None, notes: list[str], colour_managed: bool
) -> LoadedImage:
    r"""A float TIFF, which Pillow cannot open: pixels and metadata through tifffile."""

    tiff = read_tiff(path, max_pixels, notes)
    profile, icc = None, tiff.icc
    rgb = tiff.rgb
    if colour_managed:
        profile, icc = declared_profile(icc, "TIFF", {}, {}, notes, path)
        rgb = into_working(rgb, profile, 16, notes, path)
    return LoadedImage(
        rgb=rgb,
        alpha=tiff.alpha,
        path=path,
        format="TIFF",
        mode="F",
        icc_profile=icc,
        profile=profile,
        xmp=upright_xmp(tiff.xmp, tiff.orientation),
        dpi=tiff.dpi,
        bit_depth=16,
    )


def _rawmode(im: Image.Image) -> str:
    r"""The decoder's raw mode, which tells 16-bit files that Pillow reads as 8-bit."""

    if not im.tile:
        return ""
    args = im.tile[0][3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""
