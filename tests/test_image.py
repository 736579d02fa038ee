r"""Tests for otcolor.io: decoding, metadata, atomic saves, output checks and sampling."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from otcolor.errors import InputError, OutputError, UsageError
from otcolor.io import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    check_output_path,
    load_image,
    save_image,
    unit_float,
    writes_8bit_as_is,
)
from otcolor.io.profiles import named_profile
from otcolor.pipeline import sample_pixels

MAKE, ORIENTATION = 0x010F, 0x0112


def random_pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(width: int, height: int, depth: int, colour_type: int, raw: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def read_png16(path: Path) -> np.ndarray:
    r"""Decodes the 16-bit PNGs that save_image writes (Pillow reads them as 8-bit)."""

    data = path.read_bytes()[8:]
    idat, header = b"", b""
    while data:
        (length,) = struct.unpack(">I", data[:4])
        kind, body = data[4:8], data[8 : 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        data = data[12 + length :]
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 16
    channels = {2: 3, 6: 4}[colour_type]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert set(rows[:, 0]) <= {0, 1}  # None or Sub filters only
    samples = rows[:, 1:].reshape(height, width, 2 * channels).copy()
    sub = rows[:, 0] == 1
    samples[sub] = np.cumsum(samples[sub], axis=1, dtype=np.uint8)
    return samples.view(">u2").reshape(height, width, channels).astype(np.uint16)


# Round trips


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    pixels = random_pixels((16, 24, 3))
    Image.fromarray(pixels).save(tmp_path / "in.png")

    image = load_image(tmp_path / "in.png")
    assert image.rgb.shape == (16, 24, 3) and image.rgb.dtype == np.float32
    assert image.size == (24, 16) and image.n_pixels == 384
    assert (image.format, image.mode, image.bit_depth, image.alpha) == ("PNG", "RGB", 8, None)
    assert image.warnings == []

    assert save_image(tmp_path / "out.png", image.rgb, like=image) == []
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), pixels)


def test_rgba_alpha_is_byte_identical(tmp_path: Path) -> None:
    pixels = random_pixels((16, 24, 4))
    pixels[:4, :, 3] = 0
    Image.fromarray(pixels).save(tmp_path / "in.png")

    image = load_image(tmp_path / "in.png")
    assert image.alpha is not None and image.alpha.dtype == np.uint8
    assert np.array_equal(image.alpha, pixels[..., 3])

    for name in ("out.png", "out.webp", "out.tif"):
        save_image(tmp_path / name, 1 - image.rgb, alpha=image.alpha, like=image)
        out = np.asarray(Image.open(tmp_path / name))
        assert out.shape == (16, 24, 4)
        assert np.array_equal(out[..., 3], pixels[..., 3]), name


def test_grey_and_bilevel_become_rgb(tmp_path: Path) -> None:
    grey = random_pixels((8, 12))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey > 127).save(tmp_path / "bilevel.png")

    image = load_image(tmp_path / "grey.png")
    assert image.mode == "L" and image.alpha is None
    assert np.array_equal(image.rgb, np.repeat(grey[..., None], 3, axis=2) / np.float32(255))

    image = load_image(tmp_path / "bilevel.png")
    assert image.mode == "1"
    assert set(np.unique(image.rgb)) == {0.0, 1.0}


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_transparency_becomes_alpha(tmp_path: Path, suffix: str) -> None:
    indices = np.tile(np.arange(4, dtype=np.uint8), (6, 2))  # (6, 8)
    im = Image.new("P", (8, 6))
    im.putdata(indices.reshape(-1).tolist())
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    im.save(tmp_path / f"in{suffix}", transparency=3)

    image = load_image(tmp_path / f"in{suffix}")
    assert image.mode == "P"
    assert image.alpha is not None
    assert np.array_equal(image.alpha == 0, indices == 3)
    assert np.allclose(image.rgb[indices == 0], [1, 0, 0])


def test_palette_without_transparency_has_no_alpha(tmp_path: Path) -> None:
    Image.new("RGB", (5, 4), (10, 200, 30)).convert("P").save(tmp_path / "in.gif")
    image = load_image(tmp_path / "in.gif")
    assert image.alpha is None and image.rgb.shape == (4, 5, 3)


def test_sixteen_bit_grey_is_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 4000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "in.png")

    image = load_image(tmp_path / "in.png")
    assert image.mode == "I;16" and image.bit_depth == 16
    assert np.allclose(image.rgb[..., 0] * 65535, values, atol=1e-2)
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])

    # 16-bit in, 16-bit PNG out, samples exact.
    assert save_image(tmp_path / "out.png", image.rgb, like=image) == []
    assert np.array_equal(read_png16(tmp_path / "out.png")[..., 1], values)

    # 16-bit TIFF out too (through tifffile), samples exact; BMP holds 8 bits, and says so.
    assert save_image(tmp_path / "out.tif", image.rgb, like=image) == []
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif")[0, :, 1], values[0])
    notes = save_image(tmp_path / "out.bmp", image.rgb, like=image)
    assert len(notes) == 1 and "8-bit" in notes[0]


def test_sixteen_bit_png_keeps_alpha_and_metadata(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    alpha = random_pixels((5, 7))
    exif = Image.Exif()
    exif[MAKE] = "Cam"
    like = LoadedImage(
        rgb=rgb, bit_depth=16, icc_profile=srgb_profile(), exif=exif.tobytes(), dpi=(300, 150)
    )
    save_image(tmp_path / "out.png", rgb, alpha=alpha, like=like)

    samples = read_png16(tmp_path / "out.png")
    assert np.array_equal(samples[..., :3], np.round(rgb * 65535).astype(np.uint16))
    assert np.array_equal(samples[..., 3], alpha.astype(np.uint16) * 257)

    reopened = Image.open(tmp_path / "out.png")
    reopened.load()
    assert reopened.info["icc_profile"] == like.icc_profile
    assert reopened.getexif()[MAKE] == "Cam"
    assert np.allclose(reopened.info["dpi"], (300, 150), atol=0.05)  # pHYs is per metre


def test_sixteen_bit_rgb_png_is_read_at_full_depth(tmp_path: Path) -> None:
    # Pillow reduces these to 8 bits; otcolor's own reader keeps all 16.
    samples = (np.arange(4 * 3 * 3).reshape(4, 3, 3) * 1000).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)
    (tmp_path / "in.png").write_bytes(png_bytes(3, 4, 16, 2, raw))

    image = load_image(tmp_path / "in.png")
    assert image.bit_depth == 16 and not image.warnings
    assert np.array_equal(np.round(image.rgb * 65535).astype(np.uint16), samples)


def test_cmyk_without_profile_warns(tmp_path: Path) -> None:
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "in.jpg")
    image = load_image(tmp_path / "in.jpg")
    assert image.mode == "CMYK" and image.rgb.shape == (4, 6, 3)
    assert np.allclose(image.rgb, [1, 0, 0], atol=0.05)
    assert any("CMYK" in w for w in image.warnings)


# EXIF orientation: stored pixels per tag, such that the displayed image is `upright`.
STORED = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],
    3: lambda u: u[::-1, ::-1],
    4: lambda u: u[::-1, :],
    5: lambda u: u.swapaxes(0, 1),
    6: lambda u: np.rot90(u, 1),
    7: lambda u: u.swapaxes(0, 1)[::-1, ::-1],
    8: lambda u: np.rot90(u, -1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_pixels(tmp_path: Path, orientation: int) -> None:
    upright = random_pixels((3, 5, 3))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Cam"
    stored = np.ascontiguousarray(STORED[orientation](upright))
    Image.fromarray(stored).save(tmp_path / "in.png", exif=exif.tobytes(), dpi=(300, 100))

    image = load_image(tmp_path / "in.png")
    assert np.array_equal(image.rgb, upright / np.float32(255))
    assert image.dpi is not None
    assert np.allclose(image.dpi, (100, 300) if orientation >= 5 else (300, 100), atol=0.01)

    save_image(tmp_path / "out.jpg", image.rgb, like=image)
    saved = Image.open(tmp_path / "out.jpg").getexif()
    assert saved.get(ORIENTATION, 1) == 1 and saved[MAKE] == "Cam"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_icc_exif_dpi_are_carried_over(tmp_path: Path, suffix: str) -> None:
    icc = srgb_profile()
    exif = Image.Exif()
    exif[MAKE] = "Cam"
    pixels = random_pixels((8, 8, 3))
    Image.fromarray(pixels).save(
        tmp_path / f"in{suffix}", icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300)
    )

    image = load_image(tmp_path / f"in{suffix}")
    assert image.icc_profile == icc and image.exif is not None
    save_image(tmp_path / f"out{suffix}", image.rgb, like=image)

    out = Image.open(tmp_path / f"out{suffix}")
    out.load()
    assert out.info["icc_profile"] == icc
    assert out.getexif()[MAKE] == "Cam"
    assert np.allclose(out.info["dpi"], (300, 300), atol=0.01)


def test_jpeg_is_saved_with_quality_and_444(tmp_path: Path) -> None:
    pixels = random_pixels((16, 16, 3))
    image = LoadedImage(rgb=pixels / np.float32(255))
    save_image(tmp_path / "hi.jpg", image.rgb, quality=95)
    save_image(tmp_path / "lo.jpg", image.rgb, quality=20)

    out = Image.open(tmp_path / "hi.jpg")
    assert out.layer[0][1:3] == out.layer[1][1:3] == (1, 1)  # no chroma subsampling
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_save_clips_and_rejects_non_finite(tmp_path: Path) -> None:
    rgb = np.full((2, 2, 3), 2.0, np.float32)
    rgb[0, 0] = -1
    save_image(tmp_path / "out.png", rgb)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [255, 255, 255]

    rgb[1, 1, 1] = np.nan
    with pytest.raises(OutputError, match="non-finite"):
        save_image(tmp_path / "nan.png", rgb)
    assert not (tmp_path / "nan.png").exists()


# Atomic saves


@pytest.mark.parametrize(
    "exception", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()]
)
def test_failed_save_leaves_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exception: BaseException
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous contents")

    def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise exception

    monkeypatch.setattr(Image.Image, "save", failing_save)
    expected = KeyboardInterrupt if isinstance(exception, KeyboardInterrupt) else OutputError
    with pytest.raises(expected):
        save_image(output, np.zeros((4, 4, 3), np.float32))

    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_replaces_and_keeps_permissions(tmp_path: Path) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"old")
    output.chmod(0o640)
    save_image(output, np.zeros((4, 4, 3), np.float32))
    assert Image.open(output).size == (4, 4)
    assert output.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        save_image(tmp_path / "out.xyz", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


# check_output_path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.png"
    Image.new("RGB", (4, 4)).save(path)
    return path


@pytest.mark.parametrize("name", ["out.xyz", "out", "out.eps", "out.pdf"])
def test_output_extension_must_be_supported(tmp_path: Path, source: Path, name: str) -> None:
    with pytest.raises(UsageError, match="unsupported output extension"):
        check_output_path(tmp_path / name, [source], force=False)


def test_output_must_not_be_an_input(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "link.png").symlink_to(source)
    os.link(source, tmp_path / "hard.png")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    spellings = [
        source,
        Path("source.png"),
        Path("./sub/../source.png"),
        tmp_path / "link.png",
        tmp_path / "hard.png",
    ]
    for output in spellings:
        with pytest.raises(UsageError, match="refusing to overwrite an input"):
            check_output_path(output, [tmp_path / "other.png", source], force=True)


def test_existing_output_needs_force(tmp_path: Path, source: Path) -> None:
    output = tmp_path / "out.jpg"
    output.write_bytes(b"old")
    with pytest.raises(UsageError) as info:
        check_output_path(output, [source], force=False)
    assert str(info.value) == f"{output}: already exists (use --force to overwrite)"
    check_output_path(output, [source], force=True)
    assert output.read_bytes() == b"old"


def test_output_directory_cases(tmp_path: Path, source: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        check_output_path(tmp_path / "dir.png", [source], force=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.png", [source], force=False)


def test_output_directory_not_writable(tmp_path: Path, source: Path, deny) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    deny(locked, "w")
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(locked / "out.png", [source], force=False)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("out.jpg", False),
        ("out.bmp", False),
        ("out.gif", False),
        ("out.png", True),
        ("out.webp", True),
        ("out.tiff", True),
    ],
)
def test_alpha_needs_a_format_with_alpha(
    tmp_path: Path, source: Path, name: str, ok: bool
) -> None:
    check_output_path(tmp_path / name, [source], force=False, has_alpha=False)
    if ok:
        check_output_path(tmp_path / name, [source], force=False, has_alpha=True)
    else:
        with pytest.raises(OutputError, match="alpha") as info:
            check_output_path(tmp_path / name, [source], force=False, has_alpha=True)
        assert info.value.exit_code == 4 and ".png" in str(info.value)


# Load errors


def corrupt_idat(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT")
    start = at + 4
    data[start + 2 : start + 40] = bytes(range(38))
    # A CRC matching the garbage, so that the decoder (not the CRC check) meets it.
    (length,) = struct.unpack(">I", data[at - 4 : at])
    crc = zlib.crc32(bytes(data[at : at + 4 + length])) & 0xFFFFFFFF
    data[at + 4 + length : at + 8 + length] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def bad_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.jpg"
    if case == "empty":
        path.touch()
    elif case == "text":
        path.write_text("hello, not an image\n")
    elif case in ("truncated-png", "truncated-jpeg", "corrupt-idat"):
        fmt = "JPEG" if case == "truncated-jpeg" else "PNG"
        Image.fromarray(random_pixels((64, 64, 3))).save(path, format=fmt)
        if case == "corrupt-idat":
            corrupt_idat(path)
        else:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "animated":
        path = tmp_path / "anim.gif"
        frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif case == "eps":
        path = tmp_path / "figure.eps"
        path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    elif case == "directory":
        path = tmp_path / "dir.png"
        path.mkdir()
    elif case == "missing":
        path = tmp_path / "missing.png"
    return path


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty file"),
        ("text", "not a recognised image"),
        ("truncated-png", "truncated"),
        ("truncated-jpeg", "runcated"),
        ("corrupt-idat", "cannot decode"),
        ("animated", "animated or multi-page image (3 frames)"),
        ("eps", "format EPS is not allowed"),
    ],
)
def test_bad_inputs_raise_input_error(tmp_path: Path, case: str, phrase: str) -> None:
    path = bad_file(tmp_path, case)
    with pytest.raises(InputError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and phrase in message
    assert "\n" not in message and info.value.exit_code == 3


def test_unreadable_file(tmp_path: Path, deny) -> None:
    path = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(path)
    path.chmod(0)
    deny(path, "r")
    with pytest.raises(InputError, match="(?i)permission denied"):
        load_image(path)


def bomb(path: Path, width: int, height: int) -> Path:
    # A header that promises a huge image, and a 1-byte IDAT: decoding it would fail, so
    # a refusal must come from the header.
    raw = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", raw)
        + png_chunk(b"IDAT", b"\x00")
        + png_chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("size", [(20000, 20000), (10000, 9000)])
def test_huge_header_is_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS
    path = bomb(tmp_path / "bomb.png", *size)
    with pytest.raises(InputError, match="--max-pixels") as info:
        load_image(path)
    assert "too large" in str(info.value) or "above the limit" in str(info.value)

    with pytest.raises(InputError, match="above the limit of 1,000"):
        load_image(bomb(tmp_path / "small.png", 40, 30), max_pixels=1000)


def test_raised_limit_is_honoured_and_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "in.png"
    Image.new("RGB", (30, 20), "red").save(path)  # above twice Pillow's (patched) limit

    with pytest.raises(InputError):
        load_image(path, max_pixels=100)
    image = load_image(path, max_pixels=1000)
    assert image.size == (30, 20) and image.warnings == []
    assert load_image(path, max_pixels=None).size == (30, 20)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_png_bytes_named_jpg_load(tmp_path: Path) -> None:
    Image.new("RGB", (3, 2), "blue").save(tmp_path / "in.jpg", format="PNG")
    assert load_image(tmp_path / "in.jpg").format == "PNG"


# Sampling


def transparent_image() -> LoadedImage:
    rng = np.random.default_rng(0)
    rgb = rng.random((20, 30, 3)).astype(np.float32)
    alpha = np.full((20, 30), 255, np.uint8)
    alpha[:, :10] = 0
    rgb[:, :10] = 7.0  # impossible colour, so any transparent pixel drawn is visible
    return LoadedImage(rgb=rgb, alpha=alpha)


def test_sample_pixels_excludes_transparent() -> None:
    image = transparent_image()
    samples = sample_pixels(image, 150, np.random.default_rng(1))
    assert samples.shape == (150, 3) and samples.dtype == np.float32
    assert (samples < 1).all()
    assert len(np.unique(samples, axis=0)) == 150  # without replacement

    everything = sample_pixels(image, 10_000, np.random.default_rng(1))
    assert everything.shape == (400, 3)


def test_sample_pixels_is_deterministic() -> None:
    image = transparent_image()
    first = sample_pixels(image, 50, np.random.default_rng(3))
    again = sample_pixels(image, 50, np.random.default_rng(3))
    other = sample_pixels(image, 50, np.random.default_rng(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_sample_pixels_without_alpha_and_all_transparent() -> None:
    rgb = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    assert sample_pixels(LoadedImage(rgb=rgb), 100, np.random.default_rng(0)).shape == (20, 3)
    with pytest.raises(InputError, match="fully transparent"):
        sample_pixels(
            LoadedImage(rgb=rgb, alpha=np.zeros((4, 5), np.uint8)), 10, np.random.default_rng(0)
        )


@pytest.mark.parametrize("profile", [None, "srgb", "display-p3"])
def test_keep_8bit_leaves_only_unconverted_samples_as_uint8(
    tmp_path: Path, profile: str | None
) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    icc = None if profile is None else named_profile(profile).icc
    Image.fromarray(pixels).save(path, **({} if icc is None else {"icc_profile": icc}))
    floats, kept = load_image(path), load_image(path, keep_8bit=True)
    assert floats.rgb.dtype == np.float32
    converted = profile == "display-p3"
    assert kept.rgb.dtype == (np.float32 if converted else np.uint8)
    assert writes_8bit_as_is(kept) is not converted
    assert not writes_8bit_as_is(kept, named_profile("adobe-rgb"))
    # The same colours either way: uint8 samples read through unit_float are the float image.
    assert np.array_equal(unit_float(kept.rgb), floats.rgb)
    if not converted:
        assert np.array_equal(kept.rgb, pixels)
        picks = [sample_pixels(i, 50, np.random.default_rng(0)) for i in (floats, kept)]
        assert np.array_equal(*picks)
