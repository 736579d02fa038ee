r"""The colour pipeline, written once: sample the colours, fit, make the look, apply it.

Every use case (``transfer``, ``apply``, ``video``, ``preview``, ``bench pixels``) runs these
steps and nothing else between its files:

1. :func:`sample_colours`: the pixels of an image, or of its base layer when the look regrains
   (:mod:`otcolor.regrain` fits the map between base layers);
2. :func:`fit_look`: the map fitted in the look's colour space (the one call of
   :func:`otcolor.fitting.fit_color_map` outside MNIST), wrapped in a :class:`~otcolor.look.Look`;
3. :func:`render`: the look applied to an image, with the regrain or pure as the look says,
   finished on the CPU if the device runs out of memory;
4. :func:`provenance`: how the look was made, for its map file.

Two kinds of settings make a look, each validated once when made: the fit's
(:class:`~otcolor.fitting.FitSettings`) and the look's (:class:`~otcolor.look.LookSettings`).
Files are the use cases' own business.
"""

from __future__ import annotations

__all__ = [
    "FittedLook",
    "approved_table",
    "fit_look",
    "override",
    "provenance",
    "render",
    "sample_colours",
    "sample_pixels",
    "sampling_rng",
]

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .color import ColorTable, apply_look
from .device import first_line, release_device_memory, resolve_device
from .errors import InputError, OutOfDeviceMemory, TrainingError
from .fitting import Callback, FitSettings, FittedMap, fit_color_map
from .io import LoadedImage, unit_float
from .io.mapfile import fingerprint
from .io.stilllut import fit_still_lut
from .look import REGRAIN, Look, LookSettings, RegrainConfig
from .regrain import base_colors, detail_power, regrain, spread_colours
from .spaces import to_space


@dataclass
class FittedLook:
    r"""A look and the fit that made it."""

    look: Look
    fitted: FittedMap
    settings: FitSettings  # as fitted (the smoothness filled in)

    @property
    def warnings(self) -> list[str]:
        return self.fitted.warnings


#: Seeds the choice of the pixels a map is fitted on, whatever ``--seed`` is: which pixels are
#: fitted must not change the look (the default estimator then depends on no seed at all).
SAMPLING_SEED = 0


def sampling_rng() -> np.random.Generator:
    r"""The generator :func:`sample_colours` draws with in every use case."""

    return np.random.default_rng(SAMPLING_SEED)


