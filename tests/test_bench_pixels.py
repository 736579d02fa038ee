r"""Tests of the pixel benchmark: a short run on tiny images with both baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from otcolor.bench.pixels import PixelsBenchConfig, resolve_pair, run_pixels, score_output
from otcolor.errors import UsageError


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    y, x = np.mgrid[0:20, 0:30] / np.array([19.0, 29.0])[:, None, None]
    warm = np.stack([0.6 + 0.4 * x, 0.3 + 0.3 * y, 0.1 + 0.1 * x * y], axis=-1)
    cool = np.random.default_rng(0).uniform([0.0, 0.2, 0.5], [0.3, 0.6, 1.0], (20, 30, 3))
    source, target = tmp_path / "source.png", tmp_path / "target.png"
    Image.fromarray(np.round(warm * 255).astype(np.uint8)).save(source)
    Image.fromarray(np.round(cool * 255).astype(np.uint8)).save(target)
    return source, target


def test_short_run_with_baselines(images: tuple[Path, Path]) -> None:
    config = PixelsBenchConfig(steps=5, samples=300, device="cpu")
    report = run_pixels(*images, models=["cmgn", "icnn"], losses=["sliced"], config=config)
    assert [(r.model, r.loss) for r in report.results] == [("cmgn", "sliced"), ("icnn", "sliced")]
    assert [r.model for r in report.baselines] == ["mkl", "emd"]
    for result in [*report.results, *report.baselines]:
        assert {"w2_ratio", "cost_ratio", "violations", "amp999"} <= set(result.metrics)
    # Monotone by construction: no reordered colour pairs (8-bit rounding aside).
    assert all(r.metrics["violations"] < 1e-3 for r in report.results)
    assert report.reference["identity"]["cost_ratio"] == pytest.approx(0.0, abs=1e-12)
    assert report.samples["mapped"][("mkl", "-")].shape[1] == 3


def test_identity_scores_as_the_untouched_source(images: tuple[Path, Path]) -> None:
    src = np.asarray(Image.open(images[0]), dtype=np.float64) / 255
    tgt = np.asarray(Image.open(images[1]), dtype=np.float64) / 255
    scores = score_output(src, src, tgt)
    assert scores["cost_ratio"] == 0.0 and scores["violations"] == 0.0
    assert scores["amp999"] <= 1.0 + 1e-12  # the identity amplifies nothing


def test_one_image_alone_and_unknown_pairs_are_usage_errors(images: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError):
        run_pixels(images[0], None, config=PixelsBenchConfig(steps=1, device="cpu"))
    with pytest.raises(UsageError):
        resolve_pair("nope")
    with pytest.raises(UsageError):
        PixelsBenchConfig(baselines=("magic",))


@pytest.mark.parametrize("regrain", [True, False])
def test_the_benchmark_scores_what_transfer_ships(
    images: tuple[Path, Path], tmp_path: Path, regrain: bool
) -> None:
    from otcolor.bench.pixels import FIGURE_POINTS
    from otcolor.fitting import FitSettings
    from otcolor.look import REGRAIN, LookSettings
    from otcolor.transfer import TransferConfig, transfer

    config = PixelsBenchConfig(steps=5, samples=300, device="cpu", baselines=(), regrain=regrain)
    report = run_pixels(*images, models=["cmgn"], losses=["sliced"], config=config)
    assert "structure" in report.results[0].metrics
    out = tmp_path / "out.png"
    fit = TransferConfig(
        fit=FitSettings(
            model="cmgn", loss="sliced", steps=5, samples=300, device="cpu", never_worse=False
        ),
        look=LookSettings(regrain=REGRAIN if regrain else None),
    )
    transfer(*images, out, fit)
    shipped = np.asarray(Image.open(out), dtype=np.float64).reshape(-1, 3) / 255
    picks = np.random.default_rng(1).choice(shipped.shape[0], FIGURE_POINTS)
    np.testing.assert_allclose(report.samples["mapped"][("cmgn", "sliced")], shipped[picks])


def test_the_bar_table_names_each_missed_bar() -> None:
    from otcolor.bench.pixels import bar_table

    def row(pair: str, method: str, w2: float, amp: float, structure: float) -> dict:
        metrics = {"w2_ratio": w2, "amp999": amp, "structure": structure}
        return {"pair": pair, "method": method, "metrics": metrics}

    rows = [
        row("a", "otcolor", 1.2, 3.0, 0.99),
        row("a", "emd", 1.0, 30.0, 0.9),
        row("b", "otcolor", 1.3, 6.0, 0.97),
        row("b", "emd", 1.0, 30.0, 0.9),
        row("c", "otcolor", 1.0, 1.0, 1.0),  # no EMD row: no line
    ]
    lines = bar_table(rows).splitlines()
    assert len(lines) == 4
    assert lines[2].endswith("| 0.9900 | — |")
    assert lines[3].endswith("| w2, amp, structure |")
