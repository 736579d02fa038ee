r"""Batch apply: a saved map (``.otmap``) onto images and folders of images.

What ``otcolor apply`` runs: each image is loaded, rendered by :func:`otcolor.pipeline.render`
with the look the map file holds (regrained or pure, its strength, space and lightness setting:
what ``transfer`` wrote for its source) and saved atomically. A batch is all or nothing: every
output and every input header is checked before the first image is decoded, and the outputs
are committed together at the end (:func:`apply_map`).
"""

from __future__ import annotations

__all__ = ["ApplyResult", "apply_map", "apply_one", "expand_inputs"]

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .color import ColorTable
from .errors import InputError, OutputError, UsageError
from .io import (
    ALLOWED_FORMATS,
    check_distinct_outputs,
    check_output_path,
    load_image,
    load_mask,
    outputs_together,
    save_image,
    writes_8bit_as_is,
)
from .io.mapfile import load_map
from .io.probe import probe_size
from .io.profiles import SOURCE, ColourProfile
from .io.profiles import output_profile as resolve_output_profile
from .io.settings import FileSettings
from .look import Look, LookSettings
from .pipeline import override, render


@dataclass
class ApplyResult:
    r"""What ``otcolor apply`` did: the ``--json`` output."""

    outputs: list[Path]
    map: Path
    strength: float
    space: str
    regrain: bool  # whether the look was applied with the regrain
    megapixels: float
    seconds: float  # the whole call: load, apply, save
    apply_seconds: float  # mapping pixels only (no decoding or encoding)
    warnings: list[str] = field(default_factory=list)


def _image_suffixes() -> set[str]:
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in ALLOWED_FORMATS}


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], bool]:
    r"""Lists the images to process: files as given, folders' images (sorted, not recursive).

    Returns:
        The files, and whether any input was a folder.
    """

    suffixes = _image_suffixes()
    files: list[Path] = []
    folder = False
    for item in map(Path, inputs):
        if item.is_dir():
            folder = True
            try:
                found = sorted(
                    p for p in item.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                )
            except OSError as err:
                raise InputError(
                    f"{item}: cannot list the folder: {err.strerror or err}",
                    "check its permissions",
                ) from err
            if not found:
                raise InputError(f"{item}: folder holds no image files")
            files += found
        else:
            files.append(item)
    return files, folder


def apply_map(
    map_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    strength: float | None = None,
    regrain: bool | None = None,
    apply_mask: str | os.PathLike[str] | None = None,
    force: bool = False,
    quality: int = 95,
    max_pixels: int | None = Image.MAX_IMAGE_PIXELS,
    output_profile: str = SOURCE,
    callback: Callable[[int, int, Path], None] | None = None,
) -> ApplyResult:
    r"""Applies a saved map to one image (``output`` a file) or many (``output`` a folder).

    With one input file and an output that is not an existing folder, ``output`` is the image;
    otherwise it is a folder (created if missing) that receives one image per input, same name.

    **All or nothing.** Before the first image is decoded, every output path is checked and
    every input's header is read (format, size, the pixel limit) and compared with the mask's;
    then every image is rendered into a temporary file, and the outputs are committed together
    at the end (:func:`otcolor.io.outputs_together`). If any input fails, nothing is written: no
    output, no temporary file, and an output folder created for the batch is removed again.
    8-bit images share one :class:`ColorTable`, so colours met in an earlier image are not
    evaluated again.

    Arguments:
        map_path: the ``.otmap`` file.
        inputs: image files and folders of images.
        output: the output image or folder.
        strength: overrides the strength saved in the map.
        regrain: overrides the map's choice: apply with the regrain (:mod:`otcolor.regrain`;
            spatial) or the pure colour map; ``None``: as the map was made.
        apply_mask: a mask image, the size of every input, restricting where the map applies.
        force: replace existing outputs (never an input).
        quality: the JPEG/WebP quality, 1 to 100.
        max_pixels: the largest accepted input, in pixels.
        output_profile: each output's colour profile: ``"source"`` (its input's), a named one
            or an ``.icc`` file (:func:`otcolor.io.profiles.output_profile`).
        callback: called as ``callback(done, total, path)`` after each image.

    Raises:
        OtcolorError: a subclass with the exit code of the failure (see ``otcolor.errors``).
    """

    start = time.perf_counter()
    files_settings = FileSettings(quality=quality, max_pixels=max_pixels)  # checked first
    if strength is not None:
        LookSettings(strength=strength)  # the same rule as everywhere, before any reading
    if regrain is not None and not isinstance(regrain, bool):
        raise UsageError(f"regrain must be True, False or None, got {regrain!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    profile = resolve_output_profile(output_profile)
    look = override(load_map(map_path).look, strength=strength, regrain=regrain)
    files, folder = expand_inputs(inputs)
    output = Path(output)
    single = len(files) == 1 and not folder and not output.is_dir()
    created = False
    if single:
        targets = [output]
    else:
        targets, created = _plan_folder(output, files)
    try:
        everything = [*files, Path(map_path), *([apply_mask] if apply_mask else [])]
        check_distinct_outputs(targets, everything)
        for target in targets:
            check_output_path(target, everything, force=force)
        _check_inputs(files, apply_mask, files_settings.max_pixels)
        with outputs_together():  # every output of the batch, or none
            done = _render_all(
                look, files, targets, apply_mask, files_settings, profile, force, callback
            )
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                output.rmdir()  # only if still empty: made for this batch, which wrote nothing
        raise
    warnings, megapixels, apply_seconds = done
    return ApplyResult(
        outputs=targets,
        map=Path(map_path),
        strength=look.strength,
        space=look.space,
        regrain=look.regrain is not None,
        megapixels=megapixels,
        seconds=time.perf_counter() - start,
        apply_seconds=apply_seconds,
        warnings=list(dict.fromkeys(warnings)),
    )


def _plan_folder(output: Path, files: list[Path]) -> tuple[list[Path], bool]:
    r"""The outputs of a batch in the folder ``output``, made if missing (second value: whether
    it was made here)."""

    if output.suffix.lower() in _image_suffixes() and not output.is_dir():
        raise UsageError(
            f"{output}: several inputs need an output folder, not an image file",
            "give a folder with -o",
        )
    names = [f.name for f in files]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UsageError(f"two inputs are named {duplicate}", "apply them separately")
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"{output}: several inputs need an output folder, and this is an existing file",
            "give a folder with -o",
        )
    created = False
    if not output.is_dir():
        if not output.parent.is_dir():
            raise UsageError(
                f"{output}: parent folder {output.parent} does not exist", "create it first"
            )
        try:
            output.mkdir()
            created = True
        except FileExistsError:
            pass  # created meanwhile by someone else: the per-file checks decide
        except OSError as err:
            raise OutputError(
                f"{output}: cannot create the folder: {err.strerror or err}",
                "check the permissions of its parent",
            ) from err
    return [output / f.name for f in files], created


