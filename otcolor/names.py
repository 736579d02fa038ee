r"""The names and defaults the command line offers, in a module that needs only the stdlib.

``otcolor --help``, ``--version`` and argument errors are answered from these alone, so they
never load torch (a second of start-up). Each value mirrors one in the library, which stays the
authority: a registry's keys in their order (:data:`otcolor.models.MODELS`, ...), or the default
of a settings class (:class:`otcolor.fitting.FitSettings`, ...). ``tests/test_names.py`` checks
every one of them against its source, so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "BENCH_LOSSES",
    "BENCH_MODELS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SMOOTHNESS",
    "DEVICES",
    "ESTIMATORS",
    "FILES",
    "FIT",
    "GENERATOR_MODELS",
    "INITS",
    "LOOK",
    "LOSSES",
    "LUT_FORMATS",
    "LUT_METHODS",
    "MAX_FIT_FRAMES",
    "MAX_STEPS",
    "MNIST",
    "MNIST_MAX_BATCH",
    "MNIST_MAX_STEPS",
    "MNIST_OBJECTIVES",
    "MNIST_SPACES",
    "MODELS",
    "PIXEL_LOSSES",
    "PREVIEW",
    "SPACES",
]

from dataclasses import dataclass

# Registries: the keys, in the order the CLI offers them.

#: :data:`otcolor.models.MODELS`: map architectures.
MODELS: tuple[str, ...] = ("cmgn", "mmgn", "icnn")
#: :data:`otcolor.losses.LOSSES`: training losses.
LOSSES: tuple[str, ...] = ("ot", "sliced", "kl", "wgan")
#: :data:`otcolor.fitting.estimators.ESTIMATORS`.
ESTIMATORS: tuple[str, ...] = ("full", "plan", "minibatch")
#: :data:`otcolor.fitting.colour.INITS`: starting points of a map.
INITS: tuple[str, ...] = ("gaussian", "identity")
#: :data:`otcolor.device.DEVICES`.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
#: :data:`otcolor.spaces.SPACES`: colour spaces.
SPACES: tuple[str, ...] = ("rgb", "lab")
#: :data:`otcolor.io.lut.LUT_FORMATS`.
LUT_FORMATS: tuple[str, ...] = ("cube", "csp", "hald")
#: :data:`otcolor.io.lut.LUT_METHODS`.
LUT_METHODS: tuple[str, ...] = ("fit", "nodes")
#: :data:`otcolor.bench.common.BENCH_MODELS`.
BENCH_MODELS: tuple[str, ...] = ("cmgn", "mmgn", "icnn")
#: :data:`otcolor.bench.common.BENCH_LOSSES`.
BENCH_LOSSES: tuple[str, ...] = ("kl", "wgan", "sliced")
#: :data:`otcolor.bench.pixels.PIXEL_LOSSES`.
PIXEL_LOSSES: tuple[str, ...] = ("ot", "kl", "wgan", "sliced")
#: :data:`otcolor.mnist.latent.GENERATOR_MODELS`.
GENERATOR_MODELS: tuple[str, ...] = ("cmgn", "mmgn", "icnn")
#: :data:`otcolor.mnist.objectives.OBJECTIVES`: the MNIST map's training objectives.
MNIST_OBJECTIVES: tuple[str, ...] = ("semidual", "ot", "sliced", "kl", "wgan")
#: :data:`otcolor.mnist.latent.SPACES`: the MNIST map's latent spaces.
MNIST_SPACES: tuple[str, ...] = ("ae", "pca")

# Limits.

#: :data:`otcolor.fitting.colour.MAX_STEPS`.
MAX_STEPS = 1_000_000
#: :data:`otcolor.mnist.generate.MAX_STEPS` and ``MAX_BATCH``.
MNIST_MAX_STEPS = 100_000
MNIST_MAX_BATCH = 65_536
#: :data:`otcolor.video.MAX_FIT_FRAMES`.
MAX_FIT_FRAMES = 10_000
#: :data:`otcolor.io.DEFAULT_MAX_PIXELS`: Pillow's ``Image.MAX_IMAGE_PIXELS``.
DEFAULT_MAX_PIXELS: int | None = 89_478_485

# Defaults of the settings classes, field by field (the fields the commands offer).

#: :data:`otcolor.fitting.colour.DEFAULT_SMOOTHNESS`.
DEFAULT_SMOOTHNESS: dict[str, float] = {"regrain": 0.3, "pure": 0.6}


@dataclass(frozen=True)
class FitDefaults:
    r""":class:`otcolor.fitting.FitSettings`."""

    model: str = "cmgn"
    loss: str = "ot"
    steps: int | None = None
    samples: int = 1 << 20
    init: str = "gaussian"
    strict: bool = False
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class LookDefaults:
    r""":class:`otcolor.look.LookSettings`; ``regrain``: whether it is on (not ``None``)."""

    space: str = "rgb"
    strength: float = 1.0
    preserve_luminance: bool = False
    regrain: bool = True


@dataclass(frozen=True)
class FileDefaults:
    r""":class:`otcolor.io.settings.FileSettings`."""

    quality: int = 95
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    output_profile: str = "source"


@dataclass(frozen=True)
class PreviewDefaults:
    r""":class:`otcolor.preview.PreviewConfig`."""

    smoothness: tuple[float, ...] = (0.0, 4.0, 16.0)
    regrain: bool = True
    size: int = 320


@dataclass(frozen=True)
class MnistDefaults:
    r""":class:`otcolor.mnist.generate.MnistConfig`."""

    model: str = "cmgn"
    loss: str = "semidual"
    space: str = "ae"
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    samples: int = 10_000
    device: str = "auto"
    seed: int = 0
    latent: int | None = None


FIT = FitDefaults()
LOOK = LookDefaults()
FILES = FileDefaults()
PREVIEW = PreviewDefaults()
MNIST = MnistDefaults()
