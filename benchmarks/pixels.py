r"""Benchmarks the ``otcolor transfer`` command against reference colour-transfer methods.

The multi-pair sweep of the command as users run it; the single-pair, every-model-and-loss
benchmark is ``otcolor bench pixels`` (:mod:`otcolor.bench.pixels`, which also holds the pairs,
image IO, table and frontier plot this script uses). For every pair it runs
``python -m otcolor transfer SRC TGT -o OUT --json --force`` as a user would (timing the whole
command), runs each baseline of :mod:`otcolor.baselines` in-process (timing the call only),
saves every output as an 8-bit PNG, re-reads it, and scores it with
:func:`otcolor.metrics.evaluate_transfer`. Writes ``results.json``, ``results.md`` and
``frontier.png`` to ``--out``. See ``benchmarks/README.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/pixels.py --smoothness 0 0.5 1 2 4
"""

from __future__ import annotations

__all__ = ["DEFAULT_PAIRS", "PHOTO_PAIRS", "Pair", "main"]

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so the script runs from a checkout without installing otcolor

from otcolor.baselines import BASELINES
from otcolor.bench.common import machine_info
from otcolor.bench.pixels import (
    DEFAULT_PAIRS,
    bar_table,
    load_rgb,
    pixel_table,
    plot_frontier,
    save_png,
    score_output,
)

#: Photo pairs nobody tuned the regrain on (issue 29), checkout only (``benchmarks/images``;
#: sources and licences in benchmarks/README.md). ``halftone`` is made by
#: ``benchmarks/make_halftone.py``. What each pair stresses is in docs/regrain.md.
PHOTO_PAIRS: dict[str, tuple[str, str]] = {
    "hopper": ("benchmarks/images/grace_hopper.jpg", "benchmarks/images/china.jpg"),
    "flower": ("benchmarks/images/flower.jpg", "benchmarks/images/coffee.jpg"),
    "coffee": ("benchmarks/images/coffee.jpg", "benchmarks/images/flower.jpg"),
    "china": ("benchmarks/images/china.jpg", "examples/ocean_sunset.jpg"),
    "hubble": ("benchmarks/images/hubble.jpg", "benchmarks/images/flower.jpg"),
    "halftone": ("benchmarks/images/china_halftone.jpg", "benchmarks/images/flower.jpg"),
    "ihc": ("benchmarks/images/ihc.jpg", "benchmarks/images/grace_hopper.jpg"),
}


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
    r"""A default or photo pair's short name, or ``SRC:TGT`` with paths relative to the cwd or
    repo root."""
    named = {**DEFAULT_PAIRS, **PHOTO_PAIRS}
    if spec in named:
        src, tgt = named[spec]
    elif ":" in spec:
        src, tgt = spec.split(":", 1)
    else:
        raise argparse.ArgumentTypeError(
            f"{spec!r} is neither SRC:TGT nor one of {', '.join(named)}"
        )
    paths = []
    for p in (src, tgt):
        path = Path(p) if Path(p).exists() else ROOT / p
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"no such image: {p}")
        paths.append(path.resolve())
    return Pair(*paths)


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
    r"""Where the numbers were measured: :func:`otcolor.bench.common.machine_info`, plus POT's
    version and the git commit."""
    import ot

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {**machine_info("cpu"), "pot": ot.__version__, "git_commit": commit}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
        help=(
            f"SRC:TGT paths or pair names ({', '.join(DEFAULT_PAIRS)}, and the photo pairs "
            f"{', '.join(PHOTO_PAIRS)}; default: the first four)"
        ),
    )
    parser.add_argument(
        "--photos", action="store_true", help="add every photo pair (issue 29) to --pairs"
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
    parser.add_argument(
        "--pure",
        action="store_true",
        help="also run otcolor --no-regrain (the pure colour map), beside the default regrain",
    )
    parser.add_argument("--skip-baselines", action="store_true", help="otcolor only")
    parser.add_argument(
        "--baselines",
        nargs="+",
        choices=list(BASELINES),
        default=list(BASELINES),
        metavar="NAME",
        help=f"which baselines to run ({', '.join(BASELINES)}; default: all)",
    )
    parser.add_argument("--skip-otcolor", action="store_true", help="baselines only")
    parser.add_argument(
        "--otcolor-args", default="", help="extra arguments for every otcolor run, e.g. '--seed 1'"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of baselines and metrics")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per otcolor run, seconds")
    args = parser.parse_args(argv)

    pairs = args.pairs or ([] if args.photos else [_parse_pair(name) for name in DEFAULT_PAIRS])
    pairs += [_parse_pair(name) for name in PHOTO_PAIRS] if args.photos else []
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
            seconds = "—" if row["seconds"] is None else format(row["seconds"], ".2f")
            _log(
                f"  {row['method']:<24} w2_ratio {x['w2_ratio']:6.2f}  cost_ratio "
                f"{x['cost_ratio']:5.3f}  violations {x['violations']:.5f}  amp999 "
                f"{x['amp999']:6.2f}  structure {x['structure']:.4f}  {seconds:>7} s"
            )

    for pair in pairs:
        _log(f"{pair.name}")
        pair_dir = out / pair.slug
        pair_dir.mkdir(exist_ok=True)
        src, tgt = load_rgb(pair.source), load_rgb(pair.target)
        base = {"pair": pair.name, "source": str(pair.source), "target": str(pair.target)}

        def score(output: Path, src: Any = src, tgt: Any = tgt) -> dict[str, float]:
            return score_output(src, load_rgb(output), tgt, seed=args.seed)

        record({**base, "method": "identity", "smoothness": None, "seconds": None,
                "output": str(pair.source), "metrics": score(pair.source)})  # fmt: skip

        runs = [] if args.skip_otcolor else [None, *args.smoothness]
        variants = [(s, False) for s in runs] + ([(s, True) for s in runs] if args.pure else [])
        for s, pure in variants:
            method = "otcolor" if s is None else f"otcolor (smoothness={s:g})"
            stem = "otcolor" if s is None else f"otcolor_s{s:g}"
            flags = extra if s is None else [*extra, "--smoothness", repr(s)]
            if pure:
                method, stem, flags = (
                    f"{method} --no-regrain",
                    f"{stem}_pure",
                    [*flags, "--no-regrain"],
                )
            output = pair_dir / f"{stem}.png"
            row = {**base, "method": method, "smoothness": s, "regrain": not pure,
                   "output": str(output)}  # fmt: skip
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

            for name in args.baselines:
                fn = BASELINES[name]
                start = time.perf_counter()
                img = fn(src, tgt, args.seed)
                seconds = time.perf_counter() - start
                output = pair_dir / f"{name}.png"
                save_png(img, output)
                record({**base, "method": name, "smoothness": None, "seconds": seconds,
                        "output": str(output), "metrics": score(output)})  # fmt: skip

    (out / "results.md").write_text(
        pixel_table(results["rows"], results["machine"]) + "\n" + bar_table(results["rows"]),
        encoding="utf-8",
    )
    plot_frontier(results["rows"], out / "frontier.png")
    _log(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'frontier.png'}")
    if failures:
        _log(f"{failures} otcolor run(s) failed; their rows in results.json hold the error")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
