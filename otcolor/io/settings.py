r"""How a use case reads and writes image files: the settings ``transfer`` and ``apply`` share,
validated when made."""

from __future__ import annotations

__all__ = ["FileSettings"]

from dataclasses import dataclass

from ..errors import UsageError
from .decode import DEFAULT_MAX_PIXELS
from .profiles import SOURCE, ColourProfile, output_profile


@dataclass(frozen=True)
class FileSettings:
    r"""How a use case reads and writes image files.

    Arguments:
        quality: the JPEG, WebP, AVIF and HEIF quality of the output, 1 to 100.
        max_pixels: refuse larger inputs (decompression bombs); ``None``: no limit.
        output_profile: the output's colour profile: ``"source"`` (the source's own), a name
            of :data:`otcolor.io.profiles.NAMED_PROFILES` (``srgb``, ``display-p3``, ...) or an
            RGB ``.icc`` file (see docs/colour.md).
    """

    quality: int = 95
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    output_profile: str = SOURCE

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
        if not isinstance(self.output_profile, str):
            raise UsageError(
                f"output_profile must be a name or a path, got {self.output_profile!r}"
            )

    def profile(self) -> ColourProfile | None:
        r"""The output profile (``None``: the source's), read and checked (before any decoding)."""

        return output_profile(self.output_profile)
