r"""LUT export: a saved look baked into a 3-D LUT for FFmpeg, OCIO, Resolve, Premiere, G'MIC.

What ``otcolor lut`` runs. A LUT holds a colour function. A pure look's colour function is its
map (:func:`otcolor.io.lut.export_lut` fits the table to it over the whole cube). A regrained
look is spatial: given the image the look was approved on (``source``), the table is the colour
function closest to that still (:func:`otcolor.pipeline.approved_table`). Without it, the
table the map file keeps (``transfer --save-map`` fits it at 33 points); for a file without
one, or at another ``strength``, the pure colour map, with a note saying so.
"""

from __future__ import annotations

__all__ = ["BakeResult", "bake_look"]

import os
from dataclasses import dataclass, field
from pathlib import Path

from .io import check_output_path, load_image, writes_8bit_as_is
from .io.lut import LUT_REGRAIN_NOTE, check_lut, export_lut
from .io.mapfile import load_map
from .io.stilllut import resample
from .pipeline import approved_table, override, render


@dataclass
class BakeResult:
    r"""What ``otcolor lut`` wrote: the ``--json`` output."""

    output: Path
    format: str
    size: int
    method: str  # "still" (the approved still's colour function), "fit" or "nodes"
    strength: float
    space: str
    warnings: list[str] = field(default_factory=list)


def bake_look(
    map_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    size: int | None = None,
    fmt: str | None = None,
    method: str = "fit",
    strength: float | None = None,
    source: str | os.PathLike[str] | None = None,
    pure: bool = False,
    force: bool = False,
) -> BakeResult:
    r"""Writes the look of a map file as a LUT.

    Arguments:
        map_path: the ``.otmap`` file.
        output: the LUT (``.cube``, ``.csp`` or a HaldCLUT ``.png``).
        size: points per axis (default 33, 64 for Hald).
        fmt: ``cube``, ``csp`` or ``hald`` (default: from the extension).
        method: how a pure colour function is tabulated: ``fit`` or ``nodes``.
        strength: overrides the map's strength.
        source: the image the look was approved on: a regrained look's LUT is then the colour
            function closest to its still (by default, the one the map file keeps).
        pure: the pure colour map even for a regrained look with a ``source``.
        force: replace an existing output (never an input).
    """

    inputs = [map_path, *([source] if source is not None else [])]
    check_output_path(output, inputs, force=force, image=False)
    fmt, size = check_lut(output, fmt, size)
    saved = load_map(map_path)
    look = override(saved.look, strength=strength)
    table, warnings = None, []
    if look.regrain is not None and not pure:
        if source is None and saved.still is not None and look.strength == saved.look.strength:
            table = resample(saved.still, size)
        elif source is None:
            warnings.append(LUT_REGRAIN_NOTE)
        else:
            image = load_image(source, keep_8bit=True)
            warnings += image.warnings
            fitted_on = saved.metadata.get("source")
            recorded = fitted_on.get("sha256") if isinstance(fitted_on, dict) else None
            if recorded is not None and image.sha256 is not None and recorded != image.sha256:
                warnings.append(
                    f"{source} is not the image this look was fitted on "
                    f"({fitted_on.get('name', '?')}): the LUT is closest to the look on it"
                )
            # The still as transfer saved it (its 8-bit bytes, for an 8-bit sRGB source).
            eight = writes_8bit_as_is(image)
            still = render(look, image.rgb, bit_depth=image.bit_depth, as_uint8=eight,
                           warnings=warnings)  # fmt: skip
            table = approved_table(look, image.rgb, still, size)
    elif source is not None:
        why = "--pure" if pure else "this look is pure (a colour function already)"
        warnings.append(f"--source is not used: {why}")
    export_lut(look, output, size, fmt, method, overwrite=force, table=table)
    return BakeResult(
        output=Path(output),
        format=fmt,
        size=size,
        method="still" if table is not None else method,
        strength=look.strength,
        space=look.space,
        warnings=warnings,
    )
