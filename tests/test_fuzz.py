r"""Fuzzing the image loader: random and mutated bytes may only raise otcolor's InputError.

Mirrors Pillow's own fuzz harness (Tests/oss-fuzz): seeds are small valid files of every
allowed format, written here; hypothesis flips, inserts, deletes and truncates bytes. The
pixel limit is low so that a mutated header promising a huge image is refused, not decoded,
and each example stays fast.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from otcolor.errors import InputError
from otcolor.io import load_image

MAX_PIXELS = 1 << 16


def _seed_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (5, 4, 4), dtype=np.uint8))
    seeds: dict[str, bytes] = {}
    for name, image, fmt, params in [
        ("png", rgb, "PNG", {}),
        ("png-rgba", rgba, "PNG", {}),
        (
            "png-grey16",
            Image.fromarray(rng.integers(0, 65535, (4, 5), dtype=np.uint16)),
            "PNG",
            {},
        ),
        ("jpeg", rgb, "JPEG", {"quality": 90}),
        ("gif", rgb.convert("P"), "GIF", {}),
        ("bmp", rgb, "BMP", {}),
        ("tiff", rgb, "TIFF", {}),
        ("tiff-deflate", rgb, "TIFF", {"compression": "tiff_adobe_deflate"}),
        ("webp", rgb, "WEBP", {"quality": 80}),
        ("webp-lossless", rgba, "WEBP", {"lossless": True}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **params)
        seeds[name] = buffer.getvalue()
    return seeds


SEEDS = _seed_files()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


def check_loader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    with warnings.catch_warnings():
        # A Pillow warning about a malformed file is fine; only exceptions are judged.
        warnings.simplefilter("ignore")
        try:
            image = load_image(path, max_pixels=MAX_PIXELS)
        except InputError as err:
            assert str(err) and "\n" not in str(err)
            assert err.exit_code == 3
            return
    assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert image.rgb.dtype == np.float32 and np.isfinite(image.rgb).all()
    assert image.rgb.min() >= 0 and image.rgb.max() <= 1
    assert image.n_pixels <= MAX_PIXELS


def test_seed_files_load(tmp_path: Path) -> None:
    for name, data in SEEDS.items():
        (tmp_path / name).write_bytes(data)
        assert load_image(tmp_path / name).n_pixels > 0, name


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=mutated())
def test_mutated_images_raise_only_input_error(tmp_path: Path, data: bytes) -> None:
    check_loader(tmp_path, data)


@settings(FUZZ, max_examples=100)
@given(
    data=st.one_of(
        st.binary(max_size=256),
        st.sampled_from(sorted(SEEDS)).flatmap(
            lambda name: st.binary(max_size=64).map(lambda tail: SEEDS[name][:24] + tail)
        ),
    )
)
def test_random_bytes_raise_only_input_error(tmp_path: Path, data: bytes) -> None:
    # Random bytes, and valid magic numbers and headers followed by random bytes.
    check_loader(tmp_path, data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_truncation_of_a_seed(tmp_path: Path, name: str) -> None:
    data = SEEDS[name]
    for end in range(0, len(data), max(1, len(data) // 40)):
        check_loader(tmp_path, data[:end])


@pytest.fixture(scope="module")
def map_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from otcolor.fitting import FitSettings, fit_color_map
    from otcolor.io.mapfile import save_map
    from otcolor.look import Look

    rng = np.random.default_rng(0)
    x, y = rng.random((300, 3), np.float32), rng.random((300, 3), np.float32) ** 2
    fitted = fit_color_map(x, y, FitSettings(steps=3, device="cpu"))
    path = tmp_path_factory.mktemp("map") / "look.otmap"
    save_map(path, Look(fitted.map))
    return path.read_bytes()


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_mutated_map_files_raise_only_input_error(
    tmp_path: Path, map_bytes: bytes, data: st.DataObject
) -> None:
    from otcolor.io.mapfile import load_map

    blob = bytearray(map_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        if not blob:  # an earlier mutation deleted everything: nothing left to mutate
            break
        at = data.draw(st.integers(0, len(blob) - 1))
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if kind == "flip":
            blob[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "delete":
            del blob[at : at + data.draw(st.integers(1, 8))]
        elif kind == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[max(at, 1) :]
    path = tmp_path / "fuzz.otmap"
    path.write_bytes(bytes(blob))
    try:
        loaded = load_map(path)
    except InputError as err:
        assert err.exit_code == 3 and "\n" not in str(err)
        return
    # A flipped bit inside the weights can leave a valid (different) map: it must still work.
    out = loaded.look(np.random.default_rng(0).random((64, 3), np.float32))
    assert out.shape == (64, 3) and np.isfinite(out).all()
