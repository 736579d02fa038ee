r"""Shared fixtures: seeded RNGs, float64 where the math is checked, denied file access, and
the small photo-like ``source``/``target`` images of the command tests."""

import builtins
import errno
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import pixels
from PIL import Image


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch):
    r"""``deny(path, "r")``: opening ``path`` raises ``PermissionError``; ``deny(path, "w")``:
    ``os.access(path, W_OK)`` is false. What ``chmod`` does for a normal user, also as root (CI
    runs as root, who can read and write anything); pair it with the ``chmod``.
    """

    real_open, real_access = builtins.open, os.access
    denied: dict[str, set[str]] = {"r": set(), "w": set()}

    def key(path: object) -> str | None:
        if isinstance(path, (str, bytes, os.PathLike)):
            return os.path.abspath(os.fsdecode(path))
        return None  # a file descriptor

    def guarded_open(file, *args, **kwargs):
        if key(file) in denied["r"]:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    def guarded_access(path, mode, *args, **kwargs):
        if mode & os.W_OK and key(path) in denied["w"]:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)  # Pillow's Image.open
    monkeypatch.setattr(io, "open", guarded_open)  # pathlib's Path.open
    monkeypatch.setattr(os, "access", guarded_access)

    def deny(path: object, what: str) -> None:
        for mode in what:
            denied[mode].add(key(path))

    return deny


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    r"""The ffmpeg executable. Without ffmpeg and ffprobe the test fails (CI installs them), or
    skips where ``OTCOLOR_NO_FFMPEG=1`` opts out explicitly. Session-scoped, so that it is set up
    before any module fixture that runs ffmpeg."""

    path = shutil.which("ffmpeg")
    if path and shutil.which("ffprobe"):
        return path
    if os.environ.get("OTCOLOR_NO_FFMPEG") == "1":
        pytest.skip("ffmpeg/ffprobe are not installed, and OTCOLOR_NO_FFMPEG=1 opts out of them")
    pytest.fail(
        "ffmpeg and ffprobe are required (apt install ffmpeg); set OTCOLOR_NO_FFMPEG=1 "
        "to skip the ffmpeg tests instead",
        pytrace=False,
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.png"
    Image.fromarray(pixels(10, 16)).save(path)
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target.png"
    Image.fromarray(pixels(12, 14, seed=1)[..., ::-1].copy()).save(path)
    return path


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    r"""Records any call to the fitting step: errors that are checkable must come before it."""

    import otcolor.pipeline

    calls: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("training started")

    monkeypatch.setattr(otcolor.pipeline, "fit_color_map", record)
    return calls
