r"""Saved maps (``.otmap``): a versioned file that loads without running code, and batch apply.

Format ``otcolor-map``, version 1, in the safetensors layout (readable by the ``safetensors``
library, which otcolor does not need):

=========  =====================================================================================
bytes      content
=========  =====================================================================================
0-7        :math:`n`, the header length, unsigned 64-bit little-endian
8-(8+n)    the header, UTF-8 JSON, padded with spaces to a multiple of 8 bytes:
           ``{"<tensor>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
           "__metadata__": {"<key>": "<string>", ...}}``
rest       the tensors' little-endian bytes, back to back, offsets relative to the data start
=========  =====================================================================================

Metadata (every value a string; ``*`` marks JSON-encoded ones): ``format`` = ``otcolor-map``,
``format_version`` = ``1``, ``kind`` (``colormap``: :math:`T(x) = c + s\,G((x - c)/s)`, or
``constant``: :math:`T(x) = c`), ``model`` (``cmgn``, ``mmgn``, ``icnn`` or ``affine``, the
Gaussian fallback), ``model_config*`` (the model's constructor arguments), ``scale`` (:math:`s`,
Python ``repr`` of a float: exact), ``space``, ``strength``, ``preserve_luminance``, ``fit*``
(model, loss, steps, samples, smoothness, init, seed), ``source*`` and ``target*`` (file name,
size, SHA-256 of the file), ``versions*`` (otcolor, torch, numpy). Tensors: ``center``
(:math:`c`) and the model's parameters prefixed ``model.`` (``colormap``), or ``colour``
(``constant``).

Loading reads the header as JSON, checks every name, dtype, shape and offset against the
declared layout and the registry of models, builds the model from the registry and copies the
numbers in: nothing in the file is ever executed or unpickled.
"""

from __future__ import annotations

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ApplyResult",
    "MapFile",
    "apply_map",
    "apply_one",
    "expand_inputs",
    "fingerprint",
    "load_map",
    "save_map",
]

import hashlib
import json
import math
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import __version__
from .color import SPACES, ColorTable, Look, apply_look
from .errors import InputError, OutputError, UsageError
from .image import (
    ALLOWED_FORMATS,
    check_distinct_outputs,
    check_output_path,
    load_image,
    load_mask,
    save_image,
    write_atomically,
)
from .models import MODELS, AffineMap
from .nn import ACTIVATIONS
from .regrain import REGRAIN
from .regrain import regrain as regrain_image

#: The format name and version written in every map file's metadata.
FORMAT = "otcolor-map"
FORMAT_VERSION = "1"

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_MAX_FILE = 256 << 20  # a colour map is kilobytes; refuse to read gigabytes
_MAX_WIDTH = 4096
_HINT = "re-save it with 'otcolor transfer ... --save-map'"


@dataclass
class MapFile:
    r"""A loaded map file: the look and the file's metadata (JSON values decoded)."""

    look: Look
    metadata: dict[str, Any]


def fingerprint(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    sha256: str | None = None,
) -> dict:
    r"""Identifies an input file: its name, pixel size and SHA-256.

    Arguments:
        sha256: the digest taken when the file was decoded
            (:attr:`otcolor.image.LoadedImage.sha256`); without it the file is hashed now,
            which after a long fit may be another file than the one fitted.
    """

    if sha256 is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fp:
            for block in iter(lambda: fp.read(1 << 20), b""):
                digest.update(block)
        sha256 = digest.hexdigest()
    info: dict[str, Any] = {"name": Path(path).name, "sha256": sha256}
    if size is not None:
        info["size"] = list(size)
    return info


