r"""The README's library example runs as written (it drifted once when a config moved)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one library example"
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "look.otmap").is_file() and (tmp_path / "look.cube").is_file()


@pytest.mark.slow
def test_the_library_walk_through_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    day, sunset = ROOT / "examples/ocean_day.jpg", ROOT / "examples/ocean_sunset.jpg"
    script = ROOT / "examples/library_transfer.py"
    done = subprocess.run(
        [sys.executable, str(script), str(day), str(sunset), str(tmp_path / "out.png")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.png").is_file() and "wrote" in done.stdout


def test_the_docs_include_the_readme_example_rather_than_a_copy() -> None:
    usage = (ROOT / "docs/usage.md").read_text()
    assert '--8<-- "README.md:library"' in usage and "```python" not in usage
