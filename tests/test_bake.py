r"""Tests of otcolor.bake and ``transfer --lut``: a regrained look's LUT is the colour function
closest to its approved still; the pure map's LUT stays one flag away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.io import load_image
from otcolor.io.lut import read_cube, read_table
from otcolor.io.mapfile import load_map

runner = CliRunner()
FAST = ["--steps", "8", "--samples", "3000", "--device", "cpu"]


def _photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    base = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.4 + 0.3 * xx * yy], -1)
    noisy = np.clip(
        base @ rng.uniform(0.5, 1, (3, 3)) / 1.6 + 0.02 * rng.standard_normal(base.shape), 0, 1
    )
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(path)
    return path


def _read(cube: Path, image: np.ndarray) -> np.ndarray:
    return read_table(read_cube(cube), image.reshape(-1, 3)).reshape(image.shape)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bake")
    source, target = _photo(root / "s.png", 0), _photo(root / "t.png", 5)
    files = {"source": source, "still": root / "still.png", "map": root / "m.otmap",
             "lut": root / "transfer.cube"}  # fmt: skip
    args = ["transfer", str(source), str(target), "-o", str(files["still"]), "--save-map",
            str(files["map"]), "--lut", str(files["lut"]), *FAST]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    return files


def test_transfer_writes_the_approved_stills_lut(made: dict[str, Path]) -> None:
    assert "approved still" in made["lut"].read_text().splitlines()[1]


def test_lut_with_source_is_closer_to_the_still_than_the_pure_map(
    made: dict[str, Path], tmp_path: Path
) -> None:
    still, source = load_image(made["still"]).rgb, load_image(made["source"]).rgb
    results = {}
    for name, extra in (("still", ["--source", str(made["source"])]), ("pure", ["--pure"])):
        out = tmp_path / f"{name}.cube"
        result = runner.invoke(app, ["lut", str(made["map"]), "-o", str(out), "--json", *extra])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["method"] == ("still" if name == "still" else "fit")
        results[name] = np.abs(_read(out, source) - still).mean()
    assert results["still"] < 0.8 * results["pure"]
    # The same table from the library through transfer --lut and through lut --source.
    assert np.allclose(read_cube(tmp_path / "still.cube"), read_cube(made["lut"]), atol=2e-6)


def test_lut_without_source_bakes_the_still_the_map_keeps(
    made: dict[str, Path], tmp_path: Path
) -> None:
    # transfer --save-map keeps the approved still's table: lut bakes it without the source.
    out = tmp_path / "kept.cube"
    result = runner.invoke(app, ["lut", str(made["map"]), "-o", str(out), "--json"])
    assert json.loads(result.stdout)["method"] == "still"
    assert np.allclose(read_cube(out), read_cube(made["lut"]), atol=2e-6)
    # At 17 points it is the same colour function, read at other nodes.
    result = runner.invoke(app, ["lut", str(made["map"]), "-o", str(tmp_path / "17.cube"),
                                 "--size", "17"])  # fmt: skip
    assert result.exit_code == 0, result.output
    source = load_image(made["source"]).rgb
    assert np.abs(_read(tmp_path / "17.cube", source) - _read(out, source)).mean() < 1 / 255


def test_lut_at_another_strength_without_source_says_what_it_holds(
    made: dict[str, Path], tmp_path: Path
) -> None:
    args = ["lut", str(made["map"]), "-o", str(tmp_path / "l.cube"), "--strength", "0.5"]
    payload = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert payload["method"] == "fit" and "--source" in payload["warnings"][0]


def test_a_pure_map_file_keeps_no_still(tmp_path: Path) -> None:
    source, target = _photo(tmp_path / "s.png", 0), _photo(tmp_path / "t.png", 5)
    path = tmp_path / "pure.otmap"
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), "--save-map",
            str(path), "--no-regrain", *FAST]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    assert load_map(path).still is None


def test_a_source_that_is_not_the_fitted_one_or_not_used_is_said(
    made: dict[str, Path], tmp_path: Path
) -> None:
    other = _photo(tmp_path / "other.png", 9)
    args = [
        "lut",
        str(made["map"]),
        "-o",
        str(tmp_path / "o.cube"),
        "--force",
        "--json",
        "--source",
    ]
    payload = json.loads(runner.invoke(app, [*args, str(other)]).stdout)
    assert payload["method"] == "still" and "not the image" in payload["warnings"][0]
    payload = json.loads(runner.invoke(app, [*args, str(made["source"])]).stdout)
    assert payload["warnings"] == []  # the image it was fitted on
    payload = json.loads(runner.invoke(app, [*args, str(made["source"]), "--pure"]).stdout)
    assert payload["method"] == "fit" and "--source is not used" in payload["warnings"][0]


@pytest.mark.parametrize("name", ["kept.csp", "kept.png"])
def test_the_kept_still_bakes_into_every_format(
    made: dict[str, Path], tmp_path: Path, name: str
) -> None:
    result = runner.invoke(app, ["lut", str(made["map"]), "-o", str(tmp_path / name), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["method"] == "still" and payload["size"] == (33 if name.endswith("csp") else 64)
