r"""Benchmarks the ``otcolor transfer`` command against reference colour-transfer methods.

For every pair it runs ``python -m otcolor transfer SRC TGT -o OUT --json --force`` as a user
would (timing the whole command), runs each baseline of :mod:`otcolor.baselines` in-process
(timing the call only), saves every output as an 8-bit PNG, re-reads it, and scores it with
:func:`otcolor.metrics.evaluate_transfer`. Writes ``results.json``, ``results.md`` and
``frontier.png`` to ``--out``. See ``benchmarks/README.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/pixels.py --smoothness 0 0.5 1 2 4
"""

from __future__ import annotations

__all__ = ["DEFAULT_PAIRS", "Pair", "main"]

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so the script runs from a checkout without installing otcolor

from otcolor.baselines import BASELINES  # noqa: E402
from otcolor.metrics import evaluate_transfer  # noqa: E402

#: The pairs benchmarked by default, by short name; ``ocean`` is the main one.
DEFAULT_PAIRS: dict[str, tuple[str, str]] = {
    "ocean": ("examples/ocean_day.jpg", "examples/ocean_sunset.jpg"),
    "chelsea": ("benchmarks/images/chelsea.jpg", "benchmarks/images/coffee.jpg"),
    "rocket": ("benchmarks/images/rocket.jpg", "examples/ocean_sunset.jpg"),
    "astronaut": ("benchmarks/images/astronaut.jpg", "benchmarks/images/rocket.jpg"),
}

#: Tick positions of the log-scale amp999 axis, labelled as plain numbers.
AMP_TICKS = (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500)


@dataclass(frozen=True)
class Pair:
    r"""A source image to recolour and the target whose colours it should take."""

    source: Path
    target: Path

    @property
    def name(self) -> str:
        return f"{self.source.stem}->{self.target.stem}"

    @property
    def slug(self) -> str:
        r"""The name as a shell-friendly folder name."""
        return f"{self.source.stem}_to_{self.target.stem}"


class OtcolorFailed(RuntimeError):
    r"""The ``otcolor`` subprocess exited non-zero or printed no JSON object."""


def _parse_pair(spec: str) -> Pair:
    r"""A default pair's short name, or ``SRC:TGT`` with paths relative to the cwd or repo root."""
    if spec in DEFAULT_PAIRS:
        src, tgt = DEFAULT_PAIRS[spec]
    elif ":" in spec:
        src, tgt = spec.split(":", 1)
    else:
        raise argparse.ArgumentTypeError(
            f"{spec!r} is neither SRC:TGT nor one of {', '.join(DEFAULT_PAIRS)}"
        )
    paths = []
    for p in (src, tgt):
        path = Path(p) if Path(p).exists() else ROOT / p
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"no such image: {p}")
        paths.append(path.resolve())
    return Pair(*paths)


def _load(path: Path) -> np.ndarray:
    r"""An image file as ``(H, W, 3)`` float64 in [0, 1], upright as its EXIF orientation says."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float64) / 255.0


def _save_png(img: np.ndarray, path: Path) -> None:
    r"""Saves an ``(H, W, 3)`` image in [0, 1] as an 8-bit PNG."""
    Image.fromarray(np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)).save(path)


def _run_otcolor(
    pair: Pair, output: Path, extra: list[str], timeout: float
) -> tuple[float, dict[str, Any]]:
    r"""Runs the otcolor command once; returns its wall time in seconds and its JSON report."""
    cmd = [sys.executable, "-m", "otcolor", "transfer", str(pair.source), str(pair.target)]
    cmd += ["-o", str(output), "--json", "--force", *extra]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise OtcolorFailed(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from err
    seconds = time.perf_counter() - start
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    if proc.returncode != 0:
        raise OtcolorFailed(f"exit code {proc.returncode}: {shlex.join(cmd)}\n{tail}")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise OtcolorFailed(
            f"stdout is not one JSON object ({err}): {shlex.join(cmd)}\n{proc.stdout[-500:]}"
        ) from err
    if not output.is_file():
        raise OtcolorFailed(f"exited 0 but wrote no {output}: {shlex.join(cmd)}")
    return seconds, report


def _machine() -> dict[str, Any]:
    r"""Where the numbers were measured."""
    import ot
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "pot": ot.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": commit,
    }


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _write_markdown(results: dict[str, Any], path: Path) -> None:
    r"""The results as one Markdown table, one row per (pair, method)."""
    m = results["machine"]
    lines = [
        "# otcolor pixel benchmark",
        "",
        f"Machine: {m['processor']}, {m['cpus_usable']} usable CPUs, "
        f"OMP_NUM_THREADS={m['omp_num_threads']}, torch {m['torch']}, "
        f"otcolor device {m.get('otcolor_device') or '—'}; commit {m['git_commit'] or '—'}.",
        "",
        "| pair | method | w2_ratio | cost_ratio | violations | amp999 | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        if "error" in row:
            lines.append(f"| {row['pair']} | {row['method']} | failed: see results.json | | | | |")
            continue
        x = row["metrics"]
        lines.append(
            f"| {row['pair']} | {row['method']} | {x['w2_ratio']:.2f} | {x['cost_ratio']:.3f}"
            f" | {x['violations']:.5f} | {x['amp999']:.2f} | {_fmt(row['seconds'], '.2f')} |"
        )
    lines += [
        "",
        "w2_ratio: exact W2 to the target over its noise floor (1 = perfect). cost_ratio: mean "
        "‖T(x)−x‖² over the optimal W2² (≈1 for an OT map). violations: fraction of far-apart "
        "pixel pairs the map reorders (0 for a monotone map). amp999: 99.9th percentile of "
        "neighbour colour-difference amplification. seconds: whole `otcolor` command for "
        "otcolor, the in-process call for baselines. Definitions: benchmarks/README.md.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _plot_frontier(results: dict[str, Any], path: Path) -> None:
    r"""Closeness (w2_ratio) against smoothness (amp999), one panel per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    pairs = list(dict.fromkeys(r["pair"] for r in results["rows"]))
    if not pairs:
        return
    cols = min(len(pairs), 2)
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        ok = [r for r in results["rows"] if r["pair"] == pair and "error" not in r]
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


