r"""Real photos, right colours (issue 27), end to end through ``otcolor``: tagged inputs are
converted into the working space and the output is tagged with the profile its numbers are in;
16-bit TIFF stays 16-bit; AVIF and HEIC are read; XMP survives byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.io import load_image
from otcolor.io.png16 import write_png16, xmp_itxt
from otcolor.io.profiles import WORKING, from_working, named_profile
from otcolor.metrics import ciede2000
from otcolor.spaces import srgb_to_lab

runner = CliRunner()
IMAGES = Path(__file__).resolve().parents[1] / "benchmarks" / "images"
FAST = ["--steps", "10", "--samples", "4000", "--device", "cpu"]
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator><rdf:Seq><rdf:li>A. Photographer'
    b"</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>\n"
    b'<?xpacket end="w"?>'
)


def _photo(name: str, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    r"""A small real photo, sRGB, float32 in [0, 1]."""

    image = Image.open(IMAGES / name).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255


def _save8(path: Path, srgb: np.ndarray, profile_name: str | None) -> Path:
    r"""``srgb`` written as an 8-bit PNG in the named profile (converted and tagged)."""

    if profile_name is None:
        Image.fromarray(np.round(srgb * 255).astype(np.uint8)).save(path)
        return path
    profile = named_profile(profile_name)
    pixels = np.round(from_working(srgb, profile) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, icc_profile=profile.icc)
    return path


def _transfer(source: Path, target: Path, output: Path, *extra: str) -> None:
    args = ["transfer", str(source), str(target), "-o", str(output), *FAST, *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def _lab(path: Path) -> np.ndarray:
    r"""A file as a colour-managed viewer shows it: converted from its profile, in CIELAB."""

    return srgb_to_lab(load_image(path).rgb.reshape(-1, 3))


def _chroma(lab: np.ndarray) -> float:
    return float(np.hypot(lab[:, 1], lab[:, 2]).mean())


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    return _photo("chelsea.jpg"), _photo("coffee.jpg")


@pytest.mark.parametrize(
    ("source_profile", "target_profile"),
    [("display-p3", None), ("adobe-rgb", "display-p3"), (None, "prophoto")],
)
def test_tagged_files_give_the_convert_first_result(
    tmp_path: Path, photos, source_profile: str | None, target_profile: str | None
) -> None:
    source_rgb, target_rgb = photos
    # The files as a photographer has them, tagged; and converted to sRGB first.
    source = _save8(tmp_path / "source.png", source_rgb, source_profile)
    target = _save8(tmp_path / "target.png", target_rgb, target_profile)
    first = {}
    for name, path in (("source", source), ("target", target)):
        first[name] = tmp_path / f"{name}-srgb.png"
        Image.fromarray(np.round(load_image(path).rgb * 255).astype(np.uint8)).save(first[name])
    _transfer(first["source"], first["target"], tmp_path / "reference.png")
    _transfer(source, target, tmp_path / "out.png")

    output = Image.open(tmp_path / "out.png")
    expected = None if source_profile is None else named_profile(source_profile).icc
    assert output.info.get("icc_profile") == expected  # tagged with its numbers' profile
    reference, ours = _lab(tmp_path / "reference.png"), _lab(tmp_path / "out.png")
    assert ciede2000(reference, ours).mean() < 0.5
    assert abs(_chroma(ours) / _chroma(reference) - 1) < 0.02


def test_ignoring_the_profile_would_be_caught(tmp_path: Path, photos) -> None:
    # The same check on what otcolor did before: a P3 file's numbers fitted as if they were
    # sRGB, and the output stamped with the source's P3 profile. It fails by far.
    source_rgb, target_rgb = photos
    p3 = named_profile("display-p3")
    source = _save8(tmp_path / "source.png", source_rgb, "display-p3")
    naive = tmp_path / "naive.png"
    Image.fromarray(np.asarray(Image.open(source))).save(naive)  # the numbers, untagged
    target = _save8(tmp_path / "target.png", target_rgb, None)
    _transfer(source, target, tmp_path / "managed.png")
    _transfer(naive, target, tmp_path / "naive-out.png")
    stamped = tmp_path / "stamped.png"
    Image.open(tmp_path / "naive-out.png").save(stamped, icc_profile=p3.icc)
    managed, old = _lab(tmp_path / "managed.png"), _lab(stamped)
    assert ciede2000(managed, old).mean() > 2.0
    assert _chroma(old) / _chroma(managed) > 1.1  # oversaturated, as the issue measured


def test_wide_gamut_sixteen_bit_tiff_to_srgb_output(tmp_path: Path, photos) -> None:
    source_rgb, target_rgb = photos
    prophoto = named_profile("prophoto")
    samples = np.round(from_working(source_rgb, prophoto) * 65535).astype(np.uint16)
    source = tmp_path / "source.tif"
    tifffile.imwrite(
        source, samples, photometric="rgb", extratags=[(34675, "B", 0, prophoto.icc, True)]
    )
    target = _save8(tmp_path / "target.png", target_rgb, None)
    _transfer(source, target, tmp_path / "out.tif", "--output-profile", "srgb")
    page = tifffile.TiffFile(tmp_path / "out.tif").pages[0]
    assert page.dtype == np.uint16 and page.tags[34675].value == WORKING.icc
    _transfer(source, target, tmp_path / "wide.tif")  # the source's profile, by default
    wide = tifffile.TiffFile(tmp_path / "wide.tif").pages[0]
    assert wide.tags[34675].value == prophoto.icc
    assert ciede2000(_lab(tmp_path / "out.tif"), _lab(tmp_path / "wide.tif")).mean() < 0.05


def test_sixteen_bit_tiff_in_gives_sixteen_bit_tiff_out_with_its_levels(tmp_path: Path) -> None:
    # A smooth 16-bit photo-like gradient: 8 bits would keep at most 256 levels a channel.
    yy, xx = np.mgrid[0:64, 0:2048] / np.array([63.0, 2047.0])[:, None, None]
    smooth = np.stack([0.15 + 0.7 * xx, 0.2 + 0.5 * xx + 0.1 * yy, 0.3 + 0.3 * yy], -1)
    tifffile.imwrite(tmp_path / "in.tif", np.round(smooth * 65535).astype(np.uint16))
    target = _save8(tmp_path / "target.png", _photo("coffee.jpg"), None)
    _transfer(tmp_path / "in.tif", target, tmp_path / "out.tif")
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16
    assert max(len(np.unique(out[..., c])) for c in range(3)) > 1024


def test_float_tiff_is_read_clipped_and_written_as_sixteen_bit(tmp_path: Path) -> None:
    values = np.linspace(-0.1, 1.2, 64 * 64 * 3, dtype=np.float32).reshape(64, 64, 3)
    tifffile.imwrite(tmp_path / "in.tif", values, photometric="rgb")
    image = load_image(tmp_path / "in.tif")
    assert image.bit_depth == 16 and image.rgb.min() == 0 and image.rgb.max() == 1
    assert any("outside [0, 1]" in w for w in image.warnings)


@pytest.mark.parametrize("suffix", [".avif", ".heic"])
def test_avif_and_heic_inputs_transfer(tmp_path: Path, photos, suffix: str) -> None:
    from otcolor.io.formats import heif_available

    assert heif_available()  # the test extra installs pillow-heif
    source_rgb, target_rgb = photos
    p3 = named_profile("display-p3")
    source = tmp_path / f"source{suffix}"
    pixels = np.round(from_working(source_rgb, p3) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(source, quality=95, icc_profile=p3.icc, xmp=XMP)
    target = _save8(tmp_path / "target.png", target_rgb, None)
    _transfer(source, target, tmp_path / f"out{suffix}")
    out = Image.open(tmp_path / f"out{suffix}")
    assert out.size == (96, 64) and out.info.get("icc_profile") == p3.icc
    assert load_image(tmp_path / f"out{suffix}").xmp == XMP


def test_heic_without_pillow_heif_names_the_format_and_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import otcolor.io.decode as decode

    source = tmp_path / "photo.heic"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(source)
    monkeypatch.setattr(decode, "heif_available", lambda: False)
    result = runner.invoke(
        app, ["transfer", str(source), str(source), "-o", str(tmp_path / "o.png")]
    )
    assert result.exit_code == 3
    assert "HEIC/HEIF" in result.stderr and "otcolor[heif]" in result.stderr


def _with_xmp(path: Path, pixels: np.ndarray) -> Path:
    suffix = path.suffix
    if suffix == ".png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add(b"iTXt", xmp_itxt(XMP))
        Image.fromarray(pixels).save(path, pnginfo=info)
    elif suffix == ".tif":
        tifffile.imwrite(path, pixels, photometric="rgb", extratags=[(700, "B", 0, XMP, True)])
    elif suffix == ".tiff":  # 16-bit
        tifffile.imwrite(path, pixels.astype(np.uint16) * 257, photometric="rgb",
                         extratags=[(700, "B", 0, XMP, True)])  # fmt: skip
    elif suffix == ".png16":
        path = path.with_suffix(".png")
        with path.open("wb") as fp:
            write_png16(fp, pixels.astype(np.uint16) * 257, None, icc=None, exif=None, dpi=None,
                        xmp=XMP)  # fmt: skip
    else:
        Image.fromarray(pixels).save(path, quality=95, xmp=XMP)
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp", ".tiff", ".png16"])
def test_xmp_survives_byte_for_byte(tmp_path: Path, photos, suffix: str) -> None:
    source = _with_xmp(tmp_path / f"source{suffix}", np.round(photos[0] * 255).astype(np.uint8))
    assert load_image(source).xmp == XMP
    target = _save8(tmp_path / "target.png", photos[1], None)
    output = tmp_path / f"out{source.suffix}"
    _transfer(source, target, output)
    assert load_image(output).xmp == XMP


def test_orientation_is_applied_once_with_xmp(tmp_path: Path, photos) -> None:
    rotated = b'<x:xmpmeta><rdf:Description tiff:Orientation="6" xmp:Rating="2"/></x:xmpmeta>'
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    source = tmp_path / "source.jpg"
    pixels = np.round(photos[0] * 255).astype(np.uint8)
    Image.fromarray(pixels).save(source, quality=95, exif=exif.tobytes(), xmp=rotated)
    target = _save8(tmp_path / "target.png", photos[1], None)
    _transfer(source, target, tmp_path / "out.jpg")
    out = Image.open(tmp_path / "out.jpg")
    assert out.size == (64, 96)  # upright
    assert out.getexif().get(0x0112, 1) == 1
    assert out.info["xmp"] == rotated.replace(b'Orientation="6"', b'Orientation="1"')


def test_known_answer_holds_when_the_pair_is_in_a_wide_gamut_profile(tmp_path: Path) -> None:
    # An affine Brenier map known in sRGB; both images handed over as 16-bit Adobe RGB PNGs.
    from otcolor.bench.known import psnr

    photo = _photo("chelsea.jpg", (128, 96))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    matrix = q @ np.diag([0.5, 0.7, 0.9]) @ q.T
    shift = 0.5 - matrix @ np.full(3, 0.5)
    known = np.clip(photo @ matrix.T + shift, 0, 1).astype(np.float32)
    adobe = named_profile("adobe-rgb")
    paths = []
    for name, srgb in (("source", photo), ("target", known)):
        path = tmp_path / f"{name}.png"
        samples = np.round(from_working(srgb, adobe) * 65535).astype(np.uint16)
        with path.open("wb") as fp:
            write_png16(fp, samples, None, icc=adobe.icc, exif=None, dpi=None)
        paths.append(path)
    args = ["transfer", str(paths[0]), str(paths[1]), "-o", str(tmp_path / "out.png")]
    result = runner.invoke(app, [*args, "--no-regrain", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    recovered = load_image(tmp_path / "out.png").rgb
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    assert psnr(to8(recovered), to8(known))["psnr"] >= 45.0
