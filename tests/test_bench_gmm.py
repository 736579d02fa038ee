r"""Tests of the GMM benchmark: the seed's mixtures, the metrics, a short run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otcolor.bench.gmm import GMM_MODELS, GMMBenchConfig, run_gmm, seed_mixtures


def test_seed_mixtures_sample_the_documented_components() -> None:
    source, target = seed_mixtures(std=0.5)
    assert source.means == ((-2.0, 0.0), (2.0, 0.0))
    assert target.means == ((-3.0, 1.0), (0.0, -1.0), (3.0, 1.0))
    y = target.sample(30_000, torch.Generator().manual_seed(0)).double()
    # Equal weights: the target mean is the average of the three means.
    assert torch.allclose(y.mean(0), torch.tensor([0.0, 1 / 3], dtype=torch.float64), atol=0.03)
    x = source.sample(30_000, torch.Generator().manual_seed(0)).double()
    left = x[x[:, 0] < 0]
    assert left.shape[0] / x.shape[0] == pytest.approx(0.5, abs=0.01)
    assert float(left[:, 1].std()) == pytest.approx(0.5, rel=0.03)


def test_short_run_scores_models_and_baselines() -> None:
    config = GMMBenchConfig(steps=15, device="cpu", train_samples=2000, eval_samples=300)
    report = run_gmm(["cmgn", "mmgn"], "sliced", config)
    assert [(r.model, r.loss) for r in report.results] == [("cmgn", "sliced"), ("mmgn", "sliced")]
    baselines = {r.model: r.metrics for r in report.baselines}
    # The identity moves nothing: zero transport cost, far from the target.
    assert baselines["identity"]["cost_ratio"] == 0.0
    assert baselines["identity"]["w2_ratio"] > 1.5
    # The Gaussian map matches the first two moments: closer than the identity, not perfect.
    assert 1 < baselines["bures"]["w2_ratio"] < baselines["identity"]["w2_ratio"]
    for result in report.results:
        assert np.isfinite(result.metrics["w2_ratio"]) and result.metrics["cost_ratio"] > 0
        assert result.settings["init"].startswith("identity")
        # The record names the architecture and the steps it really ran with.
        assert result.settings["model"] == GMM_MODELS[result.model]
        assert result.settings["steps"] == 15
    assert report.samples["mapped"][("cmgn", "sliced")].shape == (300, 2)
