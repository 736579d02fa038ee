r"""The bounded schema of a map file's header: everything a header may hold is checked here,
sizes, nesting, counts, names and the model's arguments and parameter count, before
:mod:`otcolor.io.mapfile` builds anything from it.

A map otcolor writes is a few kilobytes with a header of about two, nested three deep; the
limits leave room for library callers' own ``info`` and refuse what could only hurt: a
``RecursionError`` from deeply nested JSON, a model that takes hours per image.
"""

from __future__ import annotations

__all__ = [
    "MAX_FILE",
    "MAX_HEADER",
    "MAX_PARAMETERS",
    "MAX_UNITS",
    "check_model_config",
    "hidden_units",
    "check_schema",
    "is_number",
    "loads_bounded",
    "parameter_count",
]

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from ..models import MAP_MODELS
from ..nn import ACTIVATIONS

MAX_FILE = 256 << 20  # bytes in a file
MAX_HEADER = 1 << 20  # bytes of header JSON
_MAX_DEPTH = 8  # nesting of the header and of every JSON metadata value
_MAX_ENTRIES = 64  # tensors in a file; keys of the metadata
_MAX_NAME = 128  # characters of a tensor name or metadata key
_MAX_VALUE = 64 << 10  # characters of one metadata value
_MAX_WIDTH = 4096  # a hidden layer's width
_MAX_LAYERS = 16  # layers (C-MGN, ICNN) or modules (M-MGN)
#: The most parameters a map's model may have (its size: 256 KiB of float32).
MAX_PARAMETERS = 1 << 16
#: The most hidden units a map's model may evaluate per colour (its time): layers x width for
#: the C-MGN, modules x width for the M-MGN, the sum of the widths for the ICNN. Every model
#: otcolor fits has 128; at 1,024 a 4096-colour block takes about 0.15 s on one CPU core (0.01 s
#: for otcolor's own maps), and a map declaring 4,096 C-MGN layers is refused before it is
#: built instead of taking hours per image.
MAX_UNITS = 1 << 10


#: A JSON string, escapes included: removed before brackets are counted.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _nesting(text: bytes) -> int:
    r"""How deep the brackets of a JSON text nest (strings ignored), without parsing it: Python's
    parser recurses once per level and would raise ``RecursionError`` on deep input."""

    bare = np.frombuffer(_JSON_STRING.sub(b"", text), np.uint8)
    steps = np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def loads_bounded(text: bytes | str, what: str, *, text_ok: bool = False) -> Any:
    r"""``json.loads`` of a text whose nesting was checked first against :data:`_MAX_DEPTH`.

    Arguments:
        text: the JSON text.
        what: what it is, for messages.
        text_ok: a text that is not JSON is returned as it is (metadata values such as
            ``space`` are plain strings) instead of refused.

    Raises:
        InputError: nested too deep, or not JSON (without ``text_ok``).
    """

    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = _nesting(raw)
    if depth > _MAX_DEPTH:
        raise InputError(f"corrupt map file ({what} nests {depth} deep, at most {_MAX_DEPTH})")
    try:
        return json.loads(text)
    # ValueError: also Python's limit on the digits of an int (4,300), which JSON has not.
    except (ValueError, RecursionError) as err:
        if text_ok and isinstance(text, str):
            return text
        raise InputError(f"not an otcolor map file ({what} is not JSON: {err})") from err


def check_schema(text: bytes, header: object) -> None:
    r"""Checks a header against the bounded schema: sizes, nesting, counts and names, before
    anything is built from it.

    Raises:
        InputError: the header is outside the schema (one line saying where).
    """

    if len(text) > MAX_HEADER:
        raise InputError(
            f"corrupt map file (header of {len(text):,} bytes, at most {MAX_HEADER:,})"
        )
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise InputError("not an otcolor map file (no metadata)")
    meta = header["__metadata__"]
    if len(header) > _MAX_ENTRIES + 1 or len(meta) > _MAX_ENTRIES:
        raise InputError(
            f"corrupt map file ({len(header) - 1} tensors and {len(meta)} metadata keys, "
            f"at most {_MAX_ENTRIES} each)"
        )
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if len(name) > _MAX_NAME:
            raise InputError(f"corrupt map file (tensor name of {len(name)} characters)")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise InputError(f"corrupt map file (tensor {name[:40]!r}: bad entry)")
    for key, value in meta.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise InputError("corrupt map file (metadata values must be strings)")
        if len(key) > _MAX_NAME or len(value) > _MAX_VALUE:
            raise InputError(
                f"corrupt map file (metadata {key[:40]!r}: {len(value):,} characters, "
                f"at most {_MAX_VALUE:,})"
            )
        depth = _nesting(value.encode("utf-8", "surrogatepass"))
        if depth > _MAX_DEPTH:
            raise InputError(
                f"corrupt map file (metadata {key[:40]!r} nests {depth} deep, "
                f"at most {_MAX_DEPTH})"
            )


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_width(key: str, value: object) -> None:
    if not (_is_int(value) and 1 <= value <= _MAX_WIDTH):  # type: ignore[operator]
        raise InputError(f"corrupt map file ({key} = {value!r}, at most {_MAX_WIDTH})")


def _check_count(key: str, value: object) -> None:
    if not (_is_int(value) and 1 <= value <= _MAX_LAYERS):  # type: ignore[operator]
        raise InputError(f"corrupt map file ({key} = {value!r}, at most {_MAX_LAYERS})")


