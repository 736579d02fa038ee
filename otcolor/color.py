r"""Colour spaces and looks: a fitted map in its colour space, with strength, applied to images.

A :class:`Look` is everything that turns an sRGB colour into its output colour: the fitted map
:math:`T` (in the coordinates of the space it was fitted in), that space, the strength
:math:`t` of the displacement interpolation :math:`u + t\,(T(u) - u)` and whether the source's
lightness is kept. Every consumer (``transfer``, ``apply``, ``video``, LUT baking) evaluates a
look through :meth:`Look.__call__`, so they agree.

Evaluating a neural map costs about a microsecond per colour on a CPU core, far too much for
every pixel of a large photograph, but an 8-bit image holds at most :math:`2^{24}` colours and
photographs far fewer: :class:`ColorTable` evaluates each distinct colour once, exactly, and
gathers. The map runs in fixed blocks of :data:`BLOCK` rows (the last one padded), so the value
of a colour does not depend on which other colours are in the image: ``transfer`` and ``apply``
agree bit for bit, and one colour gets one output in every frame of a video.
"""

from __future__ import annotations

__all__ = [
    "BLOCK",
    "SPACES",
    "ColorTable",
    "Look",
    "apply_look",
    "evaluate_map",
    "from_space",
    "keys_of",
    "lab_to_srgb",
    "srgb_to_lab",
    "to_space",
]

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .device import first_line, is_out_of_memory, release_device_memory
from .errors import OutOfDeviceMemory, TrainingError, UsageError

#: Colour spaces a map can be fitted and applied in.
SPACES: tuple[str, ...] = ("rgb", "lab")

#: Rows per forward pass of a map; every pass has exactly this many (see the module docstring).
BLOCK = 4096

#: Threads for the per-pixel passes of :func:`apply_look` (memory-bound: more do not help).
_WORKERS = max(1, min(4, os.cpu_count() or 1))

#: Up to this many pixels, :func:`apply_look` with a filled table makes one plain pass
#: (measured crossover against the threaded passes).
_ONE_PASS = 1 << 22

# sRGB (D65) to CIE XYZ, IEC 61966-2-1. The white point is taken as M @ (1, 1, 1), so that
# sRGB white is L = 100, a = b = 0 exactly, and the inverse is the exact matrix inverse.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ.sum(1)
_DELTA = 6 / 29

# Lab coordinates are divided by this for fitting, so that they are of the order of sRGB's
# [0, 1] (the fit itself is invariant to the scale, its tolerances are not).
_LAB_UNIT = 100.0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    r"""Converts gamma-encoded sRGB to CIELAB (D65), in float64.

    Arguments:
        rgb: colours, with shape :math:`(..., 3)`, in :math:`[0, 1]` (values outside are
            extended linearly below 0.04045 and by the power law above 1).

    Returns:
        :math:`(L^*, a^*, b^*)`, with shape :math:`(..., 3)`; :math:`L^* \in [0, 100]` in gamut.
    """

    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    r"""Converts CIELAB (D65) to gamma-encoded sRGB, in float64, unclipped (the exact inverse of
    :func:`srgb_to_lab`).

    Arguments:
        lab: colours, with shape :math:`(..., 3)`.

    Returns:
        sRGB, with shape :math:`(..., 3)`; outside :math:`[0, 1]` for out-of-gamut colours.
    """

    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE
    linear = xyz @ _XYZ_TO_RGB.T
    return np.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
    )


def to_space(rgb: np.ndarray, space: str) -> np.ndarray:
    r"""sRGB colours :math:`(N, 3)` in the coordinates a map of ``space`` works in, float32."""

    if space == "rgb":
        return np.asarray(rgb, dtype=np.float32)
    if space == "lab":
        return (srgb_to_lab(rgb) / _LAB_UNIT).astype(np.float32)
    raise UsageError(f"unknown colour space {space!r}", f"choose one of {', '.join(SPACES)}")


def from_space(points: np.ndarray, space: str) -> np.ndarray:
    r"""The inverse of :func:`to_space`: sRGB, unclipped (float32 for ``rgb``, else float64)."""

    if space == "rgb":
        return points
    return lab_to_srgb(np.asarray(points, dtype=np.float64) * _LAB_UNIT)


