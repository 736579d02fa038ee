r"""Image formats otcolor reads and writes, the EXIF tags it handles, and the hints its errors give."""

from __future__ import annotations

__all__ = [
    "ALLOWED_FORMATS",
    "ALPHA_FORMATS",
    "HEIF_EXTRA",
    "OUTPUT_FORMATS",
    "SIXTEEN_BIT_FORMATS",
    "XMP_FORMATS",
    "heif_available",
    "hint_unidentified",
    "isobmff_brand",
    "orient",
    "output_format",
    "unidentified",
    "upright_xmp",
    "dpi_of",
    "exif_bytes",
    "xmp_of",
]

import functools
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError

#: Formats that :func:`load_image` decodes. MPO (multi-picture JPEG, as written by many phone
#: cameras) comes in through the JPEG plugin; AVIF through Pillow's own plugin; HEIF (iPhone
#: HEIC) through the optional ``pillow-heif`` (:data:`HEIF_EXTRA`). EPS, PDF and the rest are
#: refused: EPS runs Ghostscript, and none of them is a photo format worth the attack surface.
#: Each entry is tested (tests/test_colour_management.py, tests/test_image.py).
ALLOWED_FORMATS: tuple[str, ...] = (
    "JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF", "HEIF",
)  # fmt: skip

#: How to get HEIC/HEIF support, for the error that meets a HEIC file without it.
HEIF_EXTRA = "pip install 'otcolor[heif]' (the pillow-heif package)"

#: ISO base media file brands of HEIF still images (HEIC, HEIF) and AVIF.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def isobmff_brand(prefix: bytes) -> str | None:
    r"""``"HEIF"`` or ``"AVIF"`` for a file starting with an ISO-BMFF ``ftyp`` box of one of
    their brands, else ``None``."""

    if len(prefix) < 12 or prefix[4:8] != b"ftyp":
        return None
    brand = prefix[8:12]
    if brand in _AVIF_BRANDS:
        return "AVIF"
    return "HEIF" if brand in _HEIF_BRANDS else None


@functools.cache
def heif_available() -> bool:
    r"""Whether ``pillow-heif`` is installed; registers its Pillow plugin the first time (never
    at import: it costs start-up time that no other command should pay)."""

    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


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


def unidentified(path: Path) -> str:
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


def hint_unidentified(path: Path) -> str:
    r"""The hint for :func:`unidentified`'s message: re-export, or use an allowed format."""

    return HINT_CORRUPT if "cannot open" in unidentified(path) else HINT_FORMATS


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


#: Formats that :func:`save_image` writes (HEIF with ``pillow-heif`` installed).
OUTPUT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF", "HEIF")


# Formats whose alpha channel survives a save byte for byte (BMP is read back without alpha
# by Pillow, GIF keeps only one transparent palette entry, AVIF and HEIF are lossy).
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


# Formats that hold 16-bit RGB. Pillow has no 16-bit RGB image mode, so PNG goes through a
# small writer of our own and TIFF through tifffile.
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")

#: Formats whose files carry an XMP packet through :func:`otcolor.io.save_image`.
XMP_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "AVIF", "HEIF")

_HEIF_SUFFIXES = (".heic", ".heif", ".hif")


def output_format(path: Path) -> str:
    r"""The Pillow format for an output path, from its extension."""

    suffix = path.suffix.lower()
    if suffix in _HEIF_SUFFIXES and not heif_available():
        raise UsageError(f"{path}: writing HEIC/HEIF needs pillow-heif", HEIF_EXTRA)
    fmt = Image.registered_extensions().get(suffix)
    if fmt not in OUTPUT_FORMATS:
        shown = path.suffix or "(none)"
        raise UsageError(
            f"{path}: unsupported output extension {shown}",
            "use .png, .jpg, .webp, .tif, .avif, .heic, .bmp or .gif",
        )
    return fmt


_XMP_ORIENTATION = re.compile(
    rb"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>\s*)([1-8])(?=\s*[\"'<])"
)


def upright_xmp(xmp: bytes | None, orientation: int) -> bytes | None:
    r"""The XMP packet of an image whose EXIF orientation was applied to its pixels.

    The packet is kept byte for byte, except a ``tiff:Orientation`` other than 1: the pixels
    are upright now, and a viewer that reads the XMP orientation would turn them twice.
    """

    if xmp is None or orientation in (0, 1):
        return xmp
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + b"1", xmp)


HINT_WRITABLE = "check the folder's permissions or choose another one"


def xmp_of(im: Image.Image) -> bytes | None:
    r"""The XMP packet of an opened image, as the file holds it (JPEG APP1, PNG iTXt, TIFF tag
    700, WebP/AVIF/HEIF metadata), or ``None``."""

    value = im.info.get("xmp")
    if value is None and im.format == "TIFF":
        value = getattr(im, "tag_v2", {}).get(700)
    if isinstance(value, str):
        value = value.encode("utf-8")
    return bytes(value) if isinstance(value, (bytes, bytearray)) and value else None


def exif_bytes(im: Image.Image) -> bytes | None:
    r"""Serialises the EXIF of an upright image, without tags that describe pixel layout."""

    exif = im.getexif()
    for tag in list(exif):
        if tag in STRUCTURAL_TAGS or tag == ORIENTATION:
            del exif[tag]
    if not len(exif):
        return None
    return exif.tobytes()


def dpi_of(value: object) -> tuple[float, float] | None:
    r"""Validates Pillow's ``info["dpi"]``, which some files fill with zeros or junk."""

    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (np.isfinite(x) and np.isfinite(y) and x > 0 and y > 0):
        return None
    return x, y
