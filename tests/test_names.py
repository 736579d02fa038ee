r"""``otcolor.names`` (what the command line offers, without torch) against the library it mirrors:
every registry's keys in their order, every limit and every default."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from PIL import Image

from otcolor import names

NAMES = Path(__file__).resolve().parents[1] / "otcolor" / "names.py"


def test_the_names_are_the_registries_keys_in_their_order() -> None:
    from otcolor.bench.common import BENCH_LOSSES, BENCH_MODELS
    from otcolor.bench.pixels import PIXEL_LOSSES
    from otcolor.device import DEVICES
    from otcolor.fitting.colour import INITS
    from otcolor.fitting.estimators import ESTIMATORS
    from otcolor.io.lut import LUT_FORMATS, LUT_METHODS
    from otcolor.losses import LOSSES
    from otcolor.mnist.latent import GENERATOR_MODELS
    from otcolor.mnist.latent import SPACES as MNIST_SPACES
    from otcolor.mnist.objectives import OBJECTIVES as MNIST_OBJECTIVES
    from otcolor.models import MODELS
    from otcolor.spaces import SPACES

    registries = {
        "MODELS": MODELS,
        "LOSSES": LOSSES,
        "ESTIMATORS": ESTIMATORS,
        "INITS": INITS,
        "DEVICES": DEVICES,
        "SPACES": SPACES,
        "LUT_FORMATS": LUT_FORMATS,
        "LUT_METHODS": LUT_METHODS,
        "BENCH_MODELS": BENCH_MODELS,
        "BENCH_LOSSES": BENCH_LOSSES,
        "PIXEL_LOSSES": PIXEL_LOSSES,
        "GENERATOR_MODELS": GENERATOR_MODELS,
        "MNIST_OBJECTIVES": MNIST_OBJECTIVES,
        "MNIST_SPACES": MNIST_SPACES,
    }
    assert {k: getattr(names, k) for k in registries} == {
        k: tuple(registry) for k, registry in registries.items()
    }


def test_the_limits_are_the_librarys() -> None:
    from otcolor.fitting.colour import DEFAULT_SMOOTHNESS, MAX_STEPS
    from otcolor.io import DEFAULT_MAX_PIXELS
    from otcolor.mnist.generate import MAX_BATCH as MNIST_MAX_BATCH
    from otcolor.mnist.generate import MAX_STEPS as MNIST_MAX_STEPS
    from otcolor.video import MAX_FIT_FRAMES

    assert names.MAX_STEPS == MAX_STEPS
    assert names.MAX_FIT_FRAMES == MAX_FIT_FRAMES
    assert (names.MNIST_MAX_STEPS, names.MNIST_MAX_BATCH) == (MNIST_MAX_STEPS, MNIST_MAX_BATCH)
    assert names.DEFAULT_MAX_PIXELS == DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS
    assert names.DEFAULT_SMOOTHNESS == DEFAULT_SMOOTHNESS


def _fields(defaults: object) -> dict[str, object]:
    return dataclasses.asdict(defaults)  # type: ignore[call-overload]


def test_the_defaults_are_the_settings_classes_defaults() -> None:
    from otcolor.fitting import FitSettings
    from otcolor.mnist.generate import MnistConfig
    from otcolor.preview import PreviewConfig
    from otcolor.transfer import TransferConfig

    transfer = TransferConfig()  # its fit, look and files are the classes' defaults
    assert transfer.fit == FitSettings()
    for defaults, settings in [
        (names.FIT, transfer.fit),
        (names.FILES, transfer.files),
        (names.PREVIEW, PreviewConfig()),
        (names.MNIST, MnistConfig()),
    ]:
        assert _fields(defaults) == {k: getattr(settings, k) for k in _fields(defaults)}
    look = transfer.look
    assert _fields(names.LOOK) == {
        "space": look.space,
        "strength": look.strength,
        "preserve_luminance": look.preserve_luminance,
        "regrain": look.regrain is not None,
    }


def test_names_needs_only_the_stdlib() -> None:
    imported = set()
    for node in ast.walk(ast.parse(NAMES.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    code = (
        "import sys, otcolor.names; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
