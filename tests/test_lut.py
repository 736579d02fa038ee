r"""Tests of otcolor.io.lut: .cube ordering and parsing, trilinear fidelity, HaldCLUT, ffmpeg."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.color import apply_look
from otcolor.errors import UsageError
from otcolor.io import load_image
from otcolor.io.lut import (
    bake_lut,
    check_lut,
    export_lut,
    fit_lut,
    interpolation_matrix,
    read_cube,
)
from otcolor.io.mapfile import load_map
from otcolor.look import Look

runner = CliRunner()
FAST = ["--steps", "10", "--samples", "2000", "--device", "cpu"]


class Swap(torch.nn.Module):
    """R <-> B: catches a transposed table, which identity or grey maps cannot."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1)


def trilinear(table: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """A reader written for the test: trilinear interpolation in a [b, g, r] table."""
    n = table.shape[0]
    x = rgb.reshape(-1, 3).astype(np.float64) * (n - 1)
    i = np.minimum(np.floor(x).astype(int), n - 2)
    f = x - i
    out = np.zeros_like(x)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = np.prod([f[:, k] if d else 1 - f[:, k] for k, d in enumerate((dr, dg, db))], 0)
                out += w[:, None] * table[i[:, 2] + db, i[:, 1] + dg, i[:, 0] + dr]
    return out.reshape(rgb.shape)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A source photo-like PNG, the transfer's output and its saved map."""
    tmp = tmp_path_factory.mktemp("lut")
    yy, xx = np.mgrid[0:60, 0:80] / 80.0
    rng = np.random.default_rng(0)
    src = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.3 * xx * yy], -1)
    src = np.clip(src + 0.02 * rng.standard_normal(src.shape), 0, 1)
    tgt = rng.uniform([0.5, 0.2, 0.1], [0.95, 0.6, 0.4], (60, 80, 3))
    paths = tmp / "src.png", tmp / "tgt.png", tmp / "out.png", tmp / "look.otmap"
    for path, img in zip(paths[:2], (src, tgt), strict=True):
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    # --no-regrain: a LUT holds a colour function, so it is checked against the pure map.
    args = [
        "transfer",
        str(paths[0]),
        str(paths[1]),
        "-o",
        str(paths[2]),
        "--no-regrain",
        "--save-map",
        str(paths[3]),
        *FAST,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return paths[0], paths[2], paths[3]


def test_cube_order_is_red_fastest(tmp_path: Path) -> None:
    path = tmp_path / "swap.cube"
    export_lut(Look(Swap()), path, 5)
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "LUT_3D_SIZE 5" and len(lines) == 1 + 125
    rows = np.loadtxt(lines[1:])
    assert np.allclose(rows[1], [0, 0, 0.25])  # index 1 is r = 0.25: swapped into blue
    assert np.allclose(rows[5], [0, 0.25, 0])  # index 5 is g = 0.25
    assert np.allclose(rows[25], [0.25, 0, 0])  # index 25 is b = 0.25: swapped into red
    table = read_cube(path)
    assert np.allclose(table[1, 2, 3], [0.25, 0.5, 0.75])  # [b, g, r] = (0.25, 0.5, 0.75)


def test_trilinear_reader_reproduces_otcolor(
    fitted: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, output, map_file = fitted
    path = tmp_path / "look.cube"
    result = runner.invoke(app, ["lut", str(map_file), "-o", str(path), "--size", "33"])
    assert result.exit_code == 0, result.stderr
    table = read_cube(path)
    assert table.shape == (33, 33, 33, 3) and table.min() >= 0 and table.max() <= 1
    rgb = np.asarray(Image.open(source), np.float64) / 255
    ours = np.asarray(Image.open(output)).astype(int)
    lut = np.round(trilinear(table, rgb) * 255).astype(int)
    close = np.abs(lut - ours).max(-1) <= 2
    assert close.mean() >= 0.99


def test_hald_holds_the_table(fitted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, map_file = fitted
    path = tmp_path / "look.png"
    result = runner.invoke(
        app, ["lut", str(map_file), "-o", str(path), "--format", "hald", "--size", "16"]
    )
    assert result.exit_code == 0, result.stderr
    hald = load_image(path)
    assert hald.size == (64, 64) and hald.bit_depth == 16
    table = fit_lut(load_map(map_file).look, 16)
    assert np.abs(hald.rgb.reshape(16, 16, 16, 3) - table).max() <= 0.5 / 65535 + 1e-7


class Affine(torch.nn.Module):
    """An affine map that stays inside the cube, so no clipping bends it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.6, 0.1], [0.1, 0.0, 0.4]])
        return x @ a.T + torch.tensor([0.1, 0.2, 0.3])


class Curved(torch.nn.Module):
    """Squares of convex mixtures of the channels: curved everywhere, inside the cube."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]])
        return 0.1 + 0.8 * (x @ mix.T) ** 2


@pytest.mark.parametrize("kind", ["tetrahedral", "trilinear"])
def test_interpolation_matrix_reads_affine_tables_exactly(kind: str) -> None:
    look = Look(Affine())
    table = bake_lut(look, 5).reshape(-1, 3).astype(np.float64)
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(0, 1, (500, 3)), np.eye(3), np.ones((1, 3))])
    read = interpolation_matrix(points, 5, kind)
    assert np.allclose(np.asarray(read.sum(1)).ravel(), 1.0)
    assert (
        read.shape == (len(points), 125)
        and (read.getnnz(1) <= {"tetrahedral": 4, "trilinear": 8}[kind]).all()
    )
    assert np.abs(read @ table - look(points.astype(np.float32))).max() < 1e-5
    if kind == "trilinear":  # the same reader as the test's own
        assert np.allclose(read @ table, trilinear(table.reshape(5, 5, 5, 3), points))


def test_fitted_lut_is_exact_for_affine_maps_and_closer_for_curved_ones() -> None:
    affine = Look(Affine())
    assert np.abs(fit_lut(affine, 5, points=33) - bake_lut(affine, 5)).max() < 1e-5
    look = Look(Curved())
    points = np.random.default_rng(2).uniform(0, 1, (20000, 3)).astype(np.float32)
    exact = look(points)
    for kind in ("tetrahedral", "trilinear"):
        read = interpolation_matrix(points, 9, kind)
        errors = {
            name: np.sqrt(((read @ t.reshape(-1, 3) - exact) ** 2).mean())
            for name, t in (("nodes", bake_lut(look, 9)), ("fit", fit_lut(look, 9, points=49)))
        }
        assert errors["fit"] < 0.6 * errors["nodes"], errors


def test_bad_lut_requests() -> None:
    with pytest.raises(UsageError):
        check_lut("look.txt")
    with pytest.raises(UsageError):
        check_lut("look.cube", "hald")
    with pytest.raises(UsageError):
        check_lut("look.png", "hald", 33)  # not a square
    with pytest.raises(UsageError):
        check_lut("look.cube", None, 300)
    assert check_lut("look.cube") == ("cube", 33)
    assert check_lut("look.png") == ("hald", 64)
    with pytest.raises(UsageError):
        export_lut(Look(Swap()), "look.cube", 5, method="spline")


def test_transfer_writes_the_lut_too(fitted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, _, _ = fitted
    cube = tmp_path / "t.cube"
    args = [
        "transfer",
        str(source),
        str(source),
        "-o",
        str(tmp_path / "o.png"),
        "--lut",
        str(cube),
        "--lut-size",
        "17",
        *FAST,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert read_cube(cube).shape == (17, 17, 17, 3)


@pytest.mark.usefixtures("ffmpeg")  # fails without ffmpeg (conftest)
def test_ffmpeg_lut3d_reproduces_otcolor(fitted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, output, map_file = fitted
    cube, via_ffmpeg = tmp_path / "look.cube", tmp_path / "ffmpeg.png"
    assert runner.invoke(app, ["lut", str(map_file), "-o", str(cube)]).exit_code == 0
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-vf",
            f"lut3d=file={cube}",
            "-pix_fmt",
            "rgb24",
            str(via_ffmpeg),
        ],
        check=True,
    )
    theirs = np.asarray(Image.open(via_ffmpeg).convert("RGB")).astype(int)
    ours = np.asarray(Image.open(output)).astype(int)
    assert (np.abs(theirs - ours).max(-1) <= 2).mean() >= 0.99
    # and otcolor's own route agrees with the saved output exactly
    look = load_map(map_file).look
    again = apply_look(look, np.asarray(Image.open(source)), as_uint8=True)
    assert np.array_equal(again, ours)