def save_map(
    path: str | os.PathLike[str],
    look: Look,
    info: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> None:
    r"""Writes a look to a map file, atomically.

    Arguments:
        path: the file (``.otmap`` by convention).
        look: the look; its map must be a :class:`otcolor.transfer.ColorMap` around a
            registered model or an :class:`AffineMap`, or a :class:`ConstantMap`.
        info: JSON-serialisable extras stored under their keys (``fit``, ``source``, ...).
        overwrite: whether an existing ``path`` may be replaced (see
            :func:`otcolor.image.save_image`).

    Raises:
        UsageError: the map is of a type the format cannot hold.
        OutputError: the file cannot be written.
    """

    from .transfer import ColorMap, ConstantMap

    meta: dict[str, str] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    color_map = look.map
    if isinstance(color_map, ConstantMap):
        meta["kind"] = "constant"
        tensors = {"colour": color_map.colour}
    elif isinstance(color_map, ColorMap):
        meta["kind"] = "colormap"
        meta["model"], config = _describe_model(color_map.model)
        meta["model_config"] = json.dumps(config)
        meta["scale"] = repr(float(color_map.scale))
        tensors = dict(color_map.state_dict())
    else:
        raise UsageError(f"cannot save a map of type {type(color_map).__name__}")
    meta["space"] = look.space
    meta["strength"] = repr(float(look.strength))
    meta["preserve_luminance"] = json.dumps(bool(look.preserve_luminance))
    versions = {"otcolor": __version__, "torch": torch.__version__, "numpy": np.__version__}
    for key, value in {"versions": versions, **(info or {})}.items():
        meta[key] = json.dumps(value)

    arrays = {
        name: np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        for name, t in sorted(tensors.items())
    }
    header: dict[str, Any] = {}
    offset = 0
    for name, array in arrays.items():
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    # A flipped weight byte keeps the layout valid and the values finite: only a checksum of
    # the tensor bytes catches it.
    digest = hashlib.sha256()
    for array in arrays.values():
        digest.update(array.tobytes())
    meta["sha256"] = digest.hexdigest()
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes, as safetensors does

    def write(fp: IO[bytes]) -> None:
        fp.write(struct.pack("<Q", len(text)))
        fp.write(text)
        for array in arrays.values():
            fp.write(array.tobytes())

    write_atomically(Path(path), write, overwrite)


def load_map(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> MapFile:
    r"""Reads a map file written by :func:`save_map`.

    Raises:
        InputError: the file is missing, not a map file, of another format version,
            truncated or corrupt (one line saying which).
    """

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_FILE:
            raise InputError(f"{path}: {size:,} bytes is too large for a map file", _HINT)
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise InputError(f"{path}: is a directory, not a map file") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        header, tensors = _parse(data)
        look, metadata = _build(header, tensors, device)
    except InputError as err:
        raise InputError(f"{path}: {err.message}", err.hint or _HINT) from err
    return MapFile(look, metadata)


def _parse(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    r"""Splits a file into its header and tensors, checking the layout exactly."""

    if len(data) < 8:
        raise InputError("not an otcolor map file (shorter than its 8-byte header length)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise InputError(
            f"truncated or not an otcolor map file (header of {length:,} bytes, "
            f"file of {len(data):,})"
        )
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InputError(f"not an otcolor map file (header is not JSON: {err})") from err
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise InputError("not an otcolor map file (no metadata)")
    meta = header["__metadata__"]
    if meta.get("format") != FORMAT:
        raise InputError(f"not an otcolor map file (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"map format version {meta.get('format_version')!r}, this otcolor "
            f"{__version__} reads version {FORMAT_VERSION}",
            "use the otcolor version that wrote it, or re-save the map",
        )
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise InputError("corrupt map file (metadata values must be strings)")

    body = data[8 + length :]
    tensors: dict[str, np.ndarray] = {}
    end = 0
    entries = sorted(
        ((k, v) for k, v in header.items() if k != "__metadata__"),
        key=lambda kv: _offsets(kv)[0],
    )
    for name, entry in entries:
        begin, stop = _offsets((name, entry))
        dtype = _DTYPES.get(entry.get("dtype"))
        shape = entry.get("shape")
        if dtype is None:
            raise InputError(f"corrupt map file (tensor {name!r}: dtype {entry.get('dtype')!r})")
        if not (
            isinstance(shape, list)
            and len(shape) <= 4
            and all(isinstance(n, int) and 0 <= n <= 1 << 20 for n in shape)
        ):
            raise InputError(f"corrupt map file (tensor {name!r}: shape {shape!r})")
        if begin != end or stop - begin != math.prod(shape) * dtype.itemsize:
            raise InputError(f"corrupt map file (tensor {name!r}: offsets {begin}..{stop})")
        if stop > len(body):
            raise InputError(f"truncated map file (tensor {name!r} ends past the end of file)")
        array = np.frombuffer(body, dtype, math.prod(shape), begin).reshape(shape)
        if not np.isfinite(array).all():
            raise InputError(f"corrupt map file (tensor {name!r} has non-finite values)")
        tensors[name] = array.astype(np.float32)
        end = stop
    if end != len(body):
        raise InputError(f"corrupt map file ({len(body) - end} bytes after the last tensor)")
    # Files written before the checksum existed have none and are read as before.
    expected = meta.get("sha256")
    if expected is not None and hashlib.sha256(body).hexdigest() != expected:
        raise InputError("corrupt map file (the tensor bytes do not match their SHA-256)")
    return header, tensors


def _offsets(item: tuple[str, Any]) -> tuple[int, int]:
    name, entry = item
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(n, int) and n >= 0 for n in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise InputError(f"corrupt map file (tensor {name!r}: bad entry)")
    return offsets[0], offsets[1]


def _build(
    header: dict[str, Any], tensors: dict[str, np.ndarray], device: torch.device | str
) -> tuple[Look, dict[str, Any]]:
    r"""Rebuilds the look from a checked header, from the registry only."""

    from .transfer import ColorMap, ConstantMap

    meta = header["__metadata__"]
    metadata: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError:
            metadata[key] = value
    state = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
    kind = meta.get("kind")
    try:
        if kind == "constant":
            colour = state.get("colour")
            if colour is None or tuple(colour.shape) != (3,) or len(state) != 1:
                raise InputError("corrupt map file (a constant map holds one colour of 3 values)")
            color_map: nn.Module = ConstantMap(colour)
        elif kind == "colormap":
            model = _new_model(meta.get("model"), meta.get("model_config", "{}"))
            scale = float(meta.get("scale", "nan"))
            if not (math.isfinite(scale) and scale > 0):
                raise InputError(f"corrupt map file (scale {meta.get('scale')!r})")
            color_map = ColorMap(model, torch.zeros(3), scale)
            color_map.load_state_dict(state, strict=True)
        else:
            raise InputError(f"corrupt map file (kind {kind!r})")
        strength = float(meta.get("strength", "1.0"))
        space = meta.get("space", "rgb")
        if space not in SPACES or not 0 <= strength <= 1:
            raise InputError(f"corrupt map file (space {space!r}, strength {strength!r})")
        preserve = json.loads(meta.get("preserve_luminance", "false"))
    except InputError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError, OverflowError) as err:
        text = " ".join(str(err).split())[:200]
        raise InputError(f"corrupt map file ({type(err).__name__}: {text})") from err
    color_map.to(device).eval()
    look = Look(color_map, space, strength, bool(preserve), device)
    return look, metadata


def _describe_model(model: nn.Module) -> tuple[str, dict[str, Any]]:
    r"""The registry name and constructor arguments of a model, for the file."""

    name = next((k for k, cls in MODELS.items() if type(model) is cls), None)
    if isinstance(model, AffineMap):
        return "affine", {}
    if name == "cmgn":
        return name, {
            "hidden_features": model.hidden_features,
            "layers": model.layers,
            "activation": model.activation,
            "steepness": float(model.steepness),
        }
    if name == "mmgn":
        return name, {"hidden_features": model.hidden_features, "modules": model.n_modules}
    if name == "icnn":
        return name, {
            "hidden_features": list(model.hidden_features),
            "activation": model.activation,
        }
    raise UsageError(f"cannot save a model of type {type(model).__name__}")


def _new_model(name: object, config_text: str) -> nn.Module:
    r"""Builds an untrained model from a file's description, after checking every argument."""

    if name == "affine":
        return AffineMap(torch.zeros(3, 3), torch.zeros(3))
    if name not in MODELS:
        raise InputError(f"corrupt map file (unknown model {name!r})")
    config = json.loads(config_text)
    allowed = {
        "cmgn": {"hidden_features", "layers", "activation", "steepness"},
        "mmgn": {"hidden_features", "modules"},
        "icnn": {"hidden_features", "activation"},
    }[str(name)]
    if not isinstance(config, dict) or not set(config) <= allowed:
        raise InputError(f"corrupt map file (model_config {config!r})")
    for key, value in config.items():
        sizes = value if key == "hidden_features" and isinstance(value, list) else [value]
        if key in ("hidden_features", "layers", "modules") and not (
            0 < len(sizes) <= 16
            and all(isinstance(n, int) and 1 <= n <= _MAX_WIDTH for n in sizes)
        ):
            raise InputError(f"corrupt map file ({key} = {value!r})")
        if key == "activation" and value not in ACTIVATIONS:
            raise InputError(f"corrupt map file (activation {value!r})")
        if key == "steepness" and not (isinstance(value, (int, float)) and 0 < value < 1e6):
            raise InputError(f"corrupt map file (steepness {value!r})")
    if name == "icnn" and "hidden_features" in config:
        config["hidden_features"] = tuple(config["hidden_features"])
    return MODELS[str(name)](3, **config)


# Batch apply


@dataclass
class ApplyResult:
    r"""What ``otcolor apply`` did: the ``--json`` output."""

    outputs: list[Path]
    map: Path
    strength: float
    space: str
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
    regrain: bool = True,
    apply_mask: str | os.PathLike[str] | None = None,
    force: bool = False,
    quality: int = 95,
    max_pixels: int | None = Image.MAX_IMAGE_PIXELS,
    callback: Callable[[int, int, Path], None] | None = None,
) -> ApplyResult:
    r"""Applies a saved map to one image (``output`` a file) or many (``output`` a folder).

    With one input file and an output that is not an existing folder, ``output`` is the image;
    otherwise it is a folder (created if missing) that receives one image per input, same name.
    Every output path is checked before the first image is processed. 8-bit images share one
    :class:`ColorTable`, so colours met in an earlier image are not evaluated again.

    Arguments:
        map_path: the ``.otmap`` file.
        inputs: image files and folders of images.
        output: the output image or folder.
        strength: overrides the strength saved in the map.
        regrain: apply with the regrain (:mod:`otcolor.regrain`; spatial), or the pure map.
        apply_mask: a mask image, the size of every input, restricting where the map applies.
        force: replace existing outputs (never an input).
        callback: called as ``callback(done, total, path)`` after each image.
    """

    start = time.perf_counter()
    loaded = load_map(map_path)
    look = loaded.look.with_strength(strength)
    files, folder = expand_inputs(inputs)
    output = Path(output)
    single = len(files) == 1 and not folder and not output.is_dir()
    if single:
        targets = [output]
    else:
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
        if not output.is_dir():
            if not output.parent.is_dir():
                raise UsageError(
                    f"{output}: parent folder {output.parent} does not exist", "create it first"
                )
            try:
                output.mkdir()
            except FileExistsError:
                pass  # created meanwhile by someone else: the per-file checks below decide
            except OSError as err:
                raise OutputError(
                    f"{output}: cannot create the folder: {err.strerror or err}",
                    "check the permissions of its parent",
                ) from err
        targets = [output / f.name for f in files]
    everything = [*files, Path(map_path), *([apply_mask] if apply_mask else [])]
    check_distinct_outputs(targets, everything)
    for target in targets:
        check_output_path(target, everything, force=force)

    table: ColorTable | None = None
    warnings: list[str] = []
    megapixels = 0.0
    apply_seconds = 0.0
    mask_cache: dict[tuple[int, int], np.ndarray] = {}
    for done, (source, target) in enumerate(zip(files, targets, strict=True), 1):
        image = load_image(source, max_pixels=max_pixels)
        warnings += image.warnings
        mask = None
        if apply_mask is not None:
            if image.size not in mask_cache:
                mask_cache[image.size] = load_mask(apply_mask, image.size)
            mask = mask_cache[image.size]
        if (image.bit_depth == 8 or regrain) and table is None:
            table = ColorTable(look)
        began = time.perf_counter()
        if regrain:
            mapped = regrain_image(look, image.rgb, REGRAIN, mask=mask, table=table)
        else:
            mapped = apply_look(
                look, image.rgb, bit_depth=image.bit_depth, mask=mask, table=table, as_uint8=True
            )
        apply_seconds += time.perf_counter() - began
        megapixels += image.n_pixels / 1e6
        warnings += save_image(
            target, mapped, alpha=image.alpha, like=image, quality=quality, overwrite=force
        )
        if callback is not None:
            callback(done, len(files), target)
        del image, mapped
    return ApplyResult(
        outputs=targets,
        map=Path(map_path),
        strength=look.strength,
        space=look.space,
        megapixels=megapixels,
        seconds=time.perf_counter() - start,
        apply_seconds=apply_seconds,
        warnings=list(dict.fromkeys(warnings)),
    )


def apply_one(
    map_path: str | os.PathLike[str],
    image: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    strength: float | None = None,
    regrain: bool = True,
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
        map_path, [image], output, strength=strength, regrain=regrain, force=force,
        quality=quality,
    )
    return str(result.outputs[0])
