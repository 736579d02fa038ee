r"""The reliability matrix (issues 6 and 20): numerical failures and device memory.

Run through the real ``otcolor`` command with fixtures generated here.

Every command run goes through :func:`harness.run`, which also checks the invariants that hold
whatever happens: the inputs are byte-identical (and keep their mtime), no temporary file is
left, and a failure prints exactly one ``Error:`` line on stderr and nothing on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from harness import pixels, run, transfer_args
from PIL import Image

import otcolor.fitting.estimators
import otcolor.fitting.trainers
import otcolor.pipeline
import otcolor.transfer
from otcolor.color import apply_look, keys_of
from otcolor.errors import OutOfDeviceMemory, TrainingError
from otcolor.fitting import FitSettings, fit_color_map
from otcolor.fitting.trainers import AdamConfig, train_adam
from otcolor.look import BLOCK, Look

ORIENTATION, MAKE = 0x0112, 0x010F

# Section 5.4: numerical failures


def nan_penalty(calls: range) -> Callable[..., torch.Tensor]:
    r"""A smoothness penalty that is NaN on the given (1-based) calls, as a broken step is."""

    real = otcolor.fitting.trainers.jacobian_penalty
    count = [0]

    def penalty(*args: object, **kwargs: object) -> torch.Tensor:
        count[0] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if count[0] in calls else value

    return penalty


@pytest.mark.parametrize("loss", ["ot", "sliced"])
def test_persistent_nan_exits_5_and_writes_nothing(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    monkeypatch.setattr(otcolor.fitting.trainers, "jacobian_penalty", nan_penalty(range(1, 10**6)))
    output = tmp_path / "out.png"
    run(
        transfer_args(source, target, output, "--loss", loss),
        [source, target],
        code=5,
        phrase="diverged",
    )
    assert not output.exists()


@pytest.mark.parametrize("loss", ["ot", "sliced"])
def test_transient_nan_recovers(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    # A NaN on the 3rd-5th evaluations: L-BFGS rejects the trial points (shorter step),
    # Adam restores the last good state and retries at half the learning rate.
    monkeypatch.setattr(otcolor.fitting.trainers, "jacobian_penalty", nan_penalty(range(3, 4)))
    output = tmp_path / "out.png"
    result = run(
        transfer_args(source, target, output, "--loss", loss, "--steps", "8", "--json"),
        [source, target],
        code=0,
    )
    payload = json.loads(result.stdout)
    assert payload["final_loss"] is not None and np.isfinite(payload["final_loss"])
    assert np.isfinite(np.asarray(Image.open(output), float)).all()


@pytest.mark.parametrize("look", [[], ["--no-regrain"]], ids=["regrain", "pure"])
def test_non_finite_map_output_is_never_written(
    tmp_path: Path,
    source: Path,
    target: Path,
    monkeypatch: pytest.MonkeyPatch,
    look: list[str],
) -> None:
    real = otcolor.pipeline.fit_color_map

    def broken(*args: Any, **kwargs: Any) -> Any:
        fitted = real(*args, **kwargs)
        with torch.no_grad():  # a map that overflows on some colours
            fitted.map.center[0] = float("nan")
        return fitted

    monkeypatch.setattr(otcolor.pipeline, "fit_color_map", broken)
    output = tmp_path / "out.png"
    run(
        transfer_args(source, target, output, *look), [source, target], code=5, phrase="non-finite"
    )
    assert not output.exists()


def test_strict_turns_the_gaussian_fallback_into_an_error(tmp_path: Path, source: Path) -> None:
    # Onto itself, the Gaussian map is exactly the identity: a learned map cannot beat it.
    output = tmp_path / "out.png"
    result = run(transfer_args(source, source, output, "--json"), [source], code=0)
    assert any("from the Gaussian map" in w for w in json.loads(result.stdout)["warnings"])
    output.unlink()
    run(
        transfer_args(source, source, output, "--strict"),
        [source],
        code=5,
        phrase="the learned map fits worse than the closed-form Gaussian map",
    )
    assert not output.exists()


def test_strict_in_the_library() -> None:
    x = pixels(10, 16).reshape(-1, 3) / np.float32(255)
    config = FitSettings(steps=3, device="cpu", strict=True)
    with pytest.raises(TrainingError, match="worse than the closed-form") as info:
        fit_color_map(x, x, config)
    assert info.value.exit_code == 5
    assert FitSettings().strict is False


# Big images: device out of memory


class OOMTimes(torch.nn.Module):
    r"""Doubles colours, but raises an out-of-memory error on its first ``times`` calls."""

    def __init__(self, times: int, error: Callable[[str], Exception]) -> None:
        super().__init__()
        self.times, self.error, self.calls = times, error, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 2 * x - 0.25


@pytest.mark.parametrize(
    "error",
    [torch.cuda.OutOfMemoryError, lambda m: RuntimeError("MPS backend out of memory")],
    ids=["cuda", "message"],
)
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_apply_retries_a_block_once_on_out_of_memory(
    error: Callable[[str], Exception], bit_depth: int
) -> None:
    rgb = pixels(60, 70).astype(np.float32) / 255  # 4200 pixels: two blocks on the 16-bit route
    oom = OOMTimes(1, error)
    out = apply_look(Look(oom), rgb, bit_depth=bit_depth)
    assert np.array_equal(out, np.clip(2 * rgb - 0.25, 0, 1))
    blocks = -(-len(np.unique(keys_of(rgb))) // BLOCK) if bit_depth == 8 else 2
    assert oom.calls == blocks + 1  # the failed block once more, the rest once


def test_apply_out_of_memory_twice_is_exit_5() -> None:
    rgb = np.zeros((50, 50, 3), np.float32)
    oom = OOMTimes(2, torch.cuda.OutOfMemoryError)
    with pytest.raises(OutOfDeviceMemory, match="out of device memory applying") as info:
        apply_look(Look(oom), rgb)
    assert info.value.exit_code == 5 and str(info.value).endswith("(use --device cpu)")
    assert oom.calls == 2


def test_other_runtime_errors_are_not_taken_for_out_of_memory() -> None:
    oom = OOMTimes(1, lambda m: RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        apply_look(Look(oom), np.zeros((4, 4, 3), np.float32))
    assert oom.calls == 1  # not retried


def test_training_out_of_memory_is_exit_5_with_a_hint(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(otcolor.fitting.estimators, "fit_brenier", oom)
    output = tmp_path / "out.png"
    result = run(
        transfer_args(source, target, output),
        [source, target],
        code=5,
        phrase="out of device memory while fitting",
    )
    assert "use fewer --samples or --device cpu" in result.stderr and not output.exists()


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_transfer_apply_out_of_memory(
    tmp_path: Path, source: Path, target: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    # On a GPU the look is applied again on the CPU, with a warning; on the CPU it is exit 5.
    real_fit, real_apply = otcolor.pipeline.fit_color_map, otcolor.pipeline.apply_look

    def fit_on(*args: object, **kwargs: object) -> object:
        fitted = real_fit(*args, **kwargs)
        fitted.device = device  # as if fitted there; the map itself stays on the CPU
        return fitted

    real_regrain = otcolor.pipeline.regrain

    def route(real: Any) -> Any:
        def apply(look: Look, rgb: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            if str(look.device) != "cpu" or device == "cpu":
                cause = torch.cuda.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 1.00 GiB"
                )
                raise OutOfDeviceMemory("out of device memory applying the map") from cause
            return real(look, rgb, *args, **kwargs)

        return apply

    monkeypatch.setattr(otcolor.pipeline, "fit_color_map", fit_on)
    monkeypatch.setattr(otcolor.pipeline, "apply_look", route(real_apply))
    monkeypatch.setattr(otcolor.pipeline, "regrain", route(real_regrain))
    output = tmp_path / "out.png"
    if device == "cpu":
        run(
            transfer_args(source, target, output),
            [source, target],
            code=5,
            phrase="out of memory applying the map",
        )
        assert not output.exists()
    else:
        result = run(transfer_args(source, target, output, "--json"), [source, target], code=0)
        assert any("applied on the CPU" in w for w in json.loads(result.stdout)["warnings"])
        assert Image.open(output).size == (16, 10)


def test_parameters_broken_by_the_last_update_are_restored() -> None:
    from otcolor.losses import SlicedW2
    from otcolor.models import build_model

    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    model = build_model("cmgn", 3)

    def break_last_step(step: int, logs: dict[str, float]) -> None:
        if step == 30:  # as an update that overflowed, with no loss evaluated after it
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    train_adam(
        model, SlicedW2(8), x, 2 * x + 1, AdamConfig(steps=30, batch_size=128), break_last_step
    )
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model(x)).all()
