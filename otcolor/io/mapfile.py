r"""Saved maps (``.otmap``): a versioned file that loads without running code.

Format ``otcolor-map``, version 1 (version 2: the same with ``still_lut``, below), in the
safetensors layout (readable by the ``safetensors`` library, which otcolor does not need):

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
``format_version`` = ``1`` (``2`` with ``still_lut``), ``kind`` (``colormap``:
:math:`T(x) = c + s\,G((x - c)/s)`, or
``constant``: :math:`T(x) = c`), ``model`` (``cmgn``, ``mmgn``, ``icnn`` or ``affine``, the
Gaussian fallback), ``model_config*`` (the model's constructor arguments), ``scale`` (:math:`s`,
Python ``repr`` of a float: exact), the look's settings (``space``, ``strength``,
``preserve_luminance``, and ``regrain*``: the regrain's filter settings, or ``null`` for the
pure colour map), ``fit*`` (the fit settings as fitted: model, loss, estimator and its options,
steps, samples, smoothness, init, seed, ...), ``source*`` and ``target*`` (file name, size,
SHA-256 of the file), ``versions*`` (otcolor, torch, numpy).

Files written before the look held its regrain have no ``regrain`` key: their
``fit*.regrain`` flag says how they were made, and without one the regrain is on (what
``apply`` did with them then). Tensors: ``center``
(:math:`c`) and the model's parameters prefixed ``model.`` (``colormap``), or ``colour``
(``constant``); for a regrained look, optionally ``still_lut``, :math:`(N, N, N, 3)` with
:math:`2 \le N \le 65`: the colour function closest to the still the look was approved on
(:mod:`otcolor.io.stilllut`), which ``otcolor lut`` bakes by default.

Loading reads the header as JSON, checks every name, dtype, shape and offset against the
declared layout and the registry of models, builds the model from the registry and copies the
numbers in: nothing in the file is ever executed or unpickled.
"""

from __future__ import annotations

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "STILL_TENSOR",
    "MapFile",
    "fingerprint",
    "load_map",
    "save_map",
]

import dataclasses
import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..device import resolve_device
from ..errors import InputError, OtcolorError, UsageError
from ..look import LEGACY_REGRAIN, REGRAIN, Look, LookSettings, RegrainConfig
from ..models import MAP_MODELS, ColorMap, ConstantMap
from .files import open_regular, read_regular, write_atomically
from .mapschema import (
    MAX_FILE,
    MAX_HEADER,
    check_model_config,
    check_schema,
    is_number,
    loads_bounded,
)

#: The format name and version written in every map file's metadata.
FORMAT = "otcolor-map"
FORMAT_VERSION = "1"
#: The version of a file that keeps its approved still's LUT (``still_lut``): an otcolor that
#: reads only version 1 would meet a tensor it does not know, so it says "version 2" instead
#: of "corrupt". Files without the table stay version 1, readable by every release.
STILL_FORMAT_VERSION = "2"
#: The versions this otcolor reads.
READ_VERSIONS = (FORMAT_VERSION, STILL_FORMAT_VERSION)

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
#: The tensor holding the approved still's LUT.
STILL_TENSOR = "still_lut"
_HINT = "re-save it with 'otcolor transfer ... --save-map'"


@dataclass
class MapFile:
    r"""A loaded map file: the look and the file's metadata (JSON values decoded)."""

    look: Look
    metadata: dict[str, Any]
    #: The LUT of the approved still (:mod:`otcolor.io.stilllut`), :math:`(N, N, N, 3)`, for a
    #: regrained look saved by ``transfer``; ``None`` otherwise.
    still: np.ndarray | None = None


