r"""``otcolor bench gaussian|gmm|pixels|known``: benchmarks with known answers, one table each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..fitting.colour import MAX_STEPS
from ._app import (
    EPILOG,
    MAX_SEED,
    Command,
    Group,
    app,
    emit_json,
    make_progress,
    stderr_console,
    versions,
)
from .options import (
    BenchLoss,
    BenchModel,
    DeviceName,
    ForceOption,
    JsonOption,
    PixelLoss,
    QuietOption,
    RegrainOption,
)

bench_app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Benchmarks with known answers: Gaussians, Gaussian mixtures, image pixels, known maps.",
    epilog=EPILOG,
)
app.add_typer(bench_app, name="bench")


ModelOption = Annotated[BenchModel, typer.Option("--model", help="Map architecture, or all.")]
StepsOption = Annotated[
    int | None,
    typer.Option(
        min=1, max=MAX_STEPS, help="Training steps (default: tuned per loss).", show_default=False
    ),
]
SeedOption = Annotated[
    int, typer.Option(min=0, max=MAX_SEED, help="Random seed (problem, data, training).")
]
DeviceOption = Annotated[DeviceName, typer.Option(help="Where to train (no silent fallback).")]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        file_okay=False,
        help="Folder for the results file (JSON + Markdown) and scatter figures (PNG).",
        show_default=False,
    ),
]


def _run(
    benchmark: str,
    prefix: str,
    losses: list[str],
    baselines: bool,
    out: Path | None,
    force: bool,
    json_output: bool,
    quiet: bool,
    call: object,
) -> None:
    r"""Checks ``--out``, runs ``call(progress)`` under a progress bar, saves and renders."""

    from ..bench.common import check_out_dir, remove_created
    from ..bench.files import planned_files, save_report
    from ..bench.plots import require_matplotlib
    from ..io import outputs_together

    created: list[Path] = []
    if out is not None:
        require_matplotlib()  # fail before training, not after
        created = check_out_dir(out, planned_files(prefix, losses, baselines), force)

    try:
        progress = make_progress(benchmark, console=stderr_console(), disable=json_output or quiet)
        with progress:
            task = progress.add_task(benchmark, total=1, info="")

            def report_step(label: str, step: int, total: int, info: str) -> None:
                progress.update(
                    task,
                    completed=step,
                    total=total,
                    info=escape(f"{label} {info}"),
                    refresh=False,
                )

            report = call(report_step)  # type: ignore[operator]

        if out is not None:
            with outputs_together():  # the tables and figures of one run, or none
                save_report(report, out, prefix, overwrite=force)
    except BaseException:
        remove_created(created)  # a failed run leaves no empty --out behind
        raise
    if json_output:
        payload = report.to_json()
        payload["versions"] = versions()
        if out is not None:
            payload["out"] = str(out)
        emit_json(payload)
        return
    _print_table(report, out)


def _print_table(report: object, out: Path | None) -> None:
    from ..bench.common import table_rows

    header, rows = table_rows(report)  # type: ignore[arg-type]
    table = Table(title=f"otcolor bench {report.benchmark}")  # type: ignore[attr-defined]
    for i, title in enumerate(header):
        table.add_column(title, justify="left" if i < 2 else "right")
    n_results = len(report.results)  # type: ignore[attr-defined]
    for i, row in enumerate(rows):
        table.add_row(*map(escape, row), end_section=i == n_results - 1 and i < len(rows) - 1)
    console = Console(highlight=False)
    console.print(table)
    if out is not None:
        console.print(f"wrote {escape(str(out))}: {escape(', '.join(report.files))}")  # type: ignore[attr-defined]


@bench_app.command(cls=Command, epilog=EPILOG)
def gaussian(
    model: ModelOption = BenchModel.all,
    loss: Annotated[BenchLoss, typer.Option(help="Training loss, or all.")] = BenchLoss.all,
    dim: Annotated[int, typer.Option(min=1, max=256, help="Dimension D.")] = 2,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DeviceName.auto,
    out: OutOption = None,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Learned maps vs the exact (Bures) map between two random Gaussians: l2_uvp, cos, w2."""

    from ..bench.common import expand_losses, expand_models
    from ..bench.files import report_prefix
    from ..bench.gaussian import GaussianBenchConfig, run_gaussian

    config = GaussianBenchConfig(dim=dim, steps=steps, seed=seed, device=device.value)
    models, losses = expand_models(model.value), expand_losses(loss.value)
    _run("gaussian", report_prefix("gaussian", dim), losses, False, out, force, json_output, quiet,
         lambda progress: run_gaussian(models, losses, config, progress))  # fmt: skip


