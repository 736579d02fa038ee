r"""A 16-bit PNG codec: Pillow reads and writes 16-bit RGB(A) PNGs only as 8-bit, so otcolor
unfilters and filters them itself (numpy + zlib).
"""

from __future__ import annotations

__all__ = ["check_png_crcs", "read_png16", "write_png16", "xmp_itxt"]

import struct
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError
from .formats import HINT_CORRUPT, orient


def read_png16(path: Path, orientation: int) -> tuple[np.ndarray, np.ndarray | None] | None:
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
    samples = orient(samples, orientation)
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


def write_png16(
    fp: IO[bytes],
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc: bytes | None,
    exif: bytes | None,
    dpi: tuple[float, float] | None,
    xmp: bytes | None = None,
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
    if xmp:
        out.append(chunk(b"iTXt", xmp_itxt(xmp)))
    out.append(chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)))
    out.append(chunk(b"IEND", b""))
    for part in out:
        fp.write(part)


#: Chunks :func:`check_png_crcs` hands back (Pillow 13 does not parse ``cICP``).
KEPT_CHUNKS = (b"cICP",)


def xmp_itxt(xmp: bytes) -> bytes:
    r"""The body of the PNG ``iTXt`` chunk that carries an XMP packet, uncompressed, its bytes
    as they are (the XMP specification's PNG embedding)."""

    return b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp


def check_png_crcs(path: Path) -> dict[bytes, bytes]:
    r"""Checks the CRC of every chunk of a PNG file, streaming it, and returns the small
    colour chunks of :data:`KEPT_CHUNKS` by type.

    Pillow checks the CRCs of header chunks only, so a corrupt IDAT whose data still inflates
    would be decoded silently.
    """

    kept: dict[bytes, bytes] = {}
    with path.open("rb") as fp:
        fp.read(8)  # the signature, already checked by Pillow
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return kept  # a truncated end is the decoder's to report
            length, kind = struct.unpack(">I", head[:4])[0], head[4:]
            crc = zlib.crc32(kind)
            left = length
            body = b""
            while left:
                block = fp.read(min(left, 1 << 20))
                if not block:
                    return kept
                crc = zlib.crc32(block, crc)
                left -= len(block)
                if kind in KEPT_CHUNKS and len(body) < 64:
                    body += block[:64]
            stored = fp.read(4)
            if len(stored) < 4:
                return kept
            if crc & 0xFFFFFFFF != struct.unpack(">I", stored)[0]:
                name = kind.decode("latin-1")
                raise InputError(f"{path}: bad CRC in PNG chunk {name!r}", HINT_CORRUPT)
            if kind in KEPT_CHUNKS:
                kept[kind] = body
            if kind == b"IEND":
                return kept
