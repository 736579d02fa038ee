r"""Scoring generated digits, and the reference generators scored beside the models.

Every row of ``otcolor mnist``'s table comes from one :class:`Scorer`: the classifier FID,
confidence and class entropy (:mod:`otcolor.mnist.classifier`), the energy distance and sliced
W2 to the test digits in pixel space, and the memorisation check
(:mod:`otcolor.mnist.memorisation`).
"""

from __future__ import annotations

__all__ = [
    "Scorer",
    "autoencoder_references",
    "energy_distance",
    "evaluate_samples",
    "pixel_references",
]

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..metrics import sliced_w2
from .classifier import Classifier, class_consistency, frechet_distance, predict
from .gmm import GaussianMixtureConfig, fit_mixture
from .latent import PIXELS, AutoencoderCodec, PCACodec
from .memorisation import memorisation, nearest_distances

Score = Callable[[Tensor], dict[str, float]]


@torch.no_grad()
def energy_distance(x: Tensor, y: Tensor) -> float:
    r"""Returns the energy distance between two samples, :math:`(N, D)` and :math:`(M, D)`.

    .. math::
        2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|

    with the within-sample means over distinct pairs (unbiased), in float64. Zero exactly
    when the distributions agree (Székely and Rizzo); unlike FID it needs no feature network.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 3, generator=g), torch.randn(500, 3, generator=g)
        >>> abs(energy_distance(a, b)) < 0.05 < energy_distance(a, b + 1)
        True
    """

    x, y = x.double(), y.double()

    def within(a: Tensor) -> Tensor:
        n = a.shape[0]
        return torch.cdist(a, a).sum() / max(n * (n - 1), 1)

    return float(2 * torch.cdist(x, y).mean() - within(x) - within(y))


@dataclasses.dataclass
class Scorer:
    r"""Scores digits against one fixed set of test digits.

    Attributes:
        classifier: the metric classifier.
        test_features: its features of the test digits, :math:`(M, 128)`.
        test_images: the test digits, :math:`(M, 784)`.
        train: the training digits, :math:`(N, 784)`, for the memorisation check.
        subset: how many of each row's samples (and of the test digits) the pixel-space
            checks use: the memorisation search (an exact nearest-neighbour search among the
            60,000 training digits, most of a run's scoring time) and the energy distance.
        test_distances: the first ``subset`` test digits' nearest-training-digit distances.
    """

    classifier: Classifier
    test_features: Tensor
    test_images: Tensor
    train: Tensor
    subset: int
    test_distances: Tensor

    @classmethod
    def build(
        cls, classifier: Classifier, test_images: Tensor, train: Tensor, subset: int = 2000
    ) -> Scorer:
        features, _ = predict(classifier, test_images)
        subset = min(subset, test_images.shape[0])
        distances = nearest_distances(test_images[:subset], train)
        return cls(classifier, features, test_images, train, subset, distances)

    def __call__(self, images: Tensor) -> dict[str, float]:
        return evaluate_samples(
            images,
            self.classifier,
            self.test_features,
            self.test_images.numpy().astype(np.float64),
            self.train,
            self.test_distances,
            self.subset,
        )


def evaluate_samples(
    images: Tensor,
    classifier: Classifier,
    test_features: Tensor,
    test_images: np.ndarray,
    train: Tensor | None = None,
    test_distances: Tensor | None = None,
    subset: int | None = None,
) -> dict[str, float]:
    r"""Scores digits :math:`(N, 784)` in :math:`[0, 1]` against the test set.

    Returns:
        ``fid`` (Fréchet distance in the classifier's feature space), ``confidence`` (mean
        max-softmax probability), ``class_entropy`` (entropy of the predicted-class histogram,
        nats; :math:`\log 10` is balanced), ``sliced_w2`` (pixel space, 256 fixed directions),
        ``energy`` (:func:`energy_distance` in pixel space, on the first ``subset`` samples and
        test digits); with ``train`` and ``test_distances`` (the test digits'
        nearest-training-digit distances) also :func:`~otcolor.mnist.memorisation.memorisation`'s
        ``nn_median``, ``test_nn_median``, ``nn_ratio`` and ``near_copies``, on the first
        ``subset`` samples.
    """

    subset = images.shape[0] if subset is None else subset
    features, probs = predict(classifier, images)
    confidence, entropy = class_consistency(probs)
    copies = (
        memorisation(images[:subset], train, test_distances=test_distances)
        if train is not None and test_distances is not None
        else {}
    )
    return {
        "fid": frechet_distance(features, test_features),
        "confidence": confidence,
        "class_entropy": entropy,
        "sliced_w2": sliced_w2(
            images.numpy().astype(np.float64),
            test_images,
            rng=np.random.default_rng(0),
            n_projections=256,
            n=None,
        ),
        "energy": energy_distance(images[:subset], torch.from_numpy(test_images[:subset])),
        **copies,
    }


