r"""Image input and output: safe loading, metadata carry-over, atomic saving and pixel sampling."""

from __future__ import annotations

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "LoadedImage",
    "check_output_path",
    "load_image",
    "sample_pixels",
    "save_image",
]

import contextlib
import io
import os
import stat
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import InputError, OutputError, UsageError

#: Formats that :func:`load_image` decodes. MPO (multi-picture JPEG, as written by many phone
#: cameras) comes in through the JPEG plugin. EPS, PDF and the rest are refused: EPS runs
#: Ghostscript, and none of them is a photo format worth the attack surface.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF")

#: Formats that :func:`save_image` writes.
OUTPUT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

#: Default pixel limit, Pillow's own ``MAX_IMAGE_PIXELS`` (about 89.5 megapixels).
DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS

# Formats whose alpha channel survives a save byte for byte (BMP is read back without alpha
# by Pillow, GIF keeps only one transparent palette entry).
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")

# Formats that hold 16-bit RGB. Pillow has no 16-bit RGB image mode, so PNG goes through a
# small writer of our own and TIFF falls back to 8 bits.
_SIXTEEN_BIT_FORMATS = ("PNG",)

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

# TIFF keeps its EXIF tags in the image IFD itself, next to the tags that describe the pixel
# layout; those must not travel into another file.
_STRUCTURAL_TAGS = frozenset(
    {256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338,
     339, 347, 34675}
)

_ORIENTATION = 0x0112
_HINT_CORRUPT = "the file may be truncated or corrupt; re-export it"
_HINT_FORMATS = "allowed formats: " + ", ".join(ALLOWED_FORMATS)
_HINT_LIMIT = "if you trust this file, raise the limit with --max-pixels"
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
    notes: list[str] = []

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pillow's bomb warning is replaced by our own size check below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with _pillow_pixel_limit(max_pixels):
                im = Image.open(path, formats=_OPEN_FORMATS)
        except UnidentifiedImageError as err:
            raise InputError(f"{path}: {_unidentified(path)}", _HINT_FORMATS) from err
        except Image.DecompressionBombError as err:
            raise InputError(f"{path}: image too large: {err}", _HINT_LIMIT) from err
        except PermissionError as err:
            raise InputError(f"{path}: permission denied") from err
        except _DECODE_ERRORS as err:
            message = f"{path}: cannot open image: {_describe(err)}"
            raise InputError(message, _HINT_CORRUPT) from err

        with im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise InputError(
                    f"{path}: image is {width}x{height} = {width * height:,} pixels, "
                    f"above the limit of {max_pixels:,}",
                    _HINT_LIMIT,
                )
            try:
                loaded = _decode(im, path, notes)
            except _DECODE_ERRORS as err:
                raise InputError(
                    f"{path}: cannot decode {im.format} image: {_describe(err)}", _HINT_CORRUPT
                ) from err

    for warning in caught:
        if issubclass(warning.category, UserWarning):
            notes.append(f"{path}: {warning.message}")
        else:  # deprecations and the like are for developers, not for the user's report
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    loaded.warnings = list(dict.fromkeys(notes))
    return loaded


def check_output_path(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    force: bool,
    has_alpha: bool = False,
) -> None:
    r"""Checks, before any training, that an output can be written where asked.

    Arguments:
        output: the output file; its extension picks the format.
        inputs: the input files, which the output must never replace.
        force: whether an existing output may be overwritten.
        has_alpha: whether the output will carry an alpha channel.

    Raises:
        UsageError: unsupported extension, output is an input, is a directory, or exists
            without ``force``.
        OutputError: the directory is missing or not writable, or the format cannot hold
            the alpha channel.
    """

    output = Path(output)
    fmt = _output_format(output)

    for source in map(Path, inputs):
        if _same_file(output, source):
            raise UsageError(
                f"{output}: is the input {source}; refusing to overwrite an input",
                "choose another output path",
            )

    if output.is_dir():
        raise UsageError(f"{output}: is a directory", "give a file name such as out.png")
    if output.exists() or output.is_symlink():
        if not force:
            raise UsageError(f"{output}: already exists", "use --force to overwrite")
        if output.exists() and not stat.S_ISREG(output.stat().st_mode):
            raise UsageError(f"{output}: exists and is not a regular file")

    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: directory {parent} is not writable")

    if has_alpha and fmt not in _ALPHA_FORMATS:
        raise OutputError(
            f"{output}: {fmt} cannot hold the input's alpha channel", "use .png/.webp/.tiff"
        )


