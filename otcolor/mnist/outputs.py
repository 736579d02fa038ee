r"""What ``otcolor mnist`` writes: the sample grid, the saved map and the samples."""

from __future__ import annotations

__all__ = ["grid_image", "output_paths", "save_model", "save_samples"]

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from ..io import write_atomically
from .classifier import atomic_torch_save
from .latent import GENERATOR_MODELS, PIXELS, LatentGenerator


def grid_image(images: Tensor, rows: int = 8, pad: int = 2) -> np.ndarray:
    r"""Tiles the first ``rows²`` digits :math:`(N, 784)` into an RGB image :math:`(H, W, 3)`
    in :math:`[0, 1]`, white digits on black with grey gutters."""

    n = rows * rows
    tiles = images[:n].reshape(-1, 28, 28).numpy()
    size = rows * 28 + (rows + 1) * pad
    grid = np.full((size, size), 0.3, dtype=np.float32)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, rows)
        top, left = pad + r * (28 + pad), pad + c * (28 + pad)
        grid[top : top + 28, left : left + 28] = tile
    return np.repeat(grid[:, :, None], 3, axis=2)


def output_paths(output: Path, models: list[str]) -> list[Path]:
    if len(models) == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{name}{output.suffix}") for name in models]


def save_model(
    path: Path, model: LatentGenerator, name: str, space: str, overwrite: bool = True
) -> None:
    r"""Saves the generator: a ``torch.save`` dict with the map's name and constructor
    arguments, the latent space (``ae`` or ``pca``) and its dimension, and the ``state_dict``
    (``map.*``, and ``codec.*``: the decoder's weights and the whitening)."""

    payload = {
        "model": name,
        "kwargs": GENERATOR_MODELS[name],
        "space": space,
        "features": model.latent_features,
        "pixels": PIXELS,
        "state_dict": model.state_dict(),
    }
    atomic_torch_save(payload, path, overwrite)


def save_samples(path: str | os.PathLike[str], images: Tensor, overwrite: bool = True) -> None:
    r"""Writes ``images`` :math:`(N, 784)` as a float32 ``.npy`` file, atomically."""

    array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
    write_atomically(path, lambda f: np.save(f, array, allow_pickle=False), overwrite)
