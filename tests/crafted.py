r"""Crafted image files for the reliability tests: broken PNG chunks, TIFFs with odd samples,
and every bad input case by name (:func:`make_bad`)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from harness import pixels
from PIL import Image

ORIENTATION, MAKE = 0x0112, 0x010F


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    r"""A PNG whose header promises ``width x height`` pixels, with a 1-byte IDAT."""

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"\x00")
        + png_chunk(b"IEND", b"")
    )


def rgb_tiff(samples: np.ndarray) -> bytes:
    r"""A little-endian, uncompressed RGB TIFF of ``samples`` (H, W, 3): ``<u2`` for 16-bit,
    ``<f4`` for 32-bit float (which Pillow cannot write, nor open)."""

    height, width = samples.shape[:2]
    size = samples.dtype.itemsize * 8
    kind = 3 if samples.dtype.kind == "f" else 1
    data = samples.tobytes()
    count = 10
    extra = 8 + 2 + count * 12 + 4
    bits, formats, strip = extra, extra + 6, extra + 12

    def entry(tag: int, kind: int, n: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, n, value)

    def short(tag: int, value: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    entries = [
        short(256, width),
        short(257, height),
        entry(258, 3, 3, bits),
        short(259, 1),
        short(262, 2),
        entry(273, 4, 1, strip),
        short(277, 3),
        short(278, height),
        entry(279, 4, 1, len(data)),
        entry(339, 3, 3, formats),
    ]
    return (
        b"II*\x00"
        + struct.pack("<IH", 8, count)
        + b"".join(entries)
        + b"\x00" * 4
        + struct.pack("<6H", size, size, size, kind, kind, kind)
        + data
    )


def save_frames(path: Path, fmt: str) -> None:
    frames = [Image.fromarray(np.roll(pixels(8, 8), i, 0)) for i in range(3)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])


def make_bad(tmp_path: Path, case: str) -> Path:
    r"""Writes the bad input of one matrix row and returns its path."""

    valid = Image.fromarray(pixels(32, 32))
    path = tmp_path / f"bad-{case}.png"
    if case == "missing":
        return tmp_path / "missing.png"
    if case == "directory":
        path.mkdir()
    elif case == "zero-byte":
        path.touch()
    elif case == "text-named-jpg":
        path = tmp_path / "notes.jpg"
        path.write_text("hello, this is not an image\n")
    elif case == "html-named-png":
        path.write_text("<!doctype html><html><body>404</body></html>")
    elif case in ("truncated-png", "truncated-jpeg"):
        fmt = "PNG" if case == "truncated-png" else "JPEG"
        valid.save(path, format=fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "corrupt-idat":
        valid.save(path)
        data = bytearray(path.read_bytes())
        at = data.index(b"IDAT")
        start = at + 6
        data[start : start + 40] = bytes(range(40))
        # A valid CRC over the garbage, so that the decoder (not the CRC check) meets it.
        (length,) = struct.unpack(">I", data[at - 4 : at])
        crc = zlib.crc32(bytes(data[at : at + 4 + length])) & 0xFFFFFFFF
        data[at + 4 + length : at + 8 + length] = struct.pack(">I", crc)
        path.write_bytes(bytes(data))
    elif case == "bad-idat-crc":
        # Pillow checks header CRCs only; intact pixel data under a stale CRC is still corrupt.
        valid.save(path)
        data = bytearray(path.read_bytes())
        at = data.index(b"IDAT")
        (length,) = struct.unpack(">I", data[at - 4 : at])
        data[at + 4 + length] ^= 0x01
        path.write_bytes(bytes(data))
    elif case == "bad-crc":
        valid.save(path)
        data = bytearray(path.read_bytes())
        data[data.index(b"IHDR") + 4] ^= 0xFF  # width's high byte, CRC left stale
        path.write_bytes(bytes(data))
    elif case == "bad-bmp-header":
        path = tmp_path / "bad.bmp"
        valid.save(path)
        data = bytearray(path.read_bytes())
        data[28] = 99  # bits per pixel
        path.write_bytes(bytes(data))
    elif case == "eps":
        path = tmp_path / "figure.eps"
        path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    elif case == "fits":
        path = tmp_path / "sky.fits"
        path.write_bytes(b"SIMPLE  =                    T".ljust(2880))
    elif case == "psd":
        path = tmp_path / "layers.psd"
        path.write_bytes(b"8BPS\x00\x01" + b"\x00" * 40)
    elif case == "pdf":
        path = tmp_path / "doc.pdf"
        valid.save(path)
    elif case == "svg":
        path = tmp_path / "logo.svg"
        path.write_text("<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>")
    elif case == "float-rgb-tiff":
        path = tmp_path / "float.tif"
        path.write_bytes(rgb_tiff(np.zeros((2, 2, 3), "<f4")))
    elif case == "float-grey-tiff":
        path = tmp_path / "float1.tif"
        Image.fromarray(np.random.default_rng(0).random((4, 4)).astype(np.float32)).save(path)
    elif case == "bomb-20000x20000":
        path.write_bytes(png_header_only(20000, 20000))
    elif case == "bomb-10000x9000":
        path.write_bytes(png_header_only(10000, 9000))
    elif case.startswith("animated-"):
        fmt = case.split("-", 1)[1].upper()
        path = tmp_path / f"anim.{fmt.lower()}"
        save_frames(path, fmt)
    elif case == "unicode-corrupt":
        path = tmp_path / "día 1 ☀ (copy).png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    else:  # pragma: no cover
        raise ValueError(case)
    return path