def save_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    like: LoadedImage | None = None,
    quality: int = 95,
) -> list[str]:
    r"""Writes float RGB pixels atomically, restoring alpha and the metadata of ``like``.

    The file is written to a temporary ``.<name>.otcolor-tmp-XXXX`` in the same directory,
    synced, then renamed over ``path``, so ``path`` holds either its old contents or the
    complete new file. Samples are 16-bit when ``like.bit_depth == 16`` and the format holds
    16-bit RGB (PNG), 8-bit otherwise.

    Arguments:
        path: the output file; its extension picks the format.
        rgb: the pixels, with shape :math:`(H, W, 3)`, in :math:`[0, 1]` (clipped).
        alpha: the alpha channel to restore, with shape :math:`(H, W)`, uint8 or uint16.
        like: the image whose ICC profile, EXIF, DPI and bit depth are carried over.
        quality: the JPEG and WebP quality, from 1 to 100.

    Returns:
        What was lost while writing, one line each (e.g. 16-bit reduced to 8-bit).

    Raises:
        UsageError: unsupported extension.
        OutputError: the pixels are not finite, or the file cannot be written.
    """

    path = Path(path)
    fmt = _output_format(path)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected rgb with shape (H, W, 3), got {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"expected alpha with shape {rgb.shape[:2]}, got {alpha.shape}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if not np.isfinite(rgb).all():
        raise OutputError(f"{path}: refusing to write non-finite pixel values")
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        raise OutputError(f"{path}: {fmt} cannot hold an alpha channel", "use .png/.webp/.tiff")

    notes: list[str] = []
    icc = like.icc_profile if like is not None else None
    exif = like.exif if like is not None else None
    dpi = like.dpi if like is not None else None
    sixteen = (like is not None and like.bit_depth == 16) or (
        alpha is not None and alpha.dtype == np.uint16
    )
    if sixteen and fmt not in _SIXTEEN_BIT_FORMATS:
        sixteen = False
        notes.append(f"{path}: 16-bit input written as 8-bit {fmt}")

    rgb = np.clip(rgb, 0.0, 1.0)
    if sixteen:
        rgb16 = np.round(rgb * 65535).astype(np.uint16)
        alpha16 = None if alpha is None else _alpha_as(alpha, np.uint16)

        def write(fp: IO[bytes]) -> None:
            _write_png16(fp, rgb16, alpha16, icc=icc, exif=exif, dpi=dpi)

    else:
        pixels = np.round(rgb * 255).astype(np.uint8)  # (H, W, 3)
        if alpha is not None:
            pixels = np.dstack([pixels, _alpha_as(alpha, np.uint8)])  # (H, W, 4)
        im = Image.fromarray(pixels)
        params = _save_params(fmt, quality=quality, icc=icc, exif=exif, dpi=dpi)
        if fmt == "GIF":
            notes.append(f"{path}: GIF output is quantised to 256 colours")

        def write(fp: IO[bytes]) -> None:
            im.save(fp, format=fmt, **params)

    _atomic_write(path, write)
    return notes


def sample_pixels(image: LoadedImage, n: int, generator: np.random.Generator) -> np.ndarray:
    r"""Draws distinct pixels of an image, ignoring fully transparent ones.

    Arguments:
        image: the image.
        n: the number of pixels wanted.
        generator: the random generator, for reproducibility.

    Returns:
        The colours, with shape :math:`(N', 3)`, float32, where :math:`N' = \min(n, M)` and
        :math:`M` is the number of pixels with non-zero alpha.

    Raises:
        InputError: every pixel is fully transparent.
    """

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")

    colours = image.rgb.reshape(-1, 3)  # (H W, 3)
    if image.alpha is None:
        eligible = None
        count = colours.shape[0]
    else:
        eligible = np.flatnonzero(image.alpha.reshape(-1) > 0)
        count = eligible.size
    if count == 0:
        raise InputError(f"{image.path}: every pixel is fully transparent", "nothing to fit")

    picks = generator.choice(count, size=min(n, count), replace=False)
    if eligible is not None:
        picks = eligible[picks]
    return colours[picks].astype(np.float32, copy=False)


def _check_input_file(path: Path) -> None:
    r"""Turns the usual filesystem mistakes into one-line errors before Pillow sees the file."""

    try:
        info = path.stat()
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except PermissionError as err:
        raise InputError(f"{path}: permission denied") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read: {_describe(err)}") from err
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)", _HINT_FORMATS)


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    r"""Lifts Pillow's hard pixel limit for one open, when the caller asked for more.

    Pillow refuses anything above twice ``MAX_IMAGE_PIXELS`` inside ``Image.open``, before we
    can check the size ourselves. Only then, the global is lifted and restored under a lock.
    """

    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or (max_pixels is not None and max_pixels <= 2 * limit):
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
    for name, (_, accept) in Image.OPEN.items():
        # Only the plugins' magic-byte checks run here; no decoder is started.
        try:
            accepted = accept is not None and accept(prefix)
        except Exception:  # a plugin's accept() failing only means "not this format"
            continue
        # accept() returns a str to warn about a format it recognises but will not open.
        if accepted and not isinstance(accepted, str) and name not in ALLOWED_FORMATS:
            return f"format {name} is not allowed"
    return "not a recognised image"


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
        orientation = im.getexif().get(_ORIENTATION, 1)
        upright = ImageOps.exif_transpose(im)
        exif = _exif_bytes(upright)
    except Exception as err:  # bad EXIF must not cost the pixels (Pillow's own advice)
        notes.append(f"{path}: unreadable EXIF ignored ({_describe(err)})")
        orientation, upright = 1, im
    if dpi is not None and orientation in (5, 6, 7, 8):
        dpi = (dpi[1], dpi[0])

    alpha: np.ndarray | None = None
    bit_depth = 8
    if mode.startswith("I;16") or mode == "I":
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
            pixels = np.asarray(upright.convert("RGB"))  # (H, W, 3)
        rgb = pixels.astype(np.float32) / 255

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
            notes.append(f"{path}: unusable CMYK ICC profile ({_describe(err)}); naive conversion")
    else:
        notes.append(f"{path}: CMYK image without ICC profile; converted to RGB naively")
    return im.convert("RGB"), None


