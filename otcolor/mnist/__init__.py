r"""MNIST generation with monotone gradient maps (``otcolor mnist``).

:mod:`~otcolor.mnist.data` reads (and downloads) the IDX files, :mod:`~otcolor.mnist.classifier`
holds the small CNN behind the metrics (FID in its feature space, class consistency),
:mod:`~otcolor.mnist.autoencoder` the convolutional autoencoder whose latent space the map works
in, :mod:`~otcolor.mnist.latent` the generator (a monotone map on whitened latent codes, decoded),
:mod:`~otcolor.mnist.potentials` the maps' convex potentials and inverses,
:mod:`~otcolor.mnist.objectives` the objectives that train it, :mod:`~otcolor.mnist.scoring`
and :mod:`~otcolor.mnist.memorisation` score it beside :mod:`~otcolor.mnist.gmm` and the other
references, :mod:`~otcolor.mnist.outputs` writes grids and samples, and
:mod:`~otcolor.mnist.generate` runs it all.
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
