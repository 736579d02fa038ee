r"""The ``otcolor`` command: parse options, call one library function, render the result."""

from __future__ import annotations

__all__ = [
    "DeviceName",
    "InitName",
    "LossName",
    "ModelName",
    "app",
    "main",
]

import dataclasses
import json
import math
from enum import Enum
from pathlib import Path
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
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from . import transfer as transfer_lib
from .errors import EXIT_CODES, OtcolorError


class ModelName(str, Enum):
    r"""Map architectures, the keys of :data:`otcolor.models.MODELS`."""

    cmgn = "cmgn"
    mmgn = "mmgn"
    icnn = "icnn"


class LossName(str, Enum):
    r"""Training losses, the keys of :data:`otcolor.losses.LOSSES`."""

    ot = "ot"
    sliced = "sliced"
    kl = "kl"
    wgan = "wgan"


class InitName(str, Enum):
    r"""Starting points of the map."""

    gaussian = "gaussian"
    identity = "identity"


class DeviceName(str, Enum):
    r"""Where to train; ``auto`` picks CUDA, then MPS, then the CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


# Click's exceptions (usage errors, bad parameters) carry their own exit code and message.
# Typer vendors Click from 0.27 on, so the class is found through a public subclass.
_CLICK_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Group(TyperGroup):
    r"""Turns whatever a command raises into one ``Error:`` line and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, *_CLICK_ERRORS):
            raise
        except OtcolorError as err:
            if debug:
                raise
            _print_error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            # Outputs are written atomically, so an interrupt leaves no partial file.
            _print_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as err:
            if debug:
                raise
            text = " ".join(str(err).split())
            _print_error(
                f"internal error: {type(err).__name__}: {text} (rerun as 'otcolor --debug ...' and report it)"
            )
            raise typer.Exit(1) from None


_EPILOG = "[bold]Exit codes[/]\n\n" + "\n".join(
    f"[bold]{code:>3}[/]  {escape(meaning)}" for code, meaning in EXIT_CODES.items()
)

app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    epilog=_EPILOG,
)

_DEFAULTS = transfer_lib.TransferConfig()


def main() -> None:
    r"""Runs the ``otcolor`` command (the console-script entry point)."""

    app(prog_name="otcolor")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"otcolor {__version__}")
        raise typer.Exit()


@app.callback(epilog=_EPILOG)
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


@app.command(epilog=_EPILOG)
def transfer(
    source: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Image whose colours are changed."),
    ],
    target: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Image whose colours are wanted."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Output image; its extension picks the format."
        ),
    ],
    model: Annotated[
        ModelName, typer.Option(help="Map architecture.", rich_help_panel="Model")
    ] = ModelName(_DEFAULTS.model),
    loss: Annotated[
        LossName, typer.Option(help="Training loss.", rich_help_panel="Model")
    ] = LossName(_DEFAULTS.loss),
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Training steps (default: 200 L-BFGS iterations for ot, "
                "600 Adam steps for the others)."
            ),
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.steps,
    samples: Annotated[
        int,
        typer.Option(min=1, help="Pixels drawn from each image.", rich_help_panel="Model"),
    ] = _DEFAULTS.samples,
    smoothness: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Smoother map (less speckle) vs closer colours: 0 = closest; see the README.",
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.smoothness,
    init: Annotated[
        InitName, typer.Option(help="Starting point of the map.", rich_help_panel="Model")
    ] = InitName(_DEFAULTS.init),
    device: Annotated[
        DeviceName,
        typer.Option(help="Where to train (no silent fallback).", rich_help_panel="Model"),
    ] = DeviceName(_DEFAULTS.device),
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed.", rich_help_panel="Model")
    ] = _DEFAULTS.seed,
    quality: Annotated[
        int,
        typer.Option(min=1, max=100, help="JPEG/WebP quality."),
    ] = _DEFAULTS.quality,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Largest accepted input, in pixels (decompression-bomb guard).",
            rich_help_panel="Input",
        ),
    ] = _DEFAULTS.max_pixels,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object on stdout, nothing else."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing output (never an input).")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress bar or summary; warnings still go to stderr."
        ),
    ] = False,
) -> None:
    r"""Fit a transport map from SOURCE's colours to TARGET's and apply it to SOURCE."""

    config = transfer_lib.TransferConfig(
        model=model.value,
        loss=loss.value,
        steps=steps,
        samples=samples,
        smoothness=smoothness,
        init=init.value,
        device=device.value,
        seed=seed,
        quality=quality,
        max_pixels=max_pixels,
    )

    stderr = Console(stderr=True, highlight=False)
    progress = Progress(
        TextColumn("fitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        # Off the terminal a bar is only noise in logs (Rich would print its last frame).
        disable=json_output or quiet or not stderr.is_terminal,
        transient=True,
    )
    with progress:
        task = progress.add_task("fit", total=config.total_steps, loss="-")

        def callback(step: int, logs: dict[str, float]) -> None:
            progress.update(task, completed=step, loss=f"{logs['loss']:.4g}")

        result = transfer_lib.transfer(
            source, target, output, config, force=force, callback=callback
        )

    if json_output:
        payload = dataclasses.asdict(result)
        payload["output"] = str(result.output)
        payload["versions"] = {
            "otcolor": __version__,
            "torch": torch.__version__,
            "pillow": PIL.__version__,
        }
        typer.echo(json.dumps(_json_safe(payload)))
        return

    if not quiet:
        _print_summary(result)
    for warning in result.warnings:
        stderr.print(f"[yellow]Warning:[/] {escape(warning)}", soft_wrap=True)


def _print_error(message: str) -> None:
    # soft_wrap: one line whatever the terminal width, so scripts can grep it.
    Console(stderr=True, highlight=False).print(
        f"[bold red]Error:[/] {escape(message)}", soft_wrap=True
    )


def _print_summary(result: transfer_lib.TransferResult) -> None:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("output", escape(str(result.output)))
    table.add_row("model", result.model)
    table.add_row("loss", result.loss)
    table.add_row("device", result.device)
    table.add_row("steps", str(result.steps))
    table.add_row("seconds", f"{result.seconds:.2f} (fit {result.fit_seconds:.2f})")
    table.add_row("final loss", f"{result.final_loss:.4g}")
    for name, value in result.metrics.items():
        table.add_row(escape(name), f"{value:.4g}")
    Console(highlight=False).print(table)


def _json_safe(value: Any) -> Any:
    r"""Replaces NaN and infinities by ``null``, which strict JSON parsers require."""

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