def _exif_bytes(im: Image.Image) -> bytes | None:
    r"""Serialises the EXIF of an upright image, without tags that describe pixel layout."""

    exif = im.getexif()
    for tag in list(exif):
        if tag in _STRUCTURAL_TAGS or tag == _ORIENTATION:
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


def _output_format(path: Path) -> str:
    r"""The Pillow format for an output path, from its extension."""

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in OUTPUT_FORMATS:
        shown = path.suffix or "(none)"
        raise UsageError(
            f"{path}: unsupported output extension {shown}",
            "use .png, .jpg, .webp, .tif, .bmp or .gif",
        )
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    r"""Whether two paths name the same file: symlinks, hard links and other spellings."""

    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    with contextlib.suppress(OSError, RuntimeError):
        return a.resolve() == b.resolve()
    return False


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
) -> dict[str, object]:
    r"""Pillow save options per format, metadata included (JPEG and WebP drop it otherwise)."""

    params: dict[str, object] = {}
    if fmt == "JPEG":
        params.update(quality=quality, subsampling=0)
    elif fmt == "WEBP":
        params.update(quality=quality)
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        if icc:
            params["icc_profile"] = icc
        if exif:
            params["exif"] = exif
    if dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        params["dpi"] = dpi
    return params


def _write_png16(
    fp: IO[bytes],
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc: bytes | None,
    exif: bytes | None,
    dpi: tuple[float, float] | None,
) -> None:
    r"""Writes a 16-bit RGB(A) PNG, which Pillow cannot encode (it has no 16-bit RGB mode)."""

    height, width = rgb.shape[:2]
    pixels = rgb if alpha is None else np.dstack([rgb, alpha])  # (H, W, C)
    channels = pixels.shape[2]
    rows = pixels.astype(">u2").reshape(height, -1).view(np.uint8)  # (H, W C 2)
    # Filter type 1 (Sub): each byte minus the same byte of the previous pixel, which
    # compresses smooth 16-bit images far better than raw samples.
    bpp = 2 * channels
    filtered = rows.copy()
    filtered[:, bpp:] -= rows[:, :-bpp]
    scanlines = np.hstack([np.ones((height, 1), np.uint8), filtered])  # (H, 1 + W C 2)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    colour_type = 2 if alpha is None else 6
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header)]
    if icc:
        out.append(chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        out.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        out.append(chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    out.append(chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)))
    out.append(chunk(b"IEND", b""))
    for part in out:
        fp.write(part)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    r"""Writes through a synced temporary file in the same directory, then renames it."""

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        # mkstemp creates 0600 files; give new outputs the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.otcolor-tmp-", dir=path.parent)
    except OSError as err:
        raise OutputError(f"{path}: cannot create a file: {_describe(err)}") from err

    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, Exception) and not isinstance(err, (OutputError, UsageError)):
            raise OutputError(f"{path}: cannot write: {_describe(err)}") from err
        raise


def _describe(err: BaseException) -> str:
    r"""A one-line description of an exception, for error messages."""

    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
