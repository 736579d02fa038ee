r"""Tests of otcolor.preview and ``otcolor preview``: one sheet, one fit per setting, numbers."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.errors import UsageError
from otcolor.preview import PreviewConfig, preview, smoothest_window

runner = CliRunner()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("preview")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    src = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.6 - 0.3 * xx], -1)
    src[:, 40:] = src[:, 40:] + 0.05 * rng.standard_normal(src[:, 40:].shape)  # busy right half
    tgt = rng.uniform([0.5, 0.2, 0.1], [0.95, 0.6, 0.4], (40, 40, 3))
    paths = tmp / "src.png", tmp / "tgt.png"
    for path, img in zip(paths, (src, tgt), strict=True):
        Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return paths


def test_preview_writes_one_labelled_sheet(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    calls: list[tuple[int, int, float]] = []
    result = preview(
        *pair,
        out,
        PreviewConfig(smoothness=(0.0, 8.0), steps=3, size=48),
        callback=lambda *a: calls.append(a),
    )
    assert calls == [(1, 2, 0.0), (2, 2, 8.0)]  # one fit per setting
    assert [s.smoothness for s in result.settings] == [0.0, 8.0]
    for s in result.settings:
        assert np.isfinite(s.sliced_w2) and s.sliced_w2 >= 0 and s.amp999 >= 0
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width > sheet.height / 2
    assert result.size == (48, 36)
    assert not list(tmp_path.glob(".*"))  # atomic: no temporary file left


def test_zoom_finds_the_smooth_half() -> None:
    rng = np.random.default_rng(0)
    image = np.full((40, 80, 3), 128, np.uint8)
    image[:, :40] = rng.integers(0, 256, (40, 40, 3))  # noisy left half
    top, left = smoothest_window(image, 16)
    assert left >= 40 and 0 <= top <= 24


def test_bad_requests_are_usage_errors(pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        PreviewConfig(smoothness=())
    with pytest.raises(UsageError):
        PreviewConfig(smoothness=(-1.0,))
    with pytest.raises(UsageError):
        preview(*pair, tmp_path / "sheet.jpg", PreviewConfig(steps=1, size=32))


def test_cli_json_and_comma_list(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    args = [
        "preview",
        str(pair[0]),
        str(pair[1]),
        "-o",
        str(out),
        "--smoothness",
        "0,4",
        "--steps",
        "2",
        "--size",
        "40",
        "--no-regrain",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [s["smoothness"] for s in payload["settings"]] == [0.0, 4.0]
    assert payload["regrain"] is False and out.exists()
    again = runner.invoke(app, args)  # the sheet exists now: --force is needed
    assert again.exit_code == 2
    bad = runner.invoke(app, [*args[:5], "--smoothness", "soft", "--force"])
    assert "smoothness" in bad.output
    assert bad.exit_code == 2
