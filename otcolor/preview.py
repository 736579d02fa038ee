r"""A contact sheet to choose a look by eye: source, target and one result per smoothness.

Each setting is fitted once, at preview size (the longest side :attr:`PreviewConfig.size`),
exactly as ``otcolor transfer`` fits it (the regrain's base layers, or the pixels with
``regrain=False``). The sheet shows, per column: the image; a zoom on the smoothest window of
the source, where amplified grain or banding shows first; the R–G and R–B colour scatters.
Each result is labelled with its closeness (sliced W2 to the target's pixels, lower is closer)
and its smoothness (:func:`otcolor.metrics.amp999`, the 99.9th percentile of how much the map
amplifies differences between neighbours; 1 leaves them as they are).
"""

from __future__ import annotations

__all__ = ["PreviewConfig", "PreviewResult", "PreviewSetting", "preview", "smoothest_window"]

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from .errors import UsageError
from .fitting import FitSettings
from .io import LoadedImage, check_output_path, load_image, write_atomically
from .look import REGRAIN, LookSettings
from .metrics import amp999, sliced_w2
from .pipeline import fit_look, render, sample_colours, sampling_rng, source_detail
from .regrain import base_colors


@dataclass
class PreviewConfig:
    r"""Settings of :func:`preview`."""

    smoothness: tuple[float, ...] = (0.0, 4.0, 16.0)  # one result column per value
    regrain: bool = True  # as ``transfer --regrain/--no-regrain``
    size: int = 320  # longest side of the images the fits and the sheet use
    steps: int | None = None  # None: the loss's default, as in transfer
    seed: int = 0
    zoom: int = 48  # side of the zoom window, in preview pixels
    scatter_points: int = 3000  # colours drawn per scatter

    def __post_init__(self) -> None:
        if not self.smoothness:
            raise UsageError("give at least one --smoothness value")
        if any(s < 0 or not np.isfinite(s) for s in self.smoothness):
            raise UsageError(f"smoothness values must be finite and >= 0, got {self.smoothness}")
        if self.size < 32:
            raise UsageError(f"preview size must be at least 32 pixels, got {self.size}")
        # The fits' settings, checked now rather than after both images are decoded.
        for smoothness in self.smoothness:
            FitSettings(smoothness=float(smoothness), steps=self.steps, seed=self.seed)


@dataclass
class PreviewSetting:
    r"""One result column: its smoothness setting and its numbers."""

    smoothness: float
    sliced_w2: float  # to the target's pixels (lower: closer)
    amp999: float  # neighbour-difference amplification (lower: smoother)
    fit_seconds: float


