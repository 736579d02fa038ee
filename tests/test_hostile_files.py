r"""Issue 32, classes 1, 2 and 9: special files, crafted map headers, the library's own errors.

Every case that could hang runs under :func:`deadline`, which interrupts a blocked system call
(a FIFO's open) with an exception instead of letting the test hang; nothing here reads more
than a map file's size cap. The matrix is in docs/reliability.md ("Round three").
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import FAST, run, runner, temp_files
from PIL import Image

import otcolor.io.files
from otcolor.apply import apply_map
from otcolor.cli import app
from otcolor.errors import InputError, OtcolorError, UsageError
from otcolor.fitting import FitSettings
from otcolor.io import open_regular, read_regular
from otcolor.io.mapfile import load_map, save_map
from otcolor.io.mapschema import MAX_PARAMETERS, MAX_UNITS, hidden_units, parameter_count
from otcolor.look import Look
from otcolor.models import MAP_MODELS, ColorMap, ConstantMap
from otcolor.preview import PreviewConfig
from otcolor.transfer import FileSettings, TransferConfig, transfer


@contextmanager
def deadline(seconds: int = 20) -> Iterator[None]:
    r"""Fails the test with ``TimeoutError`` instead of hanging (SIGALRM interrupts a blocked
    open or read)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: this would hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cmgn_map(path: Path, **config: object) -> Path:
    inner = MAP_MODELS["cmgn"].from_config(3, **config)
    save_map(path, Look(ColorMap(inner, torch.tensor([0.4, 0.5, 0.6]), 0.5).eval()))
    return path


def header_of(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write_map_bytes(path: Path, header: bytes | dict, body: bytes) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "look.otmap"  # a FIFO wearing a map's name
    os.mkfifo(path)
    return path


# 1. Special files and unbounded reads


SPECIAL = ["fifo", "/dev/zero", "/dev/urandom", "socket", "symlink-to-fifo"]


def special_file(tmp_path: Path, fifo: Path, kind: str) -> Path:
    if kind == "fifo":
        return fifo
    if kind == "socket":
        path = tmp_path / "sock.otmap"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))  # the bound name stays after close
        server.close()
        return path
    if kind == "symlink-to-fifo":
        link = tmp_path / "link.otmap"
        link.symlink_to(fifo)
        return link
    return Path(kind)


@pytest.mark.parametrize("kind", SPECIAL)
def test_load_map_refuses_special_files_without_blocking(
    tmp_path: Path, fifo: Path, kind: str
) -> None:
    path = special_file(tmp_path, fifo, kind)
    with deadline(), pytest.raises(InputError, match="not a regular file") as caught:
        load_map(path)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3


