r"""Loading images safely: allowed formats only, decompression-bomb limits, EXIF orientation,
CMYK and 16-bit sources, and one clear error for a file that cannot be read.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS", "LoadedImage", "load_image", "load_mask"]

import contextlib
import io
import os
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ..errors import InputError, UsageError
from .files import describe_os_error, identity_and_digest
from .formats import (
    ALLOWED_FORMATS,
    HINT_CORRUPT,
    HINT_FORMATS,
    HINT_LIMIT,
    ORIENTATION,
    STRUCTURAL_TAGS,
)
from .png16 import check_png_crcs, read_png16

#: Default pixel limit, Pillow's own ``MAX_IMAGE_PIXELS`` (about 89.5 megapixels).
DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS


# Plugins tried by Image.open; MPO has no opener of its own (the JPEG one returns MPO files).
_OPEN_FORMATS = tuple(f for f in ALLOWED_FORMATS if f != "MPO")

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


@dataclass
class LoadedImage:
    r"""An image decoded to float RGB, with what is needed to write a faithful output.

    Arguments:
        rgb: the upright pixels, with shape :math:`(H, W, 3)`, float32 in :math:`[0, 1]`.
        alpha: the alpha channel, with shape :math:`(H, W)` (uint8, or uint16 for 16-bit), or
            ``None`` when the image has no transparency.
        path: where the image was read from.
        format: the Pillow format that decoded it (``"JPEG"``, ``"PNG"``, ...).
        mode: the original Pillow mode (``"RGB"``, ``"P"``, ``"I;16"``, ...).
        icc_profile: the embedded ICC profile, or ``None``.
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
    path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    r"""Decodes an image file to upright float RGB, keeping alpha and metadata aside.

    Only :data:`ALLOWED_FORMATS` are decoded, the size is checked from the header before any
    pixel is decoded, the whole file is decoded here (so truncation is caught here), and
    EXIF orientation is applied.

    Arguments:
        path: the image file.
        max_pixels: the largest accepted :math:`W H`, or ``None`` for no limit.

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

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pillow's bomb warning is replaced by our own size check below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with _pillow_pixel_limit_lifted():
                im = Image.open(path, formats=_OPEN_FORMATS)
        except UnidentifiedImageError as err:
            raise InputError(f"{path}: {_unidentified(path)}", _hint_unidentified(path)) from err
        except Image.DecompressionBombError as err:
            raise InputError(f"{path}: image too large: {err}", HINT_LIMIT) from err
        except PermissionError as err:
            raise InputError(f"{path}: permission denied") from err
        except _DECODE_ERRORS as err:
            message = f"{path}: cannot open image: {describe_os_error(err)}"
            raise InputError(message, HINT_CORRUPT) from err

        with im:
            if im.format == "PNG":
                check_png_crcs(path)
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise InputError(
                    f"{path}: image is {width}x{height} = {width * height:,} pixels, "
                    f"above the limit of {max_pixels:,}",
                    HINT_LIMIT,
                )
            try:
                loaded = _decode(im, path, notes)
            except _DECODE_ERRORS as err:
                raise InputError(
                    f"{path}: cannot decode {im.format} image: {describe_os_error(err)}",
                    HINT_CORRUPT,
                ) from err

    for warning in caught:
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

    mask = load_image(path, max_pixels=max_pixels)
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


def _unidentified(path: Path) -> str:
    r"""Names the format of a file that no allowed plugin accepted, if Pillow knows it."""

    try:
        with path.open("rb") as fp:
            prefix = fp.read(16)
    except OSError:
        return "not a recognised image"
    Image.init()
    matches = []
    for name, (_, accept) in Image.OPEN.items():
        # Only the plugins' magic-byte checks run here; no decoder is started.
        try:
            accepted = accept is not None and accept(prefix)
        except Exception:  # a plugin's accept() failing only means "not this format"
            continue
        # accept() returns a str to warn about a format it recognises but will not open.
        if accepted and not isinstance(accepted, str):
            matches.append(name)
    # Magic bytes can mislead: a TGA header starts like a CUR one, and TGA has no magic of its
    # own. A header parse by the one plugin (no pixel decoder, no Ghostscript) settles it.
    headerless = [name for name, (_, accept) in Image.OPEN.items() if accept is None]
    confirmed = next((n for n in [*matches, *headerless] if _opens_as(path, n)), None)
    if confirmed is not None and confirmed not in ALLOWED_FORMATS:
        return f"format {confirmed} is not allowed"
    blocked = next((n for n in matches if n not in ALLOWED_FORMATS), None)
    if confirmed is None and blocked is not None:
        return f"format {blocked} is not allowed"
    recognised = confirmed or next((n for n in matches if n in ALLOWED_FORMATS), None)
    if recognised is not None:
        # E.g. a 3-channel float TIFF, which Pillow has no mode for, or a broken header.
        return f"{recognised} file that Pillow cannot open: unsupported variant or corrupt header"
    return "not a recognised image"


def _opens_as(path: Path, name: str) -> bool:
    r"""Whether ``name``'s plugin parses the file's header (``Image.open`` decodes no pixels)."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path, formats=[name]):
                return True
        except Exception:  # any failure only means "not this format"
            return False


