r"""The reliability matrix (issues 6 and 20): output safety, interruptions and exit codes.

Run through the real ``otcolor`` command with fixtures generated here.

Every command run goes through :func:`harness.run`, which also checks the invariants that hold
whatever happens: the inputs are byte-identical (and keep their mtime), no temporary file is
left, and a failure prints exactly one ``Error:`` line on stderr and nothing on stdout.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import pixels, run, runner, transfer_args
from PIL import Image, ImageCms
from typer.main import get_command

import otcolor.fitting.estimators
import otcolor.fitting.trainers
import otcolor.pipeline
import otcolor.transfer
from otcolor.cli import app
from otcolor.errors import EXIT_CODES
from otcolor.fitting import FitSettings

ORIENTATION, MAKE = 0x0112, 0x010F

# Section 5.3: output safety


def test_output_never_overwrites_an_input(
    tmp_path: Path,
    source: Path,
    target: Path,
    no_training: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "link.png").symlink_to(source)
    os.link(target, tmp_path / "hard.png")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    spellings = [
        source,
        target,
        Path("source.png"),
        Path("./sub/../target.png"),
        tmp_path / "link.png",
        tmp_path / "hard.png",
        tmp_path / "sub" / ".." / "source.png",
    ]
    for output in spellings:
        for force in ([], ["--force"]):
            run(
                transfer_args(source, target, output, *force),
                [source, target],
                code=2,
                phrase="refusing to overwrite an input",
            )
    assert no_training == []


def test_no_overwrite_without_force(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous")
    loads: list[object] = []
    real_load = otcolor.transfer.load_image
    monkeypatch.setattr(
        otcolor.transfer, "load_image", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    run(
        transfer_args(source, target, output),
        [source, target, output],
        code=2,
        phrase="already exists (use --force to overwrite)",
    )
    assert loads == []  # refused before decoding anything
    run(transfer_args(source, target, output, "--force"), [source, target], code=0)
    assert Image.open(output).size == (16, 10)


OUTPUT_CASES = [
    ("missing-directory", "nowhere/out.png", 4, "does not exist"),
    ("unknown-extension", "out.xyz", 2, "unsupported output extension .xyz"),
    ("no-extension", "out", 2, "unsupported output extension (none)"),
    ("blocked-extension", "out.eps", 2, "unsupported output extension .eps"),
    ("is-a-directory", "folder.png", 2, "is a directory"),
]


@pytest.mark.parametrize(
    ("case", "name", "code", "phrase"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES]
)
def test_unwritable_output_is_refused_before_training(
    tmp_path: Path,
    source: Path,
    target: Path,
    no_training: list[object],
    case: str,
    name: str,
    code: int,
    phrase: str,
) -> None:
    (tmp_path / "folder.png").mkdir()
    run(
        transfer_args(source, target, tmp_path / name, "--force"),
        [source, target],
        code=code,
        phrase=phrase,
    )
    assert no_training == []


def test_read_only_output_directory(
    tmp_path: Path, source: Path, target: Path, no_training: list[object], deny
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    deny(locked, "w")
    try:
        run(
            transfer_args(source, target, locked / "out.png"),
            [source, target],
            code=4,
            phrase="not writable",
        )
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".gif"])
def test_rgba_to_a_format_without_alpha_is_refused_before_training(
    tmp_path: Path, target: Path, no_training: list[object], suffix: str
) -> None:
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([pixels(10, 16), np.full((10, 16), 128, np.uint8)])).save(rgba)
    output = tmp_path / f"out{suffix}"
    run(
        transfer_args(rgba, target, output),
        [rgba, target],
        code=4,
        phrase="cannot hold the input's alpha channel (use .png/.webp/.tiff)",
    )
    assert not output.exists() and no_training == []


def failing_save(exception: BaseException) -> Callable[..., None]:
    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise exception

    return save


@pytest.mark.parametrize(
    ("exception", "code", "phrase"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 4, "No space left on device"),
        (ValueError("encoder error -2"), 4, "cannot write"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["disk-full", "encoder-error", "ctrl-c"],
)
def test_failed_save_keeps_the_previous_output(
    tmp_path: Path,
    source: Path,
    target: Path,
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    code: int,
    phrase: str,
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous contents")
    monkeypatch.setattr(Image.Image, "save", failing_save(exception))
    run(
        transfer_args(source, target, output, "--force"),
        [source, target],
        code=code,
        phrase=phrase,
    )
    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "source.png", "target.png"]


@pytest.mark.parametrize("when", ["decoding", "training", "applying"])
def test_ctrl_c_anywhere_loses_nothing(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(b"previous contents")
    real_load, real_fit = otcolor.transfer.load_image, otcolor.pipeline.fit_color_map

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def load_then_interrupt(path: object, **kwargs: object) -> object:
        if Path(str(path)) == target:
            raise KeyboardInterrupt
        return real_load(path, **kwargs)

    def fit_interrupted_at_step_2(
        x: np.ndarray,
        y: np.ndarray,
        config: FitSettings,
        callback: Callable[..., None],
        **kwargs: Any,
    ) -> object:
        def stop(step: int, logs: dict[str, float]) -> None:
            callback(step, logs)
            if step == 2:
                raise KeyboardInterrupt

        return real_fit(x, y, config, stop, **kwargs)

    patches = {
        "decoding": (otcolor.transfer, "load_image", load_then_interrupt),
        "training": (otcolor.pipeline, "fit_color_map", fit_interrupted_at_step_2),
        "applying": (otcolor.pipeline, "apply_look", interrupt),
    }
    monkeypatch.setattr(*patches[when])
    if when == "applying":  # the regrain route as well as the pure one
        monkeypatch.setattr(otcolor.pipeline, "regrain", interrupt)
    run(
        transfer_args(source, target, output, "--force"),
        [source, target],
        code=130,
        phrase="interrupted",
    )
    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "source.png", "target.png"]


def test_json_parses_with_warnings_and_output_round_trips(tmp_path: Path, target: Path) -> None:
    # A rotated, profiled JPEG source onto a single-colour-free target, JPEG out: stdout is one
    # JSON object, the saved file reopens upright with the profile and no Orientation tag.
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    src = tmp_path / "rotated.jpg"
    Image.fromarray(pixels(10, 16)).save(src, exif=exif.tobytes(), icc_profile=icc, quality=95)
    flat = tmp_path / "flat.png"
    Image.new("RGB", (5, 5), (10, 20, 30)).save(flat)
    output = tmp_path / "out.jpg"
    result = run(transfer_args(src, flat, output, "--json"), [src, flat], code=0)
    (line,) = result.stdout.splitlines()
    payload = json.loads(line)
    assert payload["warnings"] and payload["output"] == str(output)
    out = Image.open(output)
    out.load()
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (10, 16))
    assert out.info["icc_profile"] == icc and out.getexif().get(ORIENTATION, 1) == 1


# Exit codes documented in every command's help


def commands(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, (*path, name))


def test_every_command_documents_the_exit_codes() -> None:
    paths = list(commands(get_command(app)))
    assert ("transfer",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, path
        assert "Exit codes" in result.stdout, path
        for code in EXIT_CODES:
            assert f"{code:>3}  " in result.stdout, (path, code)


@pytest.mark.parametrize(
    "bad",
    [
        ["--steps", "0"],
        ["--samples", "-1"],
        ["--quality", "0"],
        ["--max-pixels", "0"],
        ["--model", "gan"],
        ["--device", "tpu"],
        ["--bogus"],
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, source: Path, target: Path, bad: list[str]
) -> None:
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *bad]
    result = run(args, [source, target], code=2, phrase="(see '")
    assert bad[0] in result.stderr
