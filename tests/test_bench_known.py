r"""Tests of otcolor.bench.maps and otcolor.bench.known: Brenier maps inside the cube, scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.bench.known import KnownBenchConfig, make_pair, psnr, run_known
from otcolor.bench.maps import FAMILIES, draw_map
from otcolor.cli import app
from otcolor.errors import UsageError


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_maps_are_monotone_gradients_inside_the_cube(family: str, seed: int) -> None:
    known = draw_map(family, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.02, 0.98, (200, 3))
    y = known(np.concatenate([x, np.eye(3), np.zeros((1, 3)), np.ones((1, 3))]))
    assert (y >= 0).all() and (y <= 1).all()  # clipping would break the Brenier property
    # Central differences: the Jacobian of a convex function's gradient is symmetric PSD.
    h = 1e-5
    for point in x[:20]:
        J = np.stack([(known((point + h * e)[None]) - known((point - h * e)[None]))[0] / (2 * h)
                      for e in np.eye(3)], 1)  # fmt: skip
        assert np.allclose(J, J.T, atol=1e-5)
        assert np.linalg.eigvalsh((J + J.T) / 2).min() > -1e-6


def test_psnr_of_known_errors() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # one error of 16 levels in 48 values
    scores = psnr(b, a)
    assert np.isclose(scores["rmse"], np.sqrt(256 / 48))
    assert np.isclose(scores["psnr"], 10 * np.log10(255**2 * 48 / 256))


def _tiny_photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:32] / 32
    img = (
        np.stack([xx, yy, 0.5 * (xx + yy)], -1) * 0.8
        + 0.1
        + 0.03 * rng.standard_normal((24, 32, 3))
    )
    path = tmp_path / "tiny.png"
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def test_run_known_scores_otcolor_and_baselines(tmp_path: Path) -> None:
    photo = str(_tiny_photo(tmp_path))
    config = KnownBenchConfig(photos=(photo,), families=("scurve",), baselines=("mkl",), steps=20,
                              plan=False, device="cpu")  # fmt: skip
    report = run_known("cmgn", config)
    rows = report.reference["pairs"]
    assert [r["method"] for r in rows] == ["cmgn", "mkl"]
    assert all(r["psnr"] > 20 for r in rows)
    assert report.results[0].metrics["pairs"] == 1
    assert "tiny/scurve" in report.notes
    target = make_pair(np.asarray(Image.open(photo)), "scurve", rows[0]["map_seed"])
    assert target.dtype == np.uint8 and target.shape == (24, 32, 3)


def test_known_config_errors() -> None:
    with pytest.raises(UsageError):
        KnownBenchConfig(families=("nope",))
    with pytest.raises(UsageError):
        KnownBenchConfig(baselines=("nope",))


def test_bench_known_cli_json(tmp_path: Path) -> None:
    photo = str(_tiny_photo(tmp_path))
    result = CliRunner().invoke(app, ["bench", "known", "--photo", photo, "--family", "palette",
                                      "--steps", "5", "--no-plan", "--device", "cpu", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["benchmark"] == "known"
    methods = [r["model"] for r in payload["results"] + payload["baselines"]]
    assert methods[0] == "cmgn" and "mkl" in methods


def test_report_files_keep_a_file_that_appeared_during_the_run(tmp_path: Path) -> None:
    from otcolor.bench.files import save_report

    photo = str(_tiny_photo(tmp_path))
    config = KnownBenchConfig(photos=(photo,), families=("scurve",), baselines=(), steps=3,
                              plan=False, device="cpu")  # fmt: skip
    report = run_known("cmgn", config)
    out = tmp_path / "out"
    out.mkdir()
    (out / "known.md").write_text("someone else's")  # created after the --out check passed
    with pytest.raises(UsageError):
        save_report(report, out, "known", overwrite=False)
    assert (out / "known.md").read_text() == "someone else's"
    assert sorted(p.name for p in out.iterdir()) == ["known.md"]  # nothing partial left
    save_report(report, out, "known", overwrite=True)
    assert "cmgn" in (out / "known.md").read_text()
