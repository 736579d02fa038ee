r"""Tests of .cube/.csp LUTs read back by FFmpeg's lut3d and OpenColorIO (otcolor.bench.lutcheck),
and of the shaper (otcolor.io.shaper) that lets a 33-point table follow a look that bends.

Both readers are required here: a missing ffmpeg or PyOpenColorIO (the ``test`` extra) fails
these tests instead of skipping them, so CI cannot pass without checking the files they read.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import PyOpenColorIO  # noqa: F401  (required: ImportError fails the module, never a skip)
import pytest
import torch
from typer.testing import CliRunner

from otcolor.bench.lutcheck import agreement, apply_ffmpeg, apply_ocio
from otcolor.cli import app
from otcolor.color import apply_look
from otcolor.io.lut import (
    check_lut,
    choose_shaper,
    fit_lut,
    interpolation_matrix,
    write_csp,
    write_cube,
)
from otcolor.io.shaper import (
    IDENTITY,
    SHAPER_SIDES,
    SHAPER_STRENGTHS,
    DensityShaper,
    Shaper,
    natural_colours,
)
from otcolor.look import Look

READERS = {"ffmpeg": apply_ffmpeg, "ocio": apply_ocio}
runner = CliRunner()


class Bend(torch.nn.Module):
    r"""Red lifted steeply out of black, like the default ocean look (output red climbs
    from 87 to 171 of 255 while input red goes from 0 to 15), then flat; green and blue mixed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x.unbind(-1)
        red = 0.3 + 0.6 * (1 - torch.exp(-25 * r)) + 0.1 * r
        return torch.stack([red, 0.8 * g + 0.1 * b, 0.2 * r + 0.7 * b], -1)


