r"""The ``otcolor`` console script: the CLI behind a guard that needs nothing but the stdlib.

Importing the CLI imports torch, which takes seconds; a Ctrl-C in that window, or a second
Ctrl-C while the interpreter shuts down, would otherwise print a traceback instead of the
documented one line and exit code 130. This module is therefore imported first and imports
nothing heavy itself.
"""

from __future__ import annotations

__all__ = ["INTERRUPTED", "ignore_further_interrupts", "main"]

import signal
import sys
from collections.abc import Callable

#: The line printed on Ctrl-C (the CLI's own handler prints the same words through Rich).
INTERRUPTED = "interrupted (no partial output or temporary file was left; rerun the command)"


def ignore_further_interrupts() -> None:
    r"""Ignores SIGINT from now on: the exit is already under way and atexit handlers (torch's
    among them) would print a traceback if a second Ctrl-C interrupted them."""

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        pass


def _load_cli() -> Callable[[], None]:
    from .cli import main as cli_main

    return cli_main


def _run(load: Callable[[], Callable[[], None]]) -> None:
    try:
        load()()
    except KeyboardInterrupt:
        ignore_further_interrupts()
        sys.stderr.write(f"Error: {INTERRUPTED}\n")
        sys.stderr.flush()
        raise SystemExit(130) from None


def main() -> None:
    r"""Runs the ``otcolor`` command, interrupts included."""

    _run(_load_cli)
