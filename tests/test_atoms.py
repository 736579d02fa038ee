r"""Tests of otcolor.atoms: weights are pixel counts, moments are kept, the budget holds."""

import numpy as np
import torch

from otcolor.fitting.atoms import source_atoms, target_atoms


def _pixels(seed: int = 0, n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.beta(2, 5, (n, 3))
    x[: n // 4] = [0.0, 0.0, 0.0]  # a flat black background: one colour, many pixels
    return np.round(x * 255) / 255


def test_target_atoms_keep_every_8_bit_colour_and_its_count() -> None:
    x = _pixels()
    atoms = target_atoms(x)
    distinct, counts = np.unique(x, axis=0, return_counts=True)
    assert len(atoms) == distinct.shape[0]
    assert torch.isclose(atoms.weights.sum(), torch.tensor(1.0, dtype=atoms.weights.dtype))
    assert np.isclose(atoms.weights.max().item(), counts.max() / x.shape[0])
    mean, cov = atoms.moments()
    assert np.allclose(mean.numpy(), x.mean(0), atol=1e-6)
    assert np.allclose(cov.numpy(), np.cov(x.T, bias=True), atol=1e-6)


def test_source_atoms_hold_the_budget_and_the_frequent_colours() -> None:
    x = _pixels()
    atoms = source_atoms(x, 500)
    assert len(atoms) <= 500
    assert torch.isclose(atoms.weights.sum(), torch.tensor(1.0, dtype=atoms.weights.dtype))
    # The black background is one exact atom with its whole weight, not spread over cells.
    black = (atoms.points.abs().sum(-1) == 0).nonzero().flatten()
    assert black.numel() == 1 and np.isclose(atoms.weights[black].item(), 0.25)
    # Representatives are real pixels and the weighted mean is close to the pixels' mean.
    mean, _ = atoms.moments()
    assert np.abs(mean.numpy() - x.mean(0)).max() < 0.01
    rows = {tuple(p) for p in np.float32(x)}
    assert all(tuple(p) in rows for p in atoms.points.numpy())


def test_source_atoms_depend_on_the_pixels_not_their_order() -> None:
    # No seed and no order: the same set of pixels gives the same atoms (the estimate must not
    # move with --seed or with how the pixels were sampled).
    x = _pixels(1)
    a = source_atoms(x, 300)
    b = source_atoms(x[np.random.default_rng(3).permutation(len(x))], 300)

    def rows(atoms):  # sorted (colour, weight) rows
        table = np.c_[atoms.points.numpy(), atoms.weights.numpy()]
        return table[np.lexsort(table.T[::-1])]

    assert np.array_equal(rows(a), rows(b))
    assert len(a) > 100
