r"""``otcolor mnist``: train a monotone gradient map from a Gaussian latent to MNIST digits."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..names import GENERATOR_MODELS, MNIST_MAX_BATCH, MNIST_MAX_STEPS
from ..names import MNIST as _DEFAULTS
from ..names import MNIST_OBJECTIVES as OBJECTIVES
from ..names import MNIST_SPACES as SPACES
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
from .options import DeviceName, ForceOption, JsonOption, QuietOption, choices

if TYPE_CHECKING:
    from ..mnist.generate import MnistResult


MnistModelName = choices(
    "MnistModelName", GENERATOR_MODELS, "otcolor.mnist.GENERATOR_MODELS, or all.", all_=True
)
MnistLoss = choices("MnistLoss", OBJECTIVES, "otcolor.mnist.objectives.OBJECTIVES.")
MnistSpace = choices("MnistSpace", SPACES, "otcolor.mnist.latent.SPACES.")


_LABELS = {
    "download": "downloading MNIST",
    "classifier": "metric classifier (once)",
    "autoencoder": "autoencoder (once per seed)",
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
        MnistLoss,
        typer.Option(
            help=(
                "Training objective: the semi-dual with the map's closed-form potential, or a "
                "pushforward loss (wgan: the seed's adversarial WGAN-GP)."
            ),
            rich_help_panel="Model",
        ),
    ] = MnistLoss(_DEFAULTS.loss),
    space: Annotated[
        MnistSpace,
        typer.Option(
            help=(
                "Latent space of the map: a convolutional autoencoder's codes (trained once "
                "per seed and cached), or PCA coordinates (the seed's setting)."
            ),
            rich_help_panel="Model",
        ),
    ] = MnistSpace(_DEFAULTS.space),
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MNIST_MAX_STEPS,
            help="Adam steps per model; default 1000 (2000 for wgan).",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.steps,
    batch: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=MNIST_MAX_BATCH,
            help="Latents and codes per step; default 1024 (512 for wgan).",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.batch_size,
    lr: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            help="Adam learning rate (positive); default 1e-2 (3e-3 for wgan, 1e-3 for the others).",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.lr,
    samples: Annotated[
        int,
        typer.Option(
            min=2,
            max=10**9,
            help="Generated digits scored against as many test digits (at most all of them).",
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
            help=(
                "Also save the trained generator (torch.save: settings, and the state_dict of "
                "the map and its decoder)."
            ),
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
        int | None,
        typer.Option(
            min=1,
            max=784,
            help="Dimension of the latent space; default 16 for ae, 50 for pca.",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = _DEFAULTS.latent,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Train a monotone gradient map from Gaussian noise to MNIST digits, and score it.

    The map T = grad(phi) pushes a standard Gaussian onto the whitened codes of a small
    convolutional autoencoder (--space ae, trained once per seed and cached) or of PCA
    (--space pca), starts near the closed-form Gaussian map, and is decoded to pixels; nothing
    is copied from a training digit. Metrics (docs/mnist.md): FID in the feature space of a
    small MNIST classifier that otcolor trains once and caches, its mean confidence and the
    entropy of its predicted classes (log 10 = 2.30 is balanced), energy distance and sliced W2
    to the test digits in pixels, and memorisation (median nearest-training-digit distance over
    that of test digits; share of near-copies); beside real training digits, the latent's
    reconstructions of test digits (the floor), its Gaussian and GMM, PCA's GMM, the pixel
    Gaussian, pixel noise, and the model at its start.
    """

    from ..mnist import generate

    config = generate.MnistConfig(
        model=model.value,
        loss=loss.value,
        space=space.value,
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


#: The reference rows of the summary, in order, with their labels.
_REFERENCES = {
    "train_digits": "training digits (copies)",
    "ae_reconstructions": "AE reconstructions (floor)",
    "ae_gaussian": "AE Gaussian (affine map)",
    "ae_gmm": "AE GMM",
    "pca_reconstructions": "PCA reconstructions",
    "gmm_pca": "PCA GMM",
    "gaussian": "pixel Gaussian (affine map)",
    "noise": "pixel noise",
}


def _print_summary(result: MnistResult) -> None:
    table = Table(title=None, box=None, padding=(0, 2, 0, 0))
    for column in (
        "",
        "FID ↓",
        "confidence ↑",
        "class entropy ↑",
        "energy ↓",
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
            f"{m['energy']:.2f}",
            f"{m['nn_ratio']:.3f}" if "nn_ratio" in m else "",
            f"{m['near_copies']:.3f}" if "near_copies" in m else "",
            seconds,
            grid,
        )

    for r in result.models:
        row(f"[bold]{r.model}[/]", r.metrics, f"{r.train_seconds:.1f}", escape(r.grid or ""))
        row(f"{r.model} at its start", r.start_metrics)
    for key, label in _REFERENCES.items():
        if key in result.reference:
            row(label, result.reference[key])
    console = Console(highlight=False)
    console.print(table)
    clf = result.classifier
    console.print(
        f"{result.space} latent {result.latent}, loss {result.loss}, {result.steps} steps, "
        f"batch {result.batch_size}, lr {result.lr:g}, device {result.device}, "
        f"seed {result.seed}; classifier test accuracy {clf['test_accuracy']:.4f}"
        f"{' (trained now, cached)' if clf['trained_now'] else ''}; {result.seconds:.1f} s in all",
        soft_wrap=True,
    )
