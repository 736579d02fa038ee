r"""Colour management: every image's numbers into one working space, and out to a chosen profile.

Two images' numbers are comparable only in one colour space, so decoding converts every input
from the space its file declares (an embedded ICC profile, or PNG's ``cICP``, ``sRGB``,
``gAMA``/``cHRM``; no tag means sRGB) into the **working space, sRGB** (IEC 61966-2-1, as
LittleCMS builds it), where sampling, fitting, looks, LUTs and the regrain all work. Writing
converts the result into the output profile (the source's by default) and tags the file with it.
docs/colour.md says why sRGB and what happens to colours outside it.

Matrix/TRC profiles (all the common RGB ones) are converted exactly in float at any bit depth
(:mod:`otcolor.io.icc`); profiles built on lookup tables go through LittleCMS
(``PIL.ImageCms``), which converts 8-bit images. The **gamut policy** is relative
colorimetric with clipping: a colour outside sRGB keeps its hue and loses the saturation sRGB
cannot show, and a warning gives the share of such pixels when it is not negligible.
"""

from __future__ import annotations

__all__ = [
    "NAMED_PROFILES",
    "SOURCE",
    "WORKING",
    "ColourProfile",
    "cmyk_to_working",
    "declared_profile",
    "from_chromaticities",
    "from_working",
    "into_working",
    "named_profile",
    "output_profile",
    "profile_from_icc",
    "profile_from_png",
    "to_working",
]

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from ..errors import InputError, UsageError
from .files import describe_os_error, read_regular
from .icc import MAX_PROFILE, Curve, IccError, MatrixTrc, parse_matrix_trc, write_matrix_trc

#: Pixels per conversion chunk: float64 temporaries of a chunk stay near 50 MB.
_CHUNK = 1 << 21

#: Above this share of pixels clipped into sRGB, decoding says so.
CLIP_NOTICE = 1e-3

_SRGB_CURVE = Curve("para", 3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
_BT709_CURVE = Curve("para", 3, (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081))
_D65, _D50 = (0.3127, 0.3290), (0.3457, 0.3585)
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def from_chromaticities(
    primaries: tuple[tuple[float, float], ...],
    white: tuple[float, float],
    curve: Curve,
    description: str = "",
) -> MatrixTrc:
    r"""A matrix/TRC colorimetry from the CIE xy chromaticities of the primaries and the white
    (as PNG's ``cHRM`` and ``cICP`` give them), adapted to D50 by Bradford as ICC profiles are."""

    columns = np.stack([_xyz(p) for p in primaries], 1)
    scale = np.linalg.solve(columns, _xyz(white))
    to_xyz = columns * scale  # linear RGB -> XYZ under the native white
    source, target = _BRADFORD @ _xyz(white), _BRADFORD @ _xyz(_D50)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(target / source) @ _BRADFORD
    return MatrixTrc(adapt @ to_xyz, (curve, curve, curve), description)


@dataclass(frozen=True)
class ColourProfile:
    r"""The colour space an image's numbers are in.

    Arguments:
        name: what to call it in messages (``"Display P3"``, ``"embedded ICC 'Adobe RGB (1998)'"``).
        icc: the ICC profile to embed in a file whose numbers are in this space.
        colorimetry: its matrix and curves, for the exact float conversion; ``None`` for a
            profile on lookup tables, converted by LittleCMS.
    """

    name: str
    icc: bytes | None
    colorimetry: MatrixTrc | None = None

    @cached_property
    def is_working(self) -> bool:
        r"""Whether its numbers are the working space's already (an sRGB profile): then no
        conversion runs, so an sRGB-tagged file gives the same numbers as an untagged one."""

        return self.colorimetry is not None and self.colorimetry.same_as(_WORKING_MATRIX)


def _builtin_srgb() -> tuple[bytes, MatrixTrc]:
    data = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return data, parse_matrix_trc(data)


_SRGB_ICC, _WORKING_MATRIX = _builtin_srgb()

#: The working space: sRGB as LittleCMS builds it (the ICC bytes an sRGB output is tagged with).
WORKING = ColourProfile("sRGB", _SRGB_ICC, _WORKING_MATRIX)


def _named(name: str, primaries: tuple, white: tuple, curve: Curve) -> ColourProfile:
    colorimetry = from_chromaticities(primaries, white, curve, name)
    return ColourProfile(name, write_matrix_trc(colorimetry), colorimetry)


_REC709 = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
_P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
_REC2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))

