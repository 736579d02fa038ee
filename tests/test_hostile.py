r"""Issue 15: the documented promises against hostile input, races and odd file systems.

One section per class of the issue; every fixture is made here. Races are made deterministic
by creating the competing file from a callback. The matrix is in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import FAST, digest, lines, pixels, run, temp_files
from PIL import Image

import otcolor.io.png16
from otcolor import _entry
from otcolor.errors import InputError, OtcolorError, OutputError, TrainingError, UsageError
from otcolor.fitting import FitSettings
from otcolor.io import LoadedImage, load_image, save_image, write_atomically
from otcolor.io.mapfile import load_map, save_map
from otcolor.look import Look
from otcolor.mnist import classifier
from otcolor.models import AffineMap, ColorMap
from otcolor.transfer import TransferConfig, transfer


@pytest.fixture
def mask(tmp_path: Path) -> Path:
    path = tmp_path / "mask.png"
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(path)
    return path


def affine_map(tmp_path: Path, scale: float = 0.5) -> Path:
    path = tmp_path / "look.otmap"
    inner = AffineMap(torch.diag(torch.tensor([1.1, 0.9, 0.8])), torch.full((3,), 0.05))
    save_map(path, Look(ColorMap(inner, torch.tensor([0.4, 0.5, 0.6]), scale).eval()))
    return path


# 1. An input is never an output; outputs differ from each other


@pytest.mark.parametrize("flag", ["--source-mask", "--target-mask", "--apply-mask"])
def test_a_mask_is_never_overwritten_even_with_force(
    tmp_path: Path, source: Path, target: Path, mask: Path, flag: str
) -> None:
    args = ["transfer", str(source), str(target), "-o", str(mask), flag, str(mask), "--force"]
    run([*args, *FAST], [source, target, mask], code=2, phrase="refusing to overwrite an input")


def test_two_outputs_on_one_path_are_refused(tmp_path: Path, source: Path, target: Path) -> None:
    both = tmp_path / "x.cube"
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png")]
    args += ["--save-map", str(both), "--lut", str(both), "--force", *FAST]
    run(args, [source, target], code=2, phrase="is given as two outputs")
    assert not both.exists() and not (tmp_path / "o.png").exists()


def test_apply_never_writes_over_its_map(tmp_path: Path, source: Path) -> None:
    look = affine_map(tmp_path)
    run(
        ["apply", str(look), str(source), "-o", str(look), "--force"],
        [look, source],
        code=2,
        phrase="refusing to overwrite an input",
    )


# 2. Existence is checked again at commit time


def test_a_file_created_during_the_fit_is_kept(tmp_path: Path, source: Path, target: Path) -> None:
    output = tmp_path / "out.png"

    def competitor(step: int, logs: object) -> None:
        if step == 1:
            output.write_bytes(b"theirs")

    with pytest.raises(UsageError, match="appeared while otcolor was running"):
        transfer(
            source,
            target,
            output,
            TransferConfig(fit=FitSettings(steps=3, samples=300, device="cpu")),
            callback=competitor,
        )
    assert output.read_bytes() == b"theirs"
    assert temp_files(tmp_path) == []

    output.unlink()
    transfer(
        source,
        target,
        output,
        TransferConfig(fit=FitSettings(steps=3, samples=300, device="cpu")),
        force=True,
        callback=competitor,
    )
    assert Image.open(output).size == (16, 10)  # --force: the competing file is replaced


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_no_replace_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool) -> None:
    if not links:  # FAT, some FUSE and network file systems

        def no_link(*args: object, **kwargs: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "out.bin"
    write_atomically(path, lambda fp: fp.write(b"ours"), overwrite=False)
    assert path.read_bytes() == b"ours"

    path.unlink()

    def racing(fp: object) -> None:
        path.write_bytes(b"theirs")
        fp.write(b"ours")

    with pytest.raises(UsageError):
        write_atomically(path, racing, overwrite=False)
    assert path.read_bytes() == b"theirs"
    assert temp_files(tmp_path) == []
    write_atomically(path, racing, overwrite=True)
    assert path.read_bytes() == b"ours"


# 3. Anticipated OS errors and bad values have their documented code


def test_a_name_over_255_bytes_is_a_usage_error(
    tmp_path: Path, source: Path, target: Path
) -> None:
    output = tmp_path / ("n" * 300 + ".png")
    run(
        ["transfer", str(source), str(target), "-o", str(output), *FAST],
        [source, target],
        code=2,
        phrase="file name",
    )


@pytest.mark.parametrize("seed", [2**32, 2**63 - 1, 2**64, 10**30])
def test_huge_seeds_are_usage_errors(
    tmp_path: Path, source: Path, target: Path, seed: int
) -> None:
    output = tmp_path / "o.png"
    args = ["transfer", str(source), str(target), "-o", str(output), *FAST, "--seed", str(seed)]
    run(args, [source, target], code=2, phrase="--seed")
    out = tmp_path / "bench-out"
    run(["bench", "gaussian", "--seed", str(seed), "--out", str(out)], [], code=2, phrase="--seed")
    assert not out.exists()


def test_the_largest_seed_works(tmp_path: Path, source: Path, target: Path) -> None:
    output = tmp_path / "o.png"
    args = ["transfer", str(source), str(target), "-o", str(output), *FAST]
    args += ["--seed", str(2**32 - 1)]
    run(args, [source, target], code=0)


def test_apply_onto_an_existing_plain_file(tmp_path: Path, source: Path, target: Path) -> None:
    look = affine_map(tmp_path)
    plain = tmp_path / "results"
    plain.write_bytes(b"keep me")
    run(
        ["apply", str(look), str(source), str(target), "-o", str(plain)],
        [look, source, target],
        code=2,
        phrase="existing file",
    )
    assert plain.read_bytes() == b"keep me"


def test_an_unlistable_input_folder_is_an_input_error(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()

    def denied(self: Path) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    look = affine_map(tmp_path)
    run(
        ["apply", str(look), str(folder), "-o", str(tmp_path / "out")],
        [look],
        code=3,
        phrase="cannot list the folder",
    )


def test_an_input_deleted_during_the_fit(tmp_path: Path, source: Path, target: Path) -> None:
    original = digest(source)[0]
    saved = tmp_path / "look.otmap"

    def delete(step: int, logs: object) -> None:
        if step == 1 and source.exists():
            source.unlink()

    transfer(
        source,
        target,
        tmp_path / "out.png",
        TransferConfig(fit=FitSettings(steps=3, samples=300, device="cpu")),
        save_map=saved,
        callback=delete,
    )
    # The fingerprint is of the bytes that were fitted, taken when they were decoded.
    assert load_map(saved).metadata["source"]["sha256"] == original


def test_a_mask_deleted_during_the_fit(
    tmp_path: Path, source: Path, target: Path, mask: Path
) -> None:
    original = digest(mask)[0]
    saved = tmp_path / "look.otmap"

    def delete(step: int, logs: object) -> None:
        if step == 1 and mask.exists():
            mask.unlink()

    transfer(
        source,
        target,
        tmp_path / "out.png",
        TransferConfig(fit=FitSettings(steps=3, samples=300, device="cpu")),
        source_mask=mask,
        save_map=saved,
        callback=delete,
    )
    assert load_map(saved).metadata["source_mask"]["sha256"] == original


def test_stray_os_errors_get_documented_codes(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", "somewhere.png")

    monkeypatch.setattr(otcolor.transfer, "sample_colours", gone)
    run(
        ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *FAST],
        [source, target],
        code=3,
        phrase="somewhere.png: No such file or directory",
    )

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(otcolor.transfer, "sample_colours", full)
    run(
        ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *FAST],
        [source, target],
        code=4,
        phrase="No space left on device",
    )


# 4. No fit is wasted on an output that can never be written


def test_a_legal_251_byte_name_works(tmp_path: Path, source: Path, target: Path) -> None:
    output = tmp_path / ("n" * 247 + ".png")  # the temporary name used to be 23 bytes longer
    run(["transfer", str(source), str(target), "-o", str(output), *FAST], [source, target], code=0)
    assert output.is_file()


@pytest.mark.parametrize(
    ("suffix", "field", "size"),
    [
        (".jpg", "exif", 70_000),
        (".png", "icc_profile", 2 << 20),
        (".jpg", "icc_profile", 17 << 20),
    ],
)
def test_metadata_the_format_cannot_hold_is_dropped(
    tmp_path: Path, suffix: str, field: str, size: int
) -> None:
    blob = b"Exif\x00\x00" + bytes(size) if field == "exif" else bytes(size)
    like = LoadedImage(rgb=np.zeros((1, 1, 3), np.float32), **{field: blob})
    path = tmp_path / f"out{suffix}"
    notes = save_image(path, pixels(8, 8).astype(np.float32) / 255, like=like)
    assert any("dropped" in n for n in notes), notes
    with Image.open(path) as im:  # readable by Pillow itself
        im.load()


def test_an_unwritable_mnist_cache_trains_once_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trained = []

    def fake_train(*args: object, **kwargs: object) -> torch.nn.Module:
        trained.append(1)
        return classifier.Classifier()

    monkeypatch.setattr(classifier, "_train", fake_train)
    images, labels = torch.zeros(4, 784), torch.zeros(4, dtype=torch.long)
    with pytest.warns(UserWarning, match="not cached"):
        model, now = classifier.load_or_train_classifier(images, labels, "f", blocker / "cache")
    assert now and trained == [1] and isinstance(model, classifier.Classifier)


# 5. No unreadable or unfaithful output


def test_a_map_giving_non_finite_colours_writes_nothing(tmp_path: Path, source: Path) -> None:
    look = affine_map(tmp_path, scale=1e-320)  # finite metadata, infinite colours
    output = tmp_path / "out.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = run(
            ["apply", str(look), str(source), "-o", str(output)],
            [look, source],
            code=5,
            phrase="non-finite colours",
        )
    assert "RuntimeWarning" not in result.output
    assert not output.exists()
    with pytest.raises(TrainingError):
        load_map(look).look(np.full((4, 3), 0.5, np.float32))


# 6. Denial of service: 16-bit PNGs decode in seconds whatever their shape


def png16(path: Path, width: int, height: int, filter_type: int) -> None:
    row = bytes([filter_type]) + bytes(6 * width)
    body = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height", "filter_type"),
    [(1, 4_000_000, 2), (1, 4_000_000, 4), (4_000_000, 1, 4), (2000, 2000, 3)],
    ids=["tall-up", "tall-paeth", "wide-paeth", "square-average"],
)
def test_16_bit_pngs_decode_fast(
    tmp_path: Path, width: int, height: int, filter_type: int
) -> None:
    path = tmp_path / "big16.png"
    png16(path, width, height, filter_type)
    began = time.perf_counter()
    image = load_image(path)
    seconds = time.perf_counter() - began
    assert image.rgb.shape == (height, width, 3) and not image.rgb.any()
    if filter_type <= 2 or height + width <= otcolor.io.png16._MAX_DIAGONALS:
        assert image.bit_depth == 16
    else:  # too slow at full depth: Pillow reads it at 8 bits, and says so
        assert image.bit_depth == 8 and any("reduced to 8-bit" in w for w in image.warnings)
    assert seconds < 20, seconds  # the row and diagonal loops took minutes


def test_vectorised_unfilter_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    for height in (1, 2, 7, 40):
        rows = rng.integers(0, 256, (height, 12), dtype=np.uint8)
        types = rng.integers(0, 3, height).astype(np.uint8)
        expected = np.empty_like(rows)
        previous = np.zeros(12, np.uint8)
        for y in range(height):  # the PNG specification, row by row
            line = rows[y].astype(np.int32)
            if types[y] == 1:
                line = np.cumsum(line.reshape(-1, 6), axis=0).reshape(-1)
            elif types[y] == 2:
                line = line + previous
            expected[y] = previous = (line % 256).astype(np.uint8)
        assert (otcolor.io.png16._png_unfilter(rows, types, 6) == expected).all()


# 7. Signals and terminals


def test_ctrl_c_while_importing_is_one_line_and_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted_import() -> object:
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            _entry._run(interrupted_import)
        # A second Ctrl-C during shutdown (atexit handlers) must not print a traceback.
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert lines(err) == [f"Error: {_entry.INTERRUPTED}"]


def test_two_real_ctrl_cs_give_one_line_and_no_traceback() -> None:
    # A child process interrupts itself while "importing", then again from an atexit handler,
    # as a second Ctrl-C during shutdown would: deterministic, real signals.
    program = (
        "import atexit, os, signal, time\n"
        # A child started in the background (nohup, CI runners) inherits SIGINT ignored; a
        # terminal's Ctrl-C reaches a foreground process with Python's own handler.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from otcolor import _entry\n"
        "def again():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "def slow_import():\n"
        "    atexit.register(again)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(10)\n"
        "_entry._run(slow_import)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130
    assert lines(done.stderr) == [f"Error: {_entry.INTERRUPTED}"], done.stderr


def test_the_console_script_is_the_guarded_entry_point() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "otcolor"]
    assert script.value == "otcolor._entry:main"


@pytest.mark.parametrize("name", ["two\nlines.png", "red\x1b[31m.png", "bell\x07\t.png"])
def test_file_names_are_escaped_in_errors(tmp_path: Path, target: Path, name: str) -> None:
    bad = tmp_path / name
    bad.write_text("not an image")
    result = run(
        ["transfer", str(bad), str(target), "-o", str(tmp_path / "o.png"), *FAST],
        [bad, target],
        code=3,
    )
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\n" in result.stderr or "\\x1b" in result.stderr or "\\x07" in result.stderr


# 8. Smaller ones


@pytest.mark.parametrize("cls", [OtcolorError, UsageError, InputError, OutputError, TrainingError])
def test_every_error_has_a_hint(cls: type[OtcolorError]) -> None:
    text = str(cls("something failed"))
    assert text.startswith("something failed (") and text.endswith(")")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--samples", "1"),
        ("--samples", "15"),
        ("--smoothness", "inf"),
        ("--smoothness", "nan"),
        ("--strength", "nan"),
    ],
)
def test_bad_values_fail_before_the_fit(
    tmp_path: Path, source: Path, target: Path, option: str, value: str
) -> None:
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *FAST]
    run([*args, option, value], [source, target], code=2, phrase=option)


def test_a_tga_is_called_a_tga(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path, format="TGA")
    with pytest.raises(InputError, match="format TGA is not allowed"):
        load_image(path)


def test_a_flipped_weight_byte_is_caught(tmp_path: Path, source: Path) -> None:
    look = affine_map(tmp_path)
    data = bytearray(look.read_bytes())
    data[-3] ^= 0x01  # inside a float32 mantissa: finite, plausible, wrong
    look.write_bytes(bytes(data))
    run(
        ["apply", str(look), str(source), "-o", str(tmp_path / "o.png")],
        [look, source],
        code=3,
        phrase="SHA-256",
    )


def test_maps_without_a_checksum_still_load(tmp_path: Path) -> None:
    look = affine_map(tmp_path)
    data = look.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    del header["__metadata__"]["sha256"]  # as written before the checksum existed
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    look.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    load_map(look)
