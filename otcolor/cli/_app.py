r"""The root of the ``otcolor`` command: the Typer app, error mapping and shared rendering.

Each subcommand lives in its own module of this package and registers itself on :data:`app`;
commands only parse options, call one library function and render its result.
"""

from __future__ import annotations

__all__ = [
    "EPILOG",
    "MAX_SEED",
    "MIN_SAMPLES",
    "Command",
    "Group",
    "app",
    "finite",
    "json_safe",
    "main",
    "make_progress",
    "print_error",
    "printable",
    "stderr_console",
    "versions",
]

import dataclasses
import json
import math
from typing import Annotated, Any

import PIL
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import EXIT_CODES, OtcolorError
from ..interrupts import (
    exit_code,
    ignore_further_interrupts,
    message,
    terminations_as_interrupts,
)
from ..serial import json_safe

# Click's exceptions (usage errors, bad parameters) carry their own exit code and message.
# Typer vendors Click from 0.27 on, so the class is found through a public subclass.
_CLICK_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


# Missing or unreadable paths are most often inputs (exit 3); the rest (ENOSPC, EROFS, ...)
# concern what is being written (exit 4).
_READ_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _flags_read_as_flags(params: list[Any]) -> list[Any]:
    r"""Blanks the type column of on/off flags in ``--help``.

    Typer 0.29 labels every flag ``<bool>`` (``--force <bool>``), which reads as if the flag took a
    value; an empty metavar is the hook its help renderer offers (``display_type_rich`` returns
    the metavar when one is set). Only help text uses the metavar, so parsing is unchanged.
    """

    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    r"""Every ``otcolor`` subcommand: flags read as flags in its ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_read_as_flags(super().get_params(ctx))


class Group(TyperGroup):
    r"""Turns whatever a command raises into one ``Error:`` line and a documented exit code.

    A bare ``otcolor`` (or ``otcolor bench``) prints the help on stdout and exits **2**, not
    Typer's 0 for a group: no command ran, and a script that forgot its subcommand should fail.
    SIGTERM and SIGHUP are handled like Ctrl-C while a command runs
    (:func:`otcolor.interrupts.terminations_as_interrupts`).
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_read_as_flags(super().get_params(ctx))

    def make_context(self, info_name: str | None, args: list[str], **extra: Any) -> Any:
        # The root's own options (an unknown one, OTCOLOR_DEBUG=maybe) are parsed here, before
        # invoke: Typer would draw its error in a multi-line panel.
        try:
            return super().make_context(info_name, args, **extra)
        except _CLICK_ERRORS as err:
            if type(err).__name__ == "NoArgsIsHelpError":
                raise
            _print_click_error(err)
            raise typer.Exit(err.exit_code) from None

    def invoke(self, ctx: Any) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            with terminations_as_interrupts():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except _CLICK_ERRORS as err:
            # Typer draws a bad option or path in a multi-line panel; the rule is one
            # grep-able line for every anticipated failure. Help requests stay as they are.
            if debug or type(err).__name__ == "NoArgsIsHelpError":
                raise
            _print_click_error(err)
            raise typer.Exit(err.exit_code) from None
        except OtcolorError as err:
            if debug:
                raise
            print_error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated)
            # Outputs are written atomically, so an interrupt leaves no partial file.
            ignore_further_interrupts()
            print_error(message(err))
            raise typer.Exit(exit_code(err)) from None
        except OSError as err:
            # A file system failure that no check anticipated (a file deleted or made
            # unreadable mid-run, a full disk): still a documented code, not "a bug".
            if debug:
                raise
            code = 3 if isinstance(err, _READ_ERRORS) else 4
            where = f"{err.filename}: " if err.filename is not None else ""
            reason = err.strerror or " ".join(str(err).split())
            hint = "check the input files" if code == 3 else "check the output folder, free space"
            print_error(f"{where}{reason} ({hint})")
            raise typer.Exit(code) from None
        except Exception as err:
            if debug:
                raise
            text = " ".join(str(err).split())
            print_error(
                f"internal error: {type(err).__name__}: {text} (rerun as 'otcolor --debug ...' and report it)"
            )
            raise typer.Exit(1) from None


def _print_click_error(err: Exception) -> None:
    r"""A Click usage error (bad option, bad value, missing argument) as one line."""

    context = getattr(err, "ctx", None)
    command = context.command_path if context is not None else "otcolor"
    hint = f" (see '{command} --help')"
    print_error(" ".join(err.format_message().split()) + hint)  # type: ignore[attr-defined]


EPILOG = "[bold]Exit codes[/]\n\n" + "\n".join(
    f"[bold]{code:>3}[/]  {escape(meaning)}" for code, meaning in EXIT_CODES.items()
)

app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    epilog=EPILOG,
)


def main() -> None:
    r"""Runs the ``otcolor`` command (the console-script entry point)."""

    app(prog_name="otcolor")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"otcolor {__version__}")
        raise typer.Exit()


@app.callback(epilog=EPILOG)
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="OTCOLOR_DEBUG",
            help="Show the full traceback of an error instead of one line.",
        ),
    ] = False,
) -> None:
    r"""Transfer colours between images with learned optimal-transport maps."""


#: The largest ``--seed``: numpy's and torch's seeding take any 32-bit value, and a seed past
#: 2**63 overflowed inside them (exit 1, and ``bench`` left an empty ``--out`` folder behind).
MAX_SEED = 2**32 - 1

#: The fewest ``--samples``: below this a fit is meaningless and single-colour warnings mislead.
MIN_SAMPLES = 16


def finite(value: float | None) -> float | None:
    r"""Option callback refusing ``inf`` and ``nan``, which Click's ranges let through."""

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def print_error(message: str) -> None:
    # soft_wrap: one line whatever the terminal width, so scripts can grep it.
    Console(stderr=True, highlight=False).print(
        f"[bold red]Error:[/] {escape(printable(message))}", soft_wrap=True
    )


def printable(text: str) -> str:
    r"""``text`` with control characters escaped (``\n``, ``\x1b``, ...).

    File names can hold newlines, which would break the one-line rule, and terminal escape
    sequences, which would reach the user's terminal; both come from paths we print.
    """

    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def stderr_console() -> Console:
    r"""The console for progress bars, warnings and errors (stdout is kept for results)."""

    return Console(stderr=True, highlight=False)


def make_progress(label: str, *, console: Console, disable: bool = False) -> Progress:
    r"""A transient progress bar labelled ``label`` with a ``loss`` field, drawn on ``console``.

    Off a terminal the bar is disabled: there Rich would print its last frame into logs.
    """

    return Progress(
        TextColumn(escape(label)),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable or not console.is_terminal,
        transient=True,
    )


def versions() -> dict[str, str]:
    r"""Versions recorded in ``--json`` outputs, so numbers can be traced to software."""

    return {"otcolor": __version__, "torch": torch.__version__, "pillow": PIL.__version__}


def print_warnings(warnings: list[str]) -> None:
    r"""Each warning on one stderr line; its text escaped, since file names may hold ``[``."""

    stderr = stderr_console()
    for warning in warnings:
        stderr.print(f"[yellow]Warning:[/] {escape(printable(warning))}", soft_wrap=True)


def emit_json(result: object, **extra: object) -> None:
    r"""A result (a dataclass or a dict) and ``extra`` keys as one strict JSON object on stdout,
    with :func:`versions`: every command's ``--json`` goes through here."""

    fields = result if isinstance(result, dict) else dataclasses.asdict(result)  # type: ignore[call-overload]
    payload = {**fields, **extra, "versions": versions()}
    typer.echo(json.dumps(json_safe(payload)))
