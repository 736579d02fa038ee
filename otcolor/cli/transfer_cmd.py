r"""``otcolor transfer``: fit a colour map between two images and apply it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..names import DEFAULT_SMOOTHNESS, MAX_STEPS
from ..names import FILES as _FILES
from ..names import FIT as _FIT
from ..names import LOOK as _LOOK
from ._app import (
    EPILOG,
    MAX_SEED,
    MIN_SAMPLES,
    Command,
    app,
    emit_json,
    finite,
    make_progress,
    printable,
    stderr_console,
    versions,
)
from .options import (
    DeviceName,
    EstimatorName,
    ForceOption,
    InitName,
    JsonOption,
    LossName,
    LuminanceOption,
    LutOption,
    LutSizeOption,
    MaskOption,
    ModelName,
    OutputProfileOption,
    QuietOption,
    RegrainOption,
    SaveMapOption,
    SpaceName,
    SpaceOption,
    StrengthOption,
)

if TYPE_CHECKING:
    from ..transfer import TransferResult

#: The --smoothness help, with its defaults from the one table that holds them
#: (``DEFAULT_SMOOTHNESS``, mirrored without torch in :mod:`otcolor.names`).
SMOOTHNESS_HELP = (
    "Smoother map (less speckle) vs closer colours: 0 = closest; see the README. Default "
    f"{DEFAULT_SMOOTHNESS['regrain']:g} with the regrain, {DEFAULT_SMOOTHNESS['pure']:g} with "
    "--no-regrain."
)


@app.command(cls=Command, epilog=EPILOG)
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
        typer.Option("--output", "-o", help="Output image; its extension picks the format."),
    ],
    model: Annotated[
        ModelName, typer.Option(help="Map architecture.", rich_help_panel="Model")
    ] = ModelName(_FIT.model),
    loss: Annotated[
        LossName, typer.Option(help="Training loss.", rich_help_panel="Model")
    ] = LossName(_FIT.loss),
    estimator: Annotated[
        EstimatorName | None,
        typer.Option(
            help="Loss ot: full (whole colour distributions, accurate, the default) or plan "
            "(sampled exact plan); the other losses: minibatch (the default).",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_STEPS,
            help=(
                "Training steps (default: 150 L-BFGS iterations for ot, "
                "600 Adam steps for the others)."
            ),
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _FIT.steps,
    samples: Annotated[
        int,
        typer.Option(
            min=MIN_SAMPLES, help="Pixels drawn from each image.", rich_help_panel="Model"
        ),
    ] = _FIT.samples,
    smoothness: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            min=0.0,
            help=SMOOTHNESS_HELP,
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = None,
    init: Annotated[
        InitName, typer.Option(help="Starting point of the map.", rich_help_panel="Model")
    ] = InitName(_FIT.init),
    device: Annotated[
        DeviceName,
        typer.Option(help="Where to train (no silent fallback).", rich_help_panel="Model"),
    ] = DeviceName(_FIT.device),
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Random seed.", rich_help_panel="Model")
    ] = _FIT.seed,
    quality: Annotated[
        int,
        typer.Option(min=1, max=100, help="JPEG/WebP quality."),
    ] = _FILES.quality,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Largest accepted input, in pixels (width x height of each input, read from "
                "the header before any pixel is decoded; decompression-bomb guard). Default: "
                "Pillow's limit, 89,478,485. Raise it only for files you trust: a transfer "
                "holds about 30 bytes per source pixel."
            ),
            rich_help_panel="Input",
        ),
    ] = _FILES.max_pixels,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help=(
                "Fail (exit 5) when the learned map fits worse than the closed-form Gaussian "
                "map, instead of refitting it from the Gaussian map with a warning."
            ),
            rich_help_panel="Model",
        ),
    ] = _FIT.strict,
    space: SpaceOption = SpaceName(_LOOK.space),
    strength: StrengthOption = _LOOK.strength,
    preserve_luminance: LuminanceOption = _LOOK.preserve_luminance,
    regrain: RegrainOption = _LOOK.regrain,
    source_mask: MaskOption = None,
    target_mask: MaskOption = None,
    apply_mask: MaskOption = None,
    save_map: SaveMapOption = None,
    lut: LutOption = None,
    lut_size: LutSizeOption = None,
    output_profile: OutputProfileOption = _FILES.output_profile,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Fit a transport map from SOURCE's colours to TARGET's and apply it to SOURCE."""

    from .. import transfer as transfer_lib
    from ..fitting import FitSettings
    from ..look import REGRAIN, LookSettings

    config = transfer_lib.TransferConfig(
        fit=FitSettings(
            model=model.value,
            loss=loss.value,
            estimator=None if estimator is None else estimator.value,
            steps=steps,
            samples=samples,
            smoothness=smoothness,
            init=init.value,
            strict=strict,
            device=device.value,
            seed=seed,
        ),
        look=LookSettings(space.value, strength, preserve_luminance, REGRAIN if regrain else None),
        files=transfer_lib.FileSettings(
            quality=quality, max_pixels=max_pixels, output_profile=output_profile
        ),
    )

    stderr = stderr_console()
    progress = make_progress("fitting", console=stderr, disable=json_output or quiet)
    with progress:
        task = progress.add_task("fit", total=config.fit.total_steps, info="loss -")

        def callback(step: int, logs: dict[str, float]) -> None:
            progress.update(task, completed=step, info=f"loss {logs['loss']:.4g}")

        result = transfer_lib.transfer(
            source,
            target,
            output,
            config,
            force=force,
            callback=callback,
            source_mask=source_mask,
            target_mask=target_mask,
            apply_mask=apply_mask,
            save_map=save_map,
            lut=lut,
            lut_size=lut_size,
        )

    if json_output:
        payload = dataclasses.asdict(result)
        payload["output"] = str(result.output)
        payload["versions"] = versions()
        emit_json(payload)
        return

    if not quiet:
        _print_summary(result)
    for warning in result.warnings:
        stderr.print(f"[yellow]Warning:[/] {escape(printable(warning))}", soft_wrap=True)


def _print_summary(result: TransferResult) -> None:
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
