r"""The invariant-checking runner and photo-like fixtures' pixels, shared by the reliability
and hostile-input tests (``tests/conftest.py`` turns them into the ``source``/``target``
fixtures)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from otcolor.cli import app

#: A fit that takes a fraction of a second: the reliability tests check behaviour, not quality.
FAST = ["--steps", "3", "--samples", "300", "--device", "cpu"]
runner = CliRunner()


def transfer_args(source: Path, target: Path, output: Path, *extra: str) -> list[str]:
    r"""``otcolor transfer SOURCE TARGET -o OUTPUT`` with a fast fit, then ``extra``."""

    return ["transfer", str(source), str(target), "-o", str(output), *FAST, *extra]


def pixels(h: int, w: int, seed: int = 0) -> np.ndarray:
    r"""A smooth gradient plus noise, (H, W, 3) uint8: photo-like and never symmetric."""

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([max(h - 1, 1), max(w - 1, 1)])[:, None, None]
    base = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.5 + 0.3 * x * y], -1)
    noisy = base + 0.05 * rng.standard_normal((h, w, 3))
    return np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "otcolor-tmp" in p.name]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def run(args: list[str], inputs: list[Path], *, code: int, phrase: str | None = None):
    r"""Runs ``otcolor`` in-process and checks the invariants of every run.

    Arguments:
        args: the command line, without ``otcolor``.
        inputs: input files, which must be byte-identical afterwards (missing ones skipped).
        code: the expected exit code.
        phrase: for failures, text the single ``Error:`` line must contain.
    """

    existing = [p for p in inputs if p.is_file()]
    before = {p: digest(p) for p in existing}
    result = runner.invoke(app, args)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert {p: digest(p) for p in existing} == before, "an input changed"
    for path in existing:
        assert temp_files(path.parent) == [], "a temporary file was left"
    assert "Traceback" not in result.output
    if code != 0:
        (line,) = lines(result.stderr)
        assert line.startswith("Error: "), line
        assert line.endswith(")"), f"no (hint): {line}"
        if phrase is not None:
            assert phrase in line, line
        assert result.stdout == ""
    return result
