r"""Tests of otcolor.pipeline: a saved look reproduces its transfer with no flag repeated, the
fit follows the look, overrides, rendering and provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.errors import OutOfDeviceMemory, TrainingError
from otcolor.fitting import FitSettings
from otcolor.io import LoadedImage
from otcolor.io.mapfile import load_map
from otcolor.look import REGRAIN, Look, LookSettings, RegrainConfig
from otcolor.models import ConstantMap
from otcolor.pipeline import fit_look, override, provenance, render, sample_colours

runner = CliRunner()
FAST = ["--steps", "8", "--samples", "2000", "--device", "cpu"]


def _photo(path: Path, seed: int, h: int = 40, w: int = 56) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], -1) @ rng.uniform(0.2, 1, (3, 3))
    img = base / base.max() * 0.8 + 0.1 + 0.03 * rng.standard_normal((h, w, 3))
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    return _photo(root / "src.png", 0), _photo(root / "tgt.png", 1)


@pytest.mark.parametrize(
    "look",
    [[], ["--no-regrain"], ["--strength", "0.5"], ["--space", "lab", "--no-regrain"]],
    ids=["default", "no-regrain", "strength", "lab-no-regrain"],
)
def test_apply_with_the_saved_map_reproduces_the_transfer(
    pair: tuple[Path, Path], tmp_path: Path, look: list[str]
) -> None:
    src, tgt = pair
    out, again, saved = tmp_path / "out.png", tmp_path / "again.png", tmp_path / "m.otmap"
    args = ["transfer", str(src), str(tgt), "-o", str(out), "--save-map", str(saved)]
    assert runner.invoke(app, [*args, *FAST, *look]).exit_code == 0
    result = runner.invoke(app, ["apply", str(saved), str(src), "-o", str(again)])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))
    stored = load_map(saved).look
    assert (stored.regrain is None) == ("--no-regrain" in look)


def test_an_explicit_flag_overrides_the_saved_look(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    src, tgt = pair
    pure, saved = tmp_path / "pure.png", tmp_path / "m.otmap"
    args = ["transfer", str(src), str(tgt), "-o", str(pure), "--save-map", str(saved)]
    assert runner.invoke(app, [*args, *FAST, "--no-regrain"]).exit_code == 0
    regrained = tmp_path / "regrained.png"
    result = runner.invoke(app, ["apply", str(saved), str(src), "-o", str(regrained), "--regrain"])
    assert result.exit_code == 0, result.output
    a, b = np.asarray(Image.open(pure)), np.asarray(Image.open(regrained))
    assert not np.array_equal(a, b)


def _old_map(path: Path, regrain: bool | None) -> Path:
    r"""A map file as otcolor wrote it before the look held its regrain: no ``regrain`` key,
    only the provenance's ``fit.regrain`` flag (or nothing)."""

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    meta = header["__metadata__"]
    del meta["regrain"]
    fit = json.loads(meta["fit"])
    if regrain is None:
        fit.pop("regrain", None)
    else:
        fit["regrain"] = regrain
    meta["fit"] = json.dumps(fit)
    # Nor did they keep the approved still's LUT: drop its bytes and sign the rest again.
    body, kept, offset = data[8 + length :], [], 0
    for name in sorted(k for k in header if k != "__metadata__"):
        begin, end = header[name]["data_offsets"]
        if name == "still_lut":
            del header[name]
            continue
        kept.append(body[begin:end])
        header[name]["data_offsets"] = [offset, offset + end - begin]
        offset += end - begin
    meta["sha256"] = hashlib.sha256(b"".join(kept)).hexdigest()
    meta["format_version"] = "1"
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    old = path.with_name(f"old-{regrain}.otmap")
    old.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(kept))
    return old