class Band(torch.nn.Module):
    r"""Red steep in the middle, like the chelsea → rocket look (gain 14 where input red is
    near 0.7, flat either side); green and blue mixed linearly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x.unbind(-1)
        red = 0.45 + 0.35 * torch.tanh(40 * (r - 0.7)) + 0.1 * g
        return torch.stack([red, 0.8 * g + 0.1 * b, 0.2 * r + 0.7 * b], -1)


class Affine(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.tensor([[0.8, 0.1, 0.0], [0.05, 0.7, 0.1], [0.0, 0.2, 0.6]])
        return x @ m.T + torch.tensor([0.05, 0.1, 0.2])


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    # Random 8-bit colours, a third of them dark in red, where the bend is.
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 64, 3))
    rgb[::3, :, 0] = rng.integers(0, 24, rgb[::3, :, 0].shape)
    return rgb.astype(np.uint8)


@pytest.fixture(scope="module")
def bend_luts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("readers")
    look = Look(Bend())
    shaper = choose_shaper(look, 33, points=20_000)
    paths = {"cube": tmp / "bend.cube", "csp": tmp / "bend.csp"}
    write_cube(paths["cube"], fit_lut(look, 33, points=65))
    write_csp(paths["csp"], fit_lut(look, 33, points=65, shaper=shaper), shaper, "bend")
    return paths


def require_ffmpeg() -> None:
    if os.environ.get("OTCOLOR_NO_FFMPEG") == "1" and not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed, and OTCOLOR_NO_FFMPEG=1 opts out of it")
    assert shutil.which("ffmpeg"), (
        "ffmpeg is required for the LUT reader tests (apt install ffmpeg)"
    )


# The shaper


def test_shaper_is_monotone_and_inverts() -> None:
    shaper = Shaper((30.0, 0.0, 10.0), ("dark", "dark", "bright"))
    _, out = shaper.curves()
    assert out[0].tolist() == [0, 0, 0] and out[-1].tolist() == [1, 1, 1]
    assert (np.diff(out, axis=0) > 0).all()
    colours = np.random.default_rng(0).random((1000, 3))
    np.testing.assert_allclose(shaper.inverse(shaper(colours)), colours, atol=1e-9)
    np.testing.assert_allclose(IDENTITY(colours), colours)
    assert shaper(np.array([[0.1, 0.1, 0.1]]))[0, 0] > 0.4  # dense near black in red
    assert shaper(np.array([[0.9, 0.9, 0.9]]))[0, 2] < 0.9  # dense near white in blue


def test_shaper_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Shaper((-1.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        Shaper(sides=("dark", "up", "dark"))


def test_density_shaper_is_monotone_inverts_and_dense_where_asked() -> None:
    shaper = DensityShaper(density=((1.0, 4.0, 1.0), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0)))
    x, out = shaper.curves()
    assert out[0].tolist() == [0, 0, 0] and out[-1].tolist() == [1, 1, 1]
    assert (np.diff(out, axis=0) > 0).all()
    colours = np.random.default_rng(0).random((1000, 3))
    np.testing.assert_allclose(shaper.inverse(shaper(colours)), colours, atol=1e-9)
    slope = np.gradient(out, x, axis=0)
    assert slope[len(x) // 2, 0] > 2 * slope[len(x) // 8, 0]  # red dense in the middle
    np.testing.assert_allclose(out[:, 1], x, atol=1e-12)  # an even density: the identity
    assert not shaper.is_identity and DensityShaper(density=((2.0,) * 3,) * 3).is_identity
    with pytest.raises(ValueError):
        DensityShaper(density=((1.0, 0.0), (1.0, 1.0), (1.0, 1.0)))


def test_natural_colours_lie_near_the_grey_axis() -> None:
    colours = natural_colours(20_000)
    assert colours.shape == (20_000, 3) and colours.min() >= 0 and colours.max() <= 1
    chroma = colours.max(1) - colours.min(1)
    assert 0.6 < np.mean(chroma < 0.3) < 0.85  # most near grey, a quarter anywhere
    assert np.array_equal(natural_colours(100, seed=3), natural_colours(100, seed=3))


def test_choose_shaper_finds_the_bend_and_leaves_an_affine_map_alone() -> None:
    bend = choose_shaper(Look(Bend()), 33, points=20_000)
    x, out = bend.curves()
    slope = np.gradient(out[:, 0], x)
    assert slope[: len(x) // 50].mean() > 2 * slope[len(x) // 2]  # red dense near black
    assert choose_shaper(Look(Affine()), 33, points=20_000).is_identity


def test_choose_shaper_follows_a_bend_in_the_middle_of_a_channel() -> None:
    shaper = choose_shaper(Look(Band()), 33, points=20_000)
    assert isinstance(shaper, DensityShaper)
    x, out = shaper.curves()
    slope = np.gradient(out, x, axis=0)
    assert slope[int(0.7 * len(x)), 0] > 2 * slope[int(0.2 * len(x)), 0]
    np.testing.assert_allclose(out[:, 1:], np.stack([x, x], 1), atol=1e-3)  # no bend there


def test_csp_extension_and_sizes() -> None:
    assert check_lut("look.csp") == ("csp", 33)
    assert check_lut("look.csp", size=65) == ("csp", 65)


# The readers compute what otcolor fitted


@pytest.mark.parametrize("reader", READERS)
def test_readers_compute_what_otcolor_fitted(
    reader: str, bend_luts: dict[str, Path], image: np.ndarray
) -> None:
    if reader == "ffmpeg":
        require_ffmpeg()
    text = bend_luts["csp"].read_text().split("\n")
    knots = int(text[text.index("END METADATA") + 2])
    grid = np.array(text[text.index("END METADATA") + 3].split(), float)
    out = np.stack(
        [np.array(text[text.index("END METADATA") + 4 + 3 * c].split(), float) for c in range(3)],
        1,
    )
    assert knots == len(grid) == len(out)
    rows = np.loadtxt(text[text.index("33 33 33") + 1 :])
    shaped = np.stack(
        [np.interp(image.reshape(-1, 3)[:, c] / 255, grid, out[:, c]) for c in range(3)], 1
    )
    ours = interpolation_matrix(shaped, 33, "tetrahedral") @ rows
    ours = np.clip(np.round(ours * 255), 0, 255).astype(np.uint8).reshape(image.shape)
    # FFmpeg truncates its 8-bit output (and steps through the shaper's knots): within 1/255.
    theirs = READERS[reader](bend_luts["csp"], image)
    assert agreement(theirs, ours)["max"] <= 1


@pytest.mark.parametrize("reader", READERS)
def test_csp_reproduces_a_bent_look_at_33_points(
    reader: str, bend_luts: dict[str, Path], image: np.ndarray
) -> None:
    if reader == "ffmpeg":
        require_ffmpeg()
    pure = apply_look(Look(Bend()), image, as_uint8=True)
    shaped = agreement(READERS[reader](bend_luts["csp"], image), pure)
    plain = agreement(READERS[reader](bend_luts["cube"], image), pure)
    assert shaped["within_2"] >= 0.99 and shaped["p99"] <= 2, shaped
    # Without the shaper the same 33 points cannot follow the bend: the reason for .csp.
    assert plain["within_2"] < shaped["within_2"] and plain["p99"] > 2, plain


@pytest.fixture(scope="module")
def band_image(image: np.ndarray) -> np.ndarray:
    # A third of the pixels where the band look is steep (red 150 to 210 of 255).
    rgb = image.copy()
    rgb[1::3, :, 0] = np.random.default_rng(2).integers(150, 210, rgb[1::3, :, 0].shape)
    return rgb


@pytest.mark.parametrize("reader", READERS)
def test_csp_reproduces_a_look_steep_mid_channel_at_33_points(
    reader: str, tmp_path: Path, band_image: np.ndarray
) -> None:
    if reader == "ffmpeg":
        require_ffmpeg()
    look = Look(Band())
    shaper = choose_shaper(look, 33, points=20_000)
    path = tmp_path / "band.csp"
    write_csp(path, fit_lut(look, 33, points=65, shaper=shaper), shaper)
    result = agreement(
        READERS[reader](path, band_image), apply_look(look, band_image, as_uint8=True)
    )
    assert result["within_2"] >= 0.99 and result["p99"] <= 2, result


def test_no_log_shaper_follows_a_bend_in_the_middle_of_a_channel(band_image: np.ndarray) -> None:
    # Log curves are dense at an end of the channel; the band look bends in its middle.
    look = Look(Band())
    pure = apply_look(look, band_image, as_uint8=True)
    colours = band_image.reshape(-1, 3) / 255
    for a in SHAPER_STRENGTHS:
        for side in SHAPER_SIDES:
            log = Shaper((a, 0.0, 0.0), (side, "dark", "dark"))
            read = interpolation_matrix(log(colours), 33, "tetrahedral")
            table = fit_lut(look, 33, points=65, shaper=log).reshape(-1, 3)
            ours = np.clip(np.round(read @ table * 255), 0, 255).astype(np.uint8)
            assert agreement(ours.reshape(pure.shape), pure)["within_2"] < 0.97, (a, side)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["cube", "csp"])
def test_affine_look_is_exact_in_both_readers(
    reader: str, fmt: str, tmp_path: Path, image: np.ndarray
) -> None:
    if reader == "ffmpeg":
        require_ffmpeg()
    look = Look(Affine())
    path = tmp_path / f"affine.{fmt}"
    table = fit_lut(look, 9, points=33)
    if fmt == "cube":
        write_cube(path, table)
    else:
        write_csp(path, table, IDENTITY)
    result = agreement(READERS[reader](path, image), apply_look(look, image, as_uint8=True))
    assert result["max"] <= 1  # FFmpeg truncates where otcolor rounds


def test_cli_writes_a_csp_that_both_readers_load(tmp_path: Path, image: np.ndarray) -> None:
    require_ffmpeg()
    from PIL import Image

    rng = np.random.default_rng(0)
    src, tgt = tmp_path / "src.png", tmp_path / "tgt.png"
    Image.fromarray(image).save(src)
    Image.fromarray(rng.integers(60, 200, (32, 32, 3)).astype(np.uint8)).save(tgt)
    look = tmp_path / "look.otmap"
    fit = runner.invoke(
        app,
        [
            "transfer",
            str(src),
            str(tgt),
            "-o",
            str(tmp_path / "out.png"),
            "--save-map",
            str(look),
            "--steps",
            "5",
            "--samples",
            "2000",
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert fit.exit_code == 0, fit.output
    csp = tmp_path / "look.csp"
    result = runner.invoke(app, ["lut", str(look), "-o", str(csp), "--size", "9", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "csp"
    assert csp.read_text().startswith("CSPLUTV100\n3D\n")
    for reader in READERS.values():
        assert reader(csp, image).shape == image.shape


def test_flat_noise_measures_grain_added_in_flat_areas() -> None:
    from otcolor.bench.lutcheck import flat_noise

    rng = np.random.default_rng(0)
    ramp = np.repeat(np.linspace(0, 1, 96)[None, :, None], 96, 0).repeat(3, 2) * 0.8
    image = ramp + 0.01 * rng.standard_normal(ramp.shape)
    image[:48, :48] = 0.5 + 0.01 * rng.standard_normal((48, 48, 3))  # the flat quarter
    assert flat_noise(image, image) == pytest.approx(1.0)
    stretched = image.copy()
    stretched[:48, :48] = 0.5 + 3 * (image[:48, :48] - 0.5)  # a LUT steep around grey
    assert flat_noise(image, stretched) == pytest.approx(3.0, rel=0.05)
    stretched_ramp = image.copy()
    stretched_ramp[48:] = 3 * image[48:]  # steep elsewhere only: the flat blocks keep it
    assert flat_noise(image, stretched_ramp) == pytest.approx(1.0, rel=0.05)
