r"""Image input and output: safe loading, metadata carry-over, atomic saving and pixel sampling."""

from __future__ import annotations

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "LoadedImage",
    "check_distinct_outputs",
    "check_output_path",
    "commit_file",
    "load_image",
    "load_mask",
    "sample_pixels",
    "save_image",
    "tmp_prefix",
    "write_atomically",
]

import contextlib
import hashlib
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
_HINT_PATH = "check the path and choose a shorter or simpler one"
_HINT_WRITABLE = "check the folder's permissions or choose another one"
_HINT_READ = "check that the file exists and is readable"
#: The temporary file's name is ``.`` + a prefix of the output's name + this + 8 random
#: characters; the prefix is shortened so that the whole name fits the file system's limit.
_TMP_MARK = ".otcolor-tmp-"
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
    before, digest = _identity_and_digest(path)
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
            raise InputError(f"{path}: image too large: {err}", _HINT_LIMIT) from err
        except PermissionError as err:
            raise InputError(f"{path}: permission denied") from err
        except _DECODE_ERRORS as err:
            message = f"{path}: cannot open image: {_describe(err)}"
            raise InputError(message, _HINT_CORRUPT) from err

        with im:
            if im.format == "PNG":
                _check_png_crcs(path)
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
    if _identity_and_digest(path, hash_it=False)[0] != before:
        # The digest would describe other bytes than the pixels: refuse rather than record it.
        raise InputError(f"{path}: the file changed while it was being read", "run again")
    loaded.warnings = list(dict.fromkeys(notes))
    loaded.sha256 = digest
    return loaded


def _identity_and_digest(path: Path, hash_it: bool = True) -> tuple[tuple[int, ...], str]:
    r"""The file's (device, inode, size, mtime) and, with ``hash_it``, its SHA-256."""

    digest = hashlib.sha256()
    try:
        info = path.stat()
        if hash_it:
            with path.open("rb") as fp:
                for block in iter(lambda: fp.read(1 << 20), b""):
                    digest.update(block)
    except OSError as err:
        raise InputError(f"{path}: cannot read: {_describe(err)}", _HINT_READ) from err
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns), digest.hexdigest()


def check_output_path(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    force: bool,
    has_alpha: bool = False,
    image: bool = True,
) -> None:
    r"""Checks, before any training, that an output can be written where asked.

    Arguments:
        output: the output file; its extension picks the format.
        inputs: the input files, which the output must never replace.
        force: whether an existing output may be overwritten.
        has_alpha: whether the output will carry an alpha channel.
        image: whether the output is an image (else its extension is not checked).

    Raises:
        UsageError: unsupported extension, output is an input, is a directory, or exists
            without ``force``.
        OutputError: the directory is missing or not writable, or the format cannot hold
            the alpha channel.
    """

    output = Path(output)
    try:
        _check_output_path(output, inputs, force=force, has_alpha=has_alpha, image=image)
    except OSError as err:
        # E.g. ENAMETOOLONG from is_dir() or EACCES on a folder above: anticipated, not a bug.
        raise UsageError(f"{output}: cannot use this path: {_describe(err)}", _HINT_PATH) from err


def check_distinct_outputs(
    outputs: Sequence[str | os.PathLike[str] | None],
    inputs: Sequence[str | os.PathLike[str] | None],
) -> None:
    r"""Checks that no output is an input and that no two outputs are the same file.

    Two outputs on one path would silently keep only the one written last; ``--force`` does
    not change that, so this is checked with or without it.

    Raises:
        UsageError: an output is an input, or two outputs name the same file.
    """

    paths = [Path(p) for p in outputs if p is not None]
    sources = [Path(p) for p in inputs if p is not None]
    for i, output in enumerate(paths):
        for source in sources:
            if _same_file(output, source):
                raise UsageError(
                    f"{output}: is the input {source}; refusing to overwrite an input",
                    "choose another output path",
                )
        for other in paths[:i]:
            if _same_file(output, other):
                raise UsageError(
                    f"{output}: is given as two outputs ({other})",
                    "give every output its own path",
                )


