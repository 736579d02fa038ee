r"""Results as strict JSON: what ``--json`` prints and the benchmarks' result files hold."""

from __future__ import annotations

__all__ = ["json_safe"]

import math
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    r"""Replaces NaN and infinities by ``null``, which strict JSON parsers require."""

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
