r"""Tests of otcolor.io.icc and otcolor.io.profiles: matrix/TRC profiles read and written as
LittleCMS reads them, conversions into and out of the working space, PNG colour chunks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from otcolor.errors import UsageError
from otcolor.io.icc import Curve, IccError, parse_matrix_trc, write_matrix_trc
from otcolor.io.profiles import (
    NAMED_PROFILES,
    WORKING,
    from_working,
    named_profile,
    output_profile,
    profile_from_icc,
    profile_from_png,
    to_working,
)

COLORD = Path("/usr/share/color/icc/colord")
needs_colord = pytest.mark.skipif(
    not (COLORD / "AdobeRGB1998.icc").is_file(), reason="Debian's colord-data is not installed"
)


def _littlecms(image: np.ndarray, source: bytes, target: bytes) -> np.ndarray:
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(source)),
        ImageCms.ImageCmsProfile(io.BytesIO(target)),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    return np.asarray(ImageCms.applyTransform(Image.fromarray(image), transform)).astype(int)


@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", [n for n in NAMED_PROFILES if n != "srgb"])
def test_written_profiles_convert_as_littlecms_converts_them(name: str, colours) -> None:
    profile = named_profile(name)
    assert profile.icc is not None and not profile.is_working
    mine, clipped, lut = to_working(colours.astype(np.float32) / 255, profile, eight=True)
    reference = _littlecms(colours, profile.icc, WORKING.icc)
    assert not lut and 0 < clipped < 1  # random colours: some are outside sRGB
    assert np.abs(np.rint(mine * 255) - reference).max() <= 1  # LittleCMS's 8-bit rounding
    back = from_working(mine, profile)
    reference = _littlecms(np.rint(mine * 255).astype(np.uint8), WORKING.icc, profile.icc)
    assert np.abs(np.rint(back * 255) - reference).max() <= 2


@needs_colord
@pytest.mark.parametrize("name", ["AdobeRGB1998", "ProPhotoRGB", "Rec709", "WideGamutRGB"])
def test_real_profiles_are_read_exactly(name: str, colours) -> None:
    data = (COLORD / f"{name}.icc").read_bytes()
    profile = profile_from_icc(data)
    assert profile is not None and profile.colorimetry is not None and profile.icc == data
    mine = to_working(colours.astype(np.float32) / 255, profile, eight=True)[0]
    assert np.abs(np.rint(mine * 255) - _littlecms(colours, data, WORKING.icc)).max() <= 1


@needs_colord
def test_an_srgb_profile_is_the_working_space_and_converts_nothing(colours) -> None:
    profile = profile_from_icc((COLORD / "sRGB.icc").read_bytes())
    assert profile is not None and profile.is_working
    rgb = colours.astype(np.float32) / 255
    assert to_working(rgb, profile, eight=True)[0] is rgb


def test_sixteen_bit_conversion_keeps_the_precision_littlecms_lacks_here() -> None:
    p3 = named_profile("display-p3")
    ramp = np.linspace(0.2, 0.8, 4096, dtype=np.float32)[None, :, None].repeat(3, 2)
    ramp[..., 1] *= 0.9
    out = to_working(ramp, p3, eight=False)[0]
    assert len(np.unique(out[..., 1])) > 3000  # not quantised to 8 bits
    back = from_working(out, p3)
    assert np.abs(back - ramp).max() < 1e-4  # in gamut: an exact round trip


def test_curves_invert_and_parse_back() -> None:
    srgb = WORKING.colorimetry.curves[0]
    x = np.linspace(0, 1, 1001)
    assert np.abs(srgb.inverse(srgb.forward(x)) - x).max() < 1e-5
    for curve in (
        Curve("para", 0, (1.8,)),
        Curve("para", 4, (2.2, 0.9, 0.1, 0.05, 0.1, 0.0, 0.01)),
    ):
        assert np.abs(curve.inverse(curve.forward(x)) - x).max() < 1e-4
    table = Curve("table", table=tuple(np.linspace(0, 1, 17) ** 2))
    parsed = parse_matrix_trc(
        write_matrix_trc(
            WORKING.colorimetry.__class__(WORKING.colorimetry.matrix, (table, table, table))
        )
    )
    assert parsed.curves[0].kind == "table"
    assert np.abs(parsed.curves[0].forward(x) - x**2).max() < 0.01


def test_malformed_profiles_are_refused_not_trusted() -> None:
    good = named_profile("display-p3").icc
    for bad in (b"", b"x" * 200, good[:150], good[:36] + b"nope" + good[40:]):
        with pytest.raises(IccError):
            parse_matrix_trc(bad)
        assert profile_from_icc(bad) is None
    lying = bytearray(good)
    lying[128:132] = (10**6).to_bytes(4, "big")  # a tag count past the end
    with pytest.raises(IccError):
        parse_matrix_trc(bytes(lying))


def test_png_chunks_declare_their_space() -> None:
    notes: list[str] = []
    p3 = profile_from_png({}, bytes([12, 13, 0, 1]), notes, "x.png")
    assert p3 is not None and "Display P3" in p3.name
    assert p3.colorimetry.same_as(named_profile("display-p3").colorimetry)
    assert profile_from_png({"srgb": 0}, None, notes, "x.png") is None
    assert profile_from_png({"gamma": 1 / 2.2}, None, notes, "x.png") is None  # sRGB in practice
    linear = profile_from_png({"gamma": 1.0}, None, notes, "x.png")
    assert linear is not None and linear.colorimetry.curves[0].is_identity()
    assert profile_from_png({}, bytes([9, 16, 0, 1]), notes, "x.png") is None  # PQ: HDR
    assert notes and "cICP" in notes[0]


def test_output_profiles_by_name_or_file(tmp_path: Path) -> None:
    assert output_profile("source") is None
    assert output_profile("srgb") is WORKING
    path = tmp_path / "p3.icc"
    path.write_bytes(named_profile("display-p3").icc)
    assert output_profile(str(path)).colorimetry is not None
    (tmp_path / "junk.icc").write_bytes(b"junk")
    for bad in ("nope", str(tmp_path / "junk.icc"), str(tmp_path)):
        with pytest.raises(UsageError):
            output_profile(bad)
