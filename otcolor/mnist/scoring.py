r"""Scoring generated digits, and the reference generators scored beside the models.

Every row of ``otcolor mnist``'s table comes from :func:`evaluate_samples`: the classifier FID,
confidence and class entropy (:mod:`otcolor.mnist.classifier`), sliced W2 in pixel space and the
memorisation check (:mod:`otcolor.mnist.memorisation`).
"""

from __future__ import annotations

__all__ = ["baselines", "evaluate_samples"]

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..metrics import sliced_w2
from .classifier import Classifier, class_consistency, frechet_distance, predict
from .gmm import GaussianMixtureConfig, fit_mixture
from .latent import PIXELS, pca_basis
from .memorisation import memorisation


def evaluate_samples(
    images: Tensor,
    classifier: Classifier,
    test_features: Tensor,
    test_images: np.ndarray,
    train: Tensor | None = None,
    test_distances: Tensor | None = None,
) -> dict[str, float]:
    r"""Scores digits :math:`(N, 784)` in :math:`[0, 1]` against the test set.

    Returns:
        ``fid`` (Fréchet distance in the classifier's feature space), ``confidence`` (mean
        max-softmax probability), ``class_entropy`` (entropy of the predicted-class histogram,
        nats; :math:`\log 10` is balanced), ``sliced_w2`` (pixel space, 256 fixed directions);
        with ``train`` and ``test_distances`` (the test digits' nearest-training-digit
        distances) also :func:`~otcolor.mnist.memorisation.memorisation`'s ``nn_median``,
        ``test_nn_median``, ``nn_ratio`` and ``near_copies``.
    """

    features, probs = predict(classifier, images)
    confidence, entropy = class_consistency(probs)
    copies = (
        memorisation(images, train, test_distances=test_distances)
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
        **copies,
    }


def baselines(
    train: Tensor,
    n: int,
    latent: int,
    gmm: GaussianMixtureConfig,
    seed: int,
    score: Callable[[Tensor], dict[str, float]],
) -> dict[str, dict[str, float]]:
    r"""Three reference generators scored like the models.

    ``noise``: every pixel drawn independently from a Gaussian with that pixel's training mean
    and standard deviation (clipped to [0, 1]): right per-pixel statistics, no structure.
    ``gaussian``: the closed-form Gaussian OT map (the best *affine* monotone map), i.e. digits
    drawn from the Gaussian with the training mean and full covariance.
    ``gmm_pca``: a Gaussian mixture (:mod:`otcolor.mnist.gmm`, 100 full-covariance components
    by default) fitted by EM in the same PCA space the models use, decoded like them.
    """

    from ..gaussian import moments
    from ..nn import sqrtm_psd

    generator = torch.Generator().manual_seed(seed + 11)
    mean, std = train.mean(0), train.std(0)
    noise = (mean + std * torch.randn(n, PIXELS, generator=generator)).clamp(0, 1)
    m, S = moments(train.double())
    gaussian = (
        (m + torch.randn(n, PIXELS, generator=generator, dtype=torch.float64) @ sqrtm_psd(S))
        .float()
        .clamp(0, 1)
    )
    pca_mean, basis, _ = pca_basis(train, latent)
    coords = (train - pca_mean) @ basis.T  # raw PCA coordinates: EM does not care
    gmm_config = dataclasses.replace(
        gmm, seed=seed, components=min(gmm.components, coords.shape[0])
    )
    mixture = fit_mixture(coords, gmm_config)
    mixed = (mixture.sample(n, generator).float() @ basis + pca_mean).clamp(0, 1)
    return {"noise": score(noise), "gaussian": score(gaussian), "gmm_pca": score(mixed)}
