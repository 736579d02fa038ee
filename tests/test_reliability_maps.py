r"""The reliability matrix (issues 6 and 20): saved maps and the commands that read them.

Run through the real ``otcolor`` command with fixtures generated here.

Every command run goes through :func:`harness.run`, which also checks the invariants that hold
whatever happens: the inputs are byte-identical (and keep their mtime), no temporary file is
left, and a failure prints exactly one ``Error:`` line on stderr and nothing on stdout.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from crafted import make_bad
from harness import pixels, run, runner, transfer_args
from PIL import Image

from otcolor.cli import app

ORIENTATION, MAKE = 0x0112, 0x010F

# Saved maps (.otmap) and the commands that read them: apply, lut, video


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("map")
    source, target = folder / "s.png", folder / "t.png"
    Image.fromarray(pixels(10, 16)).save(source)
    Image.fromarray(pixels(12, 14, seed=1)[..., ::-1].copy()).save(target)
    path = folder / "look.otmap"
    result = runner.invoke(
        app, transfer_args(source, target, folder / "o.png", "--save-map", str(path))
    )
    assert result.exit_code == 0, result.output
    return path


def bad_map(tmp_path: Path, saved_map: Path, case: str) -> Path:
    data = saved_map.read_bytes()
    path = tmp_path / f"{case}.otmap"
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    if case == "missing":
        return tmp_path / "missing.otmap"
    if case == "directory":
        path.mkdir()
    elif case == "zero-byte":
        path.touch()
    elif case == "text":
        path.write_text("this is not a map\n" * 4)
    elif case == "png-renamed":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data[8:200])
    elif case == "truncated-header":
        path.write_bytes(data[: header_end // 2])
    elif case == "truncated-tensors":
        path.write_bytes(data[: (header_end + len(data)) // 2])
    elif case == "corrupt-header":
        corrupt = bytearray(data)
        corrupt[12] ^= 0xFF
        path.write_bytes(bytes(corrupt))
    elif case == "trailing-bytes":
        path.write_bytes(data + b"\x00" * 16)
    elif case == "nan-tensor":
        values = bytearray(data)
        values[header_end : header_end + 4] = struct.pack("<f", float("nan"))
        path.write_bytes(bytes(values))
    else:  # pragma: no cover
        raise ValueError(case)
    return path


BAD_MAPS = [
    ("missing", 2, "does not exist"),
    ("directory", 2, "is a directory"),
    ("zero-byte", 3, "not an otcolor map file"),
    ("text", 3, "map file"),
    ("png-renamed", 3, "not an otcolor map file"),
    ("truncated-header", 3, "map file"),
    ("truncated-tensors", 3, "truncated map file"),
    ("corrupt-header", 3, "map file"),
    ("trailing-bytes", 3, "corrupt map file"),
    ("nan-tensor", 3, "non-finite"),
]


@pytest.mark.parametrize("command", ["apply", "lut", "video"])
@pytest.mark.parametrize(("case", "code", "phrase"), BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_bad_map_file(
    tmp_path: Path,
    source: Path,
    saved_map: Path,
    command: str,
    case: str,
    code: int,
    phrase: str,
) -> None:
    path = bad_map(tmp_path, saved_map, case)
    if command == "apply":
        output = tmp_path / "out.png"
        args = ["apply", str(path), str(source), "-o", str(output)]
    elif command == "lut":
        output = tmp_path / "out.cube"
        args = ["lut", str(path), "-o", str(output)]
    else:
        if case in ("missing", "directory"):
            pytest.skip("--map is checked by the command itself, after the clip")
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(b"\x00" * 64)  # never read: the map is checked first
        output = tmp_path / "out.mp4"
        args = ["video", str(clip), "--map", str(path), "-o", str(output)]
    run(args, [source, saved_map] + ([path] if path.is_file() else []), code=code, phrase=phrase)
    assert not output.exists()


def test_apply_bad_images_and_outputs(
    tmp_path: Path, source: Path, target: Path, saved_map: Path
) -> None:
    inputs = [source, target, saved_map]
    corrupt = make_bad(tmp_path, "truncated-png")
    out = tmp_path / "out.png"
    run(
        ["apply", str(saved_map), str(corrupt), "-o", str(out)], inputs, code=3, phrase="truncated"
    )
    run(["apply", str(saved_map), str(tmp_path / "nope.png"), "-o", str(out)], inputs, code=2)
    run(
        ["apply", str(saved_map), str(source), "-o", str(tmp_path / "no" / "o.png")],
        inputs,
        code=4,
        phrase="does not exist",
    )
    run(
        ["apply", str(saved_map), str(source), "-o", str(tmp_path / "o.xyz")],
        inputs,
        code=2,
        phrase="unsupported output extension",
    )
    for spelling in (source, tmp_path / "." / "source.png"):
        run(
            ["apply", str(saved_map), str(source), "-o", str(spelling), "--force"],
            inputs,
            code=2,
            phrase="refusing to overwrite an input",
        )
    out.write_bytes(b"previous")
    run(
        ["apply", str(saved_map), str(source), "-o", str(out)],
        inputs,
        code=2,
        phrase="already exists",
    )
    assert out.read_bytes() == b"previous"
    run(["apply", str(saved_map), str(source), "-o", str(out), "--force"], inputs, code=0)
    assert Image.open(out).size == (16, 10)


def test_lut_outputs(tmp_path: Path, saved_map: Path) -> None:
    out = tmp_path / "look.cube"
    run(
        ["lut", str(saved_map), "-o", str(tmp_path / "no" / "l.cube")],
        [saved_map],
        code=4,
        phrase="does not exist",
    )
    run(["lut", str(saved_map), "-o", str(saved_map), "--force"], [saved_map], code=2)
    out.write_text("previous")
    run(["lut", str(saved_map), "-o", str(out)], [saved_map], code=2, phrase="already exists")
    assert out.read_text() == "previous"
    run(["lut", str(saved_map), "-o", str(out), "--force", "--size", "5"], [saved_map], code=0)
    assert "LUT_3D_SIZE 5" in out.read_text()


def test_transfer_save_map_is_checked_before_training(
    tmp_path: Path, source: Path, target: Path, no_training: list[object]
) -> None:
    existing = tmp_path / "old.otmap"
    existing.write_bytes(b"previous")
    run(
        transfer_args(source, target, tmp_path / "o.png", "--save-map", str(existing)),
        [source, target, existing],
        code=2,
        phrase="already exists",
    )
    run(
        transfer_args(source, target, tmp_path / "o.png", "--save-map", str(source), "--force"),
        [source, target],
        code=2,
        phrase="refusing to overwrite an input",
    )
    run(
        transfer_args(
            source, target, tmp_path / "o.png", "--save-map", str(tmp_path / "no" / "m.otmap")
        ),
        [source, target],
        code=4,
    )
    assert no_training == [] and existing.read_bytes() == b"previous"
