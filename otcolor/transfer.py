r"""Colour transfer end to end: sample pixels, fit a monotone map, apply it everywhere, save."""

from __future__ import annotations

__all__ = [
    "TransferConfig",
    "TransferResult",
    "sample_base",
    "transfer",
]

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .color import SPACES, Look, apply_look, to_space
from .device import first_line, release_device_memory, resolve_device
from .errors import OutOfDeviceMemory, TrainingError, UsageError
from .fit import DEFAULT_SMOOTHNESS, Callback, FitSettings, fit_color_map, sample_pixels
from .io import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    all_finite,
    check_distinct_outputs,
    check_output_path,
    load_image,
    load_mask,
    save_image,
)
from .io.lut import check_lut, export_lut
from .io.mapfile import fingerprint
from .io.mapfile import save_map as write_map
from .metrics import sliced_w2
from .regrain import REGRAIN, base_colors, regrain


@dataclass
class TransferConfig(FitSettings):
    r"""Settings of a file-level colour transfer: the fit settings (:class:`FitSettings`, which
    :func:`~otcolor.fit.fit_color_map` receives as :attr:`fit`) and how files are read and
    written and the look is applied."""

    quality: int = 95  # JPEG/WebP quality of the output
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # refuse larger inputs (decompression bombs)
    space: str = "rgb"  # fit and apply in "rgb" (sRGB) or "lab" (CIELAB)
    strength: float = 1.0  # t in x + t (T(x) - x): 0 is the identity, 1 the full map
    preserve_luminance: bool = False  # keep each pixel's CIELAB lightness
    regrain: bool = True  # fit on the base layer, keep the grain (otcolor.regrain); off: pure map

    def __post_init__(self) -> None:
        if self.smoothness is None:
            self.smoothness = DEFAULT_SMOOTHNESS[self.regrain]
        super().__post_init__()
        if self.space not in SPACES:
            raise UsageError(f"unknown space {self.space!r}", f"choose one of {list(SPACES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be in [0, 1], got {self.strength}")


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


def _rms_distance(a: np.ndarray, b: np.ndarray, rows: int = 1 << 20) -> float:
    r"""The root mean squared distance between the pixels of two images, chunk by chunk."""

    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    total = 0.0
    for i in range(0, a.shape[0], rows):
        total += float(np.square(a[i : i + rows] - b[i : i + rows]).sum(dtype=np.float64))
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
        return flat if eligible is None else flat[eligible]
    picks = rng.choice(count, size=n, replace=False)
    return flat[picks if eligible is None else eligible[picks]]


