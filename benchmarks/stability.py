r"""How much the estimate moves when nothing that matters changes (issue 29).

The OT map between two colour distributions is unique, so a good estimate should not move
when the input changes invisibly or when the estimator's arbitrary choices change. Since the
estimator is deterministic, ``--seed`` no longer moves it at all; this script measures the two
perturbations that still do:

* **dither**: the source with ±0.5/255 uniform noise added, so that the source atoms (one
  representative pixel per colour cell) change;
* **design**: another fixed set of sliced-W2 directions (``BrenierSettings.design_seed`` 1
  instead of 0).

For each setting it fits the pure map (``--no-regrain``) three times and reports the mean
CIEDE2000 between the outputs, on every second pixel of the source, and the fit time.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/stability.py \
        '[["default", {}, null], ["atoms 16k", {"atoms": 16000}, null]]' [--pair rocket]

Each entry is ``[label, BrenierSettings overrides, steps or null]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otcolor.bench.pixels import DEFAULT_PAIRS
from otcolor.fitting import FitSettings
from otcolor.fitting.estimators import BrenierSettings
from otcolor.io import LoadedImage, load_image
from otcolor.look import LookSettings
from otcolor.metrics import mean_ciede2000
from otcolor.pipeline import fit_look, render, sample_colours, sampling_rng


def fit_and_render(
    source: np.ndarray, target: np.ndarray, options: dict, steps: int | None, design: int
) -> tuple[np.ndarray, float]:
    settings = FitSettings(
        device="cpu", options=BrenierSettings(**options, design_seed=design), steps=steps
    )
    images = LoadedImage(source, path="source"), LoadedImage(target, path="target")
    x, y = (sample_colours(i, settings.samples, sampling_rng(), None) for i in images)
    began = time.perf_counter()
    made = fit_look(x, y, settings, LookSettings(regrain=None))
    return render(made.look, source[::2, ::2]), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="?", default='[["default", {}, null]]')
    parser.add_argument("--pair", default="rocket", choices=list(DEFAULT_PAIRS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    source_path, target_path = (ROOT / p for p in DEFAULT_PAIRS[args.pair])
    source = load_image(source_path).rgb.astype(np.float32)
    target = load_image(target_path).rgb
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, source.shape).astype(np.float32) / 255
    dithered = np.clip(source + noise, 0, 1)
    print("| setting | dither ΔE00 | design ΔE00 | fit s |\n|---|---:|---:|---:|")
    for label, options, steps in json.loads(args.settings):
        base, seconds = fit_and_render(source, target, options, steps, 0)
        moved, _ = fit_and_render(dithered, target, options, steps, 0)
        other, _ = fit_and_render(source, target, options, steps, 1)
        print(f"| {label} | {mean_ciede2000(base, moved):.2f} | {mean_ciede2000(base, other):.2f} | "
              f"{seconds:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
