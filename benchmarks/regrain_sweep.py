r"""Regrain settings across many photo pairs, in one process (issue 29).

For every pair and every variant (a label and :class:`otcolor.look.RegrainConfig` overrides)
it fits the default look as ``otcolor transfer`` does (base layers of both images, default fit
settings), renders the source with the regrain, rounds to 8 bits and scores it with
:func:`otcolor.bench.pixels.score_output`. Fits are shared between variants with the same base
layer. POT EMD's w2_ratio on each pair (the closeness bar is 1.25× it) is computed once and
kept in ``--cache``. Prints one line per pair × variant and writes ``--out`` (JSON).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/regrain_sweep.py \
        '[["default", {}], ["eps 4e-4", {"eps": 4e-4}]]' --pairs ocean hopper ...

Pair names are those of ``benchmarks/pixels.py`` (the default and photo pairs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pixels import PHOTO_PAIRS

from otcolor.baselines import BASELINES
from otcolor.bench.pixels import BARS, DEFAULT_PAIRS, score_output
from otcolor.fitting import FitSettings
from otcolor.io import load_image
from otcolor.look import LookSettings, RegrainConfig
from otcolor.metrics import amp999, emd2, quantize, structure
from otcolor.pipeline import (
    fit_look,
    render,
    sample_colours,
    sampling_rng,
    source_detail,
)
from otcolor.regrain import base_colors

#: The RegrainConfig fields that decide the fit.
BASE_FIELDS = ("scale", "base_radius", "base_eps", "spread")


def emd_w2(name: str, src: np.ndarray, tgt: np.ndarray, cache: Path) -> float:
    r"""POT EMD's w2_ratio on a pair (seed 0, as ``benchmarks/pixels.py``), cached by name."""

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if name not in known:
        out = BASELINES["emd"](src, tgt, 0)
        known[name] = score_output(src, out, tgt, 0)["w2_ratio"]
        cache.write_text(json.dumps(known, indent=1))
    return known[name]


def fast_score(
    src: np.ndarray, out: np.ndarray, tgt: np.ndarray, floors: dict[int, float]
) -> dict[str, float]:
    r"""``w2_ratio``, ``amp999`` and ``structure`` exactly as
    :func:`otcolor.metrics.evaluate_transfer` (seed 0) gives them, on the 8-bit output, without
    the other metrics; ``floors`` keeps the target's noise floor between calls."""

    out = quantize(out)
    rng = np.random.default_rng(0)  # the draws of metrics.w2_ratio, in its order
    o, t = out.reshape(-1, 3), tgt.reshape(-1, 3)
    n = min(4000, len(t) // 2, len(o))
    picks = rng.choice(len(t), size=2 * n, replace=False)
    tgt_a, tgt_b = t[picks[:n]], t[picks[n:]]
    out_n = o[rng.choice(len(o), size=n, replace=False)]
    if id(tgt) not in floors:
        floors[id(tgt)] = float(np.sqrt(emd2(tgt_a, tgt_b)))
    floor = floors[id(tgt)]
    return {
        "w2_ratio": float(np.sqrt(emd2(out_n, tgt_a)) / max(floor, 1e-12)),
        "amp999": amp999(src, out),
        "structure": structure(src, out),
    }


def sweep_pair(name: str, variants: list[tuple[str, dict[str, Any]]], cache: Path) -> list[dict]:
    r"""Every variant on one pair; one row each."""

    paths = [ROOT / p for p in {**DEFAULT_PAIRS, **PHOTO_PAIRS}[name]]
    source, target = (load_image(p) for p in paths)
    src, tgt = (i.rgb.astype(np.float64) for i in (source, target))
    emd = emd_w2(name, src, tgt, cache)
    fits: dict[tuple, Any] = {}
    floors: dict[int, float] = {}
    rows = []
    for label, overrides in variants:
        overrides = dict(overrides)
        pure = bool(overrides.pop("pure", False))
        smoothness = overrides.pop("smoothness", None)
        config = RegrainConfig(**overrides)
        key = (pure, smoothness, *(getattr(config, f) for f in BASE_FIELDS))
        look = LookSettings(regrain=None if pure else config)
        started = time.perf_counter()
        if key not in fits and pure:
            rng = sampling_rng()
            fit = FitSettings(device="cpu", smoothness=smoothness)
            x, y = (sample_colours(i, fit.samples, rng, None) for i in (source, target))
            fits[key] = (fit_look(x, y, fit, look).look, None)
        elif key not in fits:
            base = base_colors(source.rgb, config)
            rng = sampling_rng()
            fit = FitSettings(device="cpu", smoothness=smoothness)
            x = sample_colours(source, fit.samples, rng, config, base=base)
            detail = source_detail(source.rgb, base, config)
            y = sample_colours(target, fit.samples, rng, config, source_detail=detail)
            fits[key] = (fit_look(x, y, fit, look).look, base)
        fitted, base = fits[key]
        fitted = dataclasses.replace(fitted, settings=look)
        out = render(fitted, source.rgb, base=base)
        seconds = time.perf_counter() - started
        m = fast_score(src, out, tgt, floors)
        row = {"pair": name, "variant": label, "emd_w2": emd, "seconds": seconds, **m}
        ratio = m["w2_ratio"] / emd
        misses = [
            k
            for k, bad in (
                ("w2", ratio > BARS["w2_vs_emd"]),
                ("amp", m["amp999"] > BARS["amp999"]),
                ("structure", m["structure"] < BARS["structure"]),
            )
            if bad
        ]
        print(
            f"{name:<10} {label:<28} w2 {m['w2_ratio']:5.2f} ({ratio:4.2f}x EMD) "
            f"amp {m['amp999']:5.2f} structure {m['structure']:.4f} "
            f"{'/'.join(misses) or 'ok':<16} {seconds:5.1f} s",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help="JSON list of [label, RegrainConfig overrides]")
    parser.add_argument("--pairs", nargs="+", default=[*DEFAULT_PAIRS, *PHOTO_PAIRS])
    parser.add_argument("--out", type=Path, default=None, help="write the rows here (JSON)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/otcolor_emd_w2.json"))
    args = parser.parse_args()
    variants = [(label, dict(o)) for label, o in json.loads(args.variants)]
    rows = []
    for name in args.pairs:
        rows += sweep_pair(name, variants, args.cache)
        if args.out is not None:
            args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