@dataclass
class Look:
    r"""A fitted colour map with the settings that say how it is applied.

    Arguments:
        map: :math:`T`, :math:`(N, 3) \to (N, 3)`, in the coordinates of ``space``.
        space: ``"rgb"`` (gamma-encoded sRGB in :math:`[0, 1]`) or ``"lab"`` (CIELAB / 100).
        strength: :math:`t \in [0, 1]`: colours move to :math:`u + t\,(T(u) - u)` (McCann's
            displacement interpolation: still the gradient of a convex function).
        preserve_luminance: keep each pixel's CIELAB lightness :math:`L^*`, take only the
            chroma :math:`(a^*, b^*)` of the mapped colour.
        device: where the map runs.
    """

    map: nn.Module
    space: str = "rgb"
    strength: float = 1.0
    preserve_luminance: bool = False
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise UsageError(f"unknown colour space {self.space!r}", f"choose one of {SPACES}")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be in [0, 1], got {self.strength}")

    def with_strength(self, strength: float | None) -> Look:
        r"""The same look at another strength (``None``: unchanged)."""

        if strength is None:
            return self
        return Look(self.map, self.space, float(strength), self.preserve_luminance, self.device)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        r"""Maps sRGB colours.

        Arguments:
            rgb: colours, with shape :math:`(N, 3)`, in :math:`[0, 1]`.

        Returns:
            The output colours, with shape :math:`(N, 3)`, float32, clipped to :math:`[0, 1]`.

        Raises:
            TrainingError: the map gives a non-finite colour. Clipping would turn infinities
                into plausible-looking 0s and 1s (a black image from a map with a tiny
                ``scale``), so every consumer (apply, LUTs, video) refuses here instead.
        """

        # Overflow is reported below as one error, not as numpy RuntimeWarnings.
        with np.errstate(all="ignore"):
            u = to_space(rgb, self.space)  # (N, 3) float32
            if self.strength == 0.0:
                v: np.ndarray = u
            else:
                v = evaluate_map(self.map, u, self.device)
                if self.strength != 1.0:
                    u64 = u.astype(np.float64)
                    v = (u64 + self.strength * (v.astype(np.float64) - u64)).astype(np.float32)
            out = from_space(v, self.space)
            if self.preserve_luminance:
                lab = srgb_to_lab(np.clip(out, 0.0, 1.0))
                lab[:, 0] = srgb_to_lab(rgb)[:, 0]
                out = lab_to_srgb(lab)
        if not (np.isfinite(v).all() and np.isfinite(out).all()):
            raise TrainingError(
                "the map gives non-finite colours; nothing was written",
                "refit it, or try another --seed, --loss or --smoothness",
            )
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def evaluate_map(
    color_map: nn.Module, points: np.ndarray, device: torch.device | str = "cpu"
) -> np.ndarray:
    r"""Evaluates a map in blocks of exactly :data:`BLOCK` rows (the last padded).

    CPU matrix kernels round differently for different row counts (measured: one colour in
    300,000 changes in the last bit between batches of 7 and of 300,000 rows); with one block
    shape the value of a point does not depend on the other points.

    Arguments:
        color_map: the map, :math:`(N, 3) \to (N, 3)`.
        points: with shape :math:`(N, 3)`, float32.

    Returns:
        :math:`T(x)`, with shape :math:`(N, 3)`, float32, unclipped.
    """

    points = np.ascontiguousarray(points, dtype=np.float32)
    out = np.empty_like(points)
    padded = np.zeros((BLOCK, points.shape[1]), np.float32)
    with torch.no_grad():
        for begin in range(0, points.shape[0], BLOCK):
            part = points[begin : begin + BLOCK]
            padded[: part.shape[0]] = part
            padded[part.shape[0] :] = part[-1]
            value = _evaluate_block(color_map, padded, device)
            out[begin : begin + part.shape[0]] = value[: part.shape[0]]
    return out


