r"""Option types the commands share: choice enums generated from the library's registries, and
``Annotated`` aliases for the options several commands take (``--json``, ``--force``, ``--quiet``,
``--seed``, ``--device`` and the look, mask and output options)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..bench.common import BENCH_LOSSES, BENCH_MODELS
from ..bench.pixels import PIXEL_LOSSES
from ..device import DEVICES
from ..fitting.colour import INITS
from ..fitting.estimators import ESTIMATORS
from ..io.lut import LUT_FORMATS, LUT_METHODS
from ..losses import LOSSES
from ..models import MODELS
from ..spaces import SPACES
from ._app import finite


def choices(name: str, keys: Iterable[str], doc: str, *, all_: bool = False) -> type[Enum]:
    r"""A ``str`` enum whose members are ``keys`` (in their order), plus ``all`` with ``all_``:
    the CLI's choices follow the registry they come from instead of a copy of it."""

    members = [*keys, *(["all"] if all_ else [])]
    enum = Enum(name, [(k, k) for k in members], type=str, module=__name__)  # type: ignore[misc]
    enum.__doc__ = doc
    return enum


ModelName = choices("ModelName", MODELS, "Map architectures: otcolor.models.MODELS.")
LossName = choices("LossName", LOSSES, "Training losses: otcolor.losses.LOSSES.")
EstimatorName = choices(
    "EstimatorName", ESTIMATORS, "Estimators: otcolor.fitting.estimators.ESTIMATORS."
)
InitName = choices("InitName", INITS, "Starting points of the map: otcolor.fitting.colour.INITS.")
DeviceName = choices("DeviceName", DEVICES, "Where to train: otcolor.device.DEVICES.")
SpaceName = choices("SpaceName", SPACES, "Colour spaces: otcolor.spaces.SPACES.")
LutFormat = choices("LutFormat", LUT_FORMATS, "3-D LUT formats: otcolor.io.lut.LUT_FORMATS.")
LutMethod = choices("LutMethod", LUT_METHODS, "LUT entry methods: otcolor.io.lut.LUT_METHODS.")
BenchModel = choices(
    "BenchModel", BENCH_MODELS, "otcolor.bench.common.BENCH_MODELS, or all.", all_=True
)
BenchLoss = choices(
    "BenchLoss", BENCH_LOSSES, "otcolor.bench.common.BENCH_LOSSES, or all.", all_=True
)
PixelLoss = choices(
    "PixelLoss", PIXEL_LOSSES, "otcolor.bench.pixels.PIXEL_LOSSES, or all.", all_=True
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


# Looks, masks, map and LUT outputs: transfer, apply, lut, video, preview and bench share them.
LOOK_PANEL = "Look"
SpaceOption = Annotated[
    SpaceName,
    typer.Option(
        help="Fit and apply in the working space (sRGB, every input converted into it from its "
        "ICC profile), or in CIELAB (D65, exact both ways).",
        rich_help_panel=LOOK_PANEL,
    ),
]
StrengthOption = Annotated[
    float,
    typer.Option(
        callback=finite,
        min=0.0,
        max=1.0,
        help="t in x + t (T(x) - x): 0 leaves the image as it is, 1 applies the full map.",
        rich_help_panel=LOOK_PANEL,
    ),
]
LuminanceOption = Annotated[
    bool,
    typer.Option(
        "--preserve-luminance",
        help="Keep each pixel's lightness (CIELAB L*); take only the mapped colour's chroma.",
        rich_help_panel=LOOK_PANEL,
    ),
]
RegrainOption = Annotated[
    bool,
    typer.Option(
        "--regrain/--no-regrain",
        help=(
            "Fit the map on the image's base layer and keep its grain (spatial: no amplified "
            "noise or JPEG blocks). --no-regrain: the pure colour map, same colour in, same out."
        ),
        rich_help_panel=LOOK_PANEL,
    ),
]
MaskOption = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="Mask image of the same size (white = yes).",
        rich_help_panel="Masks",
    ),
]
SaveMapOption = Annotated[
    Path | None,
    typer.Option(
        "--save-map",
        dir_okay=False,
        help="Also save the fitted look as a map file (.otmap) for apply, lut and video.",
        rich_help_panel="Outputs",
    ),
]
OutputProfileOption = Annotated[
    str,
    typer.Option(
        "--output-profile",
        help="Colour profile of the output: source (the source image's own, the default), "
        "srgb, display-p3, adobe-rgb, prophoto, rec2020, or an RGB .icc file. Inputs are always "
        "converted from their own profiles into sRGB, the working space.",
        rich_help_panel="Outputs",
    ),
]
LutOption = Annotated[
    Path | None,
    typer.Option(
        "--lut",
        dir_okay=False,
        help="Also write the look as a 3-D LUT: .cube, or .png for a HaldCLUT.",
        rich_help_panel="Outputs",
    ),
]
LutSizeOption = Annotated[
    int | None,
    typer.Option(
        "--lut-size",
        min=2,
        help="LUT points per axis (default 33 for .cube, 64 for Hald).",
        show_default=False,
        rich_help_panel="Outputs",
    ),
]
