r"""Ctrl-C handling shared by the console-script guard and the CLI (stdlib only)."""

from __future__ import annotations

__all__ = ["INTERRUPTED", "ignore_further_interrupts"]

import signal

#: The line printed on Ctrl-C (the CLI's own handler prints the same words through Rich).
INTERRUPTED = "interrupted (no partial output or temporary file was left; rerun the command)"


def ignore_further_interrupts() -> None:
    r"""Ignores SIGINT from now on: the exit is already under way and atexit handlers (torch's
    among them) would print a traceback if a second Ctrl-C interrupted them."""

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        pass
