r"""Issue 32, classes 3 and 8: SIGTERM and SIGHUP handled like Ctrl-C, and root options that
print one line.

Signals are sent by the process to itself at a chosen point (a fit step, a file half written,
the third video frame), or by the test to a child that said where it is: deterministic, never
a race against a timer. Every run checks the documented code, one ``Error:`` line, no
``.otcolor-tmp-*`` left, no output, no ffmpeg child left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from harness import FAST, lines, pixels, runner, temp_files
from PIL import Image

import otcolor.framepipe
import otcolor.io.files
import otcolor.io.lut
import otcolor.pipeline
from otcolor import _entry
from otcolor.cli import app
from otcolor.errors import EXIT_CODES
from otcolor.interrupts import Terminated, terminations_as_interrupts

HANDLED = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    r"""The CLI ignores further signals once it exits on one; the test process must not."""

    saved = {sig: signal.getsignal(sig) for sig in HANDLED}
    # A run that exited on a signal elsewhere in this process left them ignored (as the CLI
    # does on its way out): start from what a fresh process has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def send(sig: int) -> None:
    r"""Sends ``sig`` to this process, once the code under test has taken it over: should it
    not have (a regression), the test fails instead of the whole test run being killed."""

    if not callable(signal.getsignal(sig)):
        raise AssertionError(f"{signal.Signals(sig).name} is not handled (default or ignored)")
    os.kill(os.getpid(), sig)


def check_terminated(result, tmp_path: Path, code: int, name: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    (line,) = lines(result.stderr)
    assert line.startswith(f"Error: terminated by {name} (") and line.endswith(")"), line
    assert "Traceback" not in result.output and temp_files(tmp_path) == []


# 3. Signals


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_during_the_fit_exits_with_its_code(
    tmp_path: Path,
    source: Path,
    target: Path,
    monkeypatch: pytest.MonkeyPatch,
    sig: int,
    code: int,
) -> None:
    output = tmp_path / "out.png"
    real = otcolor.pipeline.fit_color_map

    def fit(*args: object, **kwargs: object) -> object:
        send(sig)  # delivered at the next bytecode: inside the fit
        return real(*args, **kwargs)

    monkeypatch.setattr(otcolor.pipeline, "fit_color_map", fit)
    args = ["transfer", str(source), str(target), "-o", str(output), *FAST]
    result = runner.invoke(app, [*args, "--save-map", str(tmp_path / "m.otmap")])
    check_terminated(result, tmp_path, code, signal.Signals(sig).name)
    assert not output.exists() and not (tmp_path / "m.otmap").exists()


@pytest.mark.parametrize("during", ["image", "map", "lut"])
def test_sigterm_while_writing_leaves_no_output_and_no_temporary_file(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, during: str
) -> None:
    outputs = {
        "image": tmp_path / "o.png",
        "map": tmp_path / "m.otmap",
        "lut": tmp_path / "l.cube",
    }
    previous = {role: f"previous {role}".encode() for role in outputs}
    for role, path in outputs.items():
        path.write_bytes(previous[role])
    real = otcolor.io.commit.finish_file

    def finish(tmp: str, path: str, *, overwrite: bool) -> None:
        if Path(path) == outputs[during]:  # its temporary file is complete, not committed
            assert temp_files(tmp_path)
            send(signal.SIGTERM)
        real(tmp, path, overwrite=overwrite)

    monkeypatch.setattr(otcolor.io.files, "finish_file", finish)
    fit_lut = otcolor.io.lut.fit_lut  # 9 fitting points per axis: a second, not fifteen
    monkeypatch.setattr(otcolor.io.lut, "fit_lut", lambda *a, **k: fit_lut(*a, points=9, **k))
    args = ["transfer", str(source), str(target), "-o", str(outputs["image"]), *FAST]
    args += ["--save-map", str(outputs["map"]), "--lut", str(outputs["lut"]), "--force"]
    result = runner.invoke(app, [*args, "--lut-size", "5"])
    check_terminated(result, tmp_path, 143, "SIGTERM")
    assert {r: p.read_bytes() for r, p in outputs.items()} == previous  # all kept, none new


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1",
         "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.usefixtures("ffmpeg")
def test_sigterm_during_video_encoding_stops_ffmpeg_and_cleans_up(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    look = tmp_path / "look.otmap"
    reference = tmp_path / "ref.png"
    Image.fromarray(pixels(12, 14, seed=1)).save(reference)
    children: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    class Recorded(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            children.append(self)

    real_render = otcolor.framepipe.render
    frames: list[int] = []

    def render(*args: object, **kwargs: object) -> np.ndarray:
        frames.append(1)
        if len(frames) == 3:  # both ffmpeg processes are running and have data in flight
            send(signal.SIGTERM)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    monkeypatch.setattr(otcolor.framepipe, "render", render)
    output = tmp_path / "out.mp4"
    args = ["video", str(clip), str(reference), "-o", str(output), *FAST]
    result = runner.invoke(app, [*args, "--save-map", str(look)])
    check_terminated(result, tmp_path, 143, "SIGTERM")
    assert not output.exists() and not look.exists()
    assert len(children) >= 2 and all(child.poll() is not None for child in children)


CHILD = """
import os, signal, sys, time
# A child started in the background (nohup, CI runners) may inherit these ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
import otcolor.pipeline
from otcolor import _entry

