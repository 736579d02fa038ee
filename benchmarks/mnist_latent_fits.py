r"""Latent fits for ``otcolor mnist`` compared on the project's own metrics (issue 14).

Each variant trains the default generator (:func:`otcolor.mnist.latent.build_generator`, a map
:math:`T` in whitened PCA coordinates started at the Gaussian map) and scores ``--n`` samples
against as many test digits with :func:`otcolor.mnist.scoring.evaluate_samples` (FID,
confidence, class entropy, NN ratio, near-copies; FID is biased upwards for small ``--n``, so
compare rows of one ``--n`` only). One JSON line per run is appended to ``--log``.

Fits (``--fit``):

* ``pairs``: exact-OT regression. Each round draws ``--pairs`` latents :math:`z` and as many
  codes :math:`c`, solves the assignment :math:`\sigma` minimising
  :math:`\sum_i \|w \odot (s_i - c_{\sigma(i)})\|^2` with :math:`s = z` (``--pair z``, the
  minibatch estimate of the Brenier coupling) or :math:`s = T(z)` (``--pair T``, the gradient of
  the minibatch :math:`W_2^2`), and takes ``--inner`` Adam steps on
  :math:`\|T(z_i) - c_{\sigma(i)}\|^2`; :math:`w = \Lambda^{p/2}` (``--power p``) weighs the
  cost by the PCA scale (:math:`p = 0`: whitened).
* ``semidiscrete``: the AE-OT teacher. Averaged stochastic ascent on the dual
  :math:`\max_h \mathbb{E}_z \min_j (\tfrac12\|z - c_j\|^2 - h_j) + \tfrac1M \sum_j h_j` over
  ``--codes`` codes gives the semi-discrete Brenier map :math:`z \mapsto c_{j(z)}` (a lookup of
  training codes, scored as a memorisation reference, never stored); :math:`T` regresses it.
* ``sliced`` / ``wgan``: :func:`otcolor.fitting.trainers.train_adam` with that loss of
  :mod:`otcolor.losses` on the codes scaled by :math:`\Lambda^{p/2}`.

Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 python benchmarks/mnist_latent_fits.py --data DIR --fit pairs --pair z
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from otcolor.fitting.trainers import AdamConfig, train_adam
from otcolor.losses import SlicedW2, WassersteinGP
from otcolor.mnist.classifier import ClassifierConfig, load_or_train_classifier, predict
from otcolor.mnist.data import cache_dir, load_mnist
from otcolor.mnist.latent import GENERATOR_MODELS, build_generator, sample
from otcolor.mnist.memorisation import nearest_distances
from otcolor.mnist.scoring import evaluate_samples


def _cosine(step: int, total: int, lr: float) -> float:
    warm = max(total // 20, 1)  # Adam's first steps move every weight by ~lr: ramp up
    if step <= warm:
        return lr * step / warm
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm))))


def _assign(source: Tensor, target: Tensor) -> Tensor:
    cost = torch.cdist(source.double(), target.double()).square().numpy()
    return torch.from_numpy(linear_sum_assignment(cost)[1])


def fit_pairs(
    map_: torch.nn.Module, codes: Tensor, weight: Tensor, args: argparse.Namespace
) -> None:
    g = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(map_.parameters(), lr=args.lr)
    total, step = args.rounds * args.inner, 0
    for _ in range(args.rounds):
        z = torch.randn(args.pairs, codes.shape[1], generator=g)
        c = codes[torch.randperm(codes.shape[0], generator=g)[: args.pairs]]
        with torch.no_grad():
            source = z if args.pair == "z" else map_(z)
        target = c[_assign(source * weight, c * weight)]
        for _ in range(args.inner):
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = _cosine(step, total, args.lr)
            rows = torch.randint(args.pairs, (args.batch,), generator=g)
            loss = (map_(z[rows]) - target[rows]).square().sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def fit_semidiscrete(
    map_: torch.nn.Module, codes: Tensor, args: argparse.Namespace
) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    y = codes[torch.randperm(codes.shape[0], generator=g)[: args.codes]]
    half_sq = y.square().sum(1) / 2
    h, h_bar = torch.zeros(len(y)), torch.zeros(len(y))

    def cell(z: Tensor, dual: Tensor) -> Tensor:
        return (z @ y.T - half_sq + dual).argmax(1)  # argmin_j |z - y_j|^2 / 2 - h_j

    for it in range(1, args.dual + 1):
        z = torch.randn(args.pairs, y.shape[1], generator=g)
        mass = torch.bincount(cell(z, h), minlength=len(y)).float() / args.pairs
        h += args.dual_lr / math.sqrt(it) * (1.0 / len(y) - mass) * len(y)
        h_bar += (h - h_bar) / it  # averaged SGD: the last iterate is too noisy
    optimizer = torch.optim.Adam(map_.parameters(), lr=args.lr)
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = _cosine(step, args.steps, args.lr)
        z = torch.randn(args.batch, y.shape[1], generator=g)
        with torch.no_grad():
            target = y[cell(z, h_bar)]
        loss = (map_(z) - target).square().sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return y, h_bar


class _Scaled(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, weight: Tensor) -> None:
        super().__init__()
        self.inner, self.weight = inner, weight

    def forward(self, z: Tensor) -> Tensor:
        return self.inner(z) * self.weight


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--fit", choices=["pairs", "semidiscrete", "sliced", "wgan"], default="pairs")
    p.add_argument("--model", choices=sorted(GENERATOR_MODELS), default="cmgn")
    p.add_argument("--latent", type=int, default=50)
    p.add_argument("--pair", choices=["z", "T"], default="z")
    p.add_argument("--power", type=float, default=0.0)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--inner", type=int, default=20)
    p.add_argument("--pairs", type=int, default=2048)
    p.add_argument("--codes", type=int, default=10_000)
    p.add_argument("--dual", type=int, default=600)
    p.add_argument("--dual-lr", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--critic-lr", type=float, default=1e-3)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--log", type=Path, default=Path("mnist-latent-fits.jsonl"))
    args = p.parse_args(argv)

    data = load_mnist(args.data, False)
    train = torch.from_numpy(data.train_images.reshape(-1, 784))
    test = torch.from_numpy(data.test_images.reshape(-1, 784))
    labels = torch.from_numpy(data.train_labels)
    classifier, _ = load_or_train_classifier(
        train, labels, data.fingerprint, cache_dir(), ClassifierConfig()
    )
    test = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(7))[: args.n]]
    test_features, _ = predict(classifier, test)
    test_nn = nearest_distances(test, train)
    test_np = test.numpy().astype(np.float64)

    def score(images: Tensor) -> dict[str, float]:
        return evaluate_samples(images, classifier, test_features, test_np, train, test_nn)

    model = build_generator(args.model, train, 0, args.latent)
    codes = model.encode(train).detach()
    weight = model.scale**args.power
    start = score(sample(model, args.n, 3))
    began = time.perf_counter()
    extra: dict[str, object] = {}
    if args.fit == "pairs":
        fit_pairs(model.map, codes, weight, args)
    elif args.fit == "semidiscrete":
        y, h = fit_semidiscrete(model.map, codes, args)
        z = torch.randn(args.n, args.latent, generator=torch.Generator().manual_seed(3))
        lookup = y[(z @ y.T - y.square().sum(1) / 2 + h).argmax(1)]
        extra["lookup"] = score(model.decode(lookup).clamp(0, 1))
    else:
        g = torch.Generator().manual_seed(1)
        loss = (
            SlicedW2(64, generator=g, reference=codes * weight)
            if args.fit == "sliced"
            else WassersteinGP(args.latent, lr=args.critic_lr, generator=g)
        )
        latents = torch.randn(len(codes), args.latent, generator=torch.Generator().manual_seed(2))
        config = AdamConfig(steps=args.steps, batch_size=args.batch, lr=args.lr)
        train_adam(_Scaled(model.map, weight), loss, latents, codes * weight, config)
    seconds = time.perf_counter() - began
    final = score(sample(model, args.n, 3))
    row = {"args": {k: str(v) for k, v in vars(args).items()}, "start": start, "final": final}
    row.update(train_seconds=seconds, **extra)
    with args.log.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
