r"""Devices: choosing one by name, and what to do when one runs out of memory."""

from __future__ import annotations

__all__ = [
    "DEVICES",
    "check_device_name",
    "first_line",
    "is_out_of_memory",
    "release_device_memory",
    "resolve_device",
]

import re

import torch

from .errors import UsageError

#: Device names :func:`resolve_device` accepts (``cuda:N`` too).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def check_device_name(name: object) -> str:
    r"""``name`` if it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, any
    case), whether or not this machine has it; :func:`resolve_device` checks that.

    Raises:
        UsageError: anything else.
    """

    if not (isinstance(name, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", name.lower())):
        raise UsageError(f"unknown device {name!r}", "choose auto, cpu, cuda, cuda:N or mps")
    return name


def resolve_device(name: str) -> torch.device:
    r"""Returns the device called ``name`` (``auto``: CUDA, then MPS, then the CPU).

    Raises:
        UsageError: if an explicit ``cuda`` or ``mps`` is not available here (no silent fallback).
    """

    name = check_device_name(name).lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                "--device cuda: CUDA is not available here", "use --device cpu or auto"
            )
        return torch.device(name)
    if name == "mps":
        if not has_mps:
            raise UsageError("--device mps: MPS is not available here", "use --device cpu or auto")
        return torch.device("mps")
    raise UsageError(f"unknown device {name!r}", "choose auto, cpu, cuda or mps")


def is_out_of_memory(err: BaseException) -> bool:
    r"""Whether torch ran out of device memory (CUDA's own error, or MPS/ROCm's message)."""

    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(err, oom) or "out of memory" in str(err).lower()


def release_device_memory() -> None:
    r"""Returns cached CUDA blocks to the driver, so that a smaller retry can use them."""

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def first_line(err: BaseException) -> str:
    r"""The first line of an error's message (its type's name when it has none)."""

    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
