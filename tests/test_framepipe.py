r"""Frames through a look, several at a time (otcolor.framepipe): order, bytes, reuse, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import otcolor.framepipe as framepipe
from otcolor.color import ColorTable
from otcolor.errors import UsageError
from otcolor.framepipe import SharedTable, frame_workers, grade_frames, one_thread_per_worker
from otcolor.look import Look, LookSettings
from otcolor.pipeline import render


class Curve(nn.Module):
    r"""A nonlinear monotone map, :math:`T(x) = x^2` per channel."""

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=0) ** 2


def _frames(count: int, seed: int = 0) -> list[np.ndarray]:
    r"""Noisy 24x32 frames of one gradient: fresh grain in each, as a static shot."""

    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, 32)[None, :, None] + np.array([0.0, 10.0, -20.0])
    return [
        np.clip(np.round(ramp + rng.normal(0, 3, (24, 32, 3))), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]


def _still(look: Look, frame: np.ndarray) -> np.ndarray:
    r"""The frame as a still: render, rounded as an image file is."""

    return np.round(render(look, frame) * np.float32(255)).astype(np.uint8)


def test_threads_keep_the_order_and_the_bytes_of_one_at_a_time() -> None:
    look = Look(Curve())  # regrained (the default settings)
    frames = _frames(6)
    alone = list(grade_frames(frames, ColorTable(look)))
    threaded = list(grade_frames(iter(frames), SharedTable(look), workers=3))
    assert all(np.array_equal(a, b) for a, b in zip(alone, threaded, strict=True))
    assert len(threaded) == 6 and all(out.dtype == np.uint8 for out in threaded)
    # each frame comes out as its still, whatever the order and the threads
    assert all(
        np.array_equal(out, _still(look, f)) for out, f in zip(threaded, frames, strict=True)
    )
    assert not np.array_equal(threaded[0], threaded[1])  # fresh grain: different frames


def test_a_repeated_frame_is_graded_once_and_gives_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    look = Look(Curve())
    a, b = _frames(2, seed=1)
    calls: list[int] = []

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(framepipe, "render", counted)
    frames = [a, a.copy(), a.copy(), b, b.copy(), a.copy()]
    outputs = list(grade_frames(frames, SharedTable(look), workers=2))
    assert len(calls) == 3  # a, b, then a again: only the previous frame is compared
    assert all(np.array_equal(outputs[0], out) for out in (outputs[1], outputs[2], outputs[5]))
    assert np.array_equal(outputs[3], outputs[4]) and not np.array_equal(outputs[0], outputs[3])
    assert np.array_equal(outputs[0], _still(look, a))  # reused bytes are the frame's own


def test_a_frame_that_differs_by_one_level_is_graded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(framepipe, "render", lambda *a, **k: calls.append(1) or render(*a, **k))
    (frame,) = _frames(1)
    nudged = frame.copy()
    nudged[5, 7, 1] += 1
    list(grade_frames([frame, nudged], ColorTable(Look(Curve()))))
    assert len(calls) == 2


def test_the_pure_map_goes_through_the_table_one_frame_at_a_time() -> None:
    look = Look(Curve(), LookSettings(regrain=None))
    assert frame_workers(look) == 1
    frames = _frames(3)
    table = ColorTable(look)
    outputs = list(grade_frames(frames, table))
    for out, frame in zip(outputs, frames, strict=True):
        assert np.array_equal(out, _still(look, frame))


def test_parallel_grading_needs_a_shared_table() -> None:
    with pytest.raises(UsageError, match="SharedTable"):
        list(grade_frames(_frames(2), ColorTable(Look(Curve())), workers=2))


def test_a_failing_frame_raises_in_its_turn_and_stopping_early_does_not_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    look = Look(Curve())
    frames = _frames(5)

    def fails_on_third(look: Look, frame: np.ndarray, **kwargs: object) -> np.ndarray:
        if frame is frames[2]:
            raise RuntimeError("frame 2 is broken")
        return render(look, frame, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(framepipe, "render", fails_on_third)
    graded = grade_frames(frames, SharedTable(look), workers=2)
    assert next(graded).shape == (24, 32, 3) and next(graded).shape == (24, 32, 3)
    with pytest.raises(RuntimeError, match="frame 2"):
        next(graded)
    early = grade_frames(iter(frames[:2]), SharedTable(look), workers=2)
    next(early)
    early.close()  # the reader stops (a broken pipe): the pool shuts down


def test_a_shared_table_filled_by_threads_holds_each_colour_once_with_its_value() -> None:
    look = Look(Curve())
    shared, alone = SharedTable(look), ColorTable(look)
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 1 << 24, 20_000).astype(np.uint32) for _ in range(8)]

    def fill(keys: np.ndarray) -> None:
        for part in np.array_split(keys, 10):
            shared.update(part)

    threads = [threading.Thread(target=fill, args=(keys,)) for keys in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = np.concatenate(batches)
    alone.update(keys)
    assert shared.count == alone.count == np.unique(keys).size
    assert np.array_equal(shared.values()[shared.index[keys]], alone.values()[alone.index[keys]])
    assert np.array_equal(shared.packed()[keys], alone.packed()[keys])


def test_frame_workers_and_torch_threads() -> None:
    regrained = frame_workers(Look(Curve()))
    assert 1 <= regrained <= framepipe.MAX_WORKERS
    before = torch.get_num_threads()
    with one_thread_per_worker(2):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with one_thread_per_worker(1):
        assert torch.get_num_threads() == before
