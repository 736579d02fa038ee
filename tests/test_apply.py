r"""Tests of ``otcolor apply`` and the look options of ``otcolor transfer``: bit-for-bit reuse,
batches, strength, masks, 16-bit and alpha."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.io import LoadedImage, load_image, save_image

runner = CliRunner()
FAST = ["--steps", "5", "--samples", "500", "--device", "cpu"]


def _images(tmp: Path) -> tuple[Path, Path]:
    yy, xx = np.mgrid[0:24, 0:32] / 32.0
    rng = np.random.default_rng(0)
    warm = np.clip(
        np.stack([0.5 + 0.4 * xx, 0.3 + 0.3 * yy, 0.2 + 0.1 * xx], -1)
        + 0.02 * rng.standard_normal((24, 32, 3)),
        0,
        1,
    )
    cool = rng.uniform([0.0, 0.2, 0.5], [0.3, 0.6, 1.0], (24, 32, 3))
    source, target = tmp / "source.png", tmp / "target.png"
    Image.fromarray(np.round(warm * 255).astype(np.uint8)).save(source)
    Image.fromarray(np.round(cool * 255).astype(np.uint8)).save(target)
    return source, target


def _run(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "options", [[], ["--space", "lab", "--strength", "0.6"], ["--preserve-luminance"]]
)
def test_apply_equals_transfer_bit_for_bit(tmp_path: Path, options: list[str]) -> None:
    source, target = _images(tmp_path)
    _run(
        "transfer",
        source,
        target,
        "-o",
        tmp_path / "t.png",
        "--save-map",
        tmp_path / "m.otmap",
        *FAST,
        *options,
    )
    _run("apply", tmp_path / "m.otmap", source, "-o", tmp_path / "a.png")
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "t.png")), np.asarray(Image.open(tmp_path / "a.png"))
    )


def test_apply_many_and_folders_strength_and_force(tmp_path: Path) -> None:
    source, target = _images(tmp_path)
    _run(
        "transfer",
        source,
        target,
        "-o",
        tmp_path / "t.png",
        "--save-map",
        tmp_path / "m.otmap",
        *FAST,
    )
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.open(source).save(folder / name)
    _run("apply", tmp_path / "m.otmap", folder, "-o", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "out" / "a.png")),
        np.asarray(Image.open(tmp_path / "t.png")),
    )
    again = runner.invoke(
        app, ["apply", str(tmp_path / "m.otmap"), str(folder), "-o", str(tmp_path / "out")]
    )
    assert again.exit_code == 2 and "--force" in again.stderr
    _run("apply", tmp_path / "m.otmap", source, target, "-o", tmp_path / "two", "--strength", "0")
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "two" / "source.png")), np.asarray(Image.open(source))
    )
    into_input = runner.invoke(
        app,
        [
            "apply",
            str(tmp_path / "m.otmap"),
            str(folder / "a.png"),
            "-o",
            str(folder / "a.png"),
            "--force",
        ],
    )
    assert into_input.exit_code == 2


def test_masks_restrict_sampling_and_application(tmp_path: Path) -> None:
    source, target = _images(tmp_path)
    mask = np.zeros((24, 32), np.uint8)
    mask[:, 16:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    _run(
        "transfer",
        source,
        target,
        "-o",
        tmp_path / "m.png",
        "--apply-mask",
        tmp_path / "mask.png",
        "--source-mask",
        tmp_path / "mask.png",
        *FAST,
    )
    out = np.asarray(Image.open(tmp_path / "m.png")).astype(int)
    src = np.asarray(Image.open(source)).astype(int)
    assert np.array_equal(out[:, :16], src[:, :16])
    assert np.abs(out[:, 16:] - src[:, 16:]).mean() > 10
    # A target mask that only keeps the bluest half pulls the result bluer.
    tgt = np.asarray(Image.open(target))
    Image.fromarray(((tgt[..., 2] > 191) * 255).astype(np.uint8)).save(tmp_path / "blue.png")
    # Pure map: on a 24x32 image the base layer blurs away most of the mask's selection.
    _run(
        "transfer",
        source,
        target,
        "-o",
        tmp_path / "b.png",
        "--target-mask",
        tmp_path / "blue.png",
        "--no-regrain",
        *FAST,
    )
    _run("transfer", source, target, "-o", tmp_path / "n.png", "--no-regrain", *FAST)
    blue = np.asarray(Image.open(tmp_path / "b.png"))[..., 2].mean()
    assert blue > np.asarray(Image.open(tmp_path / "n.png"))[..., 2].mean() + 5
    Image.new("L", (5, 5)).save(tmp_path / "small.png")
    bad = runner.invoke(
        app,
        [
            "transfer",
            str(source),
            str(target),
            "-o",
            str(tmp_path / "x.png"),
            "--source-mask",
            str(tmp_path / "small.png"),
            *FAST,
        ],
    )
    assert bad.exit_code == 2 and "mask is 5x5" in bad.stderr


def test_sixteen_bit_and_alpha_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:20, 0:30] / 30.0
    rgb = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.4 + 0.2 * xx * yy], -1)
    samples = np.round(rgb * 65535).astype(np.uint16)
    alpha = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
    alpha[:5] = 0
    source = tmp_path / "s16.png"
    save_image(
        source, samples / 65535, alpha=alpha, like=LoadedImage(rgb=rgb[:1, :1], bit_depth=16)
    )
    loaded = load_image(source)
    assert loaded.bit_depth == 16 and not loaded.warnings
    assert np.array_equal(np.round(loaded.rgb * 65535).astype(np.uint16), samples)
    target = tmp_path / "t.png"
    Image.fromarray((rng.uniform(0, 1, (20, 30, 3)) * 255).astype(np.uint8)).save(target)
    _run(
        "transfer",
        source,
        target,
        "-o",
        tmp_path / "o.png",
        "--save-map",
        tmp_path / "m.otmap",
        *FAST,
    )
    _run("apply", tmp_path / "m.otmap", source, "-o", tmp_path / "a.png")
    out, again = load_image(tmp_path / "o.png"), load_image(tmp_path / "a.png")
    assert out.bit_depth == 16 and np.array_equal(out.alpha, alpha)
    assert np.array_equal(out.rgb, again.rgb) and np.array_equal(again.alpha, alpha)
    # finer than 8 bits: most output samples are not multiples of 257
    assert (np.round(out.rgb * 65535).astype(int) % 257 != 0).mean() > 0.5
