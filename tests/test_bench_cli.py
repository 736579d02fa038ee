r"""Tests of ``otcolor bench``: JSON output, files in --out, tables, option errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app

runner = CliRunner()
FAST = ["--steps", "3", "--device", "cpu"]


def invoke(*args: str):
    return runner.invoke(app, ["bench", *args])


def test_gaussian_json_is_one_object_with_every_model(tmp_path: Path) -> None:
    result = invoke("gaussian", "--model", "all", "--loss", "kl", "--dim", "3", "--json", *FAST)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["benchmark"] == "gaussian"
    assert [r["model"] for r in payload["results"]] == ["cmgn", "mmgn", "icnn"]
    for row in payload["results"]:
        assert {"model", "loss", "seconds", "l2_uvp", "cos", "w2", "steps_to_1pct"} <= set(row)
    assert payload["config"]["dim"] == 3


@pytest.fixture
def small_gmm(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default 3000-point exact OT problems take seconds each; 200 points test the same path.
    import functools

    from otcolor.bench import gmm

    small = functools.partial(gmm.GMMBenchConfig, train_samples=1000, eval_samples=200)
    monkeypatch.setattr(gmm, "GMMBenchConfig", small)


def test_gmm_table_and_out_folder(tmp_path: Path, small_gmm: None) -> None:
    out = tmp_path / "bench"
    result = invoke("gmm", "--model", "cmgn", "--loss", "sliced", "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert "w2_ratio" in result.stdout and "bures" in result.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == ["gmm.json", "gmm.md", "gmm_baselines.png", "gmm_sliced.png"]
    assert json.loads((out / "gmm.json").read_text())["results"][0]["model"] == "cmgn"
    # A second run without --force refuses to overwrite, before any training.
    again = invoke("gmm", "--model", "cmgn", "--loss", "sliced", "--out", str(out), *FAST)
    assert again.exit_code == 2 and "--force" in again.stderr
    forced = invoke("gmm", "--model", "cmgn", "--loss", "sliced", "--out", str(out), "--force",
                    "--json", *FAST)  # fmt: skip
    assert forced.exit_code == 0 and json.loads(forced.stdout)["files"][0] == "gmm.json"


def test_pixels_on_given_images_with_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for name, low, high in (("a.png", 0.0, 0.6), ("b.png", 0.4, 1.0)):
        path = tmp_path / name
        Image.fromarray((rng.uniform(low, high, (12, 16, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    result = invoke("pixels", *paths, "--model", "mmgn", "--loss", "kl", "--json", *FAST)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["benchmark"] == "pixels"
    assert [r["model"] for r in payload["baselines"]] == ["mkl", "emd"]
    assert {"w2_ratio", "amp999", "violations"} <= set(payload["results"][0])


@pytest.mark.parametrize(
    "args",
    [
        ["gaussian", "--model", "mlp"],
        ["gaussian", "--loss", "ot"],  # the exact-OT loss is for pixels only
        ["gaussian", "--dim", "0"],
        ["gaussian", "--dim", "1000"],
        ["gmm", "--steps", "0"],
        ["pixels", "only_one_image.png"],
    ],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output


def test_pixels_needs_both_images_or_none(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    result = invoke("pixels", str(path), *FAST)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and len(result.stderr.strip().splitlines()) == 1
