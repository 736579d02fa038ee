r"""Tests of otcolor.io.mapfile: the .otmap format round trips exactly and refuses bad files."""

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.errors import InputError
from otcolor.fitting.colour import COLOR_MODELS
from otcolor.io.mapfile import FORMAT_VERSION, load_map, save_map
from otcolor.look import Look, LookSettings
from otcolor.models import AffineMap, ColorMap, ConstantMap, build_model

COLOURS = np.random.default_rng(0).uniform(0, 1, (3000, 3)).astype(np.float32)


def _color_map(name: str) -> torch.nn.Module:
    if name == "constant":
        return ConstantMap(torch.tensor([0.2, 0.5, 0.7]))
    if name == "affine":
        inner: torch.nn.Module = AffineMap(
            torch.diag(torch.tensor([1.2, 0.9, 0.8])), torch.ones(3) * 0.1
        )
    else:
        inner = build_model(name, 3, **COLOR_MODELS[name])
    return ColorMap(inner, torch.tensor([0.4, 0.5, 0.6]), 0.21).eval()


@pytest.mark.parametrize("name", ["cmgn", "mmgn", "icnn", "affine", "constant"])
def test_save_load_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    look = Look(_color_map(name), LookSettings("lab", 0.75, True))
    path = tmp_path / "look.otmap"
    save_map(path, look, {"source": {"name": "a.png"}})
    loaded = load_map(path)
    assert (loaded.look.space, loaded.look.strength, loaded.look.preserve_luminance) == (
        "lab",
        0.75,
        True,
    )
    assert np.array_equal(loaded.look(COLOURS), look(COLOURS))
    assert loaded.metadata["format_version"] == int(FORMAT_VERSION)
    assert loaded.metadata["source"] == {"name": "a.png"}
    assert set(loaded.metadata["versions"]) == {"otcolor", "torch", "numpy"}


def test_file_is_in_the_safetensors_layout(tmp_path: Path) -> None:
    path = tmp_path / "look.otmap"
    save_map(path, Look(_color_map("cmgn")))
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8 : 8 + n])
    assert header["__metadata__"]["format"] == "otcolor-map"
    ends = sorted(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    assert ends[-1] == len(data) - 8 - n
    safetensors = pytest.importorskip("safetensors.numpy")
    tensors = safetensors.load_file(str(path))
    assert tensors["model.W"].shape == (64, 3)


def _corrupt(data: bytes, how: str) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    if how == "truncated":
        return data[:-7]
    if how == "short":
        return data[:5]
    if how == "garbage":
        return b"\x00" * 8 + b"not json at all"
    if how == "huge header":
        return struct.pack("<Q", 1 << 40) + data[8:]
    if how == "trailing":
        return data + b"\x00\x00\x00\x00"
    if how == "version":
        header["__metadata__"]["format_version"] = "99"
    elif how == "format":
        header["__metadata__"]["format"] = "something-else"
    elif how == "shape":
        header["model.W"]["shape"] = [32, 3]  # no longer matches its byte range
    elif how == "model":
        header["__metadata__"]["model"] = "os.system"
    elif how == "config":
        header["__metadata__"]["model_config"] = json.dumps({"hidden_features": 10**9})
    elif how == "layers list":
        header["__metadata__"]["model_config"] = json.dumps({"layers": [2, 2]})
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "short",
        "garbage",
        "huge header",
        "trailing",
        "version",
        "format",
        "shape",
        "model",
        "config",
        "layers list",
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, how: str) -> None:
    good = tmp_path / "good.otmap"
    save_map(good, Look(_color_map("cmgn")))
    bad = tmp_path / "bad.otmap"
    bad.write_bytes(_corrupt(good.read_bytes(), how))
    with pytest.raises(InputError) as caught:
        load_map(bad)
    assert "\n" not in str(caught.value) and str(bad) in str(caught.value)
    if how == "layers list":  # refused by the argument check, before any constructor runs
        assert "layers = [2, 2]" in str(caught.value)
    if how == "version":
        assert "version '99'" in str(caught.value)

    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (4, 3), (10, 20, 30)).save(image)
    result = CliRunner().invoke(
        app, ["apply", str(bad), str(image), "-o", str(tmp_path / "o.png")]
    )
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert not (tmp_path / "o.png").exists()


def _regrained_look() -> Look:
    return Look(_color_map("cmgn"), LookSettings())


def test_the_still_lut_round_trips(tmp_path: Path) -> None:
    table = np.random.default_rng(0).uniform(0, 1, (5, 5, 5, 3)).astype(np.float32)
    save_map(tmp_path / "m.otmap", _regrained_look(), still=table)
    kept = load_map(tmp_path / "m.otmap")
    assert np.array_equal(kept.still, table) and kept.metadata["format_version"] == 2
    save_map(tmp_path / "n.otmap", _regrained_look())
    plain = load_map(tmp_path / "n.otmap")
    assert plain.still is None and plain.metadata["format_version"] == 1  # any release reads it


@pytest.mark.parametrize("how", ["shape", "range", "pure", "version"])
def test_a_bad_still_lut_is_refused_on_load(tmp_path: Path, how: str) -> None:
    table = np.full((5, 5, 5, 3), 0.5, np.float32)
    path = tmp_path / "m.otmap"
    save_map(path, _regrained_look(), still=table)
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    begin = header["still_lut"]["data_offsets"][0]
    body = 8 + length
    if how == "shape":
        header["still_lut"]["shape"] = [5, 5, 15, 1]
    elif how == "range":
        data[body + begin : body + begin + 4] = struct.pack("<f", 1.5)
    elif how == "pure":
        header["__metadata__"]["regrain"] = "null"
    else:
        header["__metadata__"]["format_version"] = "1"
    # Re-sign the tensors so that only the still LUT is wrong.
    header["__metadata__"]["sha256"] = hashlib.sha256(bytes(data[body:])).hexdigest()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(data[body:]))
    with pytest.raises(InputError, match="still LUT"):
        load_map(path)


def test_a_file_older_than_a_regrain_setting_reads_as_it_was_made(tmp_path: Path) -> None:
    from otcolor.look import LEGACY_REGRAIN, RegrainConfig

    path = tmp_path / "m.otmap"
    grain = RegrainConfig(gain_cap=2.0, spread=1.0, isotropy=0.5)
    save_map(path, Look(_color_map("cmgn"), LookSettings(regrain=grain)))
    assert load_map(path).look.settings.regrain == grain
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    old = json.loads(header["__metadata__"]["regrain"])
    for name in LEGACY_REGRAIN:
        del old[name]
    header["__metadata__"]["regrain"] = json.dumps(old)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length :])
    kept = load_map(path).look.settings.regrain
    assert kept == RegrainConfig(**{**old, **LEGACY_REGRAIN}) and kept != grain
