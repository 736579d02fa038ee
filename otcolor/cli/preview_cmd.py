r"""``otcolor preview``: one labelled contact sheet to choose a smoothness by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import preview as preview_lib
from ..fitting.colour import MAX_STEPS
from ._app import EPILOG, Command, app, emit_json, print_warnings, printable, stderr_console
from .options import ForceOption, JsonOption, RegrainOption

_DEFAULTS = preview_lib.PreviewConfig()


@app.command(cls=Command, epilog=EPILOG)
def preview(
    source: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Image to recolour.")
    ],
    target: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Image whose colours are wanted.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The sheet (.png).")],
    smoothness: Annotated[
        list[str] | None,
        typer.Option(
            help="One result per value: --smoothness 0,4,16 or the option repeated. 0 is "
            "closest to the target, larger is smoother. Default: 0,4,16.",
            show_default=False,
        ),
    ] = None,
    regrain: RegrainOption = _DEFAULTS.regrain,
    size: Annotated[
        int, typer.Option(min=32, help="Longest side of the preview images (fits and sheet).")
    ] = _DEFAULTS.size,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_STEPS,
            help="Training steps per fit (default: as transfer).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seeds the fits.")] = 0,
    json_output: JsonOption = False,
    force: ForceOption = False,
) -> None:
    r"""Fit one look per smoothness at preview size and write a labelled contact sheet."""

    values = _DEFAULTS.smoothness
    if smoothness:
        # Click options take one value each; a comma list reads like the "0 4 16".
        try:
            values = tuple(float(v) for item in smoothness for v in item.split(",") if v.strip())
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="'--smoothness'") from None
    config = preview_lib.PreviewConfig(
        smoothness=values,
        regrain=regrain,
        size=size,
        steps=steps,
        seed=seed,
    )
    console = stderr_console()

    def progress(done: int, total: int, value: float) -> None:
        if not json_output:
            console.print(f"fit {done}/{total} (smoothness {value:g})")

    result = preview_lib.preview(source, target, output, config, force=force, callback=progress)
    print_warnings(result.warnings)
    if json_output:
        emit_json(result)
        return
    for s in result.settings:
        typer.echo(
            f"smoothness {s.smoothness:g}: sliced W2 {s.sliced_w2:.4f}, amp999 {s.amp999:.2f}, "
            f"fit {s.fit_seconds:.1f} s"
        )
    typer.echo(f"sheet -> {printable(str(result.output))} ({result.seconds:.1f} s)")
