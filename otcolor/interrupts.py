r"""Interrupts shared by the console-script guard and the CLI (stdlib only): Ctrl-C, and the
termination signals handled like it.

``SIGTERM`` (what ``kill``, ``timeout``, systemd and container runtimes send) and ``SIGHUP`` (the
terminal closed) would otherwise end the process on the spot, leaving ``.otcolor-tmp-*`` files
and ffmpeg children behind. Inside :func:`terminations_as_interrupts` they raise
:class:`Terminated`, a :class:`KeyboardInterrupt`: every cleanup that runs on Ctrl-C runs, then
the command exits with ``128 + signal number`` (143 for SIGTERM, 129 for SIGHUP), the shell's
convention for a process ended by a signal.
"""

from __future__ import annotations

__all__ = [
    "INTERRUPTED",
    "TERMINATION_SIGNALS",
    "Terminated",
    "exit_code",
    "ignore_further_interrupts",
    "message",
    "terminations_as_interrupts",
]

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: The line printed on Ctrl-C (the CLI's own handler prints the same words through Rich).
INTERRUPTED = "interrupted (no partial output or temporary file was left; rerun the command)"

#: The signals handled like Ctrl-C, where the platform has them.
TERMINATION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    r"""A termination signal arrived: handled as Ctrl-C is, with its own exit code.

    Arguments:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(err: KeyboardInterrupt) -> int:
    r"""The exit code for an interrupt: 130 for Ctrl-C, ``128 + n`` for signal ``n``."""

    return err.exit_code if isinstance(err, Terminated) else 130


def message(err: KeyboardInterrupt) -> str:
    r"""The one line printed for an interrupt (after ``Error: ``)."""

    if isinstance(err, Terminated):
        return f"terminated by {err.name} ({INTERRUPTED.split('(', 1)[1]}"
    return INTERRUPTED


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminations_as_interrupts() -> Iterator[None]:
    r"""Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Only signals at their default action are taken over: one that is ignored (``nohup``) stays
    ignored, and a handler someone else installed stays theirs. On the way out the default is
    restored, unless :func:`ignore_further_interrupts` has run meanwhile (the exit is under way).
    Blocks nest; outside the main thread this does nothing (Python delivers signals there only).
    """

    taken: list[tuple[signal.Signals, object]] = []
    if threading.current_thread() is threading.main_thread():
        for sig in TERMINATION_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                previous = signal.getsignal(sig)
                if previous is signal.SIG_DFL:
                    signal.signal(sig, _raise_terminated)
                    taken.append((sig, previous))
    try:
        yield
    finally:
        for sig, previous in taken:
            with contextlib.suppress(ValueError, OSError, TypeError):
                if signal.getsignal(sig) is _raise_terminated:
                    signal.signal(sig, previous)  # type: ignore[arg-type]


def ignore_further_interrupts() -> None:
    r"""Ignores SIGINT, SIGTERM and SIGHUP from now on: the exit is already under way and atexit
    handlers (torch's among them) would print a traceback if a second signal interrupted them."""

    for sig in (signal.SIGINT, *TERMINATION_SIGNALS):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread, or no such signal here
            pass