def fit(*args, **kwargs):
    print("fitting", flush=True)
    time.sleep(120)

otcolor.pipeline.fit_color_map = fit
sys.argv = ["otcolor", *sys.argv[1:]]
_entry.main()
"""


def test_a_real_sigterm_from_outside_ends_the_command_cleanly(
    tmp_path: Path, source: Path, target: Path
) -> None:
    sig, code = signal.SIGTERM, 143
    output = tmp_path / "out.png"
    args = [sys.executable, "-c", CHILD, "transfer", str(source), str(target), "-o", str(output)]
    child = subprocess.Popen(
        [*args, *FAST, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "fitting\n"
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == code, err
    assert lines(err) == [f"Error: terminated by {signal.Signals(sig).name} ("
                          "no partial output or temporary file was left; rerun the command)"]  # fmt: skip
    assert not output.exists() and temp_files(tmp_path) == []


def test_sigterm_while_importing_is_one_line_and_143(capsys: pytest.CaptureFixture[str]) -> None:
    def terminated_import() -> object:
        send(signal.SIGTERM)
        raise AssertionError("the signal should have ended the import")

    with pytest.raises(SystemExit) as exit_info:
        _entry._run(terminated_import)
    assert exit_info.value.code == 143
    assert lines(capsys.readouterr().err)[0].startswith("Error: terminated by SIGTERM (")
    # The exit is under way: a second signal is ignored, not a traceback from atexit.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_an_ignored_sigterm_stays_ignored() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nohup, or a parent's choice
    with terminations_as_interrupts():
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # nothing happens
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with terminations_as_interrupts():
        with pytest.raises(Terminated) as caught:
            send(signal.SIGTERM)
        assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored on the way out


def test_the_signal_codes_are_documented() -> None:
    assert {129, 130, 143} <= set(EXIT_CODES)
    docs = Path(__file__).resolve().parents[1] / "docs"
    table = (docs / "safety.md").read_text(encoding="utf-8")  # the exit code table
    assert "| 143 |" in table and "| 129 |" in table
    matrix = (docs / "reliability.md").read_text(encoding="utf-8")
    assert "| 143 / 129 |" in matrix and "| 143 |" in matrix


# 8. Root options print one line


@pytest.mark.parametrize(
    ("args", "env", "phrase"),
    [
        (["--frobnicate", "transfer"], {}, "No such option: --frobnicate"),
        (["--version=2"], {}, "--version"),
        (["lut", "--help"], {"OTCOLOR_DEBUG": "maybe"}, "OTCOLOR_DEBUG"),
        (["transfer"], {"OTCOLOR_DEBUG": "2"}, "OTCOLOR_DEBUG"),
    ],
)
def test_bad_root_options_are_one_line(args: list[str], env: dict, phrase: str) -> None:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert line.startswith("Error: ") and phrase in line and line.endswith("--help')"), line
    assert result.stdout == ""
