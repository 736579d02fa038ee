r"""Hostile input for ``otcolor mnist`` (issue 32, classes 1 and 6): bounded IDX reads, special
files, crafted headers, outputs that would replace an input or each other, unbounded options.
Each must end in one ``Error:`` line and a documented exit code, before any work."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_mnist import UNREACHABLE, make_dataset, write_idx
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.errors import EXIT_CODES, InputError
from otcolor.mnist import data as mnist_data
from otcolor.mnist import read_idx

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OTCOLOR_DATA", raising=False)
    monkeypatch.setattr(mnist_data, "MIRRORS", UNREACHABLE)


def _one_error_line(result: object, code: int) -> str:
    assert result.exit_code == code, result.output
    assert code in EXIT_CODES
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.output
    return lines[0]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- bounded reads ---------------------------------------------------------------------------


def test_gzip_bomb_is_read_no_further_than_its_header_declares(tmp_path: Path) -> None:
    # 2x3x3 values declared, 64 MB of zeros behind them: about 64 KB compressed.
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 3)
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as fp:
        fp.write(header)
        zeros = bytes(1 << 20)
        for _ in range(64):
            fp.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="IDX size mismatch"):
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # a few chunks at most, never the 64 MB


def test_a_header_declaring_too_much_is_refused_before_reading(tmp_path: Path) -> None:
    # Sizes whose product overflows 64 bits, and a plausible but huge image count.
    overflow = tmp_path / "overflow"
    overflow.write_bytes(bytes([0, 0, 8, 8]) + struct.pack(">8I", *[0xFFFFFFFF] * 8))
    huge = tmp_path / "huge.gz"
    huge.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 10**9, 28, 28)))
    for path in (overflow, huge):
        with pytest.raises(InputError, match="above the limit"):
            read_idx(path)
    # The limit is a parameter: a small file under a small limit reads, over it is refused.
    small = write_idx(tmp_path / "small", np.zeros((4, 5), np.uint8))
    assert read_idx(small, max_bytes=20).shape == (4, 5)
    with pytest.raises(InputError, match="above the limit"):
        read_idx(small, max_bytes=19)


def test_content_not_name_decides_compression(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = write_idx(tmp_path / "raw", array).read_bytes()
    (tmp_path / "packed-but-plain-name").write_bytes(gzip.compress(raw))
    (tmp_path / "plain-but.gz").write_bytes(raw)
    for name in ("packed-but-plain-name", "plain-but.gz"):
        assert np.array_equal(read_idx(tmp_path / name), array)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(raw)[:-12])  # stream cut short
    with pytest.raises(InputError, match="cannot read|IDX"):
        read_idx(tmp_path / "broken.gz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_idx(fifo)  # no writer: a blocking open would hang here
    if Path("/dev/zero").exists():
        with pytest.raises(InputError, match="not a regular file"):
            read_idx("/dev/zero")
    with pytest.raises(InputError, match="is a directory"):
        read_idx(tmp_path)


def test_cli_crafted_idx_header_exits_3_in_one_line(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "d")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 4]) + struct.pack(">4I", *[0xFFFFFFFF] * 4))
    )
    result = runner.invoke(app, ["mnist", "--data", str(folder), "-o", str(tmp_path / "g.png")])
    assert "above the limit" in _one_error_line(result, 3)
    # Images that are not 28x28 are refused by name, not reshaped into nonsense.
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((300, 32, 32), np.uint8))
    result = runner.invoke(app, ["mnist", "--data", str(folder), "-o", str(tmp_path / "g.png")])
    assert "(N, 28, 28)" in _one_error_line(result, 3)


# --- outputs ---------------------------------------------------------------------------------


def _run(folder: Path, *args: str) -> object:
    return runner.invoke(app, ["mnist", "--data", str(folder), "--steps", "1", *args])


def test_no_output_may_replace_an_input_even_with_force(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "d")
    before = _digest(folder)
    grid = str(tmp_path / "g.png")
    for option in ("--save-model", "--samples-out"):
        target = folder / "t10k-labels-idx1-ubyte.gz"
        result = _run(folder, "-o", grid, option, str(target), "--force")
        message = _one_error_line(result, 2)
        assert "input" in message or ".npy" in message
    # Through another spelling of the path, and through a symlink.
    link = tmp_path / "link.pt"
    link.symlink_to(folder / "train-images-idx3-ubyte.gz")
    for target in (f"{folder}/../d/train-labels-idx1-ubyte.gz", str(link)):
        result = _run(folder, "-o", grid, "--save-model", target, "--force")
        assert "input" in _one_error_line(result, 2)
    assert _digest(folder) == before
    assert not (tmp_path / "g.png").exists()
    assert not (tmp_path / "cache").exists()  # refused before any work: no classifier trained


@pytest.mark.parametrize(
    "args",
    [
        ("-o", "{t}/same.png", "--save-model", "{t}/same.png"),
        ("-o", "{t}/g.png", "--save-model", "{t}/same.npy", "--samples-out", "{t}/same.npy"),
        ("-o", "{t}/same.png", "--samples-out", "{t}/./same.png"),
        ("-o", "{t}/a.png", "--model", "all", "--save-model", "{t}/a.png"),
    ],
)
def test_two_outputs_on_one_path_are_refused_before_any_work(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    folder = make_dataset(tmp_path / "d")
    argv = [a.format(t=tmp_path) for a in args]
    result = _run(folder, *argv, "--force")
    message = _one_error_line(result, 2)
    assert "two outputs" in message or ".npy" in message
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.npy"))
    assert not (tmp_path / "cache").exists()


# --- unbounded options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ("--batch", "1000000000000"),
        ("--batch", "1e12"),
        ("--steps", "1000000000000000"),
        ("--samples", "100000000000000"),
        ("--latent", "100000"),
        ("--lr", "nan"),
        ("--lr", "-1"),
    ],
)
def test_out_of_range_options_exit_2_in_one_line(tmp_path: Path, option: tuple[str, str]) -> None:
    folder = make_dataset(tmp_path / "d")
    result = runner.invoke(
        app, ["mnist", "--data", str(folder), "-o", str(tmp_path / "g.png"), *option]
    )
    assert option[0] in _one_error_line(result, 2) or "learning rate" in result.stderr
    assert not (tmp_path / "cache").exists()
