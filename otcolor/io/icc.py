r"""ICC profiles as bytes: reading the matrix/TRC description of an RGB profile, and writing one.

The RGB profiles photographers' files carry (sRGB, Display P3, Adobe RGB, ProPhoto, Rec. 2020)
are *matrix/TRC* profiles: one tone curve per channel (``rTRC``, ``gTRC``, ``bTRC``) to linear
light, then a 3×3 matrix to the D50 profile connection space, whose columns are the ``rXYZ``,
``gXYZ``, ``bXYZ`` tags (ICC.1:2022, section 8.3). Reading those tags gives an exact float
conversion at any bit depth, where Pillow's LittleCMS binding converts 8-bit images only.
Profiles built on lookup tables (``A2B0``) are left to LittleCMS (:mod:`otcolor.io.profiles`).

Every read is bounded: the tag table, tag sizes and curve lengths are checked against the
profile's length before anything is decoded, so a crafted profile costs at most its own size.
"""

from __future__ import annotations

__all__ = ["Curve", "IccError", "MatrixTrc", "parse_matrix_trc", "write_matrix_trc"]

import struct
from dataclasses import dataclass

import numpy as np

#: The D50 white of the profile connection space (ICC.1, s15Fixed16-rounded as profiles store it).
D50 = np.array([0.9642, 1.0, 0.8249])

#: The largest profile read (a display profile is a few kilobytes; camera ones a few hundred).
MAX_PROFILE = 16 << 20

#: Tags whose presence makes LittleCMS prefer lookup tables over the matrix and curves.
LUT_TAGS = (b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"D2B0", b"B2D0")

#: Parameter counts of the ``para`` curve types 0-4 (ICC.1, table 68).
_PARA_COUNTS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}


class IccError(ValueError):
    r"""The bytes are not a profile this module can read (the caller decides what to do)."""


