r"""Honest MNIST reference rows for issue 14 (not yet part of ``otcolor mnist``).

Scores, on the cached metric classifier, 10,000 draws of a 100-component full-covariance GMM
in the 50-D PCA space of the training digits, the PCA-50 reconstructions of the test digits
(the blur floor of any PCA-50 generator), and the Gaussian (affine) map in PCA-50; with the
memorisation metric on the first 2,000 samples.

    OMP_NUM_THREADS=1 python benchmarks/mnist_references.py /work/shared/data/mnist
"""

import sys
import time

import torch

from otcolor.mnist.classifier import (
    class_consistency,
    frechet_distance,
    load_or_train_classifier,
    predict,
)
from otcolor.mnist.data import cache_dir, load_mnist
from otcolor.mnist.gmm import GaussianMixtureConfig, fit_mixture
from otcolor.mnist.memorisation import memorisation

torch.set_num_threads(1)
data = load_mnist(sys.argv[1], False)
train = torch.from_numpy(data.train_images.reshape(-1, 784))
test = torch.from_numpy(data.test_images.reshape(-1, 784))
clf, _ = load_or_train_classifier(
    train, torch.from_numpy(data.train_labels), data.fingerprint, cache_dir()
)
test_features, _ = predict(clf, test)
mean = train.mean(0)
centred = (train - mean).double()
_, vectors = torch.linalg.eigh(centred.T @ centred / centred.shape[0])
basis = vectors.flip(1)[:, :50].float()  # (784, 50), leading principal directions
codes = (train - mean) @ basis


def score(name: str, images: torch.Tensor) -> None:
    features, probs = predict(clf, images)
    confidence, entropy = class_consistency(probs)
    memo = memorisation(images[:2000], train, test[:2000])
    print(
        f"{name}: fid {frechet_distance(features, test_features):.1f} conf {confidence:.3f} "
        f"entropy {entropy:.3f} nn_ratio {memo['nn_ratio']:.3f} "
        f"near_copies {memo['near_copies']:.3f}",
        flush=True,
    )


began = time.perf_counter()
mixture = fit_mixture(codes, GaussianMixtureConfig(iterations=20))
print(f"gmm fit {time.perf_counter() - began:.0f} s")
draws = mixture.sample(10_000, torch.Generator().manual_seed(0)).float()
score("gmm-100 in pca-50", (draws @ basis.T + mean).clamp(0, 1))
score("pca-50 reconstruction of test", (((test - mean) @ basis) @ basis.T + mean).clamp(0, 1))
gauss = torch.randn(10_000, 50, generator=torch.Generator().manual_seed(0)) * codes.std(0)
score("gaussian map in pca-50", (gauss @ basis.T + mean).clamp(0, 1))