def _mixture_draws(
    codes: Tensor, n: int, gmm: GaussianMixtureConfig, seed: int, generator: torch.Generator
) -> Tensor:
    config = dataclasses.replace(gmm, seed=seed, components=min(gmm.components, codes.shape[0]))
    return fit_mixture(codes, config).sample(n, generator).float()


def pixel_references(
    train: Tensor,
    test: Tensor,
    n: int,
    latent: int,
    gmm: GaussianMixtureConfig,
    seed: int,
    score: Score,
) -> dict[str, dict[str, float]]:
    r"""The reference generators of pixel and PCA space, scored like the models.

    ``noise``: every pixel drawn independently from a Gaussian with that pixel's training mean
    and standard deviation (clipped to [0, 1]): right per-pixel statistics, no structure.
    ``gaussian``: the closed-form Gaussian OT map in pixels (the best *affine* monotone map),
    i.e. digits drawn from the Gaussian with the training mean and full covariance.
    ``gmm_pca``: a Gaussian mixture (:mod:`otcolor.mnist.gmm`, 100 full-covariance components
    by default) fitted by EM in the ``latent``-dimensional PCA space, decoded linearly.
    ``pca_reconstructions``: the test digits projected onto that PCA space and back: the floor
    of any generator with a linear decoder of that size.
    """

    from ..gaussian import moments
    from ..nn import sqrtm_psd

    generator = torch.Generator().manual_seed(seed + 11)
    mean, std = train.mean(0), train.std(0)
    noise = (mean + std * torch.randn(n, PIXELS, generator=generator)).clamp(0, 1)
    m, cov = moments(train.double())
    gaussian = (
        (m + torch.randn(n, PIXELS, generator=generator, dtype=torch.float64) @ sqrtm_psd(cov))
        .float()
        .clamp(0, 1)
    )
    pca = PCACodec.fit(train, latent)
    coords = pca.encode(train)
    mixed = pca.decode(_mixture_draws(coords, n, gmm, seed, generator))
    return {
        "noise": score(noise),
        "gaussian": score(gaussian),
        "gmm_pca": score(mixed),
        "pca_reconstructions": score(pca.decode(pca.encode(test[:n]))),
    }


@torch.no_grad()
def autoencoder_references(
    codec: AutoencoderCodec,
    train: Tensor,
    test: Tensor,
    n: int,
    gmm: GaussianMixtureConfig,
    seed: int,
    score: Score,
) -> dict[str, dict[str, float]]:
    r"""The reference generators of the autoencoder's latent space, scored like the models.

    ``ae_reconstructions``: the test digits (never seen by the autoencoder) encoded and
    decoded: the floor of any generator that draws through this decoder.
    ``ae_gaussian``: decoded Gaussian latents matched to the codes' mean and covariance, the
    closed-form Gaussian (affine) OT map in the latent; the monotone maps start near it.
    ``ae_gmm``: a Gaussian mixture (100 full-covariance components by default) fitted by EM
    to the training codes, decoded.
    """

    generator = torch.Generator().manual_seed(seed + 13)
    d = codec.latent_features
    gaussian = codec.decode(torch.randn(n, d, generator=generator))
    mixed = codec.decode(_mixture_draws(codec.encode(train), n, gmm, seed, generator))
    return {
        "ae_reconstructions": score(codec.decode(codec.encode(test[:n]))),
        "ae_gaussian": score(gaussian),
        "ae_gmm": score(mixed),
    }