@dataclass(frozen=True)
class Curve:
    r"""A tone curve :math:`[0, 1] \to [0, 1]`, encoded value to linear light.

    Arguments:
        kind: ``"para"`` (ICC parametric function ``function`` with ``params``) or ``"table"``
            (``table`` sampled uniformly on :math:`[0, 1]`, linearly interpolated).
        function: the parametric type, 0 to 4.
        params: :math:`(g, a, b, c, d, e, f)` as the type uses them.
        table: the samples, for ``"table"``.
    """

    kind: str
    function: int = 0
    params: tuple[float, ...] = (1.0,)
    table: tuple[float, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        r"""Linear light of encoded values (clipped to :math:`[0, 1]` first), float64."""

        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        if self.kind == "table":
            grid = np.linspace(0.0, 1.0, len(self.table))
            return np.interp(x, grid, np.asarray(self.table))
        g, a, b, c, d, e, f = (*self.params, *(0.0,) * (7 - len(self.params)))
        if self.function == 0:
            return x**g
        with np.errstate(invalid="ignore"):
            if self.function in (1, 2):
                base = np.maximum(a * x + b, 0.0)
                cut = -b / a if a else 0.0
                offset = c if self.function == 2 else 0.0
                return np.where(x >= cut, base**g + offset, offset)
            power = np.maximum(a * x + b, 0.0) ** g
            if self.function == 3:
                return np.where(x >= d, power, c * x)
            return np.where(x >= d, power + e, c * x + f)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        r"""Encoded values of linear light (clipped to :math:`[0, 1]` first), float64: the
        curve inverted by interpolation on a dense sampling, exact to about :math:`10^{-6}`."""

        y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
        grid, values = self._dense()
        return np.interp(y, values, grid)

    def _dense(self) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_dense_cache", None)
        if cached is None:
            # Denser near 0, where the power laws are steep: x = t^2 on a uniform t.
            grid = np.linspace(0.0, 1.0, 1 << 16) ** 2
            values = np.maximum.accumulate(self.forward(grid))  # non-decreasing for interp
            cached = (grid, values)
            object.__setattr__(self, "_dense_cache", cached)
        return cached

    def is_identity(self) -> bool:
        probe = np.linspace(0.0, 1.0, 257)
        return bool(np.abs(self.forward(probe) - probe).max() < 1e-6)


@dataclass(frozen=True)
class MatrixTrc:
    r"""The colorimetry of a matrix/TRC RGB profile.

    Arguments:
        matrix: linear RGB to D50 XYZ, :math:`(3, 3)`; its columns are the colorants.
        curves: the red, green and blue tone curves.
        description: the profile's ``desc`` text, when readable.
    """

    matrix: np.ndarray
    curves: tuple[Curve, Curve, Curve]
    description: str = ""

    def same_as(self, other: MatrixTrc, tolerance: float = 2e-3) -> bool:
        r"""Whether two profiles describe the same colours to within ``tolerance`` (a
        thousandth of full scale is below half an 8-bit level)."""

        if np.abs(self.matrix - other.matrix).max() > 1e-3:
            return False
        probe = np.linspace(0.0, 1.0, 1025)
        return all(
            np.abs(a.forward(probe) - b.forward(probe)).max() < tolerance
            for a, b in zip(self.curves, other.curves, strict=True)
        )


def _tags(data: bytes) -> dict[bytes, bytes]:
    if len(data) < 132 or len(data) > MAX_PROFILE:
        raise IccError(f"profile of {len(data):,} bytes")
    declared = struct.unpack(">I", data[:4])[0]
    if declared > len(data) or data[36:40] != b"acsp":
        raise IccError("not an ICC profile (no 'acsp' signature, or truncated)")
    (count,) = struct.unpack(">I", data[128:132])
    if count > 1024 or 132 + 12 * count > len(data):
        raise IccError(f"tag table of {count} entries does not fit the profile")
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        if offset + size > len(data) or size < 8:
            raise IccError(f"tag {sig!r} lies outside the profile")
        tags[sig] = data[offset : offset + size]
    return tags


def _s15(raw: bytes) -> float:
    return struct.unpack(">i", raw)[0] / 65536.0


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ " or len(tag) < 20:
        raise IccError("colorant tag is not of type XYZ")
    return np.array([_s15(tag[8 + 4 * i : 12 + 4 * i]) for i in range(3)])


def _curve(tag: bytes) -> Curve:
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if len(tag) < 12 + 2 * n:
            raise IccError("curve tag shorter than its entry count")
        if n == 0:
            return Curve("para", 0, (1.0,))
        if n == 1:
            return Curve("para", 0, (struct.unpack(">H", tag[12:14])[0] / 256.0,))
        table = np.frombuffer(tag, ">u2", n, 12) / 65535.0
        return Curve("table", table=tuple(float(v) for v in table))
    if kind == b"para":
        (function,) = struct.unpack(">H", tag[8:10])
        count = _PARA_COUNTS.get(function)
        if count is None or len(tag) < 12 + 4 * count:
            raise IccError(f"parametric curve of type {function}")
        params = tuple(_s15(tag[12 + 4 * i : 16 + 4 * i]) for i in range(count))
        if params[0] <= 0 or (function >= 1 and params[1] == 0):
            raise IccError(f"degenerate parametric curve {params}")
        return Curve("para", function, params)
    raise IccError(f"tone curve of type {kind!r}")


def _description(tags: dict[bytes, bytes]) -> str:
    tag = tags.get(b"desc", b"")
    try:
        if tag[:4] == b"desc":
            (n,) = struct.unpack(">I", tag[8:12])
            return tag[12 : 12 + n].split(b"\0")[0].decode("latin-1")
        if tag[:4] == b"mluc":
            (records,) = struct.unpack(">I", tag[8:12])
            if records:
                length, offset = struct.unpack(">II", tag[20:28])
                return tag[offset : offset + length].decode("utf-16-be", "replace")
    except (struct.error, UnicodeError):
        pass
    return ""


def parse_matrix_trc(data: bytes) -> MatrixTrc:
    r"""Reads the matrix and tone curves of an RGB display or input profile.

    Raises:
        IccError: not an ICC profile, not RGB with an XYZ connection space, or built on lookup
            tables (which LittleCMS would use instead of the matrix).
    """

    tags = _tags(data)
    if data[16:20] != b"RGB " or data[20:24] != b"XYZ ":
        raise IccError(f"colour space {data[16:20]!r} with PCS {data[20:24]!r}, not RGB/XYZ")
    if any(t in tags for t in LUT_TAGS):
        raise IccError("a lookup-table profile")
    try:
        columns = [_xyz(tags[t]) for t in (b"rXYZ", b"gXYZ", b"bXYZ")]
        curves = tuple(_curve(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC"))
    except KeyError as err:
        raise IccError(f"no {err.args[0]!r} tag") from err
    matrix = np.stack(columns, 1)
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-6:
        raise IccError("singular colorant matrix")
    return MatrixTrc(matrix, curves, _description(tags))  # type: ignore[arg-type]


def _tag_xyz(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in xyz)


def _tag_para(curve: Curve) -> bytes:
    if curve.kind != "para":
        values = np.round(np.asarray(curve.table) * 65535).astype(">u2").tobytes()
        return b"curv\0\0\0\0" + struct.pack(">I", len(curve.table)) + values
    head = b"para\0\0\0\0" + struct.pack(">HH", curve.function, 0)
    return head + b"".join(struct.pack(">i", round(p * 65536)) for p in curve.params)


def _tag_mluc(text: str) -> bytes:
    body = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(body), 28) + body


def write_matrix_trc(profile: MatrixTrc, description: str | None = None) -> bytes:
    r"""An ICC v4 display profile (``mntr``, RGB, XYZ PCS) holding ``profile``'s colorimetry,
    which LittleCMS and colour-managed viewers read like any other matrix/TRC profile."""

    text = description if description is not None else profile.description or "otcolor RGB"
    # A chromatic adaptation of identity: the colorants are already adapted to D50.
    chad = b"sf32\0\0\0\0" + b"".join(
        struct.pack(">i", round(v * 65536)) for v in np.eye(3).ravel()
    )
    entries = [
        (b"desc", _tag_mluc(text)),
        (b"cprt", _tag_mluc("No copyright, use freely")),
        (b"wtpt", _tag_xyz(D50)),
        (b"chad", chad),
        *[(s, _tag_xyz(profile.matrix[:, i])) for i, s in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))],
        *[
            (s, _tag_para(c))
            for s, c in zip((b"rTRC", b"gTRC", b"bTRC"), profile.curves, strict=True)
        ],
    ]
    offset = 128 + 4 + 12 * len(entries)
    table, blobs = b"", b""
    for signature, blob in entries:
        blob += b"\0" * (-len(blob) % 4)
        table += struct.pack(">4sII", signature, offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)  # date, platform..intent
    header += b"".join(struct.pack(">i", round(v * 65536)) for v in D50)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(entries)) + table + blobs
