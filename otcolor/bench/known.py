r"""Known-answer colour transfer: photos pushed through known Brenier maps, then recovered.

For a photo :math:`S` and a known map :math:`T^*` (:mod:`otcolor.bench.maps`), the target is
:math:`T = T^*(S)`, saved in 8 bits. By Brenier's theorem :math:`T^*` is the OT map from
:math:`S`'s colours to :math:`T`'s, so a perfect transfer of :math:`T` onto :math:`S` returns
:math:`T` pixel for pixel; every method is scored by PSNR, RMSE and the 99th percentile of the
per-pixel RGB error of its 8-bit output against :math:`T` (errors in 8-bit levels).

otcolor runs as users run it: :func:`otcolor.transfer.transfer` on PNG files, pure colour map
(no spatial post-processing). The baselines get the same decoded images: MKL, per-channel
histogram matching and POT's EMD transfer (:mod:`otcolor.baselines`), and color-matcher's
``hm-mkl-hm`` when that package is installed (``pip install color-matcher``; a bench extra).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PHOTOS",
    "KnownBenchConfig",
    "load_photo",
    "make_pair",
    "pair_seed",
    "psnr",
    "run_known",
]

import statistics
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import BASELINES
from ..data import image_path
from ..device import resolve_device
from ..errors import InputError, UsageError
from ..fitting import FitSettings
from ..fitting.colour import MAX_STEPS
from ..io import load_image
from ..look import LookSettings
from ..transfer import TransferConfig, transfer
from .common import (
    BenchReport,
    BenchResult,
    Progress,
    check_bench_image,
    expand_models,
    machine_info,
)
from .maps import FAMILIES, draw_map

#: Photos by short name (paths relative to the checkout). ``skimage:NAME`` names a photo of
#: ``skimage.data`` and any other string a path.
PHOTOS: dict[str, str] = {
    "astronaut": "benchmarks/images/astronaut.jpg",
    "chelsea": "benchmarks/images/chelsea.jpg",
    "coffee": "benchmarks/images/coffee.jpg",
    "rocket": "benchmarks/images/rocket.jpg",
    "ocean_day": "examples/ocean_day.jpg",
    "ocean_sunset": "examples/ocean_sunset.jpg",
}

#: The photos of a default run.
DEFAULT_PHOTOS: tuple[str, ...] = tuple(PHOTOS)

#: Baselines of a default run; ``hm-mkl-hm`` is skipped (with a note) without color-matcher.
KNOWN_BASELINES: tuple[str, ...] = ("mkl", "histogram", "emd", "hm-mkl-hm")


def load_photo(name: str) -> np.ndarray:
    r"""Returns the photo ``name`` (a key of :data:`PHOTOS`, ``skimage:NAME`` or a path) as
    :math:`(H, W, 3)` uint8.

    Raises:
        InputError: the photo cannot be found or read.
    """

    if name.startswith("skimage:"):
        try:
            import skimage.data
        except ImportError as err:
            raise InputError(
                f"{name} needs scikit-image", "pip install scikit-image, or pass a photo path"
            ) from err
        try:
            pixels = np.asarray(getattr(skimage.data, name.split(":", 1)[1])())
        except (AttributeError, OSError, ValueError, ModuleNotFoundError) as err:
            raise InputError(f"{name}: not a photo of skimage.data ({err})") from err
        if pixels.ndim != 3 or pixels.shape[-1] < 3:
            raise InputError(f"{name} is not a colour photo")
        return np.ascontiguousarray(pixels[..., :3]).astype(np.uint8)
    if name in PHOTOS:
        # Package data (otcolor.data), not the checkout: an installed wheel has no examples/.
        try:
            path = image_path(PHOTOS[name])
        except FileNotFoundError as err:
            raise InputError(str(err), "pass photo paths") from None
    else:
        path = Path(name)
    rgb = load_image(path).rgb
    check_bench_image(name, rgb.shape)
    return np.round(rgb * 255.0).astype(np.uint8)


def pair_seed(photo: str, family: str, seed: int = 0) -> int:
    r"""The seed of the map drawn for ``(photo, family)``: stable across runs and machines."""

    return (zlib.crc32(f"{Path(photo).name}:{family}".encode()) + seed) % 1_000_000


def make_pair(photo: np.ndarray, family: str, seed: int) -> np.ndarray:
    r"""Returns the 8-bit target :math:`T^*(S)` of ``photo`` under the map of ``family``/``seed``."""

    known = draw_map(family, seed)
    mapped = known(photo.reshape(-1, 3) / 255.0).reshape(photo.shape)
    return np.round(np.clip(mapped, 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    r"""PSNR (dB), RMSE and the 99th percentile of the per-pixel RGB error (8-bit levels) of two
    uint8 images."""

    error = output.astype(np.float64) - target.astype(np.float64)
    mse = float(np.mean(error * error))
    per_pixel = np.sqrt((error * error).sum(-1))
    return {
        "psnr": float(10 * np.log10(255.0**2 / max(mse, 1e-12))),
        "rmse": float(np.sqrt(mse)),
        "p99": float(np.percentile(per_pixel, 99)),
    }


def _hm_mkl_hm(source: np.ndarray, target: np.ndarray, seed: int = 0) -> np.ndarray:
    from color_matcher import ColorMatcher

    out = ColorMatcher().transfer(src=source, ref=target, method="hm-mkl-hm")
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def _baseline(name: str):  # type: ignore[no-untyped-def]
    if name == "hm-mkl-hm":
        try:
            import color_matcher  # noqa: F401
        except ImportError:
            return None
        return _hm_mkl_hm
    return BASELINES[name]


@dataclass
class KnownBenchConfig:
    r"""Settings of :func:`run_known`; otcolor's transfer defaults otherwise."""

    photos: tuple[str, ...] = DEFAULT_PHOTOS
    families: tuple[str, ...] = tuple(FAMILIES)
    seed: int = 0  # shifts every map draw and seeds the transfers
    steps: int | None = None  # None: the transfer defaults
    device: str = "auto"
    baselines: tuple[str, ...] = KNOWN_BASELINES
    plan: bool = True  # also score the previous estimator (estimator="plan") with C-MGN

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise UsageError(f"unknown family {unknown[0]!r}", f"choose from {sorted(FAMILIES)}")
        unknown = [b for b in self.baselines if b not in (*BASELINES, "hm-mkl-hm")]
        if unknown:
            raise UsageError(
                f"unknown baseline {unknown[0]!r}", f"choose from {[*BASELINES, 'hm-mkl-hm']}"
            )
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise UsageError(f"--steps must be in [1, {MAX_STEPS:,}], got {self.steps}")
        if not self.photos:
            raise UsageError("no photo to build pairs from")