#: Output profiles by name (``--output-profile``), built from their published primaries, white
#: and tone curve; ``srgb`` is the working space itself.
NAMED_PROFILES: dict[str, Callable[[], ColourProfile]] = {
    "srgb": lambda: WORKING,
    "display-p3": lambda: _named("Display P3", _P3, _D65, _SRGB_CURVE),
    "adobe-rgb": lambda: _named(
        "Adobe RGB (1998) compatible",
        ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)),
        _D65,
        Curve("para", 0, (563 / 256,)),
    ),
    "prophoto": lambda: _named(
        "ProPhoto RGB compatible",
        ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)),
        _D50,
        Curve("para", 0, (1.8,)),
    ),
    "rec2020": lambda: _named("Rec. 2020", _REC2020, _D65, _BT709_CURVE),
}


def named_profile(name: str) -> ColourProfile:
    r"""One of :data:`NAMED_PROFILES` (``KeyError`` for another name)."""

    return NAMED_PROFILES[name]()


#: The output profile that follows the source image (the default).
SOURCE = "source"


def output_profile(spec: str) -> ColourProfile | None:
    r"""The output profile a user asked for: ``"source"`` (``None``: the source's own), a name
    of :data:`NAMED_PROFILES`, or the path of an RGB ICC profile file.

    Raises:
        UsageError: an unknown name, or a file that is not a readable RGB ICC profile.
    """

    if spec == SOURCE:
        return None
    if spec in NAMED_PROFILES:
        return named_profile(spec)
    hint = f"give source, {', '.join(NAMED_PROFILES)}, or an RGB .icc file"
    path = Path(spec)
    try:
        if not path.is_file():
            raise UsageError(f"output profile {spec!r}: no such profile or file", hint)
        # A regular file of at most MAX_PROFILE bytes, checked on the open file itself.
        data = read_regular(path, MAX_PROFILE, what="ICC profile")
    except InputError as err:  # the profile is an option: a bad one is a usage error
        raise UsageError(f"cannot read the profile: {err.message}", hint) from err
    profile = profile_from_icc(data, label="ICC")
    if profile is None:
        raise UsageError(f"{path}: not an RGB ICC profile", hint)
    return profile


def profile_from_icc(data: bytes, label: str = "embedded ICC") -> ColourProfile | None:
    r"""The colour space an embedded ICC profile declares, or ``None`` when it is not an RGB
    profile LittleCMS can read (the caller warns and reads the numbers as sRGB)."""

    try:
        colorimetry = parse_matrix_trc(data)
    except IccError:
        colorimetry = None
    try:
        parsed = ImageCms.ImageCmsProfile(io.BytesIO(data))
        description = ImageCms.getProfileDescription(parsed).strip()
        if parsed.profile.xcolor_space.strip() != "RGB":
            return None
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        if colorimetry is None:
            return None
        description = colorimetry.description
    return ColourProfile(f"{label} '{description or 'unnamed'}'", data, colorimetry)


#: PNG ``cICP`` colour primaries and transfer functions (ITU-T H.273) that are read.
_CICP_PRIMARIES = {1: ("BT.709", _REC709), 9: ("BT.2020", _REC2020), 12: ("Display P3", _P3)}
_CICP_TRANSFER = {
    13: _SRGB_CURVE,
    8: Curve("para", 0, (1.0,)),
    1: _BT709_CURVE,
    6: _BT709_CURVE,
    14: _BT709_CURVE,
    15: _BT709_CURVE,
    4: Curve("para", 0, (2.2,)),
}


