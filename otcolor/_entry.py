r"""The ``otcolor`` console script: the CLI behind a guard that needs nothing but the stdlib.

Importing the CLI imports torch, which takes seconds; a Ctrl-C in that window, or a second
Ctrl-C while the interpreter shuts down, would otherwise print a traceback instead of the
documented one line and exit code 130. This module is therefore imported first and imports
nothing heavy itself. SIGTERM and SIGHUP are handled like Ctrl-C from the start too
(:mod:`otcolor.interrupts`), with exit codes 143 and 129.
"""

from __future__ import annotations

__all__ = ["main"]

import os
import sys
from collections.abc import Callable

from .interrupts import (  # noqa: F401  (INTERRUPTED: the line, for callers and tests)
    INTERRUPTED,
    exit_code,
    ignore_further_interrupts,
    message,
    terminations_as_interrupts,
)


def _load_cli() -> Callable[[], None]:
    from .cli import main as cli_main

    return cli_main


def _run(load: Callable[[], Callable[[], None]]) -> None:
    try:
        with terminations_as_interrupts():
            load()()
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated)
        ignore_further_interrupts()
        sys.stderr.write(f"Error: {message(err)}\n")
        sys.stderr.flush()
        raise SystemExit(exit_code(err)) from None


def main() -> None:
    r"""Runs the ``otcolor`` command, interrupts included."""

    # torch's CPU threads (OpenMP) spin while they wait for each other. On a 2-core machine with
    # anything else running, the spinning threads starve the working ones: the default fit took
    # 44 s instead of 6 s with one core busy. Passive waiting avoids that; it must be set before
    # torch loads OpenMP, and a value the user set wins. The command sets it, not the library:
    # importing otcolor leaves the environment alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _run(_load_cli)
