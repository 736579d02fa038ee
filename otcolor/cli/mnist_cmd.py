r"""``otcolor mnist``: train a monotone gradient map from a Gaussian latent to MNIST digits."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..names import GENERATOR_MODELS
from ..names import MNIST as _DEFAULTS
from ._app import (
    EPILOG,
    MAX_SEED,
    Command,
    app,
    emit_json,
    finite,
    make_progress,
    print_warnings,
    stderr_console,
)
from .options import DeviceName, ForceOption, JsonOption, LossName, QuietOption, choices

if TYPE_CHECKING:
    from ..mnist.generate import MnistResult

MnistModelName = choices(
    "MnistModelName", GENERATOR_MODELS, "otcolor.mnist.GENERATOR_MODELS, or all.", all_=True
)


_LABELS = {
    "download": "downloading MNIST",
    "classifier": "metric classifier (once)",
    "evaluate": "scoring",
}


@app.command(cls=Command, epilog=EPILOG)
def mnist(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Grid of 64 samples (PNG); with --model all, one per model (out-cmgn.png, ...).",
        ),
    ] = Path("mnist.png"),
    model: Annotated[
        MnistModelName,
        typer.Option(help="Map architecture, or all three.", rich_help_panel="Model"),
    ] = MnistModelName(_DEFAULTS.model),
    loss: Annotated[
        LossName, typer.Option(help="Training loss.", rich_help_panel="Model")
    ] = LossName(_DEFAULTS.loss),
    steps: Annotated[
        int, typer.Option(min=1, help="Adam steps per model.", rich_help_panel="Model")
    ] = _DEFAULTS.steps,
    batch: Annotated[
        int, typer.Option(min=2, help="Latents and digits per step.", rich_help_panel="Model")
    ] = _DEFAULTS.batch_size,
    lr: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            help="Adam learning rate (positive); default 1e-3, the seed's 1e-4 for --loss wgan.",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.lr,
    samples: Annotated[
        int,
        typer.Option(
            min=2,
            help="Generated digits scored against as many test digits.",
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.samples,
    data: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Folder with the MNIST IDX files (raw or .gz); default $OTCOLOR_DATA, "
                "else the cache (downloaded)."
            ),
            show_default=False,
            rich_help_panel="Input",
        ),
    ] = None,
    device: Annotated[
        DeviceName,
        typer.Option(help="Where to train (no silent fallback).", rich_help_panel="Model"),
    ] = DeviceName(_DEFAULTS.device),
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Random seed.", rich_help_panel="Model")
    ] = _DEFAULTS.seed,
    save_model: Annotated[
        Path | None,
        typer.Option(
            help="Also save the trained map (torch.save of its state_dict and settings).",
            show_default=False,
        ),
    ] = None,
    samples_out: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Also write the scored samples (.npy, float32, N x 784 in [0, 1]); "
                "with --model all, one per model."
            ),
            show_default=False,
        ),
    ] = None,
    latent: Annotated[
        int,
        typer.Option(
            min=1,
            max=784,
            help="PCA coordinates the map works in.",
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.latent,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Train a monotone gradient map from Gaussian noise to MNIST digits (in PCA space), and score it.

    The map works in the top --latent PCA coordinates of the digits, starts at the closed-form
    Gaussian map and is decoded to pixels; nothing is copied from a training digit. Metrics (see
    the README): FID in the feature space of a small MNIST classifier that otcolor trains once
    and caches, the classifier's mean confidence and the entropy of its predicted classes
    (log 10 = 2.30 is balanced), sliced W2 to the test set in pixel space, and memorisation
    (median nearest-training-digit distance over that of test digits; share of near-copies);
    beside real training digits (the floor), pixel noise, the Gaussian map, a GMM in the same
    PCA space and the model at its start and after one step.
    """

    from ..mnist import generate

    config = generate.MnistConfig(
        model=model.value,
        loss=loss.value,
        steps=steps,
        batch_size=batch,
        lr=lr,
        device=device.value,
        seed=seed,
        samples=samples,
        data=data,
        latent=latent,
    )
    stderr = stderr_console()
    progress = make_progress("", console=stderr, disable=json_output or quiet)
    tasks: dict[str, object] = {}

    def callback(phase: str, done: int, total: int, info: str) -> None:
        if phase not in tasks:
            label = _LABELS.get(phase, phase.replace("train:", "training "))
            tasks[phase] = progress.add_task(label, total=total, info=info)
        progress.update(
            tasks[phase],
            completed=done,
            total=total,
            info=info,
            description=escape(_LABELS.get(phase, phase.replace("train:", "training "))),
        )

    # The library reports degraded runs (e.g. an unwritable cache) as UserWarnings; they are
    # shown as the other commands show theirs, one line each, never as a Python warning.
    with warnings.catch_warnings(record=True) as caught, progress:
        warnings.simplefilter("always", UserWarning)
        result = generate.run_mnist(
            config,
            output,
            force=force,
            save_model=save_model,
            samples_out=samples_out,
            callback=callback,
        )
    stderr = stderr_console()
    print_warnings([str(w.message) for w in caught if issubclass(w.category, UserWarning)])

    if json_output:
        emit_json(result)
        return
    if not quiet:
        _print_summary(result)


def _print_summary(result: MnistResult) -> None:
    table = Table(title=None, box=None, padding=(0, 2, 0, 0))
    for column in (
        "",
        "FID ↓",
        "confidence ↑",
        "class entropy ↑",
        "sliced W2 ↓",
        "NN ratio ≈1",
        "near copies ↓",
        "train s",
        "grid",
    ):
        table.add_column(column, justify="left" if column in ("", "grid") else "right")

    def row(name: str, m: dict[str, float], seconds: str = "", grid: str = "") -> None:
        table.add_row(
            name,
            f"{m['fid']:.1f}",
            f"{m['confidence']:.3f}",
            f"{m['class_entropy']:.3f}",
            f"{m['sliced_w2']:.4f}",
            f"{m['nn_ratio']:.3f}" if "nn_ratio" in m else "",
            f"{m['near_copies']:.3f}" if "near_copies" in m else "",
            seconds,
            grid,
        )

    for r in result.models:
        row(f"[bold]{r.model}[/]", r.metrics, f"{r.train_seconds:.1f}", escape(r.grid or ""))
        row(f"{r.model} at its start", r.start_metrics)
        row(f"{r.model} after one step", r.one_step_metrics)
    row("train digits (floor)", result.reference["train_digits"])
    row("gaussian (affine map)", result.reference["gaussian"])
    row(f"GMM, {result.latent}-dim PCA", result.reference["gmm_pca"])
    row("pixel noise", result.reference["noise"])
    console = Console(highlight=False)
    console.print(table)
    clf = result.classifier
    console.print(
        f"PCA latent {result.latent}, loss {result.loss}, {result.steps} steps, "
        f"batch {result.batch_size}, lr {result.lr:g}, device {result.device}, "
        f"seed {result.seed}; classifier test accuracy {clf['test_accuracy']:.4f}"
        f"{' (trained now, cached)' if clf['trained_now'] else ''}; {result.seconds:.1f} s in all",
        soft_wrap=True,
    )
