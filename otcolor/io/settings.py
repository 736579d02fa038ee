r"""How a use case reads and writes image files: the settings ``transfer`` and ``apply`` share,
validated when made."""

from __future__ import annotations

__all__ = ["FileSettings"]

from dataclasses import dataclass

from ..errors import UsageError
from .decode import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FileSettings:
    r"""How a use case reads and writes image files."""

    quality: int = 95  # JPEG/WebP quality of the output
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # refuse larger inputs (decompression bombs)

    def __post_init__(self) -> None:
        quality = self.quality
        if not (
            isinstance(quality, int) and not isinstance(quality, bool) and 1 <= quality <= 100
        ):
            raise UsageError(f"quality must be an integer in [1, 100], got {quality!r}")
        limit = self.max_pixels
        if limit is not None and not (
            isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1
        ):
            raise UsageError(f"max_pixels must be a positive integer, got {limit!r}")
