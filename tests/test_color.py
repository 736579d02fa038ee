r"""Tests of otcolor.color: the colour table and the pure apply route (exact, masks, chunks)."""

import numpy as np
import pytest
import torch

from otcolor.color import ColorTable, apply_look, keys_of
from otcolor.errors import UsageError
from otcolor.fitting.colour import COLOR_MODELS
from otcolor.look import Look
from otcolor.models import ColorMap, build_model


def _photo(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], -1) @ rng.uniform(0.2, 1, (3, 3))
    img = base / base.max() * 0.8 + 0.1 + 0.03 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def _map(seed: int = 0) -> ColorMap:
    torch.manual_seed(seed)
    model = build_model("cmgn", 3, **COLOR_MODELS["cmgn"])
    return ColorMap(model, torch.tensor([0.5, 0.4, 0.3]), 0.3).eval()


def test_color_table_is_exact_and_independent_of_other_colours() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)
    look = Look(_map())
    via_table = apply_look(look, image)
    direct = look(image.reshape(-1, 3).astype(np.float32) / 255).reshape(image.shape)
    assert np.array_equal(via_table, direct)
    # The same colours inside another image, with other colours around them: same outputs.
    other = np.concatenate([image, rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)], 1)
    assert np.array_equal(apply_look(look, other)[:, :70], via_table)
    eight = apply_look(look, image, as_uint8=True)
    assert eight.dtype == np.uint8
    assert np.array_equal(eight, np.round(via_table * np.float32(255)).astype(np.uint8))
    table = ColorTable(look)
    apply_look(look, image, table=table)
    seen = table.count
    apply_look(look, image[::-1], table=table)  # nothing new to evaluate
    assert table.count == seen == np.unique(keys_of(image)).size


def test_apply_mask_blends() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (8, 9, 3)).astype(np.float32) / 255
    look = Look(_map())
    full = apply_look(look, rgb)
    mask = np.zeros((8, 9), np.float32)
    mask[:, 3:6] = 0.5
    mask[:, 6:] = 1.0
    out = apply_look(look, rgb, mask=mask)
    assert np.array_equal(out[:, :3], rgb[:, :3])
    assert np.allclose(out[:, 3:6], (rgb[:, 3:6] + full[:, 3:6]) / 2, atol=1e-6)
    assert np.allclose(out[:, 6:], full[:, 6:], atol=1e-7)
    with pytest.raises(UsageError):
        apply_look(look, rgb, mask=mask[:, :5])


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