def profile_from_png(
    info: dict[str, object], cicp: bytes | None, notes: list[str], path: object
) -> ColourProfile | None:
    r"""The colour space of a PNG without an ICC profile, from its chunks, in the order the PNG
    specification (third edition) gives them precedence: ``cICP``, ``sRGB``, ``cHRM``/``gAMA``.
    ``None`` means sRGB."""

    if cicp is not None and len(cicp) == 4:
        primaries, transfer, matrix, full = cicp
        known = _CICP_PRIMARIES.get(primaries)
        curve = _CICP_TRANSFER.get(transfer)
        if known is None or curve is None or matrix != 0:
            notes.append(
                f"{path}: PNG cICP ({primaries}, {transfer}, {matrix}, {full}) is not a space "
                "otcolor reads (HDR or YCbCr); read as sRGB"
            )
            return None
        name = f"{known[0]} (PNG cICP)"
        return _from_tags(name, known[1], _D65, curve)
    if "srgb" in info:
        return None
    gamma = info.get("gamma")
    chromaticity = info.get("chromaticity")
    if not isinstance(gamma, (int, float)) or gamma <= 0:
        return None  # cHRM without gAMA has no tone curve to go with it: read as sRGB
    curve = Curve("para", 0, (1.0 / float(gamma),))
    if isinstance(chromaticity, tuple) and len(chromaticity) == 8:
        wx, wy, rx, ry, gx, gy, bx, by = (float(v) for v in chromaticity)
        if min(wy, ry, gy, by) <= 0:
            return None
        return _from_tags("PNG gAMA/cHRM", ((rx, ry), (gx, gy), (bx, by)), (wx, wy), curve)
    if abs(gamma - 1 / 2.2) < 1e-3:
        return None  # gAMA 1/2.2 alone is how many tools say "sRGB"; browsers read it so
    return _from_tags("PNG gAMA", _REC709, _D65, curve)


def _from_tags(name: str, primaries: tuple, white: tuple, curve: Curve) -> ColourProfile:
    colorimetry = from_chromaticities(primaries, white, curve, name)
    return ColourProfile(name, write_matrix_trc(colorimetry), colorimetry)


def _chunks(rgb: np.ndarray) -> list[slice]:
    flat = rgb.shape[0] * rgb.shape[1]
    return [slice(i, i + _CHUNK) for i in range(0, flat, _CHUNK)]


def _convert(
    rgb: np.ndarray, into: MatrixTrc, out_of: MatrixTrc, eight: bool
) -> tuple[np.ndarray, float]:
    r"""Encoded RGB in ``out_of`` to encoded RGB in ``into``, clipped; and the clipped share."""

    matrix = np.linalg.solve(into.matrix, out_of.matrix)  # linear RGB -> linear RGB
    flat = rgb.reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    if eight:  # 8-bit input: the forward curves exactly, as 256-entry tables
        levels = np.arange(256) / 255.0
        tables = [curve.forward(levels) for curve in out_of.curves]
    clipped = 0
    for part in _chunks(rgb):
        values = flat[part]
        if eight:
            index = np.rint(values * 255).astype(np.intp)
            linear = np.stack([t[index[:, i]] for i, t in enumerate(tables)], 1)
        else:
            linear = np.stack([c.forward(values[:, i]) for i, c in enumerate(out_of.curves)], 1)
        mapped = linear @ matrix.T
        # Half an 8-bit level outside the cube counts as out of gamut; less is round-off.
        clipped += int(((mapped < -2e-3) | (mapped > 1 + 2e-3)).any(1).sum())
        encoded = np.stack([c.inverse(mapped[:, i]) for i, c in enumerate(into.curves)], 1)
        out[part] = encoded
    if eight:
        np.multiply(out, 255, out=out)
        np.rint(out, out=out)
        np.divide(out, 255, out=out)
    return out.reshape(rgb.shape), clipped / max(flat.shape[0], 1)