def _summary(method: str, loss: str, rows: list[dict[str, Any]]) -> BenchResult:
    values = [r for r in rows if r["method"] == method]
    psnrs = [r["psnr"] for r in values]
    metrics: dict[str, float | int | None] = {
        "median_psnr": statistics.median(psnrs),
        "min_psnr": min(psnrs),
        "median_rmse": statistics.median(r["rmse"] for r in values),
        "max_p99": max(r["p99"] for r in values),
        "pairs": len(values),
    }
    seconds = statistics.median(r["seconds"] for r in values)
    return BenchResult(method, loss, seconds, metrics)


def run_known(
    models: str | list[str] = "cmgn",
    config: KnownBenchConfig | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    r"""Builds every photo × family pair and scores otcolor (each model) and the baselines.

    Returns a report whose ``results``/``baselines`` are per-method summaries (median and
    minimum PSNR, median RMSE, worst 99th percentile, median seconds) and whose
    ``reference["pairs"]`` holds every pair's scores.

    Raises:
        UsageError: bad names; InputError: a photo cannot be read.
    """

    config = config or KnownBenchConfig()
    model_names = expand_models(models)
    device = resolve_device(config.device)
    photos = {name: load_photo(name) for name in config.photos}  # fail before any fit
    pure = LookSettings(regrain=None)  # a known map is a colour map: the pure route

    def method(**fit: Any) -> TransferConfig:
        settings = FitSettings(steps=config.steps, device=str(device), seed=config.seed, **fit)
        return TransferConfig(fit=settings, look=pure)

    methods = [(m, method(model=m)) for m in model_names]
    if config.plan and "cmgn" in model_names:
        methods.append(("cmgn-plan", method(estimator="plan")))
    baselines = [(b, _baseline(b)) for b in config.baselines]
    skipped = [b for b, fn in baselines if fn is None]
    total = len(photos) * len(config.families)
    rows: list[dict[str, Any]] = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="otcolor-known-") as tmp:
        from PIL import Image

        for photo_name, source in photos.items():
            for family in config.families:
                seed = pair_seed(photo_name, family, config.seed)
                target = make_pair(source, family, seed)
                pair = f"{Path(photo_name).stem}/{family}"
                src_path, tgt_path = Path(tmp, "source.png"), Path(tmp, "target.png")
                Image.fromarray(source).save(src_path)
                Image.fromarray(target).save(tgt_path)
                base = {"pair": pair, "photo": photo_name, "family": family, "map_seed": seed}
                for method, transfer_config in methods:
                    out_path = Path(tmp, "out.png")
                    result = transfer(src_path, tgt_path, out_path, transfer_config, force=True)
                    output = np.asarray(Image.open(out_path).convert("RGB"))
                    rows.append({**base, "method": method, "seconds": result.seconds,
                                 "warnings": result.warnings, **psnr(output, target)})  # fmt: skip
                for method, fn in baselines:
                    if fn is None:
                        continue
                    start = time.perf_counter()
                    out = fn(source / 255.0, target / 255.0, config.seed)
                    seconds = time.perf_counter() - start
                    output = np.round(np.clip(out, 0, 1) * 255.0).astype(np.uint8)
                    rows.append({**base, "method": method, "seconds": seconds,
                                 **psnr(output, target)})  # fmt: skip
                done += 1
                if progress is not None:
                    progress(pair, done, total, "")

    results = [_summary(m, "ot", rows) for m, _ in methods]
    base_results = [_summary(b, "-", rows) for b, fn in baselines if fn is not None]
    return BenchReport(
        benchmark="known",
        config={**asdict(config), "models": model_names, "skipped_baselines": skipped},
        results=results,
        baselines=base_results,
        reference={"pairs": rows},
        machine=machine_info(device),
        notes=pair_table(rows, skipped),
    )


def pair_table(rows: list[dict[str, Any]], skipped: list[str] | None = None) -> str:
    r"""The per-pair PSNR table in Markdown: one row per pair, one column per method."""

    methods = list(dict.fromkeys(r["method"] for r in rows))
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    score = {(r["pair"], r["method"]): r["psnr"] for r in rows}
    lines = [
        "PSNR (dB) of each pair's output against its known answer:",
        "",
        "| pair | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for pair in pairs:
        cells = [format(score[(pair, m)], ".1f") if (pair, m) in score else "—" for m in methods]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", f"Skipped (not installed): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"