@bench_app.command(cls=Command, epilog=EPILOG)
def gmm(
    model: ModelOption = BenchModel.all,
    loss: Annotated[BenchLoss, typer.Option(help="Training loss, or all.")] = BenchLoss.all,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DeviceName.auto,
    out: OutOption = None,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""The seed's 2- to 3-component Gaussian mixtures: W2 over noise floor, cost over EMD."""

    from ..bench.common import expand_losses, expand_models
    from ..bench.gmm import GMMBenchConfig, run_gmm

    config = GMMBenchConfig(steps=steps, seed=seed, device=device.value)
    models, losses = expand_models(model.value), expand_losses(loss.value)
    _run("gmm", "gmm", losses, True, out, force, json_output, quiet,
         lambda progress: run_gmm(models, losses, config, progress))  # fmt: skip


@bench_app.command(cls=Command, epilog=EPILOG)
def pixels(
    source: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Source image (default: ocean day).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Target image (default: ocean sunset).",
            show_default=False,
        ),
    ] = None,
    model: ModelOption = BenchModel.all,
    loss: Annotated[PixelLoss, typer.Option(help="Training loss, or all.")] = PixelLoss.all,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DeviceName.auto,
    regrain: RegrainOption = True,
    out: OutOption = None,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""The seed's day → sunset pixel experiment with MKL and POT EMD baselines in the same run."""

    from ..bench.common import expand_losses, expand_models
    from ..bench.pixels import PIXEL_LOSSES, PixelsBenchConfig, run_pixels
    from ..errors import UsageError

    if (source is None) != (target is None):
        raise UsageError("give both SOURCE and TARGET, or neither (the ocean pair)")
    config = PixelsBenchConfig(steps=steps, seed=seed, device=device.value, regrain=regrain)
    models, losses = expand_models(model.value), expand_losses(loss.value, PIXEL_LOSSES)
    _run("pixels", "pixels", losses, True, out, force, json_output, quiet,
         lambda progress: run_pixels(source, target, models, losses, config, progress))  # fmt: skip


@bench_app.command(cls=Command, epilog=EPILOG)
def known(
    model: Annotated[
        BenchModel, typer.Option("--model", help="Map architecture, or all.")
    ] = BenchModel.cmgn,
    photo: Annotated[
        list[str] | None,
        typer.Option(
            "--photo",
            help="A photo to build pairs from: a bundled name, skimage:NAME or a path "
            "(repeatable; default: the six bundled photos).",
            show_default=False,
        ),
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(
            "--family",
            help="A family of known maps: separable, scurve, palette (repeatable; default all).",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        bool, typer.Option(help="Also score the previous estimator (C-MGN, --estimator plan).")
    ] = True,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DeviceName.auto,
    out: OutOption = None,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Photos pushed through known Brenier maps, recovered by otcolor and the baselines: PSNR."""

    from ..bench.known import DEFAULT_PHOTOS, KnownBenchConfig, run_known
    from ..bench.maps import FAMILIES

    config = KnownBenchConfig(
        photos=tuple(photo) if photo else DEFAULT_PHOTOS,
        families=tuple(family) if family else tuple(FAMILIES),
        seed=seed,
        steps=steps,
        device=device.value,
        plan=plan,
    )
    _run("known", "known", [], False, out, force, json_output, quiet,
         lambda progress: run_known(model.value, config, progress))  # fmt: skip
