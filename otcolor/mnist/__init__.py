r"""MNIST generation with monotone gradient maps (``otcolor mnist``).

:mod:`~otcolor.mnist.data` reads (and downloads) the IDX files, :mod:`~otcolor.mnist.classifier`
holds the small CNN behind the metrics (FID in its feature space, class consistency), and
:mod:`~otcolor.mnist.generate` trains, samples, scores and saves.
"""

from __future__ import annotations

__all__ = [
    "MnistConfig",
    "MnistData",
    "MnistResult",
    "load_mnist",
    "read_idx",
    "run_mnist",
]

from .data import MnistData, load_mnist, read_idx
from .generate import MnistConfig, MnistResult, run_mnist
