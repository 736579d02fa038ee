r"""Tests for the otcolor command: options, output streams, exit codes and error lines."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

import otcolor
import otcolor.transfer
from otcolor.cli import app
from otcolor.cli.options import DeviceName, InitName, LossName, ModelName
from otcolor.errors import EXIT_CODES, InputError
from otcolor.losses import LOSSES
from otcolor.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--steps", "5", "--samples", "200", "--device", "cpu"]
JSON_KEYS = {
    "output",
    "model",
    "loss",
    "device",
    "seed",
    "steps",
    "seconds",
    "fit_seconds",
    "saved_map",
    "lut",
    "final_loss",
    "metrics",
    "warnings",
    "versions",
}

runner = CliRunner()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    # Small smooth images with distinct palettes: warm gradient to cool noise.
    y, x = np.mgrid[0:16, 0:24] / np.array([15.0, 23.0])[:, None, None]
    warm = np.stack([0.6 + 0.4 * x, 0.3 + 0.3 * y, 0.1 + 0.1 * x * y], axis=-1)
    cool = np.random.default_rng(0).uniform([0.0, 0.2, 0.5], [0.3, 0.6, 1.0], (16, 24, 3))
    source, target = tmp_path / "source.png", tmp_path / "target.png"
    Image.fromarray(np.round(warm * 255).astype(np.uint8)).save(source)
    Image.fromarray(np.round(cool * 255).astype(np.uint8)).save(target)
    return source, target


def fake_result(output: Path, **changes: object) -> otcolor.transfer.TransferResult:
    fields = dict(
        output=output,
        model="cmgn",
        loss="sliced",
        device="cpu",
        seed=0,
        steps=3,
        seconds=0.5,
        fit_seconds=0.25,
        final_loss=0.125,
        metrics={"w2": 0.01},
        warnings=[],
    )
    fields.update(changes)
    return otcolor.transfer.TransferResult(**fields)


# Registries


def _choices(path: list[str], option: str) -> list[str]:
    r"""The choices ``otcolor PATH --OPTION`` accepts, read from the built command."""

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    param = next(p for p in command.params if p.name == option)
    annotation = param.type_descriptor.annotation  # type: ignore[attr-defined]
    enum = next(a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None))
    return [e.value for e in enum]


@pytest.mark.parametrize(
    ("option", "value", "read"),
    [
        *[("--model", m, lambda c: c.fit.model) for m in ("cmgn", "mmgn", "icnn")],
        *[("--loss", n, lambda c: c.fit.loss) for n in ("ot", "kl", "wgan", "sliced")],
        ("--estimator", "plan", lambda c: c.fit.estimator_name),
        ("--init", "identity", lambda c: c.fit.init),
        ("--space", "lab", lambda c: c.look.space),
        ("--no-regrain", None, lambda c: c.look.regrain),
        ("--preserve-luminance", True, lambda c: c.look.preserve_luminance),
        ("--strength", 0.25, lambda c: c.look.strength),
    ],
)
def test_each_choice_reaches_the_library(
    tmp_path: Path,
    images: tuple[Path, Path],
    calls: list[dict[str, object]],
    option: str,
    value: object,
    read: object,
) -> None:
    # The CLI builds the library's config from every choice it offers; a choice that is parsed
    # but dropped, or reaches the wrong setting, fails here.
    source, target = images
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), option]
    if not option.startswith("--no-") and value is not True:
        args.append(str(value))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    (call,) = calls
    assert read(call["config"]) == value  # type: ignore[operator]


def test_the_choices_a_command_offers_are_its_registrys_keys() -> None:
    # A hand-written choice list would drift from the registry: every key is offered.
    from otcolor.fitting.estimators import ESTIMATORS
    from otcolor.io.lut import LUT_FORMATS

    assert _choices(["transfer"], "estimator") == list(ESTIMATORS)
    assert _choices(["lut"], "fmt") == list(LUT_FORMATS)
    assert _choices(["transfer"], "model") == list(MODELS)
    assert _choices(["transfer"], "loss") == list(LOSSES)


def test_choices_follow_the_registry_they_are_built_from() -> None:
    from otcolor.cli.options import choices

    registry = {"b": 1, "a": 2}
    enum = choices("Demo", registry, "doc", all_=True)
    assert [e.value for e in enum] == ["b", "a", "all"] and enum("a") == "a"
    registry["c"] = 3  # built once: a later key is not a choice
    assert "c" not in {e.value for e in enum}


def test_defaults_are_valid_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from otcolor.fitting import FitSettings

    config = FitSettings()
    for enum, default in [
        (ModelName, config.model),
        (LossName, config.loss),
        (InitName, config.init),
        (DeviceName, config.device),
    ]:
        assert default in {e.value for e in enum}
    # Every init the CLI offers is accepted by the library (an unknown one is rejected) ...
    for init in InitName:
        assert FitSettings(init=init.value).init == init.value
    with pytest.raises(otcolor.errors.UsageError, match="unknown init"):
        FitSettings(init="nope")
    # ... and every device it offers is one resolve_device knows, where all are available.
    from otcolor.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert [resolve_device(e.value).type for e in DeviceName] == ["cuda", "cpu", "cuda", "mps"]


# Help and version


def test_help_lists_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout and "transfer" in result.stdout
    for code in EXIT_CODES:
        assert f" {code} " in result.stdout

    result = runner.invoke(app, ["transfer", "--help"])
    assert result.exit_code == 0
    for option in ("--output", "--model", "--loss", "--steps", "--samples", "--json", "--force"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["transfer"],
        ["apply"],
        ["lut"],
        ["video"],
        ["mnist"],
        ["preview"],
        ["bench"],
        ["bench", "pixels"],
    ],
)
def test_flags_read_as_flags_in_help(command: list[str]) -> None:
    # Typer 0.29 labels every on/off flag "<bool>", as if it took a value.
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout and "boolean" not in result.stdout.lower()


@pytest.mark.parametrize("command", [[], ["bench"]])
def test_bare_group_prints_help_and_exits_2(command: list[str]) -> None:
    # Documented choice (README "Exit codes"): no command ran, so it is a usage error.
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "Usage:" in result.stdout and "Commands" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"otcolor {otcolor.__version__}\n"


# End to end, with the real library


def test_transfer_end_to_end(tmp_path: Path, images: tuple[Path, Path]) -> None:
    source, target = images
    before = digest(source), digest(target)
    output = tmp_path / "out.png"

    result = runner.invoke(app, ["transfer", str(source), str(target), "-o", str(output), *FAST])
    assert result.exit_code == 0, result.stderr
    assert Image.open(output).size == (24, 16)
    assert "output" in result.stdout and "final loss" in result.stdout
    assert (digest(source), digest(target)) == before
    assert not [p for p in tmp_path.iterdir() if "otcolor-tmp" in p.name]


def test_json_is_exactly_one_object(tmp_path: Path, images: tuple[Path, Path]) -> None:
    source, target = images
    output = tmp_path / "out.jpg"
    args = ["transfer", str(source), str(target), "-o", str(output), "--json", "--seed", "3"]

    result = runner.invoke(app, args + FAST)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    payload = json.loads(result.stdout)
    assert set(payload) == JSON_KEYS
    assert payload["output"] == str(output) and payload["seed"] == 3
    # L-BFGS iterations run: the 5 asked for, plus the refinement of a restart if one was needed
    # (the 3 of the 5 that the refinement stage gets).
    assert payload["steps"] in (5, 8)
    assert (payload["model"], payload["loss"], payload["device"]) == ("cmgn", "ot", "cpu")
    assert isinstance(payload["metrics"], dict) and isinstance(payload["warnings"], list)
    assert set(payload["versions"]) == {"otcolor", "torch", "pillow"}
    assert Image.open(output).format == "JPEG"


def test_existing_output_needs_force(tmp_path: Path, images: tuple[Path, Path]) -> None:
    source, target = images
    output = tmp_path / "out.png"
    output.write_bytes(b"previous")
    args = ["transfer", str(source), str(target), "-o", str(output), *FAST]

    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert output.read_bytes() == b"previous"
    (line,) = error_lines(result.stderr)
    assert line.startswith("Error: ") and "--force" in line

    result = runner.invoke(app, [*args, "--force", "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and Image.open(output).size == (24, 16)


@pytest.mark.parametrize("force", [False, True])
def test_output_equal_to_input_is_refused(images: tuple[Path, Path], force: bool) -> None:
    source, target = images
    before = digest(source)
    args = ["transfer", str(source), str(target), "-o", str(source), *FAST]
    result = runner.invoke(app, args + (["--force"] if force else []))
    assert result.exit_code == 2
    assert "input" in result.stderr and digest(source) == before


def test_missing_source(tmp_path: Path, images: tuple[Path, Path]) -> None:
    _, target = images
    args = ["transfer", str(tmp_path / "nope.png"), str(target), "-o", str(tmp_path / "o.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_usage_error(tmp_path: Path, images: tuple[Path, Path]) -> None:
    source, target = images
    args = [
        "transfer",
        str(source),
        str(target),
        "-o",
        str(tmp_path / "o.png"),
        "--steps",
        "5",
        "--samples",
        "200",
        "--device",
        "cuda",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith("Error: ") and "cuda" in line.lower()
    assert not (tmp_path / "o.png").exists()


def test_corrupt_input_is_one_line(tmp_path: Path, images: tuple[Path, Path]) -> None:
    source, target = images
    corrupt = tmp_path / "corrupt.png"
    data = source.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    output = tmp_path / "o.png"

    result = runner.invoke(app, ["transfer", str(corrupt), str(target), "-o", str(output), *FAST])
    assert result.exit_code == 3
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"Error: {corrupt}: ")
    assert "Traceback" not in result.output and result.stdout == ""
    assert not output.exists()


def test_real_exit_code_through_python_m(tmp_path: Path, images: tuple[Path, Path]) -> None:
    _, target = images
    text = tmp_path / "text.png"
    text.write_text("not an image")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("OTCOLOR_DEBUG", None)
    command = [
        sys.executable,
        "-m",
        "otcolor",
        "transfer",
        str(text),
        str(target),
        "-o",
        str(tmp_path / "o.png"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 3
    assert done.stdout == ""
    (line,) = error_lines(done.stderr)
    assert line.startswith("Error: ") and "not a recognised image" in line


# Option parsing and rendering, with the library call replaced


@pytest.mark.parametrize(
    "bad",
    [
        ["--steps", "0"],
        ["--samples", "0"],
        ["--quality", "101"],
        ["--smoothness", "-1"],
        ["--model", "gan"],
        ["--loss", "l2"],
        ["--device", "tpu"],
        ["--init", "zero"],
    ],
)
def test_invalid_options_exit_2(tmp_path: Path, images: tuple[Path, Path], bad: list[str]) -> None:
    source, target = images
    result = runner.invoke(
        app, ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), *bad]
    )
    assert result.exit_code == 2


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []

    def fake(source, target, output, config=None, *, force=False, callback=None, **extras):
        seen.append(dict(source=source, target=target, output=output, config=config, force=force))
        steps = config.fit.total_steps
        for step in range(1, steps + 1):
            callback(step, {"loss": 1.0 / step})
        return fake_result(
            output, model=config.fit.model, steps=steps, warnings=["source.png: something lost"]
        )

    monkeypatch.setattr(otcolor.transfer, "transfer", fake)
    return seen


def test_options_reach_the_config(
    tmp_path: Path, images: tuple[Path, Path], calls: list[dict[str, object]]
) -> None:
    source, target = images
    output = tmp_path / "o.webp"
    args = [
        "transfer",
        str(source),
        str(target),
        "-o",
        str(output),
        "--model",
        "icnn",
        "--loss",
        "kl",
        "--steps",
        "3",
        "--samples",
        "77",
        "--smoothness",
        "0.5",
        "--init",
        "identity",
        "--device",
        "cpu",
        "--seed",
        "9",
        "--quality",
        "80",
        "--max-pixels",
        "1000",
        "--force",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr

    (call,) = calls
    config = call["config"]
    assert (call["source"], call["target"], call["output"], call["force"]) == (
        source,
        target,
        output,
        True,
    )
    assert isinstance(config, otcolor.transfer.TransferConfig)
    fit, files = config.fit, config.files
    assert (fit.model, fit.loss, fit.steps, fit.samples, fit.smoothness) == (
        "icnn",
        "kl",
        3,
        77,
        0.5,
    )
    assert (fit.init, fit.device, fit.seed, files.quality, files.max_pixels) == (
        "identity",
        "cpu",
        9,
        80,
        1000,
    )

    # Human mode: summary on stdout, warnings on stderr.
    assert "icnn" in result.stdout and "w2" in result.stdout
    assert error_lines(result.stderr) == ["Warning: source.png: something lost"]


def test_json_keeps_warnings_and_nulls_non_finite(
    tmp_path: Path, images: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = images
    result_nan = fake_result(
        tmp_path / "o.png",
        final_loss=float("nan"),
        metrics={"kl": float("inf")},
        warnings=["careful"],
    )
    monkeypatch.setattr(otcolor.transfer, "transfer", lambda *a, **k: result_nan)
    result = runner.invoke(
        app, ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png"), "--json"]
    )
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["final_loss"] is None and payload["metrics"] == {"kl": None}
    assert payload["warnings"] == ["careful"] and result.stderr == ""


@pytest.mark.parametrize(
    ("exception", "code", "phrase"),
    [
        (InputError("a.png: broken", "re-export it"), 3, "Error: a.png: broken (re-export it)"),
        (RuntimeError("boom\nsecond line"), 1, "Error: internal error: RuntimeError: boom"),
        (KeyboardInterrupt(), 130, "Error: interrupted"),
    ],
)
def test_exceptions_become_one_line(
    tmp_path: Path,
    images: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    code: int,
    phrase: str,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise exception

    monkeypatch.setattr(otcolor.transfer, "transfer", fail)
    monkeypatch.delenv("OTCOLOR_DEBUG", raising=False)
    source, target = images
    result = runner.invoke(
        app, ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png")]
    )
    assert result.exit_code == code
    (line,) = error_lines(result.stderr)
    assert line.startswith(phrase)
    if code == 1:
        assert line.endswith("(rerun as 'otcolor --debug ...' and report it)")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_reraises(
    tmp_path: Path, images: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(otcolor.transfer, "transfer", fail)
    source, target = images
    args = ["transfer", str(source), str(target), "-o", str(tmp_path / "o.png")]
    if how == "option":
        result = runner.invoke(app, ["--debug", *args])
    else:
        result = runner.invoke(app, args, env={"OTCOLOR_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)
    assert "Error: internal error" not in result.stderr


def test_warnings_with_markup_characters_print_verbatim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from otcolor.cli._app import print_warnings

    print_warnings(["shots/[/]odd [b]name.jpg: could not read its colour profile"])
    err = capsys.readouterr().err
    assert "[/]odd [b]name.jpg" in err and err.count("\n") == 1