def main(argv: list[str] | None = None) -> int:
    r"""Runs the benchmark; returns 1 when any otcolor run failed, else 0."""
    parser = argparse.ArgumentParser(
        description="Benchmark `otcolor transfer` against reference colour-transfer methods."
    )
    parser.add_argument(
        "--pairs",
        nargs="+",
        type=_parse_pair,
        default=None,
        metavar="PAIR",
        help=f"SRC:TGT paths or names of default pairs ({', '.join(DEFAULT_PAIRS)}; default: all)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "output", help="output folder"
    )
    parser.add_argument(
        "--smoothness",
        nargs="*",
        type=float,
        default=[],
        metavar="S",
        help="extra otcolor runs with --smoothness S, to trace the closeness/smoothness frontier",
    )
    parser.add_argument("--skip-baselines", action="store_true", help="otcolor only")
    parser.add_argument("--skip-otcolor", action="store_true", help="baselines only")
    parser.add_argument(
        "--otcolor-args", default="", help="extra arguments for every otcolor run, e.g. '--seed 1'"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of baselines and metrics")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per otcolor run, seconds")
    args = parser.parse_args(argv)

    pairs = args.pairs or [_parse_pair(name) for name in DEFAULT_PAIRS]
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(args.otcolor_args)
    results: dict[str, Any] = {
        "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
        "seed": args.seed,
        "machine": _machine(),
        "rows": [],
    }
    failures = 0

    def record(row: dict[str, Any]) -> None:
        # Rewritten after every run so that an interrupted benchmark keeps what it measured.
        results["rows"].append(row)
        (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        if "error" not in row:
            x = row["metrics"]
            _log(
                f"  {row['method']:<24} w2_ratio {x['w2_ratio']:6.2f}  cost_ratio "
                f"{x['cost_ratio']:5.3f}  violations {x['violations']:.5f}  amp999 "
                f"{x['amp999']:6.2f}  {_fmt(row['seconds'], '7.2f')} s"
            )

    for pair in pairs:
        _log(f"{pair.name}")
        pair_dir = out / pair.slug
        pair_dir.mkdir(exist_ok=True)
        src, tgt = _load(pair.source), _load(pair.target)
        base = {"pair": pair.name, "source": str(pair.source), "target": str(pair.target)}

        def score(output: Path) -> dict[str, float]:
            return evaluate_transfer(src, _load(output), tgt, seed=args.seed)

        record({**base, "method": "identity", "smoothness": None, "seconds": None,
                "output": str(pair.source), "metrics": score(pair.source)})  # fmt: skip

        runs = [] if args.skip_otcolor else [None, *args.smoothness]
        for s in runs:
            method = "otcolor" if s is None else f"otcolor (smoothness={s:g})"
            output = pair_dir / ("otcolor.png" if s is None else f"otcolor_s{s:g}.png")
            flags = extra if s is None else [*extra, "--smoothness", repr(s)]
            row = {**base, "method": method, "smoothness": s, "output": str(output)}
            try:
                seconds, report = _run_otcolor(pair, output, flags, args.timeout)
            except OtcolorFailed as err:
                failures += 1
                _log(f"  {method}: otcolor FAILED, {err}")
                record({**row, "error": str(err)})
                continue
            results["machine"].setdefault("otcolor_device", report.get("device"))
            record({**row, "seconds": seconds, "metrics": score(output), "cli": report})

        if not args.skip_baselines:
            import ot  # noqa: F401  (imported once here so its ~4 s import is not timed)

            for name, fn in BASELINES.items():
                start = time.perf_counter()
                img = fn(src, tgt, args.seed)
                seconds = time.perf_counter() - start
                output = pair_dir / f"{name}.png"
                _save_png(img, output)
                record({**base, "method": name, "smoothness": None, "seconds": seconds,
                        "output": str(output), "metrics": score(output)})  # fmt: skip

    _write_markdown(results, out / "results.md")
    _plot_frontier(results, out / "frontier.png")
    _log(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'frontier.png'}")
    if failures:
        _log(f"{failures} otcolor run(s) failed; their rows in results.json hold the error")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