def _hint_unidentified(path: Path) -> str:
    r"""The hint for :func:`_unidentified`'s message: re-export, or use an allowed format."""

    return HINT_CORRUPT if "cannot open" in _unidentified(path) else HINT_FORMATS


def _decode(im: Image.Image, path: Path, notes: list[str]) -> LoadedImage:
    r"""Decodes an opened image fully and converts it to float RGB plus alpha."""

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
    dpi = _dpi(im.info.get("dpi"))

    exif: bytes | None = None
    try:
        orientation = im.getexif().get(ORIENTATION, 1)
        upright = ImageOps.exif_transpose(im)
        exif = _exif_bytes(upright)
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
    elif mode.startswith("I;16") or mode == "I":
        grey = np.asarray(upright).astype(np.float32)
        if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            notes.append(f"{path}: 32-bit integer samples clipped to 16 bits")
        grey = np.clip(grey, 0, 65535) / 65535
        rgb = np.repeat(grey[..., None], 3, axis=2)  # (H, W, 3)
        bit_depth = 16
    elif mode == "F":
        raise InputError(f"{path}: 32-bit float images are not supported", "export 8 or 16 bits")
    else:
        if mode == "CMYK":
            upright, icc = _cmyk_to_rgb(upright, icc, path, notes)
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
        # In place: the float image is the largest buffer of a transfer (12 bytes a pixel).
        rgb = pixels.astype(np.float32)
        del pixels
        np.divide(rgb, 255, out=rgb)

    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=alpha,
        path=path,
        format=fmt,
        mode=mode,
        icc_profile=icc,
        exif=exif,
        dpi=dpi,
        bit_depth=bit_depth,
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


def _cmyk_to_rgb(
    im: Image.Image, icc: bytes | None, path: Path, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    r"""Converts CMYK to sRGB, through the embedded profile when there is one."""

    if icc is not None:
        try:
            srgb = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(
                im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB"
            )
            # The pixels are sRGB now: embed sRGB, never the stale CMYK profile.
            return rgb, ImageCms.ImageCmsProfile(srgb).tobytes()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as err:
            notes.append(
                f"{path}: unusable CMYK ICC profile ({describe_os_error(err)}); naive conversion"
            )
    else:
        notes.append(f"{path}: CMYK image without ICC profile; converted to RGB naively")
    return im.convert("RGB"), None


def _exif_bytes(im: Image.Image) -> bytes | None:
    r"""Serialises the EXIF of an upright image, without tags that describe pixel layout."""

    exif = im.getexif()
    for tag in list(exif):
        if tag in STRUCTURAL_TAGS or tag == ORIENTATION:
            del exif[tag]
    if not len(exif):
        return None
    return exif.tobytes()


def _dpi(value: object) -> tuple[float, float] | None:
    r"""Validates Pillow's ``info["dpi"]``, which some files fill with zeros or junk."""

    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (np.isfinite(x) and np.isfinite(y) and x > 0 and y > 0):
        return None
    return x, y
