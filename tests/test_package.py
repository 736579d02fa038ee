r"""Tests of the package as a whole: the library imports without the CLI's dependencies."""

import subprocess
import sys

import otcolor


def test_library_does_not_import_typer_or_rich() -> None:
    code = (
        "import sys, otcolor, otcolor.transfer, otcolor.metrics, otcolor.baselines;"
        "bad = [m for m in ('typer', 'rich', 'ot', 'matplotlib') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_is_the_installed_one_and_pep_440() -> None:
    import importlib.metadata

    import pytest

    assert otcolor.__version__ == importlib.metadata.version("otcolor")
    version = pytest.importorskip("packaging.version")
    assert str(version.Version(otcolor.__version__)) == otcolor.__version__  # normalised form