def fingerprint(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    sha256: str | None = None,
) -> dict:
    r"""Identifies an input file: its name, pixel size and SHA-256.

    Arguments:
        sha256: the digest taken when the file was decoded
            (:attr:`otcolor.io.LoadedImage.sha256`); without it the file is hashed now,
            which after a long fit may be another file than the one fitted.
    """

    if sha256 is None:
        digest = hashlib.sha256()
        with open_regular(path) as fp:  # never a FIFO or a device: it would block or not end
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
    still: np.ndarray | None = None,
) -> None:
    r"""Writes a look to a map file, atomically.

    Arguments:
        path: the file (``.otmap`` by convention).
        look: the look; its map must be a :class:`otcolor.models.ColorMap` around a
            registered model or an :class:`AffineMap`, or a :class:`ConstantMap`.
        info: JSON-serialisable extras stored under their keys (``fit``, ``source``, ...).
        overwrite: whether an existing ``path`` may be replaced (see
            :func:`otcolor.io.save_image`).
        still: the LUT of the approved still, :math:`(N, N, N, 3)` (regrained looks only).

    Raises:
        UsageError: the map is of a type the format cannot hold.
        OutputError: the file cannot be written.
    """

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
    if still is not None:
        _check_still(np.asarray(still), look, UsageError)
        tensors[STILL_TENSOR] = torch.as_tensor(np.asarray(still, np.float32))
        meta["format_version"] = STILL_FORMAT_VERSION
    settings = look.settings
    meta["space"] = settings.space
    meta["strength"] = repr(float(settings.strength))
    meta["preserve_luminance"] = json.dumps(bool(settings.preserve_luminance))
    grain = settings.regrain
    meta["regrain"] = json.dumps(None if grain is None else dataclasses.asdict(grain))
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
    try:  # never write a file that load_map would refuse
        check_schema(text, header)
    except InputError as err:
        raise UsageError(f"{path}: cannot save this map: {err.message}", err.hint) from err

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

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from otcolor.look import Look, LookSettings
        >>> from otcolor.models import ConstantMap
        >>> path = Path(tempfile.mkdtemp()) / "grey.otmap"
        >>> grey = ConstantMap(torch.tensor([0.5, 0.5, 0.5]))
        >>> save_map(path, Look(grey, LookSettings(strength=0.25)))
        >>> loaded = load_map(path).look
        >>> loaded.strength, loaded.map.colour.tolist()
        (0.25, [0.5, 0.5, 0.5])
    """

    device = _map_device(device)  # an unavailable device is refused before any reading
    path = Path(path)
    data = read_regular(path, MAX_FILE, what="map file", hint=_HINT)
    try:
        header, tensors = _parse(data)
        still = tensors.pop(STILL_TENSOR, None)
        versioned = header["__metadata__"]["format_version"] == STILL_FORMAT_VERSION
        if versioned != (still is not None):
            raise InputError("corrupt map file (a still LUT goes with format version 2 only)")
        look, metadata = _build(header, tensors, device)
        if still is not None:
            _check_still(still, look, InputError)
    except InputError as err:
        raise InputError(f"{path}: {err.message}", err.hint or _HINT) from err
    return MapFile(look, metadata, still)


def _check_still(table: np.ndarray, look: Look, error: type[Exception]) -> None:
    r"""Refuses a still LUT of the wrong shape or values, or on a pure look."""

    size = table.shape[0] if table.ndim == 4 else 0
    if not (table.shape == (size, size, size, 3) and 2 <= size <= 65):
        raise error(f"corrupt map file (still LUT of shape {list(table.shape)})")
    if look.regrain is None:
        raise error("corrupt map file (a still LUT on a pure look)")
    if not (np.isfinite(table).all() and table.min() >= 0 and table.max() <= 1):
        raise error("corrupt map file (still LUT values outside [0, 1])")


def _map_device(device: object) -> torch.device:
    r"""The device a map is loaded onto: a name or a ``torch.device`` that is available here.

    Raises:
        UsageError: unknown, or not available (CUDA on a CPU-only torch).
        TypeError: ``device`` is neither a string nor a ``torch.device``.
    """

    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    return resolve_device(str(device))


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
    if length > MAX_HEADER:
        raise InputError(f"corrupt map file (header of {length:,} bytes, at most {MAX_HEADER:,})")
    text = data[8 : 8 + length]
    header = loads_bounded(text, "header")
    check_schema(text, header)
    meta = header["__metadata__"]
    if meta.get("format") != FORMAT:
        raise InputError(f"not an otcolor map file (format {meta.get('format')!r})")
    if meta.get("format_version") not in READ_VERSIONS:
        raise InputError(
            f"map format version {meta.get('format_version')!r}, this otcolor "
            f"{__version__} reads versions {' and '.join(READ_VERSIONS)}",
            "use the otcolor version that wrote it, or re-save the map",
        )

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
    header: dict[str, Any], tensors: dict[str, np.ndarray], device: torch.device
) -> tuple[Look, dict[str, Any]]:
    r"""Rebuilds the look from a checked header, from the registry only."""

    meta = header["__metadata__"]
    metadata: dict[str, Any] = {}
    for key, value in meta.items():
        metadata[key] = loads_bounded(value, f"metadata {key[:40]!r}", text_ok=True)
    kind = meta.get("kind")
    try:
        if kind == "constant":
            colour = tensors.get("colour")
            if colour is None or colour.shape != (3,) or len(tensors) != 1:
                raise InputError("corrupt map file (a constant map holds one colour of 3 values)")
            color_map: nn.Module = ConstantMap(torch.from_numpy(colour.copy()))
        elif kind == "colormap":
            model = _new_model(meta.get("model"), metadata.get("model_config", {}), tensors)
            scale = float(meta.get("scale", "nan"))
            if not (math.isfinite(scale) and scale > 0):
                raise InputError(f"corrupt map file (scale {meta.get('scale')!r})")
            color_map = ColorMap(model, torch.zeros(3), scale)
            state = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
            color_map.load_state_dict(state, strict=True)
        else:
            raise InputError(f"corrupt map file (kind {kind!r})")
        settings = _look_settings(meta, metadata)
    except InputError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError, OverflowError) as err:
        text = " ".join(str(err).split())[:200]
        raise InputError(f"corrupt map file ({type(err).__name__}: {text})") from err
    color_map.to(device).eval()
    return Look(color_map, settings, device), metadata


def _look_settings(meta: dict[str, str], metadata: dict[str, Any]) -> LookSettings:
    r"""The look's settings from a checked header (see the module docstring for old files)."""

    space = meta.get("space", "rgb")
    strength = float(meta.get("strength", "1.0"))
    preserve = metadata.get("preserve_luminance", False)
    if not isinstance(preserve, bool):
        raise InputError(f"corrupt map file (preserve_luminance {preserve!r})")
    if "regrain" in meta:
        grain = metadata["regrain"]
        fields = {f.name for f in dataclasses.fields(RegrainConfig)}
        if isinstance(grain, dict):  # files older than a setting read as they were made
            grain = {**LEGACY_REGRAIN, **grain}
        if grain is not None and not (
            isinstance(grain, dict)
            and set(grain) == fields
            # numbers only: JSON true would pass for 1 in RegrainConfig's own checks
            and all(is_number(v) for v in grain.values())
        ):
            raise InputError(f"corrupt map file (regrain {meta['regrain'][:100]!r})")
    else:
        made = metadata.get("fit")
        grain = {} if not isinstance(made, dict) or made.get("regrain", True) else None
    try:
        regrain = None if grain is None else RegrainConfig(**grain) if grain else REGRAIN
        return LookSettings(space, strength, preserve, regrain)
    except OtcolorError as err:
        raise InputError(f"corrupt map file ({err.message})") from err


def _describe_model(model: nn.Module) -> tuple[str, dict[str, Any]]:
    r"""The registry name and :meth:`config` of a model, for the file."""

    name = next((k for k, cls in MAP_MODELS.items() if type(model) is cls), None)
    if name is None:
        raise UsageError(f"cannot save a model of type {type(model).__name__}")
    return name, model.config()


def _new_model(name: object, config: object, tensors: dict[str, np.ndarray]) -> nn.Module:
    r"""Builds an untrained model from a file's description, once
    :func:`~otcolor.io.mapschema.check_model_config` has checked it."""

    arguments = check_model_config(name, config, tensors)
    return MAP_MODELS[str(name)].from_config(3, **arguments)
