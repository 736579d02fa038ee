r"""One latent-map training of ``otcolor mnist`` with its settings exposed, scored along the way.

The measurements behind the defaults in docs/mnist.md: the autoencoder's latent dimension and
code noise, the objective, the learning rate, the C-MGN's width and steepness and the start's
nonlinear share. Each run prints one line per checkpoint (FID, confidence and class entropy on
``--n`` samples against as many test digits, on the cached metric classifier) and, with
``--check``, the memorisation and energy checks on 2,000 of them; then one JSON line.

Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 python benchmarks/mnist_sweep.py --data ../shared/data/mnist \
        --loss semidual --steps 1000
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from otcolor.mnist.autoencoder import AutoencoderConfig, load_or_train_autoencoder
from otcolor.mnist.classifier import (
    class_consistency,
    frechet_distance,
    load_or_train_classifier,
    predict,
)
from otcolor.mnist.data import cache_dir, load_mnist
from otcolor.mnist.latent import (
    GENERATOR_MODELS,
    AutoencoderCodec,
    LatentGenerator,
    PCACodec,
    nonlinear_start,
    sample,
)
from otcolor.mnist.objectives import (
    DEFAULT_LR,
    DEFAULT_STEPS,
    OBJECTIVES,
    LatentTrainingConfig,
    build_objective,
    train_map,
)
from otcolor.mnist.scoring import Scorer
from otcolor.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--space", choices=["ae", "pca"], default="ae")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--ae-epochs", type=int, default=AutoencoderConfig.epochs)
    parser.add_argument("--ae-noise", type=float, default=AutoencoderConfig.code_noise)
    parser.add_argument("--ae-channels", type=int, default=AutoencoderConfig.channels)
    parser.add_argument("--model", choices=list(GENERATOR_MODELS), default="cmgn")
    parser.add_argument("--loss", choices=list(OBJECTIVES), default="semidual")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--hidden", type=int, default=None, help="C-MGN width")
    parser.add_argument("--layers", type=int, default=None, help="C-MGN layers")
    parser.add_argument("--steepness", type=float, default=None, help="C-MGN steepness")
    parser.add_argument("--share", type=float, default=0.5, help="the start's nonlinear share")
    parser.add_argument("--unwhitened", type=int, choices=[0, 1], default=None)
    parser.add_argument("--critic-hidden", type=int, default=None)
    parser.add_argument("--critic-lr", type=float, default=None)
    parser.add_argument("--critic-steps", type=int, default=None)
    parser.add_argument("--projections", type=int, default=None, help="sliced: per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=10_000, help="samples scored")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--check", action="store_true", help="memorisation and energy too")
    args = parser.parse_args()

    began = time.perf_counter()
    data = load_mnist(args.data, download_missing=False)
    train = torch.from_numpy(data.train_images.reshape(-1, 784))
    test = torch.from_numpy(data.test_images.reshape(-1, 784))
    classifier, _ = load_or_train_classifier(
        train, torch.from_numpy(data.train_labels), data.fingerprint, cache_dir()
    )
    test_eval = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(7))]
    test_eval = test_eval[: args.n]
    test_features, _ = predict(classifier, test_eval)
    scorer = Scorer.build(classifier, test_eval, train) if args.check else None
    if args.space == "ae":
        config = AutoencoderConfig(
            latent=args.latent,
            channels=args.ae_channels,
            epochs=args.ae_epochs,
            code_noise=args.ae_noise,
            seed=args.seed,
        )
        t = time.perf_counter()
        autoencoder, trained = load_or_train_autoencoder(
            train, data.fingerprint, cache_dir(), config
        )
        print(f"autoencoder: {time.perf_counter() - t:.0f} s (trained now: {trained})", flush=True)
        codec: AutoencoderCodec | PCACodec = AutoencoderCodec.fit(autoencoder, train)
    else:
        codec = PCACodec.fit(train, args.latent)

    def score(model: torch.nn.Module, tag: str) -> dict[str, float]:
        images = sample(model, args.n, args.seed + 3)
        features, probs = predict(classifier, images)
        confidence, entropy = class_consistency(probs)
        row = {
            "fid": frechet_distance(features, test_features),
            "confidence": confidence,
            "class_entropy": entropy,
        }
        if scorer is not None:
            full = scorer(images)
            row |= {k: full[k] for k in ("energy", "nn_ratio", "near_copies")}
        print(f"{tag:>12}: " + " ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
        return row

    kwargs = dict(GENERATOR_MODELS[args.model])
    for key, value in (
        ("hidden_features", args.hidden),
        ("layers", args.layers),
        ("steepness", args.steepness),
    ):
        if value is not None:
            kwargs[key] = value
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        transport = build_model(args.model, codec.latent_features, **kwargs)
    nonlinear_start(transport, args.seed, args.share)
    model = LatentGenerator(transport, codec)
    with torch.no_grad():
        codes = codec.encode(train)
    options = {
        key: value
        for key, value in (
            ("hidden_features", args.critic_hidden),
            ("lr", args.critic_lr),
            ("critic_steps", args.critic_steps),
            ("projections", args.projections),
        )
        if value is not None
    }
    objective = build_objective(
        args.loss,
        codes,
        codec.unwhitening,
        args.seed,
        unwhitened=None if args.unwhitened is None else bool(args.unwhitened),
        **options,
    )
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.loss]
    steps, batch = DEFAULT_STEPS.get(args.loss, (1000, 1024))
    args.steps = steps if args.steps is None else args.steps
    args.batch = batch if args.batch is None else args.batch
    rows = {"start": score(model, "start")}
    every = max(args.steps // args.checkpoints, 1)

    def checkpoint(step: int, loss: float) -> None:
        # Scored inside the run, so the schedule is the one a plain run follows.
        if step % every == 0 or step == args.steps:
            rows[f"step {step}"] = score(model, f"step {step}")

    config = LatentTrainingConfig(steps=args.steps, batch_size=args.batch, lr=lr, seed=args.seed)
    t = time.perf_counter()
    train_map(transport, objective, codes.shape[0], config, checkpoint)
    seconds = time.perf_counter() - t  # scoring included
    print(
        json.dumps(
            {
                "args": vars(args),
                "lr": lr,
                "train_seconds": seconds,
                "seconds": time.perf_counter() - began,
                "rows": rows,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
