r"""The reliability matrix (issue 6): every bad input, output-safety invariant and numerical
failure, run through the real ``otcolor`` command with fixtures generated here.

Every command run goes through :func:`run`, which also checks the invariants that hold whatever
happens: the inputs are byte-identical (and keep their mtime), no temporary file is left, and a
failure prints exactly one ``Error:`` line on stderr and nothing on stdout.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from harness import FAST, pixels, run, runner
from PIL import Image, ImageCms, TiffImagePlugin
from typer.main import get_command

import otcolor.fit
import otcolor.train
import otcolor.transfer
from otcolor.cli import app
from otcolor.color import BLOCK, Look, apply_look, keys_of
from otcolor.errors import EXIT_CODES, OutOfDeviceMemory, TrainingError
from otcolor.fit import fit_color_map
from otcolor.transfer import TransferConfig

ORIENTATION, MAKE = 0x0112, 0x010F


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    r"""Records any call to the fitting step: errors that are checkable must come before it."""

    calls: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("training started")

    monkeypatch.setattr(otcolor.transfer, "fit_color_map", record)
    return calls


def transfer_args(source: Path, target: Path, output: Path, *extra: str) -> list[str]:
    return ["transfer", str(source), str(target), "-o", str(output), *FAST, *extra]


# Crafted files


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


# Section 5.2: bad inputs. (case, exit code, phrase of the one error line)
BAD_INPUTS = [
    ("missing", 2, "does not exist"),
    ("directory", 2, "is a directory"),
    ("zero-byte", 3, "empty file (0 bytes)"),
    ("text-named-jpg", 3, "not a recognised image"),
    ("html-named-png", 3, "not a recognised image"),
    ("truncated-png", 3, "truncated"),
    ("truncated-jpeg", 3, "runcated"),
    ("corrupt-idat", 3, "cannot decode PNG image"),
    ("bad-crc", 3, "PNG file that Pillow cannot open"),
    ("bad-idat-crc", 3, "bad CRC in PNG chunk 'IDAT'"),
    ("bad-bmp-header", 3, "Unsupported BMP pixel depth"),
    ("eps", 3, "format EPS is not allowed"),
    ("fits", 3, "format FITS is not allowed"),
    ("psd", 3, "format PSD is not allowed"),
    ("pdf", 3, "not a recognised image"),
    ("svg", 3, "not a recognised image"),
    ("float-rgb-tiff", 3, "TIFF file that Pillow cannot open"),
    ("float-grey-tiff", 3, "32-bit float images are not supported"),
    ("bomb-20000x20000", 3, "--max-pixels"),
    ("bomb-10000x9000", 3, "above the limit of 89,478,485"),
    ("animated-gif", 3, "animated or multi-page image (3 frames)"),
    ("animated-png", 3, "animated or multi-page image (3 frames)"),
    ("animated-webp", 3, "animated or multi-page image (3 frames)"),
    ("animated-tiff", 3, "animated or multi-page image (3 frames)"),
    ("unicode-corrupt", 3, "día 1 ☀ (copy).png"),
]


@pytest.mark.parametrize("role", ["source", "target"])
@pytest.mark.parametrize(("case", "code", "phrase"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(
    tmp_path: Path,
    source: Path,
    target: Path,
    no_training: list[object],
    case: str,
    code: int,
    phrase: str,
    role: str,
) -> None:
    bad = make_bad(tmp_path, case)
    output = tmp_path / "out.png"
    pair = (bad, target) if role == "source" else (source, bad)
    run(transfer_args(*pair, output), [source, target, bad], code=code, phrase=phrase)
    assert not output.exists() and no_training == []


def test_unreadable_input(tmp_path: Path, source: Path, target: Path, deny) -> None:
    source.chmod(0)
    deny(source, "r")
    try:
        result = runner.invoke(app, transfer_args(source, target, tmp_path / "out.png"))
        assert result.exit_code in (2, 3) and "Error: " in result.stderr
    finally:
        source.chmod(0o644)


def test_bomb_is_refused_from_the_header(tmp_path: Path, target: Path) -> None:
    # 400 megapixels promised, 1 byte of data: a decode would fail with "truncated" instead,
    # and would need 1.6 GB first. The refusal names the size, the limit and the option.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(20000, 20000))
    result = run(
        transfer_args(bomb, target, tmp_path / "o.png", "--max-pixels", "1000000"),
        [bomb, target],
        code=3,
        phrase="20000x20000 = 400,000,000 pixels",
    )
    assert "above the limit of 1,000,000" in result.stderr


def test_max_pixels_lowers_and_raises_the_limit(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The source has 160 pixels: refused under a lower limit...
    output = tmp_path / "out.png"
    run(
        transfer_args(source, target, output, "--max-pixels", "100"),
        [source, target],
        code=3,
        phrase="above the limit of 100 (if you trust this file, raise the limit with --max-pixels)",
    )
    # ...and accepted above Pillow's own hard limit (2x MAX_IMAGE_PIXELS) when asked.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    run(transfer_args(source, target, output, "--max-pixels", "1000"), [source, target], code=0)
    assert Image.MAX_IMAGE_PIXELS == 40
    monkeypatch.undo()
    assert Image.open(output).size == (16, 10)


# Section 5.2: unusual but valid inputs, which must work


def make_valid(tmp_path: Path, case: str) -> tuple[Path, str | None]:
    r"""Writes an unusual valid source; returns it and a phrase a warning must contain."""

    rgb = pixels(10, 16)
    path = tmp_path / f"in-{case}.png"
    warning = None
    if case == "png-named-jpg":
        path = tmp_path / "really-a-png.jpg"
        Image.fromarray(rgb).save(path, format="PNG")
    elif case == "jpeg-named-png":
        Image.fromarray(rgb).save(path, format="JPEG")
    elif case == "grey":
        Image.fromarray(rgb[..., 0]).save(path)
    elif case == "grey-alpha":
        Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(path)
    elif case == "bilevel":
        Image.fromarray(rgb[..., 0] > 128).save(path)
    elif case == "palette":
        Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    elif case in ("palette-transparency-png", "palette-transparency-gif"):
        path = path.with_suffix(".gif" if case.endswith("gif") else ".png")
        im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        im.save(path, transparency=0)
    elif case == "cmyk":
        path = tmp_path / "print.jpg"
        Image.fromarray(rgb).convert("CMYK").save(path)
        warning = "CMYK image without ICC profile"
    elif case == "cmyk-bad-icc":
        path = tmp_path / "print.jpg"
        Image.fromarray(rgb).convert("CMYK").save(path, icc_profile=b"not a profile" * 20)
        warning = "unusable CMYK ICC profile"
    elif case == "grey16":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(path)
    elif case == "rgb16":
        samples = rgb.astype(">u2") * 257
        raw = b"".join(b"\x00" + row.tobytes() for row in samples)
        header = struct.pack(">IIBBBBB", 16, 10, 16, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b"")
        )
    elif case == "rgb16-tiff":
        path = tmp_path / "in16.tif"
        path.write_bytes(rgb_tiff(rgb.astype("<u2") * 257))
        warning = "16-bit input reduced to 8-bit"
    elif case == "rgba":
        alpha = np.where(np.arange(16) < 4, 0, 255).astype(np.uint8)[None].repeat(10, 0)
        Image.fromarray(np.dstack([rgb, alpha])).save(path)
    elif case == "exif-zero-dpi":
        path = tmp_path / "zero.jpg"
        exif = Image.Exif()
        exif[0x011A] = TiffImagePlugin.IFDRational(0, 0)  # XResolution 0/0
        exif[0x0128] = 2
        exif[MAKE] = "Cam"
        Image.fromarray(rgb).save(path, exif=exif.tobytes(), dpi=(0, 0))
    elif case == "exif-bad-offset":
        path = tmp_path / "offset.jpg"
        exif = Image.Exif()
        exif[MAKE] = "Cam"
        data = exif.tobytes()
        # The first IFD entry's value offset points far past the end of the block.
        data = data[:18] + b"\xff\xff\xff\x7f" + data[22:]
        Image.fromarray(rgb).save(path, exif=data)
    elif case == "exif-garbage":
        path = tmp_path / "garbage.jpg"
        Image.fromarray(rgb).save(path, exif=b"Exif\x00\x00" + b"garbage" * 8)
        warning = "unreadable EXIF ignored"
    elif case == "icc-non-srgb":
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
        Image.fromarray(rgb).save(path, icc_profile=profile)
    elif case == "unicode-name":
        path = tmp_path / "día 1 ☀.png"
        Image.fromarray(rgb).save(path)
    elif case == "spaces-name":
        path = tmp_path / "my photo (final) v2.jpeg"
        Image.fromarray(rgb).save(path, quality=95)
    elif case == "mpo":
        path = tmp_path / "camera.mpo.jpg"
        frames = [Image.fromarray(rgb), Image.fromarray(rgb[::-1].copy())]
        frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:])
        warning = "MPO file with 2 images; using the first"
    else:  # pragma: no cover
        raise ValueError(case)
    return path, warning


VALID_INPUTS = [
    "png-named-jpg",
    "jpeg-named-png",
    "grey",
    "grey-alpha",
    "bilevel",
    "palette",
    "palette-transparency-png",
    "palette-transparency-gif",
    "cmyk",
    "cmyk-bad-icc",
    "grey16",
    "rgb16",
    "rgb16-tiff",
    "rgba",
    "exif-zero-dpi",
    "exif-bad-offset",
    "exif-garbage",
    "icc-non-srgb",
    "unicode-name",
    "spaces-name",
    "mpo",
]


@pytest.mark.parametrize("case", VALID_INPUTS)
def test_unusual_input_works(tmp_path: Path, target: Path, case: str) -> None:
    path, warning = make_valid(tmp_path, case)
    output = tmp_path / "out ☀.png"
    result = run(transfer_args(path, target, output, "--json"), [path, target], code=0)
    payload = json.loads(result.stdout)
    if warning is not None:
        assert any(warning in w for w in payload["warnings"]), payload["warnings"]

    original = Image.open(path)
    out = Image.open(output)
    assert out.size == original.size
    has_alpha = case in ("grey-alpha", "rgba") or case.startswith("palette-transparency")
    assert out.mode == ("RGBA" if has_alpha else "RGB")
    if has_alpha:
        expected = np.asarray(original.convert("RGBA"))[..., 3]
        assert np.array_equal(np.asarray(out)[..., 3], expected)
    if case == "icc-non-srgb":
        assert out.info.get("icc_profile") == original.info["icc_profile"]
    if case in ("grey16", "rgb16"):  # 16 bits in, 16 bits out (IHDR bit depth)
        assert output.read_bytes()[24] == 16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_output_is_upright(
    tmp_path: Path, target: Path, orientation: int
) -> None:
    # Stored pixels such that, displayed with the tag, the image is `upright`; the output
    # must be the same file as the transfer of the upright image, with no Orientation tag.
    upright = pixels(10, 16)
    stored = {
        1: upright,
        2: upright[:, ::-1],
        3: upright[::-1, ::-1],
        4: upright[::-1],
        5: upright.swapaxes(0, 1),
        6: np.rot90(upright, 1),
        7: upright.swapaxes(0, 1)[::-1, ::-1],
        8: np.rot90(upright, -1),
    }[orientation]
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Cam"
    tagged, plain = tmp_path / "tagged.png", tmp_path / "plain.png"
    Image.fromarray(np.ascontiguousarray(stored)).save(tagged, exif=exif.tobytes())
    exif[ORIENTATION] = 1
    Image.fromarray(upright).save(plain, exif=exif.tobytes())

    out_tagged, out_plain = tmp_path / "a.png", tmp_path / "b.png"
    run(transfer_args(tagged, target, out_tagged), [tagged, target], code=0)
    run(transfer_args(plain, target, out_plain), [plain, target], code=0)
    assert np.array_equal(np.asarray(Image.open(out_tagged)), np.asarray(Image.open(out_plain)))
    saved = Image.open(out_tagged).getexif()
    assert saved.get(ORIENTATION, 1) == 1 and saved[MAKE] == "Cam"


# Degenerate images: exact closed forms, a warning, never NaN

TINY = {
    "1x1": np.array([[[200, 10, 30]]], np.uint8),
    "1x2": np.array([[[200, 10, 30], [10, 200, 30]]], np.uint8),
    "2x1": np.array([[[200, 10, 30]], [[10, 200, 30]]], np.uint8),
    "1x5": pixels(1, 5),
    "single-colour": np.full((12, 20, 3), (40, 90, 160), np.uint8),
}


@pytest.mark.parametrize("role", ["source", "target"])
@pytest.mark.parametrize("case", list(TINY))
def test_tiny_and_single_colour_images(
    tmp_path: Path, source: Path, target: Path, case: str, role: str
) -> None:
    tiny = tmp_path / f"{case}.png"
    Image.fromarray(TINY[case]).save(tiny)
    output = tmp_path / "out.png"
    pair = (tiny, target) if role == "source" else (source, tiny)
    # Colour-count properties belong to the pure map; the regrain is spatial.
    result = run(
        transfer_args(*pair, output, "--json", "--no-regrain"), [tiny, source, target], code=0
    )
    payload = json.loads(result.stdout)
    assert all(v is not None and np.isfinite(v) for v in payload["metrics"].values())

    out = np.asarray(Image.open(output)).astype(int)
    colours = len(np.unique(TINY[case].reshape(-1, 3), axis=0))
    if colours == 1 and role == "target":
        # Onto one colour the exact OT map sends everything there.
        assert any("target has a single colour" in w for w in payload["warnings"])
        assert (out == TINY[case][0, 0]).all()
    elif colours == 1:
        # Out of one colour no map can split it: the barycentric projection, the target mean.
        assert any("source has a single colour" in w for w in payload["warnings"])
        mean = np.asarray(Image.open(target)).reshape(-1, 3).mean(0)
        assert np.abs(out - mean).max() <= 1
    if role == "source":  # a deterministic map: never more colours out than in
        assert len(np.unique(out.reshape(-1, 3), axis=0)) <= colours


@pytest.mark.parametrize("role", ["source", "target"])
def test_posterised_images(tmp_path: Path, source: Path, target: Path, role: str) -> None:
    rng = np.random.default_rng(0)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [250, 250, 250]], np.uint8)
    poster = tmp_path / "poster.png"
    Image.fromarray(palette[rng.integers(0, 4, (20, 30))]).save(poster)
    output = tmp_path / "out.png"
    pair = (poster, target) if role == "source" else (source, poster)
    result = run(
        transfer_args(*pair, output, "--json", "--no-regrain"), [poster, source, target], code=0
    )
    assert np.isfinite(list(json.loads(result.stdout)["metrics"].values())).all()
    out = np.asarray(Image.open(output)).reshape(-1, 3)
    if role == "source":
        assert len(np.unique(out, axis=0)) <= 4
    else:  # pulled towards the four poster colours
        before = np.asarray(Image.open(source)).reshape(-1, 3).astype(float)

        def distance(a: np.ndarray) -> float:  # mean squared distance to the nearest poster colour
            return float(np.min(((a[:, None] - palette[None]) ** 2).sum(-1), 1).mean())

        assert distance(out.astype(float)) < distance(before)


@pytest.mark.parametrize("route", ["--regrain", "--no-regrain"])
def test_source_equal_to_target_is_the_identity(tmp_path: Path, source: Path, route: str) -> None:
    output = tmp_path / "out.png"
    run(transfer_args(source, source, output, route), [source], code=0)
    diff = np.abs(np.asarray(Image.open(output)).astype(int) - np.asarray(Image.open(source)))
    assert diff.max() <= 1


# Section 5.3: output safety


def test_output_never_overwrites_an_input(
    tmp_path: Path,
    source: Path,
    target: Path,
    no_training: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "link.png").symlink_to(source)
    os.link(target, tmp_path / "hard.png")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    spellings = [
        source,
        target,
        Path("source.png"),
        Path("./sub/../target.png"),
        tmp_path / "link.png",
        tmp_path / "hard.png",
        tmp_path / "sub" / ".." / "source.png",
    ]
    for output in spellings:
        for force in ([], ["--force"]):
            run(
                transfer_args(source, target, output, *force),
                [source, target],
                code=2,
                phrase="refusing to overwrite an input",
            )
    assert no_training == []


def test_no_overwrite_without_force(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous")
    loads: list[object] = []
    real_load = otcolor.transfer.load_image
    monkeypatch.setattr(
        otcolor.transfer, "load_image", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    run(
        transfer_args(source, target, output),
        [source, target, output],
        code=2,
        phrase="already exists (use --force to overwrite)",
    )
    assert loads == []  # refused before decoding anything
    run(transfer_args(source, target, output, "--force"), [source, target], code=0)
    assert Image.open(output).size == (16, 10)


OUTPUT_CASES = [
    ("missing-directory", "nowhere/out.png", 4, "does not exist"),
    ("unknown-extension", "out.xyz", 2, "unsupported output extension .xyz"),
    ("no-extension", "out", 2, "unsupported output extension (none)"),
    ("blocked-extension", "out.eps", 2, "unsupported output extension .eps"),
    ("is-a-directory", "folder.png", 2, "is a directory"),
]


@pytest.mark.parametrize(
    ("case", "name", "code", "phrase"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES]
)
def test_unwritable_output_is_refused_before_training(
    tmp_path: Path,
    source: Path,
    target: Path,
    no_training: list[object],
    case: str,
    name: str,
    code: int,
    phrase: str,
) -> None:
    (tmp_path / "folder.png").mkdir()
    run(
        transfer_args(source, target, tmp_path / name, "--force"),
        [source, target],
        code=code,
        phrase=phrase,
    )
    assert no_training == []


def test_read_only_output_directory(
    tmp_path: Path, source: Path, target: Path, no_training: list[object], deny
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    deny(locked, "w")
    try:
        run(
            transfer_args(source, target, locked / "out.png"),
            [source, target],
            code=4,
            phrase="not writable",
        )
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".gif"])
def test_rgba_to_a_format_without_alpha_is_refused_before_training(
    tmp_path: Path, target: Path, no_training: list[object], suffix: str
) -> None:
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([pixels(10, 16), np.full((10, 16), 128, np.uint8)])).save(rgba)
    output = tmp_path / f"out{suffix}"
    run(
        transfer_args(rgba, target, output),
        [rgba, target],
        code=4,
        phrase="cannot hold the input's alpha channel (use .png/.webp/.tiff)",
    )
    assert not output.exists() and no_training == []


def failing_save(exception: BaseException) -> Callable[..., None]:
    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise exception

    return save


@pytest.mark.parametrize(
    ("exception", "code", "phrase"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 4, "No space left on device"),
        (ValueError("encoder error -2"), 4, "cannot write"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["disk-full", "encoder-error", "ctrl-c"],
)
def test_failed_save_keeps_the_previous_output(
    tmp_path: Path,
    source: Path,
    target: Path,
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    code: int,
    phrase: str,
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous contents")
    monkeypatch.setattr(Image.Image, "save", failing_save(exception))
    run(
        transfer_args(source, target, output, "--force"),
        [source, target],
        code=code,
        phrase=phrase,
    )
    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "source.png", "target.png"]


@pytest.mark.parametrize("when", ["decoding", "training", "applying"])
def test_ctrl_c_anywhere_loses_nothing(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous contents")
    real_load, real_fit = otcolor.transfer.load_image, otcolor.transfer.fit_color_map

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def load_then_interrupt(path: object, **kwargs: object) -> object:
        if Path(str(path)) == target:
            raise KeyboardInterrupt
        return real_load(path, **kwargs)

    def fit_interrupted_at_step_2(
        x: np.ndarray, y: np.ndarray, config: TransferConfig, callback: Callable[..., None]
    ) -> object:
        def stop(step: int, logs: dict[str, float]) -> None:
            callback(step, logs)
            if step == 2:
                raise KeyboardInterrupt

        return real_fit(x, y, config, stop)

    patches = {
        "decoding": ("load_image", load_then_interrupt),
        "training": ("fit_color_map", fit_interrupted_at_step_2),
        "applying": ("apply_look", interrupt),
    }
    monkeypatch.setattr(otcolor.transfer, *patches[when])
    if when == "applying":  # the regrain route as well as the pure one
        monkeypatch.setattr(otcolor.transfer, "regrain", interrupt)
    run(
        transfer_args(source, target, output, "--force"),
        [source, target],
        code=130,
        phrase="interrupted",
    )
    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "source.png", "target.png"]


def test_json_parses_with_warnings_and_output_round_trips(tmp_path: Path, target: Path) -> None:
    # A rotated, profiled JPEG source onto a single-colour-free target, JPEG out: stdout is one
    # JSON object, the saved file reopens upright with the profile and no Orientation tag.
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    src = tmp_path / "rotated.jpg"
    Image.fromarray(pixels(10, 16)).save(src, exif=exif.tobytes(), icc_profile=icc, quality=95)
    flat = tmp_path / "flat.png"
    Image.new("RGB", (5, 5), (10, 20, 30)).save(flat)
    output = tmp_path / "out.jpg"
    result = run(transfer_args(src, flat, output, "--json"), [src, flat], code=0)
    (line,) = result.stdout.splitlines()
    payload = json.loads(line)
    assert payload["warnings"] and payload["output"] == str(output)
    out = Image.open(output)
    out.load()
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (10, 16))
    assert out.info["icc_profile"] == icc and out.getexif().get(ORIENTATION, 1) == 1


# Section 5.4: numerical failures


def nan_penalty(calls: range) -> Callable[..., torch.Tensor]:
    r"""A smoothness penalty that is NaN on the given (1-based) calls, as a broken step is."""

    real = otcolor.train.jacobian_penalty
    count = [0]

    def penalty(*args: object, **kwargs: object) -> torch.Tensor:
        count[0] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if count[0] in calls else value

    return penalty


@pytest.mark.parametrize("loss", ["ot", "sliced"])
def test_persistent_nan_exits_5_and_writes_nothing(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    monkeypatch.setattr(otcolor.train, "jacobian_penalty", nan_penalty(range(1, 10**6)))
    output = tmp_path / "out.png"
    run(
        transfer_args(source, target, output, "--loss", loss),
        [source, target],
        code=5,
        phrase="diverged",
    )
    assert not output.exists()


@pytest.mark.parametrize("loss", ["ot", "sliced"])
def test_transient_nan_recovers(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    # A NaN on the 3rd-5th evaluations: L-BFGS rejects the trial points (shorter step),
    # Adam restores the last good state and retries at half the learning rate.
    monkeypatch.setattr(otcolor.train, "jacobian_penalty", nan_penalty(range(3, 4)))
    output = tmp_path / "out.png"
    result = run(
        transfer_args(source, target, output, "--loss", loss, "--steps", "8", "--json"),
        [source, target],
        code=0,
    )
    payload = json.loads(result.stdout)
    assert payload["final_loss"] is not None and np.isfinite(payload["final_loss"])
    assert np.isfinite(np.asarray(Image.open(output), float)).all()


def test_non_finite_map_output_is_never_written(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(look: object, rgb: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        out = np.array(rgb, dtype=np.float32)
        out[0, 0, 0] = np.nan
        return out

    monkeypatch.setattr(otcolor.transfer, "apply_look", broken)
    monkeypatch.setattr(otcolor.transfer, "regrain", broken)
    output = tmp_path / "out.png"
    run(transfer_args(source, target, output), [source, target], code=5, phrase="non-finite")
    assert not output.exists()


def test_strict_turns_the_gaussian_fallback_into_an_error(tmp_path: Path, source: Path) -> None:
    # Onto itself, the Gaussian map is exactly the identity: a learned map cannot beat it.
    output = tmp_path / "out.png"
    result = run(transfer_args(source, source, output, "--json"), [source], code=0)
    assert any("from the Gaussian map" in w for w in json.loads(result.stdout)["warnings"])
    output.unlink()
    run(
        transfer_args(source, source, output, "--strict"),
        [source],
        code=5,
        phrase="the learned map fits worse than the closed-form Gaussian map",
    )
    assert not output.exists()


def test_strict_in_the_library() -> None:
    x = pixels(10, 16).reshape(-1, 3) / np.float32(255)
    config = TransferConfig(steps=3, samples=300, device="cpu", strict=True)
    with pytest.raises(TrainingError, match="worse than the closed-form") as info:
        fit_color_map(x, x, config)
    assert info.value.exit_code == 5
    assert TransferConfig().strict is False


# Big images: device out of memory


class OOMTimes(torch.nn.Module):
    r"""Doubles colours, but raises an out-of-memory error on its first ``times`` calls."""

    def __init__(self, times: int, error: Callable[[str], Exception]) -> None:
        super().__init__()
        self.times, self.error, self.calls = times, error, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 2 * x - 0.25


@pytest.mark.parametrize(
    "error",
    [torch.cuda.OutOfMemoryError, lambda m: RuntimeError("MPS backend out of memory")],
    ids=["cuda", "message"],
)
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_apply_retries_a_block_once_on_out_of_memory(
    error: Callable[[str], Exception], bit_depth: int
) -> None:
    rgb = pixels(60, 70).astype(np.float32) / 255  # 4200 pixels: two blocks on the 16-bit route
    oom = OOMTimes(1, error)
    out = apply_look(Look(oom), rgb, bit_depth=bit_depth)
    assert np.array_equal(out, np.clip(2 * rgb - 0.25, 0, 1))
    blocks = -(-len(np.unique(keys_of(rgb))) // BLOCK) if bit_depth == 8 else 2
    assert oom.calls == blocks + 1  # the failed block once more, the rest once


def test_apply_out_of_memory_twice_is_exit_5() -> None:
    rgb = np.zeros((50, 50, 3), np.float32)
    oom = OOMTimes(2, torch.cuda.OutOfMemoryError)
    with pytest.raises(OutOfDeviceMemory, match="out of device memory applying") as info:
        apply_look(Look(oom), rgb)
    assert info.value.exit_code == 5 and str(info.value).endswith("(use --device cpu)")
    assert oom.calls == 2


def test_other_runtime_errors_are_not_taken_for_out_of_memory() -> None:
    oom = OOMTimes(1, lambda m: RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        apply_look(Look(oom), np.zeros((4, 4, 3), np.float32))
    assert oom.calls == 1  # not retried


def test_training_out_of_memory_is_exit_5_with_a_hint(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(otcolor.fit, "fit_brenier", oom)
    output = tmp_path / "out.png"
    result = run(
        transfer_args(source, target, output),
        [source, target],
        code=5,
        phrase="out of device memory while fitting",
    )
    assert "use fewer --samples or --device cpu" in result.stderr and not output.exists()


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_transfer_apply_out_of_memory(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    # On a GPU the look is applied again on the CPU, with a warning; on the CPU it is exit 5.
    real_fit, real_apply = otcolor.transfer.fit_color_map, otcolor.transfer.apply_look

    def fit_on(*args: object, **kwargs: object) -> object:
        fitted = real_fit(*args, **kwargs)
        fitted.device = device  # as if fitted there; the map itself stays on the CPU
        return fitted

    real_regrain = otcolor.transfer.regrain

    def route(real: Any) -> Any:
        def apply(look: otcolor.transfer.Look, rgb: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            if str(look.device) != "cpu" or device == "cpu":
                cause = torch.cuda.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 1.00 GiB"
                )
                raise OutOfDeviceMemory("out of device memory applying the map") from cause
            return real(look, rgb, *args, **kwargs)

        return apply

    monkeypatch.setattr(otcolor.transfer, "fit_color_map", fit_on)
    monkeypatch.setattr(otcolor.transfer, "apply_look", route(real_apply))
    monkeypatch.setattr(otcolor.transfer, "regrain", route(real_regrain))
    output = tmp_path / "out.png"
    if device == "cpu":
        run(
            transfer_args(source, target, output),
            [source, target],
            code=5,
            phrase="out of memory applying the map",
        )
        assert not output.exists()
    else:
        result = run(transfer_args(source, target, output, "--json"), [source, target], code=0)
        assert any("applied on the CPU" in w for w in json.loads(result.stdout)["warnings"])
        assert Image.open(output).size == (16, 10)


# Exit codes documented in every command's help


def commands(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, (*path, name))


def test_every_command_documents_the_exit_codes() -> None:
    paths = list(commands(get_command(app)))
    assert ("transfer",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, path
        assert "Exit codes" in result.stdout, path
        for code in EXIT_CODES:
            assert f"{code:>3}  " in result.stdout, (path, code)


@pytest.mark.parametrize(
    "bad",
    [
        ["--steps", "0"],
        ["--samples", "-1"],
        ["--quality", "0"],
        ["--max-pixels", "0"],
        ["--model", "gan"],
        ["--device", "tpu"],
        ["--bogus"],
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, source: Path, target: Path, bad: list[str]
) -> None:
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *bad]
    result = run(args, [source, target], code=2, phrase="(see '")
    assert bad[0] in result.stderr


# Saved maps (.otmap) and the commands that read them: apply, lut, video


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("map")
    source, target = folder / "s.png", folder / "t.png"
    Image.fromarray(pixels(10, 16)).save(source)
    Image.fromarray(pixels(12, 14, seed=1)[..., ::-1].copy()).save(target)
    path = folder / "look.otmap"
    result = runner.invoke(
        app, transfer_args(source, target, folder / "o.png", "--save-map", str(path))
    )
    assert result.exit_code == 0, result.output
    return path


def bad_map(tmp_path: Path, saved_map: Path, case: str) -> Path:
    data = saved_map.read_bytes()
    path = tmp_path / f"{case}.otmap"
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    if case == "missing":
        return tmp_path / "missing.otmap"
    if case == "directory":
        path.mkdir()
    elif case == "zero-byte":
        path.touch()
    elif case == "text":
        path.write_text("this is not a map\n" * 4)
    elif case == "png-renamed":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data[8:200])
    elif case == "truncated-header":
        path.write_bytes(data[: header_end // 2])
    elif case == "truncated-tensors":
        path.write_bytes(data[: (header_end + len(data)) // 2])
    elif case == "corrupt-header":
        corrupt = bytearray(data)
        corrupt[12] ^= 0xFF
        path.write_bytes(bytes(corrupt))
    elif case == "trailing-bytes":
        path.write_bytes(data + b"\x00" * 16)
    elif case == "nan-tensor":
        values = bytearray(data)
        values[header_end : header_end + 4] = struct.pack("<f", float("nan"))
        path.write_bytes(bytes(values))
    else:  # pragma: no cover
        raise ValueError(case)
    return path


BAD_MAPS = [
    ("missing", 2, "does not exist"),
    ("directory", 2, "is a directory"),
    ("zero-byte", 3, "not an otcolor map file"),
    ("text", 3, "map file"),
    ("png-renamed", 3, "not an otcolor map file"),
    ("truncated-header", 3, "map file"),
    ("truncated-tensors", 3, "truncated map file"),
    ("corrupt-header", 3, "map file"),
    ("trailing-bytes", 3, "corrupt map file"),
    ("nan-tensor", 3, "non-finite"),
]


@pytest.mark.parametrize("command", ["apply", "lut", "video"])
@pytest.mark.parametrize(("case", "code", "phrase"), BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_bad_map_file(
    tmp_path: Path,
    source: Path,
    saved_map: Path,
    command: str,
    case: str,
    code: int,
    phrase: str,
) -> None:
    path = bad_map(tmp_path, saved_map, case)
    if command == "apply":
        output = tmp_path / "out.png"
        args = ["apply", str(path), str(source), "-o", str(output)]
    elif command == "lut":
        output = tmp_path / "out.cube"
        args = ["lut", str(path), "-o", str(output)]
    else:
        if case in ("missing", "directory"):
            pytest.skip("--map is checked by the command itself, after the clip")
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(b"\x00" * 64)  # never read: the map is checked first
        output = tmp_path / "out.mp4"
        args = ["video", str(clip), "--map", str(path), "-o", str(output)]
    run(args, [source, saved_map] + ([path] if path.is_file() else []), code=code, phrase=phrase)
    assert not output.exists()


def test_apply_bad_images_and_outputs(
    tmp_path: Path, source: Path, target: Path, saved_map: Path
) -> None:
    inputs = [source, target, saved_map]
    corrupt = make_bad(tmp_path, "truncated-png")
    out = tmp_path / "out.png"
    run(
        ["apply", str(saved_map), str(corrupt), "-o", str(out)], inputs, code=3, phrase="truncated"
    )
    run(["apply", str(saved_map), str(tmp_path / "nope.png"), "-o", str(out)], inputs, code=2)
    run(
        ["apply", str(saved_map), str(source), "-o", str(tmp_path / "no" / "o.png")],
        inputs,
        code=4,
        phrase="does not exist",
    )
    run(
        ["apply", str(saved_map), str(source), "-o", str(tmp_path / "o.xyz")],
        inputs,
        code=2,
        phrase="unsupported output extension",
    )
    for spelling in (source, tmp_path / "." / "source.png"):
        run(
            ["apply", str(saved_map), str(source), "-o", str(spelling), "--force"],
            inputs,
            code=2,
            phrase="refusing to overwrite an input",
        )
    out.write_bytes(b"previous")
    run(
        ["apply", str(saved_map), str(source), "-o", str(out)],
        inputs,
        code=2,
        phrase="already exists",
    )
    assert out.read_bytes() == b"previous"
    run(["apply", str(saved_map), str(source), "-o", str(out), "--force"], inputs, code=0)
    assert Image.open(out).size == (16, 10)


def test_lut_outputs(tmp_path: Path, saved_map: Path) -> None:
    out = tmp_path / "look.cube"
    run(
        ["lut", str(saved_map), "-o", str(tmp_path / "no" / "l.cube")],
        [saved_map],
        code=4,
        phrase="does not exist",
    )
    run(["lut", str(saved_map), "-o", str(saved_map), "--force"], [saved_map], code=2)
    out.write_text("previous")
    run(["lut", str(saved_map), "-o", str(out)], [saved_map], code=2, phrase="already exists")
    assert out.read_text() == "previous"
    run(["lut", str(saved_map), "-o", str(out), "--force", "--size", "5"], [saved_map], code=0)
    assert "LUT_3D_SIZE 5" in out.read_text()


def test_transfer_save_map_is_checked_before_training(
    tmp_path: Path, source: Path, target: Path, no_training: list[object]
) -> None:
    existing = tmp_path / "old.otmap"
    existing.write_bytes(b"previous")
    run(
        transfer_args(source, target, tmp_path / "o.png", "--save-map", str(existing)),
        [source, target, existing],
        code=2,
        phrase="already exists",
    )
    run(
        transfer_args(source, target, tmp_path / "o.png", "--save-map", str(source), "--force"),
        [source, target],
        code=2,
        phrase="refusing to overwrite an input",
    )
    run(
        transfer_args(
            source, target, tmp_path / "o.png", "--save-map", str(tmp_path / "no" / "m.otmap")
        ),
        [source, target],
        code=4,
    )
    assert no_training == [] and existing.read_bytes() == b"previous"


def test_parameters_broken_by_the_last_update_are_restored() -> None:
    from otcolor.losses import SlicedW2
    from otcolor.models import build_model
    from otcolor.train import FitConfig, fit

    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    model = build_model("cmgn", 3)

    def break_last_step(step: int, logs: dict[str, float]) -> None:
        if step == 30:  # as an update that overflowed, with no loss evaluated after it
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    fit(model, SlicedW2(8), x, 2 * x + 1, FitConfig(steps=30, batch_size=128), break_last_step)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model(x)).all()
