r"""The reliability matrix (issues 6 and 20): bad and unusual inputs, degenerate images.

Run through the real ``otcolor`` command with fixtures generated here.

Every command run goes through :func:`harness.run`, which also checks the invariants that hold
whatever happens: the inputs are byte-identical (and keep their mtime), no temporary file is
left, and a failure prints exactly one ``Error:`` line on stderr and nothing on stdout.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from crafted import make_bad, png_chunk, png_header_only, rgb_tiff
from harness import pixels, run, runner, transfer_args
from PIL import Image, ImageCms, TiffImagePlugin

from otcolor.cli import app
from otcolor.io import load_image

ORIENTATION, MAKE = 0x0112, 0x010F

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
        path.write_bytes(rgb_tiff(rgb.astype("<u2") * 257))  # read at 16 bits (tifffile)
    elif case in ("float-rgb-tiff", "float-grey-tiff"):  # read by tifffile, written 16-bit
        path = make_bad(tmp_path, case)
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
        warning = "not an RGB profile"
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
    "float-rgb-tiff",
    "float-grey-tiff",
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

    out = Image.open(output)
    if case.startswith("float"):  # Pillow cannot open these; otcolor reads them by tifffile
        assert out.size == load_image(path).size and output.read_bytes()[24] == 16
        return
    original = Image.open(path)
    assert out.size == original.size
    has_alpha = case in ("grey-alpha", "rgba") or case.startswith("palette-transparency")
    assert out.mode == ("RGBA" if has_alpha else "RGB")
    if has_alpha:
        expected = np.asarray(original.convert("RGBA"))[..., 3]
        assert np.array_equal(np.asarray(out)[..., 3], expected)
    if case == "icc-non-srgb":  # never stamped on an RGB output: its numbers are not in it
        assert out.info.get("icc_profile") is None
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
