r"""Tests of otcolor.fit and otcolor.transfer: self-transfer, degenerate inputs, chunked apply, files."""

import numpy as np
import pytest
import torch
from PIL import Image

from otcolor.color import Look, apply_look
from otcolor.errors import UsageError
from otcolor.fit import fit_color_map
from otcolor.models import ColorMap
from otcolor.transfer import TransferConfig, transfer


def _apply(color_map: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    r"""The shipped route, :func:`otcolor.color.apply_look`, on float images of any values."""

    return apply_look(Look(color_map), rgb, bit_depth=16)


def _photo(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, photo-like test image: gradients plus texture, (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], -1) @ rng.uniform(0.2, 1, (3, 3))
    img = base / base.max() * 0.8 + 0.1 + 0.03 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def _save(path, rgb: np.ndarray) -> None:
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)


FAST = dict(steps=60, samples=3000, batch_size=1024)


@pytest.mark.parametrize("init", ["gaussian", "identity"])
def test_learned_self_transfer_is_near_identity(init: str) -> None:
    img = _photo(0)
    pixels = img.reshape(-1, 3)
    fitted = fit_color_map(pixels, pixels, TransferConfig(init=init, fallback=False, **FAST))
    out = _apply(fitted.map, img)
    assert np.abs(out - img).mean() < 1 / 255
    assert np.percentile(np.abs(out - img), 99.9) < 6 / 255


def test_self_transfer_falls_back_to_the_exact_closed_form() -> None:
    # Onto itself the Gaussian map is the identity, exactly: no network can fit better.
    img = _photo(0)
    pixels = img.reshape(-1, 3)
    # The pure path's default smoothness (0.6): the refit stays on the closed form exactly.
    fitted = fit_color_map(pixels, pixels, TransferConfig(regrain=False, **FAST))
    assert "Gaussian map" in fitted.warnings[-1]
    assert np.abs(_apply(fitted.map, img) - img).max() < 1e-5


@pytest.mark.parametrize(
    ("loss", "steps"), [("ot", 30), ("sliced", 60), ("kl", 60), ("wgan", 150)]
)
def test_every_loss_moves_the_identity_towards_the_target(loss: str, steps: int) -> None:
    src, tgt = _photo(0), _photo(1)[..., ::-1].copy()
    config = TransferConfig(loss=loss, init="identity", fallback=False, **{**FAST, "steps": steps})
    fitted = fit_color_map(src.reshape(-1, 3), tgt.reshape(-1, 3), config)
    assert len(fitted.history["loss"]) == steps and np.isfinite(fitted.history["loss"]).all()
    out = _apply(fitted.map, src).reshape(-1, 3)
    y = tgt.reshape(-1, 3)
    assert (
        np.abs(out.mean(0) - y.mean(0)).max()
        < np.abs(src.reshape(-1, 3).mean(0) - y.mean(0)).max()
    )


@pytest.mark.parametrize("init", ["gaussian", "identity"])
def test_fit_moves_towards_target(init: str) -> None:
    src, tgt = _photo(0), _photo(1)[..., ::-1].copy()
    x, y = src.reshape(-1, 3), tgt.reshape(-1, 3)
    fitted = fit_color_map(x, y, TransferConfig(init=init, **FAST))
    out = _apply(fitted.map, src).reshape(-1, 3)
    assert np.abs(out.mean(0) - y.mean(0)).max() < 0.03
    before = np.abs(np.cov(x.T) - np.cov(y.T)).sum()
    after = np.abs(np.cov(out.T) - np.cov(y.T)).sum()
    assert after < 0.3 * before


def test_fit_is_repeatable_on_cpu() -> None:
    x, y = _photo(0).reshape(-1, 3), _photo(1).reshape(-1, 3)
    config = TransferConfig(seed=7, device="cpu", **FAST)
    a = _apply(fit_color_map(x, y, config).map, _photo(2))
    b = _apply(fit_color_map(x, y, config).map, _photo(2))
    assert np.array_equal(a, b)


