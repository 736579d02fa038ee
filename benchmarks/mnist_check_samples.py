r"""Audits a samples file written by ``otcolor mnist --samples-out FILE.npy``, on its own.

Nothing of the run is reused: the file is read as plain float32 pixels, and every check compares
it with the MNIST files only.

* memorisation: the median distance from a sample to its nearest training digit over the same
  median for test digits (about 1 for new digits, well below 1 for copies), and the share of
  near-copies (samples nearer a training digit than the 5 % nearest test digits are);
* the energy distance to the test digits in pixel space, beside the same distance for a
  Gaussian-matched sampler (the training digits' mean and full covariance, clipped to [0, 1]);
* the confidence of a freshly trained classifier (a seeded CNN of another shape than the metric
  classifier's: two 3x3 convolutions of 32 and 64 channels, 3 epochs), beside its confidence on
  the test digits, and the entropy of its predicted classes.

Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 python benchmarks/mnist_check_samples.py s.npy --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from otcolor.mnist.classifier import class_consistency
from otcolor.mnist.data import load_mnist
from otcolor.mnist.memorisation import memorisation
from otcolor.mnist.scoring import energy_distance


def _auditor(images: torch.Tensor, labels: torch.Tensor, seed: int = 1) -> nn.Module:
    r"""A small CNN unrelated to the metric classifier: two 3x3 convolutions of 32 and 64
    channels with max-pooling, a 128-unit layer, 10 logits; Adam for 3 epochs."""

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 128):
            idx = order[start : start + 128]
            loss = F.cross_entropy(model(images[idx].reshape(-1, 1, 28, 28)), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def _probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [
            model(images[i : i + 2000].reshape(-1, 1, 28, 28)).softmax(-1)
            for i in range(0, len(images), 2000)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help="the .npy file (N x 784 float32 in [0, 1])")
    parser.add_argument("--data", default=None)
    parser.add_argument("--n", type=int, default=2000, help="samples in the pixel checks")
    args = parser.parse_args()

    samples = torch.from_numpy(np.load(args.samples, allow_pickle=False)).float()
    data = load_mnist(args.data, download_missing=False)
    train = torch.from_numpy(data.train_images.reshape(-1, 784))
    test = torch.from_numpy(data.test_images.reshape(-1, 784))
    generator = torch.Generator().manual_seed(0)
    test_subset = test[torch.randperm(len(test), generator=generator)[: args.n]]
    copies = memorisation(samples[: args.n], train, test_subset)

    mean = train.double().mean(0)
    centred = train.double() - mean
    values, vectors = torch.linalg.eigh(centred.T @ centred / (len(train) - 1))
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    gaussian = mean + torch.randn(args.n, 784, generator=generator, dtype=torch.float64) @ root
    gaussian = gaussian.float().clamp(0, 1)
    energy = energy_distance(samples[: args.n], test_subset)
    energy_gaussian = energy_distance(gaussian, test_subset)

    auditor = _auditor(train, torch.from_numpy(data.train_labels))
    test_probabilities = _probabilities(auditor, test)
    accuracy = float(
        (test_probabilities.argmax(-1) == torch.from_numpy(data.test_labels)).double().mean()
    )
    confidence, entropy = class_consistency(_probabilities(auditor, samples))
    report = {
        "samples": len(samples),
        "nn_ratio": copies["nn_ratio"],
        "near_copies": copies["near_copies"],
        "energy": energy,
        "energy_gaussian": energy_gaussian,
        "energy_ratio": energy / energy_gaussian,
        "auditor_test_accuracy": accuracy,
        "auditor_test_confidence": class_consistency(test_probabilities)[0],
        "auditor_confidence": confidence,
        "auditor_class_entropy": entropy,
        "class_entropy_over_log10": entropy / math.log(10),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