def _evaluate_block(
    color_map: nn.Module, block: np.ndarray, device: torch.device | str
) -> np.ndarray:
    r"""One :data:`BLOCK` through the map. Out of device memory, the cached blocks are released
    and the block retried once: the block never shrinks, since its shape fixes the rounding
    (see :func:`evaluate_map`), and a map of a few thousand weights that cannot run on
    :data:`BLOCK` rows means the device is full of something else."""

    for attempt in range(2):
        try:
            return color_map(torch.from_numpy(block).to(device)).cpu().numpy()
        except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(err):
                raise
            release_device_memory()
            if attempt:
                raise OutOfDeviceMemory(
                    f"out of device memory applying the map ({first_line(err)})"
                ) from err
    raise AssertionError("unreachable")  # pragma: no cover


class ColorTable:
    r"""A look evaluated on demand on the :math:`2^{24}` 8-bit colours, each exactly once.

    The table holds, for every colour met so far, the look's float32 output and its 8-bit
    rounding; new images (or video frames) only evaluate the colours not seen before. Memory:
    two tables of :math:`2^{24}` 32-bit entries (134 MB) plus 12 bytes per distinct colour.

    Arguments:
        look: the look to tabulate.
    """

    def __init__(self, look: Look) -> None:
        self.look = look
        self.index = np.full(1 << 24, -1, np.int32)  # key -> row of `values`, -1: not yet
        self.packed = np.zeros(1 << 24, np.uint32)  # key -> 8-bit output, R | G << 8 | B << 16
        self._values: list[np.ndarray] = []
        self.count = 0

    def values(self) -> np.ndarray:
        r"""The float outputs of the colours seen so far, :math:`(D, 3)`, in key order of arrival."""

        if len(self._values) > 1:
            self._values = [np.concatenate(self._values)]
        return self._values[0] if self._values else np.zeros((0, 3), np.float32)

    def update(self, keys: np.ndarray) -> None:
        r"""Evaluates the look on the colours of ``keys`` (uint32, :math:`R + 2^8 G + 2^{16} B`)
        not seen before, in increasing key order (deterministic)."""

        unseen = keys[self.index[keys] < 0]
        if unseen.size == 0:
            return
        if unseen.size < 1 << 16:
            new = np.unique(unseen)  # a few new colours: sorting them is cheaper than a table
        else:
            present = np.zeros(1 << 24, bool)
            present[unseen] = True
            new = np.flatnonzero(present).astype(np.uint32)  # sorted, without a sort
        self.insert(new)

    def insert(self, new: np.ndarray) -> None:
        r"""Evaluates the look on ``new``: keys not in the table yet, sorted, without repeats."""

        if new.size == 0:
            return
        colours = np.stack([new & 255, (new >> 8) & 255, new >> 16], -1).astype(np.float32) / 255
        mapped = self.look(colours)  # (D, 3) float32 in [0, 1]
        # Exactly what save_image does to float pixels, so both routes give the same bytes.
        eight = np.round(mapped * np.float32(255)).astype(np.uint32)
        self.packed[new] = eight[:, 0] | (eight[:, 1] << 8) | (eight[:, 2] << 16)
        self.index[new] = np.arange(self.count, self.count + new.size, dtype=np.int32)
        self._values.append(mapped)
        self.count += new.size


def keys_of(pixels: np.ndarray) -> np.ndarray:
    r"""Packs 8-bit colours :math:`(..., 3)` (uint8, or float holding multiples of 1/255) into
    uint32 keys :math:`R + 2^8 G + 2^{16} B`, shape :math:`(...)`."""

    if pixels.dtype != np.uint8:
        pixels = np.rint(pixels * np.float32(255)).astype(np.uint8)
    keys = pixels[..., 0].astype(np.uint32)
    keys |= pixels[..., 1].astype(np.uint32) << 8
    keys |= pixels[..., 2].astype(np.uint32) << 16
    return keys