def test_an_older_map_file_is_applied_as_it_was_made(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    src, tgt = pair
    saved = tmp_path / "m.otmap"
    args = [
        "transfer",
        str(src),
        str(tgt),
        "-o",
        str(tmp_path / "o.png"),
        "--save-map",
        str(saved),
    ]
    assert runner.invoke(app, [*args, *FAST]).exit_code == 0
    assert load_map(_old_map(saved, False)).look.regrain is None
    assert load_map(_old_map(saved, True)).look.regrain == REGRAIN
    assert load_map(_old_map(saved, None)).look.regrain == REGRAIN  # what apply did then


def test_a_custom_regrain_round_trips_through_the_map_file(tmp_path: Path) -> None:
    from otcolor.io.mapfile import save_map

    custom = RegrainConfig(scale=1, base_radius=3, base_eps=1e-3, radius=2, eps=2e-4)
    look = Look(ConstantMap(torch.tensor([0.1, 0.2, 0.3])), LookSettings(regrain=custom))
    save_map(tmp_path / "c.otmap", look)
    assert load_map(tmp_path / "c.otmap").look.settings == look.settings


def test_lut_of_a_regrained_look_without_its_still_says_what_it_holds(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # A map file from before the still LUT was kept: the LUT is the pure map, and says so.
    src, tgt = pair
    saved = tmp_path / "m.otmap"
    args = ["transfer", str(src), str(tgt), "-o", str(tmp_path / "o.png"), "--save-map",
            str(saved)]  # fmt: skip
    assert runner.invoke(app, [*args, *FAST]).exit_code == 0
    old = _old_map(saved, True)
    result = runner.invoke(app, ["lut", str(old), "-o", str(tmp_path / "l.cube"), "--size", "5"])
    assert result.exit_code == 0
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "regrain" in line and "colour function" in line and "--source" in line
    result = runner.invoke(app, ["lut", str(old), "-o", str(tmp_path / "j.cube"), "--json"])
    assert json.loads(result.stdout)["warnings"] == [line.split("Warning: ", 1)[-1]]


def test_the_fit_follows_the_look() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (2000, 3)), rng.uniform(0, 1, (2000, 3)) ** 2
    fit = FitSettings(steps=3, device="cpu")
    regrained = fit_look(x, y, fit, LookSettings())
    pure = fit_look(x, y, fit, LookSettings(regrain=None))
    assert regrained.settings.smoothness == 0.3 and pure.settings.smoothness == 0.6
    lab = fit_look(x, y, fit, LookSettings(space="lab", regrain=None))
    assert lab.look.space == "lab" and not np.array_equal(
        lab.look(x.astype(np.float32)), pure.look(x.astype(np.float32))
    )


def test_sample_colours_draws_base_layer_colours_for_a_regrained_look() -> None:
    rng_image = np.random.default_rng(1)
    rgb = rng_image.uniform(0, 1, (40, 60, 3)).astype(np.float32)
    image = LoadedImage(rgb, path=Path("x.png"))
    pure = sample_colours(image, 10**6, np.random.default_rng(0), None)
    base = sample_colours(image, 10**6, np.random.default_rng(0), REGRAIN)
    assert pure.shape == (2400, 3) and base.shape == (600, 3)  # the base layer is subsampled
    assert base.std() < 0.5 * pure.std()  # and smoothed: the noise is not fitted
    mask = np.zeros((40, 60), np.float32)
    mask[:, :30] = 1
    half = sample_colours(image, 10**6, np.random.default_rng(0), REGRAIN, mask=mask)
    assert half.shape == (300, 3)
    # A target that spreads its detail (a smooth source, detail 0): full-resolution pixels,
    # as wide as the image; the mask still picks them.
    spread = dataclasses.replace(REGRAIN, spread=1.0)
    wide = sample_colours(image, 10**6, np.random.default_rng(0), spread, source_detail=0.0)
    assert wide.shape == (2400, 3) and wide.std() > 0.95 * pure.std()
    masked = sample_colours(
        image, 10**6, np.random.default_rng(0), spread, mask=mask, source_detail=0.0
    )
    assert masked.shape == (1200, 3)
    left = rgb[:, :30].reshape(-1, 3)
    # detail 0 against a rough target: lambda = 1, the masked pixels themselves (to rounding)
    nearest = np.abs(masked[:, None, :] - left[None, :, :]).max(-1).min(-1)
    assert nearest.max() < 1e-5


def test_override_changes_only_what_is_given() -> None:
    look = Look(ConstantMap(torch.tensor([0.5, 0.5, 0.5])), LookSettings(strength=0.3))
    assert override(look) is look
    assert override(look, regrain=True) is look  # already regrained
    pure = override(look, regrain=False)
    assert pure.settings.regrain is None and pure.strength == 0.3
    again = override(pure, regrain=True, strength=1.0)
    assert again.settings.regrain == REGRAIN and again.strength == 1.0


def test_render_dispatches_on_the_look_and_finishes_on_the_cpu_when_out_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import otcolor.pipeline as pipeline

    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    curve = Look(torch.nn.Identity(), LookSettings(strength=0.5))
    calls = []
    monkeypatch.setattr(pipeline, "regrain", lambda look, *a, **k: calls.append("regrain") or rgb)
    render(curve, rgb)
    render(curve.with_settings(regrain=None), rgb)
    assert calls == ["regrain"]

    def oom(look, *a, **k):  # type: ignore[no-untyped-def]
        if str(look.device) != "cpu":
            raise OutOfDeviceMemory("out of device memory applying the map (fake)")
        return rgb

    monkeypatch.setattr(pipeline, "regrain", oom)
    warnings: list[str] = []
    render(Look(torch.nn.Identity(), device="meta"), rgb, warnings=warnings)
    assert len(warnings) == 1 and "applied on the CPU" in warnings[0]

    def always(look, *a, **k):  # type: ignore[no-untyped-def]
        raise OutOfDeviceMemory("out of memory (fake)")

    monkeypatch.setattr(pipeline, "regrain", always)
    with pytest.raises(TrainingError, match="out of memory applying the map"):
        render(Look(torch.nn.Identity()), rgb)  # already on the CPU: nowhere to go


def test_provenance_names_the_estimator_and_the_inputs(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"abc")
    record = provenance(FitSettings(loss="kl"), {"source": (path, (4, 3), None)}, fit_frames=5)
    assert record["fit"]["estimator"] == "minibatch" and record["fit"]["fit_frames"] == 5
    assert record["fit"]["options"]["batch_size"] == 4096 and "device" not in record["fit"]
    assert record["source"]["size"] == [4, 3] and len(record["source"]["sha256"]) == 64
