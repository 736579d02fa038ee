r"""Tests of otcolor.device: choosing a device by name, with availability monkeypatched."""

import pytest
import torch

from otcolor.device import resolve_device
from otcolor.errors import UsageError


@pytest.mark.parametrize(
    ("cuda", "mps", "auto"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, auto: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(auto)
    assert resolve_device("CPU") == torch.device("cpu")
    explicit = [("cuda", cuda, "CUDA"), ("cuda:1", cuda, "CUDA"), ("mps", mps, "MPS")]
    for name, available, label in explicit:
        if available:
            assert resolve_device(name) == torch.device(name)
        else:
            with pytest.raises(UsageError, match=label):
                resolve_device(name)
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", 5, None, True, ""])
def test_a_device_that_is_not_one_is_refused_by_name(name: object) -> None:
    from otcolor.device import check_device_name
    from otcolor.errors import UsageError
    from otcolor.fitting import FitSettings

    with pytest.raises(UsageError, match="unknown device"):
        check_device_name(name)
    with pytest.raises(UsageError, match="unknown device"):
        FitSettings(device=name)  # type: ignore[arg-type]
    for good in ("auto", "CPU", "cuda", "cuda:1", "mps"):
        assert check_device_name(good) == good