def apply_look(
    look: Look,
    rgb: np.ndarray,
    *,
    bit_depth: int = 8,
    mask: np.ndarray | None = None,
    table: ColorTable | None = None,
    as_uint8: bool = False,
    chunk: int = 1 << 20,
) -> np.ndarray:
    r"""Applies a look to an image, in bounded memory.

    8-bit images go through a :class:`ColorTable` (exact: the same values as evaluating every
    pixel); others are evaluated pixel by pixel in chunks.

    Arguments:
        look: the look.
        rgb: the image, with shape :math:`(H, W, 3)`: uint8, or float in :math:`[0, 1]`.
        bit_depth: 8 when the float pixels are multiples of 1/255 (table route), else 16.
        mask: where to apply, with shape :math:`(H, W)`, in :math:`[0, 1]`: pixels become
            :math:`x + m\,(T(x) - x)` (soft masks blend).
        table: a table to reuse across images (8-bit only); a new one otherwise.
        as_uint8: return the 8-bit rounding (8-bit route without mask only), saving memory.

    Returns:
        The mapped image, with shape :math:`(H, W, 3)`: float32 in :math:`[0, 1]`, or uint8.

    Example:
        >>> import numpy as np, torch
        >>> from otcolor.models import ConstantMap
        >>> look = Look(ConstantMap(torch.tensor([0.2, 0.4, 0.6])), strength=0.5)
        >>> out = apply_look(look, np.zeros((2, 2, 3), np.float32))  # halfway from black to the colour
        >>> out[0, 0]
        array([0.1, 0.2, 0.3], dtype=float32)
    """

    height, width = rgb.shape[:2]
    flat = rgb.reshape(-1, 3)
    if mask is not None and mask.shape != (height, width):
        raise UsageError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {width}x{height}")
    eight = rgb.dtype == np.uint8 or bit_depth == 8
    uint8_out = as_uint8 and eight and mask is None
    out = np.empty((height * width, 3), np.uint8 if uint8_out else np.float32)
    weights = None if mask is None else mask.reshape(-1).astype(np.float32)
    starts = range(0, flat.shape[0], chunk)

    def blend(begin: int, part: np.ndarray, mapped: np.ndarray) -> np.ndarray:
        if weights is None:
            return mapped
        x = part.astype(np.float32) / 255 if part.dtype == np.uint8 else part
        w = weights[begin : begin + chunk, None]
        return x + w * (mapped - x)

    if not eight:
        for begin in starts:
            part = flat[begin : begin + chunk]
            out[begin : begin + chunk] = blend(begin, part, look(part))
        return out.reshape(height, width, 3)

    table = ColorTable(look) if table is None else table
    index, packed = table.index, table.packed

    def lookup(begin: int, keys: np.ndarray, values: np.ndarray | None) -> None:
        if values is None:
            out[begin : begin + chunk] = packed[keys].view(np.uint8).reshape(-1, 4)[:, :3]
        else:
            part = flat[begin : begin + chunk]
            out[begin : begin + chunk] = blend(begin, part, values[index[keys]])

    if table.count and flat.shape[0] <= _ONE_PASS:
        # Later video frames: the table has nearly every colour already, and the 2^24-wide
        # passes below would cost more than they save (measured up to ~4 MP).
        for begin in starts:
            keys = keys_of(flat[begin : begin + chunk])
            table.update(keys)
            lookup(begin, keys, None if uint8_out else table.values())
        return out.reshape(height, width, 3)

    present = np.zeros(1 << 24, bool)

    def mark(begin: int) -> None:
        # Threads only ever write True. (The name is deleted below, after the last call.)
        present[keys_of(flat[begin : begin + chunk])] = True  # noqa: F821

    # Two passes over the pixels, chunks split across threads (NumPy releases the GIL in these
    # loops): first mark the colours present, evaluate those the table lacks in one batch, then
    # look every pixel up. Keys are computed twice rather than kept (4 bytes a pixel); the
    # table, and so every output value, does not depend on the chunking or the threads.
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(mark, starts))
        present &= index < 0
        table.insert(np.flatnonzero(present).astype(np.uint32))
        del present
        values = None if uint8_out else table.values()
        list(pool.map(lambda b: lookup(b, keys_of(flat[b : b + chunk]), values), starts))
    return out.reshape(height, width, 3)
