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
    #: Shown when a raise site gives no hint of its own, so that every error line ends with
    #: something the user can do.
    default_hint: str = "rerun as 'otcolor --debug ...' for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint or self.default_hint})"


class UsageError(OtcolorError):
    r"""Bad option value or path combination (exit code 2)."""

    exit_code = 2
    default_hint = "see the command's --help"


class InputError(OtcolorError):
    r"""An input image cannot be read, is corrupt, unsupported or too large (exit code 3)."""

    exit_code = 3
    default_hint = "check that the input exists, is readable and is a supported file"


class OutputError(OtcolorError):
    r"""The output cannot be written (exit code 4)."""

    exit_code = 4
    default_hint = "check the output folder, its permissions and free space"


class TrainingError(OtcolorError):
    r"""Fitting failed: non-finite loss or parameters that a retry did not fix, out of device
    memory, or a strict quality check failed (exit code 5)."""

    exit_code = 5
    default_hint = "try another --seed, --loss or fewer --samples"


class OutOfDeviceMemory(TrainingError):
    r"""The device ran out of memory even after its cached blocks were released (exit code 5);
    a caller that can finish elsewhere (``transfer`` on the CPU) catches this one."""

    default_hint = "use --device cpu"


#: Exit codes of the ``otcolor`` command, documented in ``--help`` and the README.
EXIT_CODES: dict[int, str] = {
    0: "success (warnings allowed)",
    1: "unexpected internal error (a bug: rerun as 'otcolor --debug ...' and report it)",
    2: "usage error (no command given, bad option, bad path combination, output exists without --force)",
    3: "an input image is unreadable, corrupt, unsupported or too large",
    4: "the output cannot be written",
    5: "training failed (non-finite loss that a retry did not fix, out of device memory, "
    "or --strict and the learned map fits worse than the Gaussian one)",
    129: "terminated by SIGHUP (the terminal closed), handled as Ctrl-C; no partial output is left",
    130: "interrupted (Ctrl-C); no partial output is left",
    143: "terminated by SIGTERM (kill, timeout, a service manager), handled as Ctrl-C; "
    "no partial output is left",
}