@pytest.mark.parametrize("command", ["apply", "lut", "video"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom"])
def test_commands_refuse_a_special_map_file(
    tmp_path: Path, source: Path, fifo: Path, command: str, kind: str
) -> None:
    path = special_file(tmp_path, fifo, kind)
    out = tmp_path / {"apply": "o.png", "lut": "o.cube", "video": "o.mp4"}[command]
    args = {
        "apply": ["apply", str(path), str(source), "-o", str(out)],
        "lut": ["lut", str(path), "-o", str(out)],
        "video": ["video", str(source), "--map", str(path), "-o", str(out)],
    }[command]
    with deadline():
        run(args, [source], code=3, phrase="not a regular file")
    assert not out.exists()


def test_open_regular_checks_the_file_it_opened(
    tmp_path: Path, fifo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path is swapped for a FIFO between the check and the open: the open must not block
    # (O_NONBLOCK) and the descriptor's own fstat must refuse it.
    real_stat = os.stat
    plain = real_stat(Path(__file__))

    def lying_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        return plain if Path(str(path)) == fifo else real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(otcolor.io.files.os, "stat", lying_stat)
    with deadline(), pytest.raises(InputError, match="FIFO"):
        open_regular(fifo)


def test_read_regular_caps_the_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.otmap"
    path.write_bytes(b"x" * 1000)
    with pytest.raises(InputError, match="1,000 bytes is too large for a map file"):
        read_regular(path, 999, what="map file")
    assert read_regular(path, 1000) == b"x" * 1000


def test_read_regular_stops_at_the_cap_when_the_file_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"x" * 10)
    real_stat, real_fstat = os.stat, os.fstat

    def shrunk(info: os.stat_result) -> os.stat_result:  # 4 bytes when checked, 10 when read
        return os.stat_result((*info[:6], 4, *info[7:]))

    def lying_stat(name: object, *args: object, **kwargs: object) -> os.stat_result:
        info = real_stat(name, *args, **kwargs)  # type: ignore[arg-type]
        return shrunk(info) if str(name) == str(path) else info

    def lying_fstat(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        return shrunk(info) if info.st_ino == real_stat(path).st_ino else info

    monkeypatch.setattr(otcolor.io.files.os, "stat", lying_stat)
    monkeypatch.setattr(otcolor.io.files.os, "fstat", lying_fstat)
    with pytest.raises(InputError, match="grew past 8 bytes"):
        read_regular(path, 8)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [("missing.otmap", "no such file"), ("folder", "is a directory"), ("nul\x00.otmap", "NUL")],
)
def test_open_regular_gives_one_line(tmp_path: Path, name: str, phrase: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=phrase) as caught:
        open_regular(tmp_path / name, what="map file")
    assert "\n" not in str(caught.value) and "\x00" not in str(caught.value)


def test_a_fifo_mask_is_never_hashed(tmp_path: Path, fifo: Path) -> None:
    from otcolor.io.mapfile import fingerprint

    with deadline(), pytest.raises(InputError, match="not a regular file"):
        fingerprint(fifo)


@pytest.mark.parametrize(
    "content",
    ["fifo", "LUT_3D_SIZE\n", "LUT_3D_SIZE x\n", "LUT_3D_SIZE 100000\n", "LUT_3D_SIZE 2\n1 2\n"],
)
def test_read_cube_refuses_special_files_and_bad_sizes(
    tmp_path: Path, fifo: Path, content: str
) -> None:
    from otcolor.io.lut import read_cube

    path = fifo if content == "fifo" else tmp_path / "look.cube"
    if content != "fifo":
        path.write_text(content)
    with deadline(), pytest.raises(InputError) as caught:
        read_cube(path)
    assert "\n" not in str(caught.value)


# 2. Crafted map headers


def test_deeply_nested_header_json_is_a_corrupt_map(tmp_path: Path, source: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raised RecursionError: exit 1
    path = write_map_bytes(tmp_path / "deep.otmap", deep, b"")
    run(["apply", str(path), str(source), "-o", str(tmp_path / "o.png")], [path], code=3)


@pytest.mark.parametrize("depth", [9, 50, 5000])
def test_deeply_nested_metadata_values_are_refused(tmp_path: Path, depth: int) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    header, body = header_of(path)
    header["__metadata__"]["fit"] = '{"a":' * depth + "1" + "}" * depth
    write_map_bytes(path, header, body)
    with pytest.raises(InputError, match=f"nests {depth} deep"):
        load_map(path)


def test_nesting_is_counted_outside_strings_only(tmp_path: Path) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    header, body = header_of(path)
    header["__metadata__"]["note"] = json.dumps('[[[[[[[[[[[[[[[[ \\" {{{{{{{{{{{{')
    write_map_bytes(path, header, body)
    assert load_map(path).metadata["note"].startswith("[[[[")


@pytest.mark.parametrize(
    "edit",
    ["long-value", "many-keys", "long-name", "huge-int", "extra-entry-key"],
)
def test_headers_outside_the_schema_are_refused(tmp_path: Path, edit: str) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    header, body = header_of(path)
    meta = header["__metadata__"]
    if edit == "long-value":
        meta["fit"] = json.dumps({"x": "y" * 100_000})
    elif edit == "many-keys":
        meta.update({f"k{i}": "v" for i in range(100)})
    elif edit == "long-name":
        meta["k" * 500] = "v"
    elif edit == "huge-int":  # Python's int parser refuses > 4,300 digits with ValueError
        meta["fit"] = "9" * 5000
    else:
        header["model.W"]["extra"] = 1
    write_map_bytes(path, header, body)
    if edit == "huge-int":  # a plain string then, as any text that is not JSON
        assert load_map(path).metadata["fit"] == "9" * 5000
        return
    with pytest.raises(InputError, match="corrupt map file") as caught:
        load_map(path)
    assert len(str(caught.value)) < 400 and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ({"layers": 4096}, "layers = 4096, at most 16"),
        ({"layers": 17}, "at most 16"),
        ({"hidden_features": 1024, "layers": 2}, "hidden units"),
        ({"hidden_features": [64, 64]}, "hidden_features = [64, 64]"),
        ({"layers": True}, "layers = True"),
    ],
)
def test_a_model_beyond_the_bounds_is_refused_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict, phrase: str
) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    header, body = header_of(path)
    header["__metadata__"]["model_config"] = json.dumps(config)
    write_map_bytes(path, header, body)
    built: list[dict] = []
    real = MAP_MODELS["cmgn"].from_config.__func__  # type: ignore[attr-defined]

    def record(cls: type, features: int, **kwargs: object) -> object:
        built.append(kwargs)
        return real(cls, features, **kwargs)

    monkeypatch.setattr(MAP_MODELS["cmgn"], "from_config", classmethod(record))
    with pytest.raises(InputError, match="corrupt map file") as caught:
        load_map(path)
    assert phrase in str(caught.value)
    assert all(kwargs == {} for kwargs in built)  # only the default model, to read its config