def _littlecms(rgb: np.ndarray, source: bytes, target: bytes) -> np.ndarray:
    r"""Converts by LittleCMS, in 8 bits (relative colorimetric, black point compensation)."""

    eight = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(source)),
        ImageCms.ImageCmsProfile(io.BytesIO(target)),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
    out = ImageCms.applyTransform(Image.fromarray(eight), transform)
    return np.asarray(out, dtype=np.float32) / 255


def to_working(
    rgb: np.ndarray, profile: ColourProfile, eight: bool
) -> tuple[np.ndarray, float, bool]:
    r"""Converts decoded pixels from ``profile`` into the working space.

    Arguments:
        rgb: the pixels, :math:`(H, W, 3)`, float32 in :math:`[0, 1]`.
        profile: the space they are in.
        eight: they are 8-bit samples; the result is rounded to 8 bits too (what converting
            the file to sRGB first gives), so the exact 8-bit routes still apply.

    Returns:
        The converted pixels, the share of pixels clipped into sRGB, and whether the conversion
        ran in 8 bits through LittleCMS (a lookup-table profile).
    """

    if profile.is_working:
        return rgb, 0.0, False
    if profile.colorimetry is not None:
        out, share = _convert(rgb, _WORKING_MATRIX, profile.colorimetry, eight)
        return out, share, False
    assert profile.icc is not None
    return _littlecms(rgb, profile.icc, WORKING.icc or b""), 0.0, True


def from_working(rgb: np.ndarray, profile: ColourProfile) -> np.ndarray:
    r"""Converts working-space pixels :math:`(H, W, 3)` into ``profile`` (clipped to its
    gamut), float32: what an output tagged with ``profile`` holds."""

    if profile.is_working:
        return rgb
    if profile.colorimetry is not None:
        return _convert(np.asarray(rgb, np.float32), profile.colorimetry, _WORKING_MATRIX, False)[
            0
        ]
    assert profile.icc is not None
    return _littlecms(rgb, WORKING.icc or b"", profile.icc)


def cmyk_to_working(
    im: Image.Image, icc: bytes | None, path: Path, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    r"""Converts a CMYK image to the working space (sRGB), through its embedded profile when there
    is one; returns the RGB image and the ICC profile its pixels are in now."""

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


def declared_profile(
    icc: bytes | None,
    fmt: str,
    info: dict[str, object],
    chunks: dict[bytes, bytes],
    notes: list[str],
    path: Path,
) -> tuple[ColourProfile | None, bytes | None]:
    r"""The colour space a file declares (``None``: sRGB), and the ICC profile to keep."""

    if icc is not None:
        profile = profile_from_icc(icc)
        if profile is None:
            notes.append(
                f"{path}: its ICC profile is not an RGB profile otcolor reads; read as sRGB"
            )
            return None, None  # never stamp an output with a profile its numbers are not in
        return profile, icc
    if fmt == "PNG":
        return profile_from_png(info, chunks.get(b"cICP"), notes, path), None
    return None, None


def into_working(
    rgb: np.ndarray, profile: ColourProfile | None, bit_depth: int, notes: list[str], path: Path
) -> np.ndarray:
    r"""Converts decoded pixels into the working space, saying what the conversion cost."""

    if profile is None or profile.is_working:
        return rgb
    rgb, clipped, eight_bit = to_working(rgb, profile, bit_depth == 8)
    if clipped > CLIP_NOTICE:
        notes.append(
            f"{path}: {clipped:.1%} of the pixels ({profile.name}) lie outside sRGB, the "
            "working space; their saturation was clipped (relative colorimetric)"
        )
    if eight_bit and bit_depth == 16:
        notes.append(f"{path}: {profile.name} is a lookup-table profile, converted in 8 bits")
    return rgb
