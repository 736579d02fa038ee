r"""``otcolor apply``, ``otcolor lut`` and ``otcolor video``: reuse one fitted look everywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..names import DEFAULT_MAX_PIXELS, MAX_FIT_FRAMES, MAX_STEPS
from ..names import FIT as _FIT
from ._app import (
    EPILOG,
    MAX_SEED,
    MIN_SAMPLES,
    Command,
    app,
    emit_json,
    finite,
    make_progress,
    print_warnings,
    stderr_console,
    versions,
)
from .options import (
    LOOK_PANEL,
    DeviceName,
    ForceOption,
    JsonOption,
    LossName,
    LuminanceOption,
    LutFormat,
    LutMethod,
    ModelName,
    OutputProfileOption,
    QuietOption,
    SaveMapOption,
    SpaceName,
    SpaceOption,
)

#: --regrain/--no-regrain where a map file holds the look: unset, the map's choice stands.
MapRegrainOption = Annotated[
    bool | None,
    typer.Option(
        "--regrain/--no-regrain",
        help="Override the map's choice: regrain (spatial: grain kept) or the pure colour map. "
        "Default: as the map was made by transfer.",
        show_default=False,
        rich_help_panel=LOOK_PANEL,
    ),
]


@app.command(cls=Command, epilog=EPILOG)
def apply(
    map_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Saved map (.otmap).")
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(exists=True, help="Images, or folders of images (not recursive)."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Output image (one input) or folder (several, or a folder)."
        ),
    ],
    strength: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            min=0.0,
            max=1.0,
            help="Override the map's strength: t in x + t (T(x) - x).",
            show_default=False,
            rich_help_panel=LOOK_PANEL,
        ),
    ] = None,
    regrain: MapRegrainOption = None,
    apply_mask: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Apply only where this mask (the images' size) is white; grey blends.",
            rich_help_panel="Masks",
        ),
    ] = None,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = 95,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Largest accepted input, in pixels.")
    ] = DEFAULT_MAX_PIXELS,
    output_profile: OutputProfileOption = "source",
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Apply a saved look to images: exactly what transfer wrote for its source, on the CPU."""

    from .. import apply as apply_lib

    progress = make_progress("applying", console=stderr_console(), disable=json_output or quiet)
    with progress:
        task = progress.add_task("apply", total=None, info="")

        def callback(done: int, total: int, path: Path) -> None:
            progress.update(task, completed=done, total=total, info=escape(path.name))

        result = apply_lib.apply_map(
            map_file,
            inputs,
            output,
            strength=strength,
            regrain=regrain,
            apply_mask=apply_mask,
            force=force,
            quality=quality,
            max_pixels=max_pixels,
            output_profile=output_profile,
            callback=callback,
        )
    if json_output:
        emit_json(result)
        return
    if not quiet:
        rate = result.megapixels / max(result.apply_seconds, 1e-9)
        typer.echo(
            f"{len(result.outputs)} image(s), {result.megapixels:.1f} MP in "
            f"{result.seconds:.2f} s (mapping {rate:.0f} MP/s) -> {result.outputs[0]}"
            + (" ..." if len(result.outputs) > 1 else "")
        )
    print_warnings(result.warnings)


@app.command(cls=Command, epilog=EPILOG)
def lut(
    map_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Saved map (.otmap).")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The LUT: .cube, .csp (Cinespace: a 1-D shaper per channel, then the 3-D "
            "table; closest in FFmpeg and OCIO), or .png for a HaldCLUT.",
        ),
    ],
    size: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Points per axis: 17, 33 (default) or 65 for .cube and .csp; 64 (default) for Hald.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        LutFormat | None,
        typer.Option(
            "--format",
            help="cube, csp or hald (default: from the extension).",
            show_default=False,
        ),
    ] = None,
    strength: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            min=0.0,
            max=1.0,
            help="Override the map's strength.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        LutMethod,
        typer.Option(
            help="fit: entries whose interpolation best matches the map over the whole cube "
            "(least squares); nodes: the map sampled at the grid points.",
        ),
    ] = LutMethod.fit,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            exists=True,
            dir_okay=False,
            help="The image the look was approved on: a regrained look's LUT is then fitted again "
            "to its still (without it: the still's LUT the map file keeps, or the pure colour "
            "map for a file without one).",
        ),
    ] = None,
    pure: Annotated[
        bool,
        typer.Option("--pure", help="The pure colour map, even for a regrained look."),
    ] = False,
    json_output: JsonOption = False,
    force: ForceOption = False,
) -> None:
    r"""Bake a saved look into a 3-D LUT for ffmpeg (lut3d), Resolve, Premiere, OCIO, G'MIC..."""

    from .. import bake as bake_lib

    result = bake_lib.bake_look(
        map_file,
        output,
        size=size,
        fmt=fmt.value if fmt else None,
        method=method.value,
        strength=strength,
        source=source,
        pure=pure,
        force=force,
    )
    if json_output:
        emit_json(
            {**dataclasses.asdict(result), "output": str(result.output), "versions": versions()}
        )
        return
    typer.echo(f"{result.format} LUT ({result.method}), {result.size} points per axis -> {output}")
    print_warnings(result.warnings)