def test_a_config_the_tensors_do_not_match_is_refused(tmp_path: Path) -> None:
    path = cmgn_map(tmp_path / "m.otmap", hidden_features=8, layers=2)
    header, body = header_of(path)
    header["__metadata__"]["model_config"] = json.dumps({"hidden_features": 8, "layers": 9})
    write_map_bytes(path, header, body)
    with pytest.raises(InputError, match="describes .* parameters, the file holds"):
        load_map(path)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("cmgn", {"hidden_features": 5, "layers": 7, "activation": "tanh", "steepness": 2.0}),
        ("mmgn", {"hidden_features": 3, "modules": 11}),
        ("icnn", {"hidden_features": [5, 7, 2], "activation": "softplus"}),
        ("icnn", {"hidden_features": [9], "activation": "relu"}),
        ("affine", {}),
    ],
)
def test_parameter_count_matches_the_built_model(name: str, config: dict) -> None:
    model = MAP_MODELS[name].from_config(3, **config)
    complete = model.config()
    held = sum(t.numel() for t in model.state_dict().values())  # what a map file stores
    assert parameter_count(name, complete) == held
    assert 0 <= hidden_units(name, complete) <= MAX_UNITS


def test_the_bounds_admit_every_model_otcolor_fits() -> None:
    from otcolor.fitting.colour import COLOR_MODELS

    for name, config in COLOR_MODELS.items():
        complete = MAP_MODELS[name].from_config(3, **config).config()
        assert parameter_count(name, complete) <= MAX_PARAMETERS
        assert hidden_units(name, complete) <= MAX_UNITS // 8


@pytest.mark.parametrize(
    "regrain",
    ['{"scale": true, "base_radius": 8, "base_eps": 0.003, "radius": 4, "eps": 0.0001}',
     '{"scale": 2, "base_radius": 8, "base_eps": true, "radius": 4, "eps": 0.0001}',
     '{"scale": 2, "base_radius": 8, "base_eps": 0.003, "radius": 4, "eps": [0.1]}',
     '{"scale": 2, "base_radius": 8, "base_eps": 0.003, "radius": 4}',
     '{"scale": 2, "base_radius": 8, "base_eps": 0.003, "radius": 4, "eps": 1e999}',
     '"on"', "7"],
)  # fmt: skip
def test_a_bad_regrain_key_is_a_corrupt_map(tmp_path: Path, regrain: str) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    header, body = header_of(path)
    header["__metadata__"]["regrain"] = regrain
    write_map_bytes(path, header, body)
    with pytest.raises(InputError, match="corrupt map file"):
        load_map(path)


