r"""Issue 32, classes 4 and 7: all-or-nothing outputs, and degenerate image sizes.

A full disk is made where it really shows, at the ``fsync`` of one output's temporary file
(:func:`full_disk_at`); a batch item fails by its bytes (truncated, corrupt pixel data) or its
size. After every failure: the documented code, no output written (previous ones byte for
byte), no temporary file, no folder made for the failed run.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from crafted import make_bad
from harness import FAST, digest, pixels, run, temp_files
from PIL import Image

import otcolor.apply
import otcolor.io.commit
import otcolor.io.files
import otcolor.io.lut
from otcolor.errors import UsageError
from otcolor.io import outputs_together, write_atomically
from otcolor.io.mapfile import save_map
from otcolor.look import Look, LookSettings
from otcolor.metrics import amp999
from otcolor.models import AffineMap, ColorMap


def full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    r"""``fsync`` of the temporary file of the output called ``name`` fails with ENOSPC, as a
    full disk reports it (delayed allocation surfaces at the sync)."""

    real = os.fsync

    def fsync(fd: int) -> None:
        if f".{name}.otcolor-tmp-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(otcolor.io.files.os, "fsync", fsync)


@pytest.fixture
def fast_lut(monkeypatch: pytest.MonkeyPatch) -> None:
    fit_lut = otcolor.io.lut.fit_lut  # 9 fitting points per axis: a second, not fifteen
    monkeypatch.setattr(otcolor.io.lut, "fit_lut", lambda *a, **k: fit_lut(*a, points=9, **k))


@pytest.fixture
def look(tmp_path: Path) -> Path:
    path = tmp_path / "look.otmap"
    inner = AffineMap(torch.diag(torch.tensor([1.1, 0.9, 0.8])), torch.full((3,), 0.05))
    settings = LookSettings(regrain=None)
    save_map(path, Look(ColorMap(inner, torch.tensor([0.4, 0.5, 0.6]), 0.5).eval(), settings))
    return path


# 4. All or nothing: transfer's image, map and LUT


@pytest.mark.parametrize(
    ("failing", "existing"),
    [("o.png", True), ("m.otmap", True), ("l.cube", True), ("l.cube", False)],
)
def test_transfer_writes_all_three_outputs_or_none(
    tmp_path: Path,
    source: Path,
    target: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_lut: None,
    failing: str,
    existing: bool,
) -> None:
    outputs = [tmp_path / name for name in ("o.png", "m.otmap", "l.cube")]
    if existing:
        for path in outputs:
            path.write_bytes(b"previous " + path.name.encode())
    before = {p: p.read_bytes() for p in outputs if p.exists()}
    full_disk_at(monkeypatch, failing)
    args = ["transfer", str(source), str(target), "-o", str(outputs[0]), *FAST, "--force"]
    args += ["--save-map", str(outputs[1]), "--lut", str(outputs[2]), "--lut-size", "5"]
    run(args, [source, target], code=4, phrase="No space left on device")
    assert {p: p.read_bytes() for p in outputs if p.exists()} == before
    assert temp_files(tmp_path) == []


def test_a_commit_that_fails_undoes_the_ones_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (tmp_path / n for n in ("a.txt", "b.txt", "c.txt"))
    first.write_bytes(b"old a")
    real = otcolor.io.commit.commit_file

    def commit(tmp: str, path: Path, *, overwrite: bool) -> None:
        if path == third:
            raise OSError(errno.EIO, "Input/output error")
        real(tmp, path, overwrite=overwrite)

    monkeypatch.setattr(otcolor.io.commit, "commit_file", commit)
    with pytest.raises(OSError), outputs_together():
        for path in (first, second, third):
            write_atomically(path, lambda fp, p=path: fp.write(b"new " + p.name.encode()))
    assert first.read_bytes() == b"old a"  # replaced, then restored from its hard link
    assert not second.exists() and not third.exists()  # new, then removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_file_appearing_at_a_later_output_keeps_the_batch_unwritten(
    tmp_path: Path, source: Path, target: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    real = otcolor.apply.save_image

    def save(path: Path, *args: object, **kwargs: object) -> list[str]:
        if path.name == "target.png":
            (out / "target.png").write_bytes(b"theirs")  # another program, mid-run
        return real(path, *args, **kwargs)

    monkeypatch.setattr(otcolor.apply, "save_image", save)
    args = ["apply", str(look), str(source), str(target), "-o", str(out)]
    run(args, [look, source, target], code=2, phrase="appeared while otcolor was running")
    assert sorted(p.name for p in out.iterdir()) == ["target.png"]
    assert (out / "target.png").read_bytes() == b"theirs"


# 4. All or nothing: apply batches


@pytest.mark.parametrize(
    "bad", ["truncated-png", "corrupt-idat", "text-named-jpg", "zero-byte", "fifo"]
)
@pytest.mark.parametrize("folder", ["new", "existing"])
def test_a_bad_batch_item_writes_nothing(
    tmp_path: Path, source: Path, target: Path, look: Path, bad: str, folder: str
) -> None:
    if bad == "fifo":
        broken = tmp_path / "pipe.png"
        os.mkfifo(broken)
    else:
        broken = make_bad(tmp_path, bad)
    out = tmp_path / "out"
    if folder == "existing":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    args = ["apply", str(look), str(source), str(broken), str(target), "-o", str(out)]
    run(args, [look, source, target], code=3)
    if folder == "existing":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()  # made for the batch, removed with it
    assert temp_files(tmp_path) == []


def test_a_corrupt_header_is_found_before_any_image_is_decoded(
    tmp_path: Path, source: Path, target: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[Path] = []
    real = otcolor.apply.load_image
    monkeypatch.setattr(
        otcolor.apply, "load_image", lambda p, **k: decoded.append(p) or real(p, **k)
    )
    broken = make_bad(tmp_path, "text-named-jpg")
    args = ["apply", str(look), str(source), str(target), str(broken), "-o", str(tmp_path / "o")]
    run(args, [look, source, target], code=3)
    assert decoded == [broken]  # asked only for its message, before the others' pixels


def test_a_mask_that_fits_only_the_first_image_writes_nothing(
    tmp_path: Path, source: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.png"
    Image.fromarray(pixels(16, 10)).save(other)  # the source turned a quarter
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(mask)
    decoded: list[Path] = []
    real = otcolor.apply.load_image
    monkeypatch.setattr(
        otcolor.apply, "load_image", lambda p, **k: decoded.append(p) or real(p, **k)
    )
    out = tmp_path / "out"
    args = ["apply", str(look), str(source), str(other), "-o", str(out)]
    run([*args, "--apply-mask", str(mask)], [look, source, other, mask], code=2, phrase="mask is")
    assert decoded == [] and not out.exists()


def test_a_quarter_turned_jpeg_is_sized_upright_from_its_header(
    tmp_path: Path, look: Path
) -> None:
    photo = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 10x16 stored, 16x10 upright... and its mask
    Image.fromarray(pixels(16, 10)).save(photo, exif=exif.tobytes())
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(mask)
    second = tmp_path / "second.png"
    Image.fromarray(pixels(10, 16)).save(second)
    args = ["apply", str(look), str(photo), str(second), "-o", str(tmp_path / "out")]
    run([*args, "--apply-mask", str(mask)], [look, photo, mask, second], code=0)
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_a_png_turned_by_a_late_exif_chunk_is_not_refused(tmp_path: Path, look: Path) -> None:
    # eXIf after the pixel data: legal, and only a full decode meets it in Pillow.
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "turned.png"
    Image.fromarray(pixels(16, 10)).save(photo, exif=exif.tobytes())
    data = photo.read_bytes()
    start = data.index(b"eXIf") - 4
    end = start + 12 + int.from_bytes(data[start : start + 4], "big")
    chunk, rest = data[start:end], data[:start] + data[end:]
    iend = rest.index(b"IEND") - 4
    photo.write_bytes(rest[:iend] + chunk + rest[iend:])
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(mask)  # the upright size
    second = tmp_path / "second.png"
    Image.fromarray(pixels(10, 16)).save(second)
    args = ["apply", str(look), str(photo), str(second), "-o", str(tmp_path / "out")]
    run([*args, "--apply-mask", str(mask)], [look, photo, mask, second], code=0)


def test_a_full_disk_at_the_last_image_writes_nothing(
    tmp_path: Path, source: Path, target: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "source.png").write_bytes(b"previous")
    full_disk_at(monkeypatch, "target.png")
    args = ["apply", str(look), str(source), str(target), "-o", str(out), "--force"]
    run(args, [look, source, target], code=4, phrase="No space left on device")
    assert [p.name for p in out.iterdir()] == ["source.png"]
    assert (out / "source.png").read_bytes() == b"previous"


def test_a_good_batch_still_writes_every_output(
    tmp_path: Path, source: Path, target: Path, look: Path
) -> None:
    out = tmp_path / "out"
    run(["apply", str(look), str(source), str(target), "-o", str(out)], [look], code=0)
    assert sorted(p.name for p in out.iterdir()) == ["source.png", "target.png"]
    assert digest(source)[0] != digest(out / "source.png")[0]


def test_outputs_together_stages_nothing_outside_a_block(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.txt", lambda fp: fp.write(b"a"))
    assert (tmp_path / "a.txt").read_bytes() == b"a"  # committed at once, as before
    with pytest.raises(UsageError), outputs_together():
        write_atomically(tmp_path / "b.txt", lambda fp: fp.write(b"b"))
        assert not (tmp_path / "b.txt").exists() and len(temp_files(tmp_path)) == 1
        raise UsageError("a later check fails")
    assert not (tmp_path / "b.txt").exists() and temp_files(tmp_path) == []


# 7. Degenerate sizes


@pytest.mark.parametrize(("shape", "role"), [((1, 1), "source"), ((4000, 1), "target")])
def test_preview_of_a_degenerate_image_works(
    tmp_path: Path, source: Path, shape: tuple[int, int], role: str
) -> None:
    odd = tmp_path / "odd.png"
    Image.fromarray(pixels(*shape, seed=3)).save(odd)
    pair = [odd, source] if role == "source" else [source, odd]
    sheet = tmp_path / "sheet.png"
    args = ["preview", *map(str, pair), "-o", str(sheet), "--smoothness", "0", "--steps", "2"]
    run([*args, "--json"], [odd, source], code=0)
    assert Image.open(sheet).size[0] > 0


@pytest.mark.parametrize("command", ["pixels-source", "pixels-target", "known"])
def test_a_benchmark_refuses_a_one_pixel_image_before_any_fit(
    tmp_path: Path, source: Path, command: str, no_training: list[object]
) -> None:
    dot = tmp_path / "dot.png"
    Image.fromarray(pixels(1, 1)).save(dot)
    out = tmp_path / "results"
    if command == "known":
        args = ["bench", "known", "--photo", str(dot), "--model", "cmgn", "--steps", "2"]
    else:
        pair = [dot, source] if command == "pixels-source" else [source, dot]
        args = ["bench", "pixels", *map(str, pair), "--model", "cmgn", "--loss", "ot"]
    run([*args, "--out", str(out)], [dot, source], code=3, phrase="too small for a benchmark")
    assert no_training == [] and not out.exists()


def test_amp999_of_a_line_uses_its_only_neighbours() -> None:
    line = pixels(9, 1).astype(np.float64) / 255
    assert amp999(line, 2 * line) == pytest.approx(
        amp999(line.swapaxes(0, 1), 2 * line.swapaxes(0, 1))
    )
    assert np.isnan(amp999(line[:1], line[:1]))  # one pixel: no neighbour, no amplification
