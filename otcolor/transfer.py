r"""Colour transfer end to end: sample pixels, fit a monotone map, apply it everywhere, save."""

from __future__ import annotations

__all__ = ["FileSettings", "TransferConfig", "TransferResult", "transfer"]

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .device import resolve_device
from .errors import UsageError
from .fitting import Callback, FitSettings
from .heap import trim
from .io import (
    check_distinct_outputs,
    check_output_path,
    load_image,
    load_mask,
    outputs_together,
    save_image,
    unit_float,
    writes_8bit_as_is,
)
from .io.lut import check_lut, export_lut
from .io.mapfile import fingerprint
from .io.mapfile import save_map as write_map
from .io.settings import FileSettings
from .io.stilllut import STILL_SIZE
from .look import LookSettings
from .metrics import sliced_w2
from .pipeline import (
    approved_table,
    fit_look,
    provenance,
    render,
    sample_colours,
    sample_pixels,
    sampling_rng,
    source_detail,
)
from .regrain import base_colors


@dataclass(frozen=True)
class TransferConfig:
    r"""Settings of a file-level colour transfer, by composition: how the map is fitted, the
    look's settings and how files are read and written."""

    fit: FitSettings = FitSettings()
    look: LookSettings = LookSettings()
    files: FileSettings = FileSettings()

    def __post_init__(self) -> None:
        # Each part validates itself when made; a stand-in object would skip that.
        for name, kind in (("fit", FitSettings), ("look", LookSettings), ("files", FileSettings)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise UsageError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")


@dataclass
class TransferResult:
    r"""What a transfer did and how well: the ``--json`` output of ``otcolor transfer``."""

    output: Path
    model: str
    loss: str
    device: str
    seed: int
    steps: int
    seconds: float  # the whole call: load, fit, apply, save
    fit_seconds: float
    final_loss: float
    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    saved_map: Path | None = None  # --save-map
    lut: Path | None = None  # --lut


#: Pixels drawn from each image for the summary metrics of a regrained look.
SUMMARY_PIXELS = 1 << 16


def _rms_distance(a: np.ndarray, b: np.ndarray, rows: int = 1 << 20) -> float:
    r"""The root mean squared distance between the pixels of two images, chunk by chunk."""

    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    total = 0.0
    for i in range(0, a.shape[0], rows):
        diff = unit_float(a[i : i + rows]) - unit_float(b[i : i + rows])
        total += float(np.square(diff).sum(dtype=np.float64))
    return float(np.sqrt(total / max(a.shape[0], 1)))


def _subsample(
    pixels: np.ndarray, alpha: np.ndarray | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    r"""At most ``n`` pixels with non-zero alpha, drawn as :func:`otcolor.metrics.sliced_w2`
    draws them (same generator calls), without copying the whole image first."""

    flat = pixels.reshape(-1, pixels.shape[-1])
    eligible = None if alpha is None else np.flatnonzero(alpha.reshape(-1) > 0)
    count = flat.shape[0] if eligible is None else eligible.size
    if count <= n:
        return unit_float(flat if eligible is None else flat[eligible])
    picks = rng.choice(count, size=n, replace=False)
    return unit_float(flat[picks if eligible is None else eligible[picks]])


def transfer(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: TransferConfig | None = None,
    *,
    force: bool = False,
    callback: Callback | None = None,
    source_mask: str | os.PathLike[str] | None = None,
    target_mask: str | os.PathLike[str] | None = None,
    apply_mask: str | os.PathLike[str] | None = None,
    save_map: str | os.PathLike[str] | None = None,
    lut: str | os.PathLike[str] | None = None,
    lut_size: int | None = None,
) -> TransferResult:
    r"""Transfers the colours of ``target`` onto ``source`` and writes ``output``.

    Everything that can be checked cheaply (inputs decode, output is writable, no input is
    overwritten) is checked before training; the output is written atomically.

    Arguments:
        source: the image whose colours change.
        target: the image whose colours are wanted.
        output: where to write the result; its extension picks the format.
        config: the fit, look and file settings.
        force: whether an existing ``output`` may be replaced (an input never is).
        callback: called as ``callback(step, logs)`` after every training step.
        source_mask, target_mask: only pixels where these masks (grey images of each image's
            size) are at least 0.5 are sampled for fitting.
        apply_mask: where the map applies: pixels become :math:`x + m (T(x) - x)`.
        save_map: also write the look as a map file (:mod:`otcolor.io.mapfile`).
        lut: also write the look as a 3-D LUT (``.cube``, or ``.png`` for a HaldCLUT).
        lut_size: the LUT's points per axis (default 33 for ``.cube``, 64 for Hald).

    Raises:
        OtcolorError: a subclass with the exit code of the failure (see ``otcolor.errors``).
    """

    config = TransferConfig() if config is None else config
    if not isinstance(config, TransferConfig):
        raise UsageError(f"config must be a TransferConfig, got {type(config).__name__}")
    fit, look_settings, files = config.fit, config.look, config.files
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    start = time.perf_counter()
    device = resolve_device(fit.device)  # fail on an unavailable device before any decoding
    # The output is checked before decoding (a 50-megapixel decode takes seconds), and once
    # more for its format's alpha support when the source turns out to have alpha.
    inputs = [p for p in (source, target, source_mask, target_mask, apply_mask) if p is not None]
    check_distinct_outputs([output, save_map, lut], inputs)  # masks are inputs too
    check_output_path(output, inputs, force=force)
    for extra in (save_map, lut):
        if extra is not None:
            check_output_path(extra, [*inputs, output], force=force, image=False)
    if lut is not None:
        check_lut(lut, None, lut_size)
    profile = files.profile()
    # 8-bit sRGB pixels stay uint8 (a quarter of the memory): every step below reads them so.
    source_image = load_image(source, max_pixels=files.max_pixels, keep_8bit=True)
    target_image = load_image(target, max_pixels=files.max_pixels, keep_8bit=True)
    if source_image.alpha is not None:
        check_output_path(output, inputs, force=force, has_alpha=True)
    warnings = [*source_image.warnings, *target_image.warnings]

    rng = sampling_rng()
    masks = {
        "source": None if source_mask is None else load_mask(source_mask, source_image.size),
        "target": None if target_mask is None else load_mask(target_mask, target_image.size),
        "apply": None if apply_mask is None else load_mask(apply_mask, source_image.size),
    }
    # Hashed now, not after the fit: the map must name the masks that were used.
    inputs_record = {
        "source": (source, source_image.size, source_image.sha256),
        "target": (target, target_image.size, target_image.sha256),
    }
    if save_map is not None:
        for role, path in (("source_mask", source_mask), ("target_mask", target_mask)):
            if path is not None:
                inputs_record[role] = (path, None, fingerprint(path)["sha256"])

    grain = look_settings.regrain
    # Kept: the regrain filters the same base layer again otherwise.
    source_base = None if grain is None else base_colors(source_image.rgb, grain, device)
    trim()  # each phase's temporaries are freed before the next (see otcolor.heap)
    x = sample_colours(
        source_image, fit.samples, rng, grain, device, mask=masks["source"], base=source_base
    )
    y = sample_colours(
        target_image,
        fit.samples,
        rng,
        grain,
        device,
        mask=masks["target"],
        source_detail=source_detail(source_image.rgb, source_base, grain),
    )
    made = fit_look(x, y, fit, look_settings, callback, device)
    warnings += made.warnings
    trim()

    mapped = render(
        made.look,
        source_image.rgb,
        bit_depth=source_image.bit_depth,
        mask=masks["apply"],
        base=source_base,
        as_uint8=writes_8bit_as_is(source_image, profile),
        warnings=warnings,
    )
    del source_base
    trim()
    # A regrained look's LUT is the colour function closest to this still; the map file keeps
    # one (STILL_SIZE points) so that `otcolor lut` bakes the approved look without the source.
    stills: dict[int, np.ndarray | None] = {}
    lut_format = lut_points = None
    if lut is not None:
        lut_format, lut_points = check_lut(lut, None, lut_size)
    sizes = [STILL_SIZE] if save_map is not None else []
    if lut_points is not None and lut_points not in sizes:
        sizes.append(lut_points)
    for size in sizes:
        stills[size] = approved_table(
            made.look, source_image.rgb, mapped, size, mask=masks["apply"]
        )
    with outputs_together():  # the image, its map and its LUT: all of them, or none
        warnings += save_image(
            output,
            mapped,
            alpha=source_image.alpha,
            like=source_image,
            quality=files.quality,
            overwrite=force,
            profile=profile,
        )
        if save_map is not None:
            record = provenance(made.settings, inputs_record)
            still = stills.get(STILL_SIZE)
            write_map(save_map, made.look, record, overwrite=force, still=still)
        if lut is not None:
            table = stills[lut_points]
            export_lut(made.look, lut, lut_points, lut_format, overwrite=force, table=table)

    if grain is not None:
        # The fit saw base layers; the summary compares the images themselves (for a pure look
        # the fit's samples are those pixels already).
        # A few times the summary's 16384 pixels: a sparse draw, where a fit-sized draw from
        # a 24-megapixel image permutes every pixel index (192 MB, the command's peak).
        summary_rng, count = sampling_rng(), min(fit.samples, SUMMARY_PIXELS)
        x = sample_pixels(source_image, count, summary_rng, mask=masks["source"])
        y = sample_pixels(target_image, count, summary_rng, mask=masks["target"])

    def summary_sw2(a: np.ndarray, alpha: np.ndarray | None = None) -> float:
        # A quick summary, not the benchmark: 64 directions on 16384 pixels take ~0.1 s.
        rng = sampling_rng()
        return sliced_w2(_subsample(a, alpha, 16384, rng), y, rng, n_projections=64, n=16384)

    metrics = {
        "sliced_w2": summary_sw2(mapped, source_image.alpha),
        "sliced_w2_before": summary_sw2(x),
        "rms_displacement": _rms_distance(mapped, source_image.rgb),
    }
    losses = made.fitted.history["loss"]
    return TransferResult(
        output=Path(output),
        model=fit.model,
        loss=fit.loss,
        device=str(made.fitted.device),
        seed=fit.seed,
        steps=len(losses),
        seconds=time.perf_counter() - start,
        fit_seconds=made.fitted.seconds,
        final_loss=float(np.mean(losses[-20:])) if losses else 0.0,
        metrics=metrics,
        warnings=warnings,
        saved_map=None if save_map is None else Path(save_map),
        lut=None if lut is None else Path(lut),
    )