def test_save_map_never_writes_what_load_map_refuses(tmp_path: Path) -> None:
    look = Look(ConstantMap(torch.tensor([0.5, 0.5, 0.5])))
    with pytest.raises(UsageError, match="cannot save this map"):
        save_map(tmp_path / "m.otmap", look, {"fit": {"x": [[[[[[[[[[1]]]]]]]]]]}})
    assert not (tmp_path / "m.otmap").exists() and temp_files(tmp_path) == []


# 9. The library's own errors, before any expensive work


def test_load_map_onto_a_missing_device_is_a_usage_error(tmp_path: Path) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            load_map(path, device="cuda")
    with pytest.raises(UsageError, match="unknown device"):
        load_map(path, device="tpu")
    with pytest.raises(TypeError):
        load_map(path, device=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_map(None)  # type: ignore[arg-type]
    assert str(load_map(path, device=torch.device("cpu")).look.device) == "cpu"


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransferConfig(files=FileSettings(quality=500)),
        lambda: TransferConfig(files=FileSettings(max_pixels=0)),
        lambda: TransferConfig(fit=FitSettings(seed=2**64)),
        lambda: TransferConfig(fit=FitSettings(smoothness=math.nan)),
        lambda: TransferConfig(fit=FitSettings(steps=10**15)),
        lambda: TransferConfig(files={"quality": 90}),  # type: ignore[arg-type]
        lambda: PreviewConfig(steps=10**15),
        lambda: PreviewConfig(seed=-1),
    ],
)
def test_bad_settings_fail_when_made(make: object) -> None:
    with pytest.raises(UsageError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"config": "fast"},
        {"lut": "l.cube", "lut_size": "33"},
        {"lut": "l.cube", "lut_size": 1000},
        {"output": "o\x00.png"},
        {"save_map": "m\x00.otmap"},
    ],
)
def test_transfer_checks_its_arguments_before_decoding(
    tmp_path: Path, source: Path, target: Path, no_training: list, kwargs: dict, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    output = kwargs.pop("output", "o.png")
    with pytest.raises(OtcolorError) as caught:
        transfer(source, target, output, **kwargs)
    assert "\n" not in str(caught.value) and "\x00" not in str(caught.value)
    assert no_training == [] and not Path("o.png").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quality": 500},
        {"quality": 0},
        {"max_pixels": -1},
        {"strength": math.nan},
        {"strength": 2.0},
        {"regrain": "yes"},
    ],
)
def test_apply_map_checks_its_arguments_before_reading(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict
) -> None:
    import otcolor.apply

    path = cmgn_map(tmp_path / "m.otmap")
    reads: list[object] = []
    monkeypatch.setattr(otcolor.apply, "load_map", lambda *a, **k: reads.append(a))
    with pytest.raises(UsageError):
        apply_map(path, [source], tmp_path / "o.png", **kwargs)
    assert reads == [] and not (tmp_path / "o.png").exists()


def test_apply_map_with_a_nul_byte_anywhere(tmp_path: Path, source: Path) -> None:
    path = cmgn_map(tmp_path / "m.otmap")
    with pytest.raises(UsageError, match="NUL"):
        apply_map(path, [source], tmp_path / "o\x00.png")
    with pytest.raises(InputError, match="NUL"):
        apply_map(tmp_path / "m\x00.otmap", [source], tmp_path / "o.png")


def test_cli_fit_options_past_their_bounds_are_one_line(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "t.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(target)
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *FAST]
    run([*args, "--steps", "1000000000000000", "--loss", "sliced"], [source], code=2)
    result = runner.invoke(app, ["bench", "gmm", "--steps", str(10**15)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1


def test_a_mask_of_the_wrong_size_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small file can hold a huge mask: the size check must come before any decoding.
    import otcolor.io.decode as decode
    from otcolor.errors import UsageError
    from otcolor.io import load_mask

    path = tmp_path / "big.png"
    Image.new("1", (3000, 2000)).save(path)  # a few KB, 6 megapixels

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded before its size was checked")

    monkeypatch.setattr(decode, "load_image", never)
    with pytest.raises(UsageError, match="mask is 3000x2000, the image is 64x48"):
        load_mask(path, (64, 48))