@app.command(cls=Command, epilog=EPILOG)
def video(
    source: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Input clip (any ffmpeg input).")
    ],
    reference: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="Image whose colours are wanted (or use --map)."
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output clip; its extension picks the container."),
    ] = Path("out.mp4"),
    map_file: Annotated[
        Path | None,
        typer.Option("--map", exists=True, dir_okay=False, help="Apply this saved map instead."),
    ] = None,
    fit_frames: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_FIT_FRAMES,
            help="Frames, spread over the clip, sampled for the fit.",
        ),
    ] = 16,
    model: Annotated[ModelName, typer.Option(rich_help_panel="Model")] = ModelName(_FIT.model),
    loss: Annotated[LossName, typer.Option(rich_help_panel="Model")] = LossName(_FIT.loss),
    steps: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_STEPS, show_default=False, rich_help_panel="Model"),
    ] = None,
    samples: Annotated[int, typer.Option(min=MIN_SAMPLES, rich_help_panel="Model")] = _FIT.samples,
    smoothness: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            min=0.0,
            help="Default 0.3 (regrained), 0.6 with --no-regrain.",
            show_default=False,
            rich_help_panel="Model",
        ),
    ] = None,
    regrain: Annotated[
        bool | None,
        typer.Option(
            "--regrain/--no-regrain",
            help="Regrain every frame, as a still: its grain kept, far less temporal grain than "
            "the pure map (docs/regrain.md, Video). --no-regrain: the pure colour map, one colour "
            "table for all frames (faster; amplifies sensor noise). Default: regrain; with "
            "--map, as the map was made.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[DeviceName, typer.Option(rich_help_panel="Model")] = DeviceName(_FIT.device),
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, rich_help_panel="Model")] = _FIT.seed,
    space: SpaceOption = SpaceName.rgb,
    strength: Annotated[
        float | None,
        typer.Option(
            callback=finite,
            min=0.0,
            max=1.0,
            help="t in x + t (T(x) - x) (default 1, or the map's).",
            show_default=False,
            rich_help_panel=LOOK_PANEL,
        ),
    ] = None,
    preserve_luminance: LuminanceOption = False,
    save_map: SaveMapOption = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Largest accepted frame and reference image, in pixels (width x height, read "
            "before any frame is decoded). Default: Pillow's limit, 89,478,485.",
            rich_help_panel="Input",
        ),
    ] = DEFAULT_MAX_PIXELS,
    json_output: JsonOption = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    r"""Recolour a clip with ONE map (fitted on frames across it, or --map): no flicker.

    Needs ffmpeg and ffprobe on PATH (exit 2 when missing). Audio is copied. Output
    containers: .mp4, .m4v, .mov, .mkv, .avi.
    """

    from .. import video as video_lib
    from ..errors import UsageError
    from ..fitting import FitSettings
    from ..io import mapfile
    from ..look import REGRAIN
    from ..pipeline import override

    if (reference is None) == (map_file is None):
        raise UsageError("give a REFERENCE image or --map, not both or neither")
    # The outputs first (the map file is an input), before the map is even read.
    video_lib.check_video_outputs(
        output, [source, reference, map_file], save_map=save_map, force=force
    )
    fit = FitSettings(
        model=model.value,
        loss=loss.value,
        steps=steps,
        samples=samples,
        smoothness=smoothness,
        device=device.value,
        seed=seed,
    )
    look_settings = video_lib.VIDEO_LOOK.replace(
        space=space.value,
        strength=1.0 if strength is None else strength,
        preserve_luminance=preserve_luminance,
        regrain=None if regrain is False else REGRAIN,
    )
    look = None
    if map_file is not None:
        look = override(mapfile.load_map(map_file).look, strength=strength, regrain=regrain)
    progress = make_progress("video", console=stderr_console(), disable=json_output or quiet)
    with progress:
        fit_task = progress.add_task("fit", total=fit.total_steps, info="fitting")
        frame_task = progress.add_task("frames", total=None, info="frames", visible=False)

        def on_fit(step: int, logs: dict[str, float]) -> None:
            progress.update(fit_task, completed=step, info=f"loss {logs['loss']:.4g}")

        def on_frame(done: int, total: int | None) -> None:
            progress.update(fit_task, visible=False)
            progress.update(frame_task, visible=True, completed=done, total=total)

        result = video_lib.transfer_video(
            source,
            reference,
            output,
            look=look,
            map_file=map_file,
            max_pixels=max_pixels,
            fit=fit,
            look_settings=look_settings,
            fit_frames=fit_frames,
            force=force,
            save_map=save_map,
            fit_callback=on_fit,
            frame_callback=on_frame,
        )
    if json_output:
        emit_json(result)
        return
    if not quiet:
        typer.echo(
            f"{result.frames} frames {result.width}x{result.height} in {result.seconds:.1f} s "
            f"({result.colours:,} distinct colours mapped) -> {result.output}"
        )
    print_warnings(result.warnings)