def _check_output_path(
    output: Path,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    force: bool,
    has_alpha: bool,
    image: bool,
) -> None:
    fmt = _output_format(output) if image else ""
    name_max = _name_max(output.parent)
    if len(os.fsencode(output.name)) > name_max:
        raise UsageError(
            f"{output}: file name is {len(os.fsencode(output.name))} bytes, "
            f"above this file system's limit of {name_max}",
            "choose a shorter name",
        )

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
            raise UsageError(f"{output}: exists and is not a regular file", "choose another path")

    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: directory {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: directory {parent} is not writable", _HINT_WRITABLE)

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
    overwrite: bool = True,
) -> list[str]:
    r"""Writes float RGB pixels atomically, restoring alpha and the metadata of ``like``.

    The file is written to a temporary ``.<name>.otcolor-tmp-XXXX`` in the same directory,
    synced, then renamed over ``path``, so ``path`` holds either its old contents or the
    complete new file. Samples are 16-bit when ``like.bit_depth == 16`` and the format holds
    16-bit RGB (PNG), 8-bit otherwise.

    Arguments:
        path: the output file; its extension picks the format.
        rgb: the pixels, with shape :math:`(H, W, 3)`, float in :math:`[0, 1]` (clipped), or
            uint8 samples, written as they are (no float copy of a large image).
        alpha: the alpha channel to restore, with shape :math:`(H, W)`, uint8 or uint16.
        like: the image whose ICC profile, EXIF, DPI and bit depth are carried over.
        quality: the JPEG and WebP quality, from 1 to 100.
        overwrite: whether an existing ``path`` may be replaced. ``False`` is what the command
            line uses without ``--force``: a file created at ``path`` since it was checked is
            kept and :class:`UsageError` raised.

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
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255 if like is not None and like.bit_depth == 16 else rgb
    if rgb.dtype != np.uint8 and not all_finite(rgb):
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
    icc, exif = _fitting_metadata(path, fmt, icc, exif, notes)

    if sixteen:
        rgb16 = _quantize(rgb, np.uint16)
        alpha16 = None if alpha is None else _alpha_as(alpha, np.uint16)

        def write(fp: IO[bytes]) -> None:
            _write_png16(fp, rgb16, alpha16, icc=icc, exif=exif, dpi=dpi)

    else:
        pixels = rgb if rgb.dtype == np.uint8 else _quantize(rgb, np.uint8)  # (H, W, 3)
        if alpha is not None:
            pixels = np.dstack([pixels, _alpha_as(alpha, np.uint8)])  # (H, W, 4)
        im = Image.fromarray(pixels)
        params = _save_params(fmt, quality=quality, icc=icc, exif=exif, dpi=dpi)
        if fmt == "GIF":
            notes.append(f"{path}: GIF output is quantised to 256 colours")

        def write(fp: IO[bytes]) -> None:
            im.save(fp, format=fmt, **params)

    _atomic_write(path, write, overwrite)
    return notes


def sample_pixels(
    image: LoadedImage,
    n: int,
    generator: np.random.Generator,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""Draws distinct pixels of an image, ignoring fully transparent ones.

    Arguments:
        image: the image.
        n: the number of pixels wanted.
        generator: the random generator, for reproducibility.
        mask: only pixels where this :math:`(H, W)` mask is at least 0.5 are drawn.

    Returns:
        The colours, with shape :math:`(N', 3)`, float32, where :math:`N' = \min(n, M)` and
        :math:`M` is the number of pixels with non-zero alpha.

    Raises:
        InputError: every pixel is fully transparent.
    """

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")

    colours = image.rgb.reshape(-1, 3)  # (H W, 3)
    if image.alpha is None and mask is None:
        eligible = None
        count = colours.shape[0]
    else:
        keep = np.ones(colours.shape[0], bool)
        if image.alpha is not None:
            keep &= image.alpha.reshape(-1) > 0
        if mask is not None:
            keep &= mask.reshape(-1) >= 0.5
        eligible = np.flatnonzero(keep)
        count = eligible.size
    if count == 0:
        if mask is not None:
            raise InputError(f"{image.path}: the mask selects no visible pixel", "nothing to fit")
        raise InputError(f"{image.path}: every pixel is fully transparent", "nothing to fit")

    picks = generator.choice(count, size=min(n, count), replace=False)
    if eligible is not None:
        picks = eligible[picks]
    return colours[picks].astype(np.float32, copy=False)


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


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], overwrite: bool = True
) -> None:
    r"""Writes any file as :func:`save_image` does: synced temporary file, then a rename.

    Raises:
        UsageError: ``overwrite`` is false and ``path`` exists when the file is committed.
        OutputError: the file cannot be written.
    """

    _atomic_write(Path(path), write, overwrite)


