r"""Tests of otcolor.transfer: files end to end and the composed config."""

import numpy as np
import pytest
from PIL import Image

from otcolor.errors import UsageError
from otcolor.fitting import FitSettings
from otcolor.look import LookSettings
from otcolor.transfer import FileSettings, TransferConfig, transfer


def _photo(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, photo-like test image: gradients plus texture, (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], -1) @ rng.uniform(0.2, 1, (3, 3))
    img = base / base.max() * 0.8 + 0.1 + 0.03 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def _save(path, rgb: np.ndarray) -> None:
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)


FAST = TransferConfig(fit=FitSettings(steps=60, samples=3000, device="cpu"))


def test_transfer_files_end_to_end(tmp_path) -> None:
    src, tgt, out = tmp_path / "día 1.png", tmp_path / "tgt.jpg", tmp_path / "out.png"
    _save(src, _photo(0))
    Image.fromarray(np.round(_photo(1) * 255).astype(np.uint8)).save(tgt, quality=95)
    before = src.read_bytes(), tgt.read_bytes()
    steps = []
    result = transfer(src, tgt, out, FAST, callback=lambda s, logs: steps.append(s))
    assert (src.read_bytes(), tgt.read_bytes()) == before
    assert steps == list(range(1, 61)) and result.steps == 60
    assert Image.open(out).size == (64, 48)
    assert result.metrics["sliced_w2"] < result.metrics["sliced_w2_before"]
    assert [p.name for p in tmp_path.iterdir() if "otcolor-tmp" in p.name] == []


def test_config_is_made_of_validated_parts() -> None:
    with pytest.raises(UsageError):
        FitSettings(model="nope")
    with pytest.raises(UsageError):
        LookSettings(strength=1.5)
    for bad in (0, 101, 500, 95.5):
        with pytest.raises(UsageError):
            FileSettings(quality=bad)
    with pytest.raises(UsageError):
        FileSettings(max_pixels=0)
    config = TransferConfig()
    assert config.look.regrain is not None and config.fit.smoothness is None