def _check_widths(key: str, value: object) -> None:
    r"""One width, or a list of at most :data:`_MAX_LAYERS` (the ICNN's layers)."""

    sizes = value if isinstance(value, list) else [value]
    if not 0 < len(sizes) <= _MAX_LAYERS:
        raise InputError(f"corrupt map file ({key}: {len(sizes)} layers, at most {_MAX_LAYERS})")
    for size in sizes:
        _check_width(key, size)


def _check_activation(key: str, value: object) -> None:
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise InputError(f"corrupt map file (activation {str(value)[:40]!r})")


def _check_steepness(key: str, value: object) -> None:
    if not (is_number(value) and 0 < value < 1e6):  # type: ignore[operator]
        raise InputError(f"corrupt map file (steepness {value!r})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: How each constructor argument a file may hold is checked before the model is built, so that
#: a hostile file cannot ask for gigabytes of weights or an unknown activation.
_ARGUMENT_CHECKS: dict[str, Callable[[str, object], None]] = {
    "hidden_features": _check_widths,
    "layers": _check_count,
    "modules": _check_count,
    "activation": _check_activation,
    "steepness": _check_steepness,
}


def parameter_count(name: str, config: dict[str, Any], features: int = 3) -> int:
    r"""The numbers a map file stores for ``MAP_MODELS[name].from_config(features, **config)``
    (its ``state_dict``: parameters, and an affine map's buffers), computed from the config
    alone, so that a map file's model is sized before it is built.

    Arguments:
        name: a key of :data:`otcolor.models.MAP_MODELS`.
        config: the model's complete :meth:`config` (defaults filled in).

    Example:
        >>> from otcolor.models import MODELS
        >>> config = MODELS["cmgn"].from_config(3).config()
        >>> parameter_count("cmgn", config) == sum(
        ...     t.numel() for t in MODELS["cmgn"].from_config(3).state_dict().values()
        ... )
        True
    """

    d = features
    common = d * d + d  # the PSD linear part and the bias (an affine map's matrix and shift)
    if name == "cmgn":
        h, layers = config["hidden_features"], config["layers"]
        return h * d + layers * h + common
    if name == "mmgn":
        h, modules = config["hidden_features"], config["modules"]
        return modules * h * (d + 1) + common
    if name == "icnn":
        widths = list(config["hidden_features"])
        inputs = sum(w * (d + 1) for w in widths)
        hidden = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
        return inputs + hidden + widths[-1] + common
    if name == "affine":
        return common
    raise InputError(f"corrupt map file (unknown model {name!r})")


def hidden_units(name: str, config: dict[str, Any]) -> int:
    r"""The hidden units ``MAP_MODELS[name].from_config(3, **config)`` evaluates per colour:
    what its evaluation time grows with (:data:`MAX_UNITS`).

    Arguments:
        name: a key of :data:`otcolor.models.MAP_MODELS`.
        config: the model's complete :meth:`config` (defaults filled in).
    """

    if name == "cmgn":
        return int(config["layers"]) * int(config["hidden_features"])
    if name == "mmgn":
        return int(config["modules"]) * int(config["hidden_features"])
    if name == "icnn":
        return sum(int(w) for w in config["hidden_features"])
    return 0


def check_model_config(
    name: object, config: object, tensors: dict[str, np.ndarray]
) -> dict[str, Any]:
    r"""Checks a file's model description before anything is built: the model's name, every
    argument against those its own ``config()`` names, the size and cost computed from them
    (:func:`parameter_count`, :func:`hidden_units`) against :data:`MAX_PARAMETERS` and
    :data:`MAX_UNITS`, and the parameter count against the tensors the file holds.

    Returns:
        The constructor arguments, checked.

    Raises:
        InputError: any of these is wrong (one line saying which).
    """

    if not isinstance(name, str) or name not in MAP_MODELS:
        raise InputError(f"corrupt map file (unknown model {str(name)[:40]!r})")
    cls = MAP_MODELS[name]
    defaults = cls.from_config(3).config()  # the default model: a few hundred numbers
    if not isinstance(config, dict) or not set(config) <= set(defaults):
        raise InputError(f"corrupt map file (model_config {str(config)[:100]!r})")
    for key, value in config.items():
        # A list exactly where the model's own config() has one (the ICNN's widths).
        if isinstance(value, list) != isinstance(defaults[key], list):
            raise InputError(f"corrupt map file ({key} = {str(value)[:40]!s})")
        _ARGUMENT_CHECKS[key](key, value)  # every argument a config() names has a check
    complete = {**defaults, **config}
    count, units = parameter_count(name, complete), hidden_units(name, complete)
    if count > MAX_PARAMETERS or units > MAX_UNITS:
        raise InputError(
            f"corrupt map file (a {name} of {count:,} parameters and {units:,} hidden units; "
            f"at most {MAX_PARAMETERS:,} and {MAX_UNITS:,})",
            "otcolor fits maps of 128 hidden units; this file was not made by it",
        )
    held = sum(a.size for n, a in tensors.items() if n.startswith("model."))
    if held != count:
        raise InputError(
            f"corrupt map file (model_config describes {count:,} parameters, "
            f"the file holds {held:,})"
        )
    return config