def all_finite(a: np.ndarray, rows: int = 1 << 20) -> bool:
    r"""``np.isfinite(a).all()`` without a full-size boolean temporary (big images)."""

    flat = a.reshape(-1, a.shape[-1])
    return all(np.isfinite(flat[i : i + rows]).all() for i in range(0, flat.shape[0], rows))


def _quantize(
    rgb: np.ndarray, dtype: type[np.unsignedinteger], rows: int = 1 << 20
) -> np.ndarray:
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


def _check_png_crcs(path: Path) -> None:
    r"""Checks the CRC of every chunk of a PNG file, streaming it.

    Pillow checks the CRCs of header chunks only, so a corrupt IDAT whose data still inflates
    would be decoded silently.
    """

    with path.open("rb") as fp:
        fp.read(8)  # the signature, already checked by Pillow
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return  # a truncated end is the decoder's to report
            length, kind = struct.unpack(">I", head[:4])[0], head[4:]
            crc = zlib.crc32(kind)
            left = length
            while left:
                block = fp.read(min(left, 1 << 20))
                if not block:
                    return
                crc = zlib.crc32(block, crc)
                left -= len(block)
            stored = fp.read(4)
            if len(stored) < 4:
                return
            if crc & 0xFFFFFFFF != struct.unpack(">I", stored)[0]:
                name = kind.decode("latin-1")
                raise InputError(f"{path}: bad CRC in PNG chunk {name!r}", _HINT_CORRUPT)
            if kind == b"IEND":
                return


def _hint_unidentified(path: Path) -> str:
    r"""The hint for :func:`_unidentified`'s message: re-export, or use an allowed format."""

    return _HINT_CORRUPT if "cannot open" in _unidentified(path) else _HINT_FORMATS


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
    # Pillow decodes 16-bit colour PNGs to 8 bits (it has no 16-bit RGB mode): read those here.
    sixteen = _read_png16(path, orientation) if fmt == "PNG" and ";16" in rawmode else None
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


