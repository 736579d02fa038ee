r"""The pure apply route: a look's colour function on every pixel of an image, exactly.

Evaluating a neural map costs about a microsecond per colour on a CPU core, far too much for
every pixel of a large photograph, but an 8-bit image holds at most :math:`2^{24}` colours and
photographs far fewer: :class:`ColorTable` evaluates each distinct colour once, exactly, and
gathers. Since the look evaluates its map in fixed blocks (:func:`otcolor.look.evaluate_map`),
the value of a colour does not depend on which other colours are in the image: ``transfer`` and
``apply`` agree bit for bit, and one colour gets one output in every frame of a video.
"""

from __future__ import annotations

__all__ = ["ColorTable", "apply_look", "keys_of"]

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import UsageError
from .look import Look

#: Threads for the per-pixel passes of :func:`apply_look` (memory-bound: more do not help).
_WORKERS = max(1, min(4, os.cpu_count() or 1))

#: Up to this many pixels, :func:`apply_look` with a filled table makes one plain pass
#: (measured crossover against the threaded passes).
_ONE_PASS = 1 << 22


class ColorTable:
    r"""A look evaluated on demand on the :math:`2^{24}` 8-bit colours, each exactly once.

    The table holds, for every colour met so far, the look's float32 output and its 8-bit
    rounding; new images (or video frames) only evaluate the colours not seen before. Memory:
    a table of :math:`2^{24}` 32-bit entries (67 MB) plus 16 bytes per distinct colour, and a
    second such table for the 8-bit outputs once :meth:`packed` is called (the regrain reads
    the float outputs only).

    Arguments:
        look: the look to tabulate.
    """

    def __init__(self, look: Look) -> None:
        self.look = look
        self.index = np.full(1 << 24, -1, np.int32)  # key -> row of `values`, -1: not yet
        self._values: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []  # the keys of `values`' rows
        self._packed: np.ndarray | None = None
        self._packed_rows = 0  # rows of `values` already in `_packed`
        self.count = 0

    def packed(self) -> np.ndarray:
        r"""Key → the 8-bit output ``R | G << 8 | B << 16`` of every colour seen so far,
        :math:`(2^{24},)` uint32: exactly what :func:`~otcolor.io.save_image` does to the float
        outputs, so both routes give the same bytes. Made on the first call, brought up to
        date on every call (call it again after :meth:`update`)."""

        if self._packed is None:
            self._packed = np.zeros(1 << 24, np.uint32)
        if self._packed_rows < self.count:
            if len(self._keys) > 1:
                self._keys = [np.concatenate(self._keys)]
            rows = slice(self._packed_rows, self.count)
            eight = np.round(self.values()[rows] * np.float32(255)).astype(np.uint32)
            self._packed[self._keys[0][rows]] = (
                eight[:, 0] | (eight[:, 1] << 8) | (eight[:, 2] << 16)
            )
            self._packed_rows = self.count
        return self._packed

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
        self._keys.append(new)
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
    r"""Applies a look's colour function to every pixel of an image, in bounded memory (no
    regrain: :func:`otcolor.pipeline.render` applies a look whole).

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
        >>> from otcolor.look import LookSettings
        >>> look = Look(ConstantMap(torch.tensor([0.2, 0.4, 0.6])), LookSettings(strength=0.5))
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
    index = table.index

    def lookup(begin: int, keys: np.ndarray, source: np.ndarray) -> None:
        # `source`: the table's 8-bit outputs (uint8 out) or its float outputs.
        if uint8_out:
            out[begin : begin + chunk] = source[keys].view(np.uint8).reshape(-1, 4)[:, :3]
        else:
            part = flat[begin : begin + chunk]
            out[begin : begin + chunk] = blend(begin, part, source[index[keys]])

    def outputs() -> np.ndarray:
        return table.packed() if uint8_out else table.values()

    if table.count and flat.shape[0] <= _ONE_PASS:
        # Later video frames: the table has nearly every colour already, and the 2^24-wide
        # passes below would cost more than they save (measured up to ~4 MP).
        for begin in starts:
            keys = keys_of(flat[begin : begin + chunk])
            table.update(keys)
            lookup(begin, keys, outputs())
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
        source = outputs()  # brought up to date once, before the threads read it
        list(pool.map(lambda b: lookup(b, keys_of(flat[b : b + chunk]), source), starts))
    return out.reshape(height, width, 3)