def sample_pixels(
    image: LoadedImage,
    n: int,
    generator: np.random.Generator,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""Draws distinct pixels of an image, ignoring fully transparent ones.

    Arguments:
        image: the image.
        n: the number of pixels wanted.
        generator: the random generator, for reproducibility.
        mask: only pixels where this :math:`(H, W)` mask is at least 0.5 are drawn.

    Returns:
        The colours, with shape :math:`(N', 3)`, float32, where :math:`N' = \min(n, M)` and
        :math:`M` is the number of pixels with non-zero alpha.

    Raises:
        InputError: every pixel is fully transparent.
    """

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")

    colours = image.rgb.reshape(-1, 3)  # (H W, 3), float32 or uint8
    if image.alpha is None and mask is None:
        eligible = None
        count = colours.shape[0]
    else:
        keep = np.ones(colours.shape[0], bool)
        if image.alpha is not None:
            keep &= image.alpha.reshape(-1) > 0
        if mask is not None:
            keep &= mask.reshape(-1) >= 0.5
        eligible = np.flatnonzero(keep)
        count = eligible.size
    if count == 0:
        if mask is not None:
            raise InputError(f"{image.path}: the mask selects no visible pixel", "nothing to fit")
        raise InputError(f"{image.path}: every pixel is fully transparent", "nothing to fit")

    picks = generator.choice(count, size=min(n, count), replace=False)
    if eligible is not None:
        picks = eligible[picks]
    return unit_float(colours[picks])


def sample_colours(
    image: LoadedImage,
    n: int,
    rng: np.random.Generator,
    regrain_config: RegrainConfig | None,
    device: torch.device | str = "cpu",
    *,
    mask: np.ndarray | None = None,
    base: np.ndarray | None = None,
    source_detail: float | None = None,
) -> np.ndarray:
    r"""Draws the colours a look's map is fitted on: pixels for a pure look, base-layer colours
    (:func:`otcolor.regrain.base_colors`) for a regrained one, and for a regrained look's
    target with ``source_detail`` and ``regrain_config.spread`` > 0, base-layer colours with
    part of the target's detail (:func:`otcolor.regrain.spread_colours`).

    Arguments:
        image: the image.
        n: the number of colours wanted.
        rng: the random generator.
        regrain_config: the look's regrain settings, or ``None`` for the pure map.
        device: where the base layer is filtered.
        mask: only pixels where this :math:`(H, W)` mask is at least 0.5 are drawn.
        base: the base layer, when the caller computed it already (it regrains with it later).
        source_detail: the source's :func:`otcolor.regrain.detail_power`, when ``image`` is
            the target.

    Returns:
        The colours, with shape :math:`(N', 3)`, float32.
    """

    if regrain_config is None:
        return sample_pixels(image, n, rng, mask=mask)
    scale = regrain_config.scale
    base = base_colors(image.rgb, regrain_config, device) if base is None else base
    if source_detail is not None and regrain_config.spread > 0:
        # Full-resolution pixels: most of a photo's detail is finer than the base layer's grid.
        keep = np.ones(image.rgb.shape[:2], bool) if mask is None else mask >= 0.5
        if image.alpha is not None:
            keep &= image.alpha > 0
        eligible = np.flatnonzero(keep)
        if eligible.size == 0:
            return sample_pixels(image, n, rng, mask=mask)  # raises the usual error
        picks = eligible[rng.choice(eligible.size, min(n, eligible.size), replace=False)]
        return spread_colours(image.rgb, base, picks, regrain_config, source_detail)
    # Alpha and the mask are read at the base layer's pixels.
    layer = LoadedImage(
        base,
        alpha=None if image.alpha is None else image.alpha[::scale, ::scale],
        path=image.path,
    )
    return sample_pixels(layer, n, rng, mask=None if mask is None else mask[::scale, ::scale])


def source_detail(
    rgb: np.ndarray, base: np.ndarray | None, regrain_config: RegrainConfig | None
) -> float | None:
    r"""The source's :func:`otcolor.regrain.detail_power` that :func:`sample_colours` needs for
    the target of a regrained look that spreads it; ``None`` when it does not."""

    if regrain_config is None or base is None or regrain_config.spread == 0:
        return None
    return detail_power(rgb, base, regrain_config.scale)


def fit_look(
    source: np.ndarray,
    target: np.ndarray,
    fit: FitSettings,
    look: LookSettings,
    callback: Callback | None = None,
    device: torch.device | None = None,
) -> FittedLook:
    r"""Fits the map of a look between two colour samples (sRGB, from :func:`sample_colours`),
    in the look's colour space.

    A regrained look's map is fitted between base layers and may be fitted closer: the fit's
    default smoothness follows the look (:meth:`~otcolor.fitting.FitSettings.for_look`).

    Arguments:
        source: source colours, :math:`(N, 3)` in :math:`[0, 1]`.
        target: target colours, :math:`(M, 3)` in :math:`[0, 1]`.
        fit: how the map is fitted.
        look: the look's settings.
        callback: called as ``callback(step, logs)`` after every training step.
        device: the device, already resolved (default: the fit settings' device).
    """

    settings = fit.for_look(look.regrain is not None)
    device = device if device is not None else resolve_device(settings.device)
    fitted = fit_color_map(
        to_space(source, look.space),
        to_space(target, look.space),
        settings,
        callback,
        device=device,
    )
    return FittedLook(Look(fitted.map, look, fitted.device), fitted, settings)


def override(look: Look, *, strength: float | None = None, regrain: bool | None = None) -> Look:
    r"""A look with the settings a command's flags override; ``None`` keeps the look's own.

    ``regrain=True`` on a pure look regrains with the default filter
    (:data:`~otcolor.look.REGRAIN`); ``False`` applies the pure colour map.
    """

    changes: dict[str, Any] = {}
    if strength is not None:
        changes["strength"] = float(strength)
    if regrain is not None and regrain != (look.settings.regrain is not None):
        changes["regrain"] = REGRAIN if regrain else None
    return look.with_settings(**changes)


def render(
    look: Look,
    rgb: np.ndarray,
    *,
    bit_depth: int = 8,
    mask: np.ndarray | None = None,
    table: ColorTable | None = None,
    base: np.ndarray | None = None,
    as_uint8: bool = False,
    warnings: list[str] | None = None,
) -> np.ndarray:
    r"""Applies a look to an image, as its settings say: with the regrain
    (:func:`otcolor.regrain.regrain`) or its pure colour function
    (:func:`otcolor.color.apply_look`).

    Out of device memory, the look is applied on the CPU instead, with a line in ``warnings``:
    the map is small, so the device is full of something else.

    Arguments:
        look: the look.
        rgb: the image, :math:`(H, W, 3)`, uint8 or float in :math:`[0, 1]`.
        bit_depth: 8 when the float pixels are multiples of 1/255, else 16.
        mask: where to apply, :math:`(H, W)` in :math:`[0, 1]`.
        table: the look's colour table, to reuse across images and frames.
        base: the image's base layer, when the caller has it (regrained looks).
        as_uint8: the output may come back as its 8-bit rounding (the bytes a saved 8-bit file
            holds), which saves memory: always with the regrain, and for an 8-bit image without
            a mask through the pure map. Ask for it only when the output is written as 8-bit
            working-space samples (:func:`otcolor.io.writes_8bit_as_is`).
        warnings: where to report the CPU fallback.

    Returns:
        The output, :math:`(H, W, 3)`, float32 in :math:`[0, 1]` (or uint8, see ``as_uint8``).

    Raises:
        TrainingError: the map gives non-finite colours, or the CPU ran out of memory too.
    """

    def run(current: Look, current_table: ColorTable | None) -> np.ndarray:
        if current.regrain is not None:
            return regrain(
                current,
                rgb,
                current.regrain,
                mask=mask,
                table=current_table,
                base=base,
                as_uint8=as_uint8,
            )
        eight = rgb.dtype == np.uint8 or bit_depth == 8
        return apply_look(
            current,
            rgb,
            bit_depth=bit_depth,
            mask=mask,
            table=current_table if eight else None,
            as_uint8=as_uint8,
        )

    try:
        return run(look, table)
    except OutOfDeviceMemory as err:
        reason = first_line(err.__cause__ or err)
        if str(look.device) == "cpu":
            raise TrainingError(
                f"out of memory applying the map ({reason})", "use a smaller image"
            ) from err
        release_device_memory()
        if warnings is not None:
            warnings.append(
                f"out of device memory applying the map ({reason}); applied on the CPU"
            )
        return run(look.to("cpu"), None)


def provenance(
    settings: FitSettings,
    inputs: dict[str, tuple[str | os.PathLike[str], tuple[int, int] | None, str | None]],
    **extra: Any,
) -> dict[str, Any]:
    r"""The record of how a look was made, for :func:`otcolor.io.mapfile.save_map`.

    Arguments:
        settings: the fit settings as fitted (:attr:`FittedLook.settings`).
        inputs: by role (``source``, ``target``, ``source_mask``, ...): the file, its pixel size
            (or ``None``) and its SHA-256 when it was taken at decoding (or ``None``: hashed now).
        extra: more fit facts (``fit_frames`` for a video).
    """

    fit = {**settings.describe(), **extra}
    fit.pop("device", None)  # where it ran does not change the map; the file is portable
    files = {
        role: fingerprint(path, size, digest) for role, (path, size, digest) in inputs.items()
    }
    return {"fit": fit, **files}


def approved_table(
    look: Look, source: np.ndarray, still: np.ndarray, size: int, mask: np.ndarray | None = None
) -> np.ndarray | None:
    r"""The LUT entries of a look as its still shows it: for a regrained look, the colour
    function closest to the approved still (:func:`otcolor.io.stilllut.fit_still_lut`); for a
    pure look, ``None`` (its colour function is the LUT, :func:`otcolor.io.lut.export_lut`).

    Arguments:
        look: the look.
        source: the source image, :math:`(H, W, 3)`, in the working space.
        still: the look's output on it (:func:`render`), same shape.
        size: the LUT's points per axis.
        mask: where the look was applied (``--apply-mask``), :math:`(H, W)` in :math:`[0, 1]`.
    """

    if look.regrain is None:
        return None
    return fit_still_lut(look, source, still, size, mask=mask)