def sample_base(
    image: LoadedImage,
    mask: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
    device: torch.device,
    base: np.ndarray | None = None,
) -> np.ndarray:
    r"""Draws pixels of an image's base layer (:func:`otcolor.regrain.base_colors`, or ``base``
    when the caller computed it to regrain with later); alpha and the mask are read at the base
    layer's pixels."""

    scale = REGRAIN.scale
    base = LoadedImage(
        base_colors(image.rgb, REGRAIN, device) if base is None else base,
        alpha=None if image.alpha is None else image.alpha[::scale, ::scale],
        path=image.path,
    )
    return sample_pixels(base, n, rng, mask=None if mask is None else mask[::scale, ::scale])


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
        config: the settings.
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

    config = config or TransferConfig()
    start = time.perf_counter()
    resolve_device(config.device)  # fail on an unavailable device before any decoding
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
    source_image = load_image(source, max_pixels=config.max_pixels)
    target_image = load_image(target, max_pixels=config.max_pixels)
    has_alpha = source_image.alpha is not None
    if has_alpha:
        check_output_path(output, inputs, force=force, has_alpha=True)
    warnings = [*source_image.warnings, *target_image.warnings]

    rng = np.random.default_rng(config.seed)
    masks = {
        "source": None if source_mask is None else load_mask(source_mask, source_image.size),
        "target": None if target_mask is None else load_mask(target_mask, target_image.size),
        "apply": None if apply_mask is None else load_mask(apply_mask, source_image.size),
    }
    # Hashed now, not after the fit: the map must name the masks that were used.
    mask_prints = {
        name: fingerprint(path)
        for name, path in (("source_mask", source_mask), ("target_mask", target_mask))
        if path is not None and save_map is not None
    }
    if config.regrain:
        # Both sides are fitted as base layers: the map moves the images' structure colours,
        # not their grain, and an image onto itself stays the identity (otcolor.regrain).
        device = resolve_device(config.device)
        # Kept: the regrain below filters the same base layer again otherwise.
        source_base = base_colors(source_image.rgb, REGRAIN, device)
        x = sample_base(source_image, masks["source"], config.samples, rng, device, source_base)
        y = sample_base(target_image, masks["target"], config.samples, rng, device)
    else:
        x = sample_pixels(source_image, config.samples, rng, mask=masks["source"])
        y = sample_pixels(target_image, config.samples, rng, mask=masks["target"])
    space = config.space
    fitted = fit_color_map(to_space(x, space), to_space(y, space), config.fit, callback)
    warnings += fitted.warnings

    # One route for every consumer (apply, LUTs, video): see otcolor.color.
    look = Look(fitted.map, space, config.strength, config.preserve_luminance, fitted.device)

    def apply(look: Look) -> np.ndarray:
        if config.regrain:
            return regrain(look, source_image.rgb, REGRAIN, mask=masks["apply"], base=source_base)
        return apply_look(
            look, source_image.rgb, bit_depth=source_image.bit_depth, mask=masks["apply"]
        )

    try:
        mapped = apply(look)
    except OutOfDeviceMemory as err:  # raised by the apply route, see otcolor.color
        if str(look.device) == "cpu":
            raise TrainingError(
                f"out of memory applying the map ({first_line(err.__cause__ or err)})",
                "use a smaller image",
            ) from err
        # The map is small: the device is full of something else. Finish on the CPU.
        release_device_memory()
        warnings.append(
            f"out of device memory applying the map ({first_line(err.__cause__ or err)}); applied on the CPU"
        )
        look = Look(fitted.map.cpu(), space, config.strength, config.preserve_luminance, "cpu")
        mapped = apply(look)
    if not all_finite(mapped):
        raise TrainingError(
            "the fitted map gives non-finite colours; nothing was written",
            "try another --seed, --loss or --smoothness",
        )
    warnings += save_image(
        output,
        mapped,
        alpha=source_image.alpha,
        like=source_image,
        quality=config.quality,
        overwrite=force,
    )
    if save_map is not None:
        fit_settings = {
            k: getattr(config, k)
            for k in (
                "model",
                "loss",
                "estimator",
                "steps",
                "samples",
                "smoothness",
                "init",
                "seed",
                "regrain",
            )
        }
        info = {
            "fit": fit_settings,
            "source": fingerprint(source, source_image.size, source_image.sha256),
            "target": fingerprint(target, target_image.size, target_image.sha256),
        }
        info.update(mask_prints)
        write_map(save_map, look, info, overwrite=force)
    if lut is not None:
        export_lut(look, lut, lut_size, overwrite=force)

    if config.regrain:
        # The fit saw base layers; the summary compares the images themselves.
        summary_rng = np.random.default_rng(config.seed)
        x = sample_pixels(source_image, config.samples, summary_rng, mask=masks["source"])
        y = sample_pixels(target_image, config.samples, summary_rng, mask=masks["target"])

    def summary_sw2(a: np.ndarray, alpha: np.ndarray | None = None) -> float:
        # A quick summary, not the benchmark: 64 directions on 16384 pixels take ~0.1 s.
        rng = np.random.default_rng(config.seed)
        return sliced_w2(_subsample(a, alpha, 16384, rng), y, rng, n_projections=64, n=16384)

    metrics = {
        "sliced_w2": summary_sw2(mapped, source_image.alpha),
        "sliced_w2_before": summary_sw2(x),
        "rms_displacement": _rms_distance(mapped, source_image.rgb),
    }
    losses = fitted.history["loss"]
    return TransferResult(
        output=Path(output),
        model=config.model,
        loss=config.loss,
        device=str(fitted.device),
        seed=config.seed,
        steps=len(losses),
        seconds=time.perf_counter() - start,
        fit_seconds=fitted.seconds,
        final_loss=float(np.mean(losses[-20:])) if losses else 0.0,
        metrics=metrics,
        warnings=warnings,
        saved_map=None if save_map is None else Path(save_map),
        lut=None if lut is None else Path(lut),
    )
