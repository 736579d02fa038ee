r"""A clip's frames through one look, in order, several at a time.

``otcolor video`` reads frames from one ffmpeg, grades them, and writes them to another. The
regrain costs about a second of one core per 1080p frame, so the frames are graded by a pool
of threads (torch and NumPy release the GIL in their loops), while the two ffmpeg processes
decode ahead and encode behind. The output order is the input order, and a frame's output
depends on that frame alone: threads change when a frame is graded, never its bytes.

A frame byte-identical to the one before it (a held shot, a paused screen) reuses that
frame's output instead of grading it again: the same bytes, without the cost.
"""

from __future__ import annotations

__all__ = ["SharedTable", "frame_workers", "grade_frames", "one_thread_per_worker"]

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from .color import ColorTable
from .errors import UsageError
from .look import Look
from .pipeline import render

#: The most frames graded at once: each holds a few of its frame's sizes in memory.
MAX_WORKERS = 4


class SharedTable(ColorTable):
    r"""A :class:`~otcolor.color.ColorTable` that several threads may fill at once.

    :meth:`update` (which evaluates and inserts the new colours), :meth:`values` and
    :meth:`packed` run one thread at a time; a row, once inserted, never moves, so a thread
    that has updated its keys reads their rows safely while another inserts more. A colour's
    value does not depend on which thread met it first (:func:`otcolor.look.evaluate_map`
    evaluates in fixed blocks).
    """

    def __init__(self, look: Look) -> None:
        super().__init__(look)
        self._lock = threading.RLock()  # packed() reads values()

    def update(self, keys: np.ndarray) -> None:
        with self._lock:
            super().update(keys)

    def values(self) -> np.ndarray:
        with self._lock:
            return super().values()

    def packed(self) -> np.ndarray:
        with self._lock:
            return super().packed()


def frame_workers(look: Look) -> int:
    r"""How many frames to grade at once: one per usable core for the regrain, up to
    :data:`MAX_WORKERS`; one for the pure map, whose table lookup costs less than ffmpeg's
    own work on the frame."""

    if look.regrain is None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, cores or 1))


@contextlib.contextmanager
def one_thread_per_worker(workers: int) -> Iterator[None]:
    r"""Torch's intra-op threads set to one while ``workers`` > 1 frames are graded at once
    (each frame's ops are small and memory-bound: whole frames in parallel beat threads
    inside each op, and both at once oversubscribe the cores); restored afterwards."""

    saved = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _grade(table: ColorTable, frame: np.ndarray) -> np.ndarray:
    r"""One frame :math:`(H, W, 3)` uint8 through the table's look, as 8-bit bytes rounded as
    an image file is (:func:`otcolor.io.save_image`)."""

    mapped = render(table.look, frame, table=table, as_uint8=True)
    if mapped.dtype != np.uint8:
        mapped = np.round(mapped * np.float32(255)).astype(np.uint8)
    return mapped


def grade_frames(
    frames: Iterable[np.ndarray], table: ColorTable, workers: int = 1
) -> Iterator[np.ndarray]:
    r"""Yields every frame through ``table``'s look, uint8 :math:`(H, W, 3)`, in input order.

    Up to ``workers`` frames are graded at once (``table`` must then be a
    :class:`SharedTable`) and one more is read ahead. A frame equal to the previous one,
    byte for byte, gets the previous output (the same array).

    Raises:
        UsageError: ``workers`` > 1 with a table that threads cannot share.
        Whatever :func:`otcolor.pipeline.render` raises, when its frame's turn comes.
    """

    if workers > 1 and not isinstance(table, SharedTable):
        raise UsageError("grading frames in parallel needs a SharedTable")
    pending: deque[Future[np.ndarray]] = deque()
    previous: tuple[np.ndarray, Future[np.ndarray]] | None = None
    with ThreadPoolExecutor(max(1, workers)) as pool:
        try:
            for frame in frames:
                if previous is not None and np.array_equal(frame, previous[0]):
                    job = previous[1]
                else:
                    job = pool.submit(_grade, table, frame)
                previous = (frame, job)
                pending.append(job)
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for job in pending:  # stopped early: do not grade what no one will read
                job.cancel()
