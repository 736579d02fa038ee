r"""Memorisation check for ``otcolor mnist``: distance from samples to their nearest training digit.

Usage (maps saved with ``otcolor mnist --save-model``; ``init:NAME`` scores an untrained
generator as ``otcolor.mnist.generate.build_generator`` starts it)::

    python benchmarks/mnist_nearest.py --data ../shared/data/mnist map-cmgn.pt init:cmgn

Prints, for 2000 samples, the median and 10th percentile of the L2 distance (pixels in [0, 1])
to the nearest of the 60,000 training digits, beside the same for 2000 real test digits, and the
fraction of samples closer to a training digit than the closest 10 % of test digits are.
"""

from __future__ import annotations

import argparse

import torch

from otcolor.mnist.data import load_mnist
from otcolor.mnist.generate import build_generator, sample
from otcolor.models import build_model


def nearest(a: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [torch.cdist(a[i : i + 500], train).min(1).values for i in range(0, len(a), 500)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="+")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = load_mnist(args.data)
    train = torch.from_numpy(data.train_images.reshape(-1, 784))
    test = torch.from_numpy(data.test_images.reshape(-1, 784))
    reference = nearest(test[:2000], train)
    q10 = reference.quantile(0.1)
    print(f"test digits: median {reference.median():.2f}, q10 {q10:.2f}")
    for spec in args.maps:
        if spec.startswith("init:"):
            model = build_generator(spec[5:], train, 0)
        else:
            saved = torch.load(spec, weights_only=True)
            model = build_model(saved["model"], saved["features"], **saved["kwargs"])
            model.load_state_dict(saved["state_dict"])
        distance = nearest(sample(model.eval(), 2000, 123), train)
        print(
            f"{spec}: median {distance.median():.2f}, q10 {distance.quantile(0.1):.2f}, "
            f"closer than test q10: {(distance < q10).float().mean():.2f}"
        )


if __name__ == "__main__":
    main()
