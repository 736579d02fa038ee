r"""Start-up of the ``otcolor`` command: help, the version and argument errors load no torch.

Each case runs the real entry point (``python -X importtime -m otcolor ...``) in a fresh
interpreter and reads the modules it imported from the ``-X importtime`` report on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Modules that only a command's work needs, never its parsing.
HEAVY = ("torch",)

#: (arguments, exit code, a piece of the output).
CASES = [
    (["--help"], 0, "Usage: otcolor"),
    (["--version"], 0, "otcolor "),
    ([], 2, "Usage: otcolor"),  # a bare ``otcolor``: the help, exit 2
    *[
        ([*command, "--help"], 0, f"Usage: otcolor {' '.join(command)}")
        for command in (
            ["transfer"],
            ["apply"],
            ["lut"],
            ["video"],
            ["preview"],
            ["mnist"],
            ["bench"],
            ["bench", "gaussian"],
            ["bench", "gmm"],
            ["bench", "pixels"],
            ["bench", "known"],
        )
    ],
    (["--nope"], 2, "No such option"),
    (["transfer", "--nope"], 2, "No such option"),
    (["transfer", "--model", "nope", "a.png", "b.png", "-o", "c.png"], 2, "'nope' is not one"),
    (["lut", "--format", "tiff", "m.otmap", "-o", "x.cube"], 2, "'tiff' is not one"),
    (["transfer"], 2, "Missing argument 'source'"),
    (["transfer", "missing.png", "also-missing.png", "-o", "c.png"], 2, "does not exist"),
    (["video", "--fit-frames", "0", "clip.mp4"], 2, "--fit-frames"),
    (["bench", "gmm", "--steps", "nan"], 2, "--steps"),
]


def imported(stderr: str) -> set[str]:
    r"""The modules named in a ``-X importtime`` report."""

    return {
        line.rpartition("|")[2].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def run_otcolor(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("OTCOLOR_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "otcolor", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_names_what_was_imported() -> None:
    # The check below can fail: a run that does load torch is seen to, one that does not is not.
    def report(code: str) -> set[str]:
        run = [sys.executable, "-X", "importtime", "-c", code]
        return imported(subprocess.run(run, capture_output=True, text=True, timeout=120).stderr)

    assert "torch" in report("import torch")
    assert "json" in report("import json") and "torch" not in report("import json")


@pytest.mark.parametrize(("args", "code", "expected"), CASES, ids=lambda v: repr(v))
def test_parsing_loads_no_torch(args: list[str], code: int, expected: str, tmp_path: Path) -> None:
    result = run_otcolor(args, tmp_path)
    output = result.stdout + "\n".join(
        line for line in result.stderr.splitlines() if not line.startswith("import time:")
    )
    assert result.returncode == code, output
    assert expected in output
    heavy = sorted(m for m in imported(result.stderr) if m.split(".")[0] in HEAVY)
    assert heavy == [], f"otcolor {' '.join(args)} imported {heavy[:5]}"