def _read_png16(path: Path, orientation: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    r"""Decodes a non-interlaced 16-bit RGB, RGBA or grey+alpha PNG at full depth.

    Returns:
        The upright samples, with shape :math:`(H, W, 3)`, uint16, and the alpha channel
        (uint16) or ``None``; ``None`` instead for a layout this reader leaves to Pillow.

    Raises:
        ValueError: a bad chunk CRC, filter type or data length (a corrupt file).
    """

    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, trns, header = 8, [], None, None
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0" * 4)
        if len(body) != length or zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG chunk {kind!r}: bad length or CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        return None
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 16 or channels is None or interlace != 0:
        return None
    stride = 2 * channels * width
    raw = zlib.decompressobj().decompress(b"".join(idat), height * (stride + 1))
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG image data is truncated")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    if (rows[:, 0] > 2).any() and height + width > _MAX_DIAGONALS:
        return None
    data_bytes = _png_unfilter(rows[:, 1:], rows[:, 0], 2 * channels)
    samples = data_bytes.view(">u2").reshape(height, width, channels).astype(np.uint16)
    samples = _orient(samples, orientation)
    if colour == 4:
        rgb, alpha = np.repeat(samples[..., :1], 3, axis=2), samples[..., 1].copy()
    else:
        rgb, alpha = samples[..., :3], (samples[..., 3].copy() if channels == 4 else None)
        if trns is not None and len(trns) == 6:
            key = np.array(struct.unpack(">HHH", trns), np.uint16)
            alpha = np.where((rgb == key).all(-1), 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(rgb), alpha


def _png_unfilter(rows: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    r"""Undoes PNG's per-row filters, :math:`(H, S)` filtered bytes to :math:`(H, S)` bytes.

    Rows filtered with None, Sub or Up (what otcolor and most 16-bit writers use) are undone
    row by row; Average and Paeth depend on the left neighbour too, so those images are
    undone along anti-diagonals of pixels, which only depend on earlier ones.
    """

    height, stride = rows.shape
    if (types > 4).any():
        raise ValueError(f"bad PNG filter type {int(types.max())}")
    if (types <= 2).all():
        return _png_unfilter_simple(rows, types, bpp)
    width = stride // bpp
    f = rows.reshape(height, width, bpp).astype(np.int16)
    rec = np.zeros((height + 1, width + 1, bpp), np.int16)  # a zero row and column of padding
    kinds = types.astype(np.int16)
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(height - 1, d) + 1)
        xs = d - ys
        a, b, c = rec[ys + 1, xs], rec[ys, xs + 1], rec[ys, xs]  # left, up, up-left
        t = kinds[ys][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([t == 1, t == 2, t == 3, t == 4], [a, b, (a + b) >> 1, paeth], 0)
        rec[ys + 1, xs + 1] = (f[ys, xs] + pred) & 255
    return rec[1:, 1:].astype(np.uint8).reshape(height, stride)


def _png_unfilter_simple(rows: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    r"""Undoes None, Sub and Up filters with whole-array operations, whatever the shape.

    A row loop took minutes on a 20,000,000 x 1 image (a 116 KB hostile file); here the cost
    is a few passes over the data. Sub rows are a running sum along the row; Up rows a
    running sum down the column that restarts at each None or Sub row. All sums are modulo
    256, which uint8 arithmetic gives for free.
    """

    height, stride = rows.shape
    out = rows.copy()
    sub = types == 1
    if sub.any():
        part = out[sub].reshape(int(sub.sum()), -1, bpp)
        out[sub] = np.cumsum(part, axis=1, dtype=np.uint8).reshape(-1, stride)
    up = types == 2
    if up.any():
        total = np.cumsum(out, axis=0, dtype=np.uint8)  # (H, S), modulo 256
        padded = np.vstack([np.zeros((1, stride), np.uint8), total])  # padded[i] = sum of rows < i
        # The last None/Sub row at or above each row starts its run; rows above it drop out.
        index = np.where(up, 0, np.arange(height))
        start = np.maximum.accumulate(index)
        out = total - padded[start]
    return out


#: Average and Paeth filters are undone one anti-diagonal of pixels at a time; above this
#: many diagonals (height + width) that Python loop would take minutes, so such images go to
#: Pillow, which reads them at 8 bits, with a warning.
_MAX_DIAGONALS = 40_000


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
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


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> None:
    r"""Writes through a synced temporary file in the same directory, then commits it.

    With ``overwrite`` the commit is a rename over ``path``. Without it, the commit cannot
    replace a file: a hard link (or, where the file system has none, an exclusive create
    followed by the rename), so a file that appeared at ``path`` while we were fitting or
    writing is kept and the write fails, instead of the check at start-up being trusted.
    """

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        # mkstemp creates 0600 files; give new outputs the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    try:
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), dir=path.parent)
    except OSError as err:
        message = f"{path}: cannot create a file: {_describe(err)}"
        raise OutputError(message, _HINT_WRITABLE) from err

    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, mode)
        commit_file(tmp, path, overwrite=overwrite)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, Exception) and not isinstance(err, (OutputError, UsageError)):
            raise OutputError(f"{path}: cannot write: {_describe(err)}", _HINT_SPACE) from err
        raise


_HINT_SPACE = "check free space and permissions"


def commit_file(tmp: str | os.PathLike[str], path: Path, *, overwrite: bool) -> None:
    r"""Moves a finished temporary file onto ``path``: a rename over it with ``overwrite``,
    else only if ``path`` does not exist, atomically with respect to other programs.

    Raises:
        UsageError: ``overwrite`` is false and ``path`` exists (``tmp`` is left for the caller
            to remove).
    """

    if overwrite:
        os.replace(tmp, path)
        return

    appeared = UsageError(
        f"{path}: appeared while otcolor was running; it was kept and nothing was written",
        "use --force to overwrite",
    )
    try:
        os.link(tmp, path)
    except FileExistsError as err:
        raise appeared from err
    except OSError:
        # No hard links here (FAT, some network and FUSE file systems): reserve the name
        # exclusively, then rename over our own empty reservation.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError as err:
            raise appeared from err
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _name_max(folder: Path) -> int:
    r"""The longest file name, in bytes, that ``folder``'s file system accepts."""

    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX"))
    return 255


def tmp_prefix(path: Path) -> str:
    r"""``.<name>.otcolor-tmp-``, with ``name`` cut so that the temporary name fits.

    A legal 251-byte output name would otherwise fail after the fit, on its temporary file.
    """

    room = _name_max(path.parent) - 1 - len(_TMP_MARK) - 8  # the dot, the mark, mkstemp's 8
    name = os.fsencode(path.name)[: max(room, 0)].decode("utf-8", "ignore")
    return f".{name}{_TMP_MARK}"


def _describe(err: BaseException) -> str:
    r"""A one-line description of an exception, for error messages."""

    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