def test_single_colour_target_and_source() -> None:
    src = _photo(0)
    flat = np.full_like(src, 0.25)
    fitted = fit_color_map(src.reshape(-1, 3), flat.reshape(-1, 3), TransferConfig(**FAST))
    assert fitted.warnings and "single colour" in fitted.warnings[0]
    assert np.allclose(_apply(fitted.map, src), 0.25)
    fitted = fit_color_map(flat.reshape(-1, 3), src.reshape(-1, 3), TransferConfig(**FAST))
    out = _apply(fitted.map, flat)
    assert np.isfinite(out).all() and np.allclose(out, src.reshape(-1, 3).mean(0), atol=1e-6)
    one = fit_color_map(src[:1, :1].reshape(-1, 3), src.reshape(-1, 3), TransferConfig(**FAST))
    assert np.isfinite(_apply(one.map, src)).all()


def test_chunked_apply_matches_one_pass_and_clips() -> None:
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(2 * torch.eye(3))
        model.bias.fill_(-0.25)
    color_map = ColorMap(model, torch.zeros(3), 1.0)
    img = _photo(3)
    whole = apply_look(Look(color_map), img, bit_depth=16, chunk=10**9)
    assert np.array_equal(apply_look(Look(color_map), img, bit_depth=16, chunk=97), whole)
    assert whole.min() >= 0 and whole.max() <= 1
    assert np.allclose(whole, np.clip(2 * img - 0.25, 0, 1), atol=1e-6)


def test_transfer_files_end_to_end(tmp_path) -> None:
    src, tgt, out = tmp_path / "día 1.png", tmp_path / "tgt.jpg", tmp_path / "out.png"
    _save(src, _photo(0))
    Image.fromarray(np.round(_photo(1) * 255).astype(np.uint8)).save(tgt, quality=95)
    before = src.read_bytes(), tgt.read_bytes()
    steps = []
    result = transfer(
        src, tgt, out, TransferConfig(**FAST), callback=lambda s, logs: steps.append(s)
    )
    assert (src.read_bytes(), tgt.read_bytes()) == before
    assert steps == list(range(1, FAST["steps"] + 1)) and result.steps == FAST["steps"]
    assert Image.open(out).size == (64, 48)
    assert result.metrics["sliced_w2"] < result.metrics["sliced_w2_before"]
    assert [p.name for p in tmp_path.iterdir() if "otcolor-tmp" in p.name] == []


def test_config_validation() -> None:
    with pytest.raises(UsageError):
        TransferConfig(model="nope")
    with pytest.raises(UsageError):
        TransferConfig(steps=0)
    with pytest.raises(UsageError):
        TransferConfig(smoothness=-1)


def test_grey_source_keeps_the_learned_map() -> None:
    # A grey source has no spread across the grey axis: the Gaussian start must not blow up
    # there (it did with an absolute regulariser, and the learned map then always lost).
    img = _photo(0)
    grey = np.repeat(img.mean(-1, keepdims=True), 3, -1)
    fitted = fit_color_map(grey.reshape(-1, 3), _photo(1).reshape(-1, 3), TransferConfig(**FAST))
    assert not fitted.warnings
    out = _apply(fitted.map, grey)
    assert np.isfinite(out).all() and out.std() > 0.05


def test_default_smoothness_follows_the_path() -> None:
    from otcolor.fit import DEFAULT_SMOOTHNESS

    assert TransferConfig().smoothness == DEFAULT_SMOOTHNESS[True] == 0.3
    assert TransferConfig(regrain=False).smoothness == DEFAULT_SMOOTHNESS[False] == 0.6
    assert TransferConfig(smoothness=2.0, regrain=False).smoothness == 2.0


def test_fit_settings_hold_no_file_or_look_settings() -> None:
    from dataclasses import fields

    from otcolor.fit import FitSettings

    fit_names = {f.name for f in fields(FitSettings)}
    assert not fit_names & {"space", "strength", "preserve_luminance", "regrain", "quality"}
    config = TransferConfig(steps=7, seed=3, space="lab", strength=0.5, regrain=False)
    assert config.fit == FitSettings(steps=7, seed=3, smoothness=0.6)
    assert type(config.fit) is FitSettings


def test_fit_color_map_refuses_a_space_it_would_ignore() -> None:
    x = _photo(0).reshape(-1, 3)
    with pytest.raises(UsageError, match="space='lab'"):
        fit_color_map(x, x, TransferConfig(space="lab", **FAST))
