r"""Pixel benchmark: the seed's day → sunset colour-distribution experiment, with baselines.

Every model × loss is fitted and applied by the colour pipeline (:mod:`otcolor.pipeline`),
rounded to 8 bits (what a saved PNG holds) and scored with
:func:`otcolor.metrics.evaluate_transfer`; the closed-form MKL map and POT's EMD transfer
(:mod:`otcolor.baselines`) are scored the same way in the same run. The helpers shared with
the multi-pair command-line sweep ``benchmarks/pixels.py`` (pairs, image IO, the Markdown
table and the closeness/smoothness frontier plot) live here too.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PAIRS",
    "PIXEL_BASELINES",
    "PIXEL_LOSSES",
    "PixelsBenchConfig",
    "bar_table",
    "load_rgb",
    "pixel_table",
    "plot_frontier",
    "resolve_pair",
    "run_pixels",
    "save_png",
    "score_output",
]

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import BASELINES
from ..data import image_path
from ..device import resolve_device
from ..errors import UsageError
from ..fitting import FitSettings
from ..fitting.colour import MAX_STEPS
from ..io import load_image
from ..look import REGRAIN, LookSettings
from ..metrics import evaluate_transfer, quantize
from ..pipeline import fit_look, render, sample_colours, sampling_rng, source_detail
from ..regrain import base_colors
from .common import (
    BenchReport,
    BenchResult,
    Progress,
    check_bench_image,
    expand_losses,
    expand_models,
    machine_info,
    warm_up,
)

#: Image pairs by short name (paths relative to the checkout); ``ocean`` is the seed's pair.
DEFAULT_PAIRS: dict[str, tuple[str, str]] = {
    "ocean": ("examples/ocean_day.jpg", "examples/ocean_sunset.jpg"),
    "chelsea": ("benchmarks/images/chelsea.jpg", "benchmarks/images/coffee.jpg"),
    "rocket": ("benchmarks/images/rocket.jpg", "examples/ocean_sunset.jpg"),
    "astronaut": ("benchmarks/images/astronaut.jpg", "benchmarks/images/rocket.jpg"),
}

#: Losses this benchmark accepts: the seed's three plus otcolor's default exact-OT pipeline.
PIXEL_LOSSES: tuple[str, ...] = ("ot", "kl", "wgan", "sliced")

#: Baselines run beside the models by default.
PIXEL_BASELINES: tuple[str, ...] = ("mkl", "emd")

#: Pixels per cloud in the scatter figures.
FIGURE_POINTS = 2000

#: Tick positions of the log-scale amp999 axis, labelled as plain numbers.
AMP_TICKS = (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500)


def resolve_pair(name: str) -> tuple[Path, Path]:
    r"""Returns the source and target paths of the default pair ``name``.

    Raises:
        UsageError: unknown name, or the images are not there (an installed package without
            the checkout's example images).
    """

    if name not in DEFAULT_PAIRS:
        raise UsageError(f"unknown pair {name!r}", f"choose one of {', '.join(DEFAULT_PAIRS)}")
    # Package data (otcolor.data), not the checkout: an installed wheel has no examples/.
    try:
        paths = tuple(image_path(p) for p in DEFAULT_PAIRS[name])
    except FileNotFoundError as err:
        raise UsageError(str(err), "pass SOURCE and TARGET image paths") from None
    return paths[0], paths[1]


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    r"""An image file as upright RGB, :math:`(H, W, 3)` float64 in :math:`[0, 1]`."""

    return load_image(path).rgb.astype(np.float64)


def save_png(img: np.ndarray, path: str | os.PathLike[str]) -> None:
    r"""Saves an :math:`(H, W, 3)` image in :math:`[0, 1]` as an 8-bit PNG."""

    from PIL import Image

    Image.fromarray(np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)).save(path)


def score_output(
    source: np.ndarray, output: np.ndarray, target: np.ndarray, seed: int = 0
) -> dict[str, float]:
    r"""Every pixel metric of ``output`` after rounding it to 8 bits, as a saved PNG would be."""

    return evaluate_transfer(source, quantize(output), target, seed=seed)


@dataclass
class PixelsBenchConfig:
    r"""Settings of :func:`run_pixels`; the colour pipeline's defaults otherwise."""

    steps: int | None = None  # None: the pipeline's per-loss default
    seed: int = 0
    device: str = "auto"
    samples: int = 50_000  # pixels drawn from each image for fitting
    baselines: tuple[str, ...] = PIXEL_BASELINES
    never_worse: bool = False  # off: score what each model learned, with no restart
    regrain: bool = True  # as `otcolor transfer`: fit base layers, regrain; off: the pure map

    def __post_init__(self) -> None:
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise UsageError(f"--steps must be in [1, {MAX_STEPS:,}], got {self.steps}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise UsageError(
                f"unknown baseline {unknown[0]!r}", f"choose from {sorted(BASELINES)}"
            )


def run_pixels(
    source: str | os.PathLike[str] | None = None,
    target: str | os.PathLike[str] | None = None,
    models: str | list[str] = "all",
    losses: str | list[str] = "all",
    config: PixelsBenchConfig | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    r"""Fits every model × loss between two images' colours and scores each, plus baselines.

    ``source``/``target`` default to the ocean day → sunset pair. Each result's metrics are those
    of :func:`otcolor.metrics.evaluate_transfer` (``w2_ratio``, ``cost_ratio``,
    ``violations``, ``amp999``, ...); ``seconds`` is the fit, application excluded. Baselines
    time their whole call.

    Raises:
        UsageError: bad names or a missing default pair; InputError: an unreadable image.
    """

    config = config or PixelsBenchConfig()
    model_names = expand_models(models)
    loss_names = expand_losses(losses, PIXEL_LOSSES)
    device = resolve_device(config.device)
    if (source is None) != (target is None):
        raise UsageError("give both SOURCE and TARGET, or neither (the ocean pair)")
    if source is None or target is None:
        source, target = resolve_pair("ocean")
    src_image, tgt_image = load_image(source), load_image(target)
    check_bench_image(source, src_image.rgb.shape)
    check_bench_image(target, tgt_image.rgb.shape)
    src, tgt = src_image.rgb.astype(np.float64), tgt_image.rgb.astype(np.float64)
    rng = sampling_rng()
    look = LookSettings(regrain=REGRAIN if config.regrain else None)  # as `otcolor transfer`
    grain = look.regrain
    src_base = None if grain is None else base_colors(src_image.rgb, grain, device)  # once
    x = sample_colours(src_image, config.samples, rng, grain, device, base=src_base)
    detail = source_detail(src_image.rgb, src_base, grain)
    y = sample_colours(tgt_image, config.samples, rng, grain, device, source_detail=detail)
    # A fixed set of source pixels, followed through every map, and target pixels: figures only.
    figure_rng = np.random.default_rng(config.seed + 1)
    picks = figure_rng.choice(src.shape[0] * src.shape[1], FIGURE_POINTS)
    target_points = tgt.reshape(-1, 3)[
        figure_rng.choice(tgt.shape[0] * tgt.shape[1], FIGURE_POINTS)
    ]
    mapped_points: dict[tuple[str, str], np.ndarray] = {}

    warm_up()
    results: list[BenchResult] = []
    for loss_name in loss_names:
        for model_name in model_names:
            fit = FitSettings(
                model=model_name,
                loss=loss_name,
                steps=config.steps,
                samples=config.samples,
                device=str(device),
                seed=config.seed,
                never_worse=config.never_worse,
            )
            label, total = f"{model_name}/{loss_name}", fit.total_steps

            def callback(
                step: int, logs: dict[str, float], label: str = label, total: int = total
            ) -> None:
                if progress is not None:
                    progress(label, step, total, f"loss {logs['loss']:.3g}")

            made = fit_look(x, y, fit, look, callback, device)
            out = render(made.look, src_image.rgb, bit_depth=src_image.bit_depth, base=src_base)
            mapped_points[(model_name, loss_name)] = quantize(out).reshape(-1, 3)[picks]
            settings = {
                "steps": made.settings.total_steps,
                "init": made.settings.init,
                "smoothness": made.settings.smoothness,
                "never_worse": config.never_worse,
                "warnings": made.warnings,
                **made.fitted.scores,
            }
            metrics = score_output(src, out, tgt, config.seed)
            seconds = made.fitted.seconds
            results.append(BenchResult(model_name, loss_name, seconds, metrics, settings))

    baselines: list[BenchResult] = []
    for name in config.baselines:
        if progress is not None:
            progress(name, 0, 1, "baseline")
        start = time.perf_counter()
        out = BASELINES[name](src, tgt, config.seed)
        seconds = time.perf_counter() - start
        mapped_points[(name, "-")] = quantize(out).reshape(-1, 3)[picks]
        baselines.append(BenchResult(name, "-", seconds, score_output(src, out, tgt, config.seed)))
        if progress is not None:
            progress(name, 1, 1, "baseline")

    return BenchReport(
        benchmark="pixels",
        config={
            **asdict(config),
            "source": str(source),
            "target": str(target),
            "models": model_names,
            "losses": loss_names,
        },
        results=results,
        baselines=baselines,
        reference={"identity": score_output(src, src, tgt, config.seed)},
        machine=machine_info(device),
        samples={
            "source": src.reshape(-1, 3)[picks],
            "target": target_points,
            "mapped": mapped_points,
        },
    )


def pixel_table(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    r"""The Markdown table ``pair | method | w2_ratio | cost_ratio | violations | amp999 |
    structure | seconds`` of the multi-pair sweep (rows as ``benchmarks/pixels.py`` records them)."""

    def fmt(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        "# otcolor pixel benchmark",
        "",
        (
            f"Machine: {machine['processor']}, {machine['cpus_usable']} usable CPUs, "
            f"OMP_NUM_THREADS={machine['omp_num_threads']}, torch {machine['torch']}, "
            f"otcolor device {machine.get('otcolor_device') or '—'}; "
            f"commit {machine.get('git_commit') or '—'}."
        ),
        "",
        "| pair | method | w2_ratio | cost_ratio | violations | amp999 | structure | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['pair']} | {row['method']} | failed: see results.json | | | | | |"
            )
            continue
        x = row["metrics"]
        lines.append(
            f"| {row['pair']} | {row['method']} | {x['w2_ratio']:.2f} | {x['cost_ratio']:.3f}"
            f" | {x['violations']:.5f} | {x['amp999']:.2f} | {x['structure']:.4f}"
            f" | {fmt(row['seconds'], '.2f')} |"
        )
    lines += [
        "",
        (
            "w2_ratio: exact W2 to the target over its noise floor (1 = perfect). cost_ratio: "
            "mean ‖T(x)−x‖² over the optimal W2² (≈1 for an OT map). violations: fraction of "
            "far-apart pixel pairs the map reorders (0 for a monotone map). amp999: 99.9th "
            "percentile of neighbour colour-difference amplification. structure: SSIM's structure "
            "term between source and output luma (1 = the source's local patterns kept). "
            "violations describes a pure map only: a regrained output is spatial. seconds: whole `otcolor` "
            "command for otcolor, the in-process call for baselines. Definitions: "
            "benchmarks/README.md."
        ),
    ]
    return "\n".join(lines) + "\n"


#: Issue 29's bars for the default ``transfer`` on any pair: amp999 at most, structure at least,
#: and w2_ratio at most this multiple of POT EMD's on the same pair.
BARS = {"amp999": 5.0, "structure": 0.98, "w2_vs_emd": 1.25}


def bar_table(rows: list[dict[str, Any]], method: str = "otcolor") -> str:
    r"""The Markdown table ``pair | w2 | EMD w2 | w2/EMD | amp999 | structure | misses`` of
    ``method`` against :data:`BARS`, one line per pair that has both ``method`` and ``emd``
    rows (rows as ``benchmarks/pixels.py`` records them)."""

    ok = [r for r in rows if "error" not in r]
    lines = [
        f"| pair | w2 | EMD w2 | w2/EMD (≤ {BARS['w2_vs_emd']}) | amp999 (≤ {BARS['amp999']:g}) "
        f"| structure (≥ {BARS['structure']}) | misses |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for pair in dict.fromkeys(r["pair"] for r in ok):
        by = {r["method"]: r["metrics"] for r in ok if r["pair"] == pair}
        if method not in by or "emd" not in by:
            continue
        x, emd = by[method], by["emd"]["w2_ratio"]
        ratio = x["w2_ratio"] / emd
        misses = [
            name
            for name, missed in (
                ("w2", ratio > BARS["w2_vs_emd"]),
                ("amp", x["amp999"] > BARS["amp999"]),
                ("structure", x["structure"] < BARS["structure"]),
            )
            if missed
        ]
        lines.append(
            f"| {pair} | {x['w2_ratio']:.2f} | {emd:.2f} | {ratio:.2f} | {x['amp999']:.2f} "
            f"| {x['structure']:.4f} | {', '.join(misses) or '—'} |"
        )
    return "\n".join(lines) + "\n"


def plot_frontier(rows: list[dict[str, Any]], path: Path) -> None:
    r"""Closeness (w2_ratio) against smoothness (amp999), one panel per pair, as a PNG."""

    from .plots import require_matplotlib

    plt = require_matplotlib()
    from matplotlib import ticker

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    if not pairs:
        return
    cols = min(len(pairs), 2)
    nrows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 4.5 * nrows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        ok = [r for r in rows if r["pair"] == pair and "error" not in r]
        sweep = sorted(
            (r for r in ok if r["method"].startswith("otcolor") and r["smoothness"] is not None),
            key=lambda r: r["smoothness"],
        )
        if sweep:
            xs = [r["metrics"]["amp999"] for r in sweep]
            ys = [r["metrics"]["w2_ratio"] for r in sweep]
            ax.plot(xs, ys, "o-", color="C0", label="otcolor (smoothness sweep)")
            for r, x, y in zip(sweep, xs, ys, strict=True):
                ax.annotate(f"{r['smoothness']:g}", (x, y), textcoords="offset points",
                            xytext=(4, 4), fontsize=7, color="C0")  # fmt: skip
        for r in ok:
            if r["method"] == "otcolor":
                x, y = r["metrics"]["amp999"], r["metrics"]["w2_ratio"]
                ax.plot(x, y, "*", color="C0", markersize=14, label="otcolor (default)")
            elif r["method"] in BASELINES:
                x, y = r["metrics"]["amp999"], r["metrics"]["w2_ratio"]
                ax.plot(x, y, "s", color="C3")
                ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(5, -10),
                            fontsize=8, color="C3")  # fmt: skip
        ax.axhline(1.0, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.1)  # room for the point labels
        ax.xaxis.set_major_locator(ticker.FixedLocator(AMP_TICKS))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("amp999 (neighbour amplification, lower = smoother)")
        ax.set_ylabel("w2_ratio (W2 to target / noise floor, lower = closer)")
        ax.set_title(pair)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