@dataclass
class PreviewResult:
    r"""What ``otcolor preview`` did: the ``--json`` output."""

    output: Path
    size: tuple[int, int]  # the preview's width and height
    regrain: bool
    settings: list[PreviewSetting]
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _shrink(rgb: np.ndarray, size: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = min(1.0, size / max(height, width))
    image = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
    if scale < 1.0:
        box = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(box, Image.Resampling.LANCZOS)
    return np.array(image)  # writable: torch warns on read-only arrays


def smoothest_window(rgb: np.ndarray, side: int) -> tuple[int, int]:
    r"""The top-left corner of the ``side`` x ``side`` window with the least local contrast
    (sum of absolute neighbour differences): a sky or a wall, where grain is visible."""

    grey = rgb.astype(np.float64).mean(-1)
    grad = np.zeros_like(grey)
    grad[:, 1:] += np.abs(np.diff(grey, axis=1))
    grad[1:, :] += np.abs(np.diff(grey, axis=0))
    side = min(side, *grey.shape)
    summed = grad.cumsum(0).cumsum(1)
    summed = np.pad(summed, ((1, 0), (1, 0)))
    boxes = (
        summed[side:, side:]
        - summed[:-side, side:]
        - summed[side:, :-side]
        + summed[:-side, :-side]
    )
    top, left = np.unravel_index(np.argmin(boxes), boxes.shape)
    return int(top), int(left)


def preview(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: PreviewConfig | None = None,
    *,
    force: bool = False,
    callback: Callable[[int, int, float], None] | None = None,
) -> PreviewResult:
    r"""Fits one look per smoothness setting at preview size and writes a labelled PNG sheet.

    Arguments:
        source: the image to recolour.
        target: the image whose colours are wanted.
        output: the sheet, a ``.png`` (written atomically).
        config: the settings.
        force: replace an existing output (never an input).
        callback: called as ``callback(done, total, smoothness)`` after each fit.

    Raises:
        UsageError: matplotlib is missing, the output is not a ``.png`` or exists.
    """

    start = time.perf_counter()
    config = config or PreviewConfig()
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UsageError(f"{output}: the preview sheet is a PNG", "give -o sheet.png")
    check_output_path(output, [source, target], force=force, image=False)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise UsageError(
            "the preview sheet needs matplotlib, which is not installed",
            "pip install 'otcolor[preview]'",
        ) from err

    src_image, tgt_image = load_image(source), load_image(target)
    warnings = [*src_image.warnings, *tgt_image.warnings]
    src = _shrink(src_image.rgb, config.size)  # (h, w, 3) uint8
    tgt = _shrink(tgt_image.rgb, config.size)
    # As transfer fits: every pixel of the preview-size images (base layers for the regrain).
    look_settings = LookSettings(regrain=REGRAIN if config.regrain else None)
    grain = look_settings.regrain
    src_base = None if grain is None else base_colors(src, grain)  # every setting reuses it
    rng = sampling_rng()
    detail = source_detail(src, src_base, grain)
    samples = {
        name: sample_colours(
            LoadedImage(image.astype(np.float32) / 255, path=name),
            image.shape[0] * image.shape[1],
            rng,
            grain,
            base=base,
            source_detail=spread,
        )
        for name, image, base, spread in (
            ("source", src, src_base, None),
            ("target", tgt, None, detail),
        )
    }
    target_pixels = tgt.reshape(-1, 3).astype(np.float32) / 255

    results: list[np.ndarray] = []
    settings: list[PreviewSetting] = []
    for done, smoothness in enumerate(config.smoothness, 1):
        began = time.perf_counter()
        fit = FitSettings(
            smoothness=float(smoothness), steps=config.steps, seed=config.seed, device="cpu"
        )
        made = fit_look(samples["source"], samples["target"], fit, look_settings)
        warnings += made.warnings
        mapped = render(made.look, src, base=src_base)
        mapped8 = np.round(np.clip(mapped, 0, 1) * 255).astype(np.uint8)
        rng = np.random.default_rng(config.seed)
        closeness = sliced_w2(
            mapped8.reshape(-1, 3) / 255.0, target_pixels, rng, n_projections=64, n=16384
        )
        settings.append(
            PreviewSetting(
                float(smoothness),
                float(closeness),
                float(amp999(src / 255.0, mapped8 / 255.0)),
                time.perf_counter() - began,
            )
        )
        results.append(mapped8)
        if callback is not None:
            callback(done, len(config.smoothness), float(smoothness))

    figure = Figure(figsize=(3.0 * (2 + len(results)), 11.0), dpi=100)
    _draw(figure, src, tgt, results, settings, config)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)

    def write(fp: IO[bytes]) -> None:
        fp.write(buffer.getvalue())

    write_atomically(output, write, force)
    return PreviewResult(
        output=output,
        size=(src.shape[1], src.shape[0]),
        regrain=config.regrain,
        settings=settings,
        seconds=time.perf_counter() - start,
        warnings=list(dict.fromkeys(warnings)),
    )


def _draw(
    figure: object,
    src: np.ndarray,
    tgt: np.ndarray,
    results: list[np.ndarray],
    settings: list[PreviewSetting],
    config: PreviewConfig,
) -> None:
    columns = [("source", src), ("target", tgt)] + [
        (f"smoothness {s.smoothness:g}\nsliced W2 {s.sliced_w2:.4f}, amp {s.amp999:.2f}", r)
        for s, r in zip(settings, results, strict=True)
    ]
    top, left = smoothest_window(src, config.zoom)
    side = min(config.zoom, *src.shape[:2])
    axes = figure.subplots(4, len(columns), squeeze=False)  # type: ignore[attr-defined]
    rng = np.random.default_rng(config.seed)
    for col, (title, image) in enumerate(columns):
        axes[0, col].imshow(image)
        axes[0, col].set_title(title, fontsize=9)
        if image is tgt:
            axes[1, col].axis("off")
        else:
            crop = image[top : top + side, left : left + side]
            axes[1, col].imshow(crop, interpolation="nearest")
            axes[1, col].set_title("zoom: smoothest region", fontsize=8)
        pixels = image.reshape(-1, 3)
        pick = pixels[
            rng.choice(len(pixels), min(config.scatter_points, len(pixels)), replace=False)
        ]
        for row, (channel, name) in ((2, (1, "G")), (3, (2, "B"))):
            ax = axes[row, col]
            ax.scatter(pick[:, 0], pick[:, channel], c=pick / 255.0, s=2, linewidths=0)
            ax.set_xlim(0, 255)
            ax.set_ylim(0, 255)
            ax.set_xlabel("R", fontsize=8)
            ax.set_ylabel(name, fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_aspect("equal")
        for row in (0, 1):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    # The zoom window's place on the source.
    from matplotlib.patches import Rectangle

    axes[0, 0].add_patch(Rectangle((left, top), side, side, fill=False, edgecolor="red", lw=1))
    figure.suptitle(  # type: ignore[attr-defined]
        f"otcolor preview ({'regrain' if config.regrain else 'pure map'}; closeness: sliced W2 "
        "to the target, lower is closer; amp: 99.9th pct neighbour amplification, lower is "
        "smoother)",
        fontsize=9,
    )
    figure.tight_layout()  # type: ignore[attr-defined]
