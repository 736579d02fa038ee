r"""Errors with a documented exit code: the CLI turns each anticipated failure into one line."""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "InputError",
    "OtcolorError",
    "OutputError",
    "TrainingError",
    "UsageError",
]


class OtcolorError(Exception):
    r"""Base class of every anticipated otcolor failure.

    Arguments:
        message: what went wrong, one line.
        hint: what the user can do about it, or ``None``.
    """

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(OtcolorError):
    r"""Bad option value or path combination (exit code 2)."""

    exit_code = 2


class InputError(OtcolorError):
    r"""An input image cannot be read, is corrupt, unsupported or too large (exit code 3)."""

    exit_code = 3


class OutputError(OtcolorError):
    r"""The output cannot be written (exit code 4)."""

    exit_code = 4


class TrainingError(OtcolorError):
    r"""Fitting failed: non-finite loss or parameters that a retry did not fix, out of device
    memory, or a strict quality check failed (exit code 5)."""

    exit_code = 5


#: Exit codes of the ``otcolor`` command, documented in ``--help`` and the README.
EXIT_CODES: dict[int, str] = {
    0: "success (warnings allowed)",
    1: "unexpected internal error (a bug: rerun as 'otcolor --debug ...' and report it)",
    2: "usage error (bad option, bad path combination, output exists without --force)",
    3: "an input image is unreadable, corrupt, unsupported or too large",
    4: "the output cannot be written",
    5: "training failed (non-finite loss that a retry did not fix, out of device memory, "
    "or --strict and the learned map fits worse than the Gaussian one)",
    130: "interrupted (Ctrl-C); no partial output is left",
}