def _check_inputs(
    files: list[Path], apply_mask: str | os.PathLike[str] | None, max_pixels: int | None
) -> None:
    r"""Reads every input's header (and the mask's) before any pixel is decoded: a corrupt,
    refused or too-large input, or a mask of another size, fails the batch before its work.

    A header this probe cannot read is handed to :func:`load_image`, whose refusal is the
    message every command gives (from the header too, when that is where the fault is).
    """

    def sizes(path: str | os.PathLike[str]) -> frozenset[tuple[int, int]]:
        found = probe_size(path, max_pixels)
        if found is None:
            return frozenset({load_image(path, max_pixels=max_pixels).size})
        return found

    mask_sizes = None if apply_mask is None else sizes(apply_mask)
    for path in files:
        image_sizes = sizes(path)
        if mask_sizes is not None and not image_sizes & mask_sizes:
            (w, h), (mw, mh) = min(image_sizes), min(mask_sizes)
            raise UsageError(
                f"{apply_mask}: mask is {mw}x{mh}, the image {path} is {w}x{h}",
                "masks must have the image's size",
            )


def _render_all(
    look: Look,
    files: list[Path],
    targets: list[Path],
    apply_mask: str | os.PathLike[str] | None,
    settings: FileSettings,
    profile: ColourProfile | None,
    force: bool,
    callback: Callable[[int, int, Path], None] | None,
) -> tuple[list[str], float, float]:
    r"""Decodes, renders and saves every image (staged by the caller's
    :func:`outputs_together`); returns the warnings, megapixels and seconds spent mapping."""

    table: ColorTable | None = None
    warnings: list[str] = []
    megapixels = 0.0
    apply_seconds = 0.0
    mask_cache: dict[tuple[int, int], np.ndarray] = {}
    for done, (source, target) in enumerate(zip(files, targets, strict=True), 1):
        image = load_image(source, max_pixels=settings.max_pixels, keep_8bit=True)
        warnings += image.warnings
        mask = None
        if apply_mask is not None:
            if image.size not in mask_cache:
                mask_cache[image.size] = load_mask(apply_mask, image.size)
            mask = mask_cache[image.size]
        if (image.bit_depth == 8 or look.regrain is not None) and table is None:
            table = ColorTable(look)
        began = time.perf_counter()
        mapped = render(
            look,
            image.rgb,
            bit_depth=image.bit_depth,
            mask=mask,
            table=table,
            as_uint8=writes_8bit_as_is(image, profile),
            warnings=warnings,
        )
        apply_seconds += time.perf_counter() - began
        megapixels += image.n_pixels / 1e6
        warnings += save_image(
            target,
            mapped,
            alpha=image.alpha,
            like=image,
            quality=settings.quality,
            overwrite=force,
            profile=profile,
        )
        if callback is not None:
            callback(done, len(files), target)
        del image, mapped
    return warnings, megapixels, apply_seconds


def apply_one(
    map_path: str | os.PathLike[str],
    image: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    strength: float | None = None,
    regrain: bool | None = None,
    force: bool = False,
    quality: int = 95,
) -> str:
    r"""Applies a saved map to one image file: the unit of work for a cluster.

    A module-level function of paths and plain values, so it pickles by reference for Dask,
    Ray, Spark or ``multiprocessing``; it keeps no state between calls and its output depends
    only on the map file, the image and the options, so it may run on any worker, in any
    order, retried or twice: the bytes are those of ``otcolor apply MAP IMAGE -o OUTPUT``
    (written atomically, so a killed task leaves no partial file). The map is read on every
    call: it is kilobytes, and a cache would tie results to a worker's history.

    Returns:
        The output path, as a string (cheap to send back to a scheduler).
    """

    result = apply_map(
        map_path,
        [image],
        output,
        strength=strength,
        regrain=regrain,
        force=force,
        quality=quality,
    )
    return str(result.outputs[0])
