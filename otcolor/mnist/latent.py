r"""The generator: a monotone map in whitened PCA coordinates, decoded to pixels.

W2GN / AE-OT style: the digits are written in their top-:math:`d` PCA coordinates, whitened
(:math:`c = \Lambda^{-1/2} U^\top (x - \mu)`, :math:`U \in \mathbb{R}^{784 \times d}` the
leading eigenvectors of the training covariance), and a monotone map :math:`T = \nabla\varphi`
(C-MGN, M-MGN or ICNN, :math:`\mathbb{R}^d \to \mathbb{R}^d`) pushes a standard Gaussian latent
:math:`z \sim \mathcal{N}(0, I_d)` onto the distribution of :math:`c`; a digit is
:math:`\mu + U \Lambda^{1/2} T(z)`, clipped to :math:`[0, 1]`. By Brenier's theorem the
monotone map between the two is the optimal transport map. The map starts at the closed-form
Gaussian (Bures) map, here the identity. Nothing in the model is copied from an individual
training digit: :math:`\mu`, :math:`U` and :math:`\Lambda` are moments of all of them.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_MODELS",
    "PIXELS",
    "LatentGenerator",
    "build_generator",
    "pca_basis",
    "sample",
]

import torch
from torch import Tensor

from ..models import GradientMap, build_model

PIXELS = 28 * 28

#: The architectures at the size used in the PCA latent (``latent`` coordinates).
GENERATOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 512, "layers": 2, "activation": "sigmoid"},
    "mmgn": {"hidden_features": 64, "modules": 16},
    "icnn": {"hidden_features": (512, 64), "activation": "softplus"},
}


def pca_basis(data: Tensor, latent: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Returns the mean digit :math:`\mu` :math:`(784,)`, the leading ``latent`` principal
    directions :math:`U^\top` :math:`(d, 784)` (orthonormal rows) and their variances
    :math:`\lambda` :math:`(d,)`, from the covariance of all of ``data`` :math:`(N, 784)`.

    Closed form (an eigendecomposition of a :math:`784 \times 784` matrix, float64): each
    direction is a weighted sum over every training digit, none is a digit.
    """

    x = data.double()
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(x.shape[0] - 1, 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    order = values.flip(0)[:latent].clamp(min=1e-12)
    basis = vectors.flip(1)[:, :latent].T.contiguous()
    return mean.float(), basis.float(), order.float()


class LatentGenerator(torch.nn.Module):
    r"""A monotone map in whitened PCA coordinates, decoded to pixels.

    .. math::
        G(z) = \mu + U \Lambda^{1/2}\, T(z), \quad z \in \mathbb{R}^d, \;
        T = \nabla\varphi : \mathbb{R}^d \to \mathbb{R}^d

    with :math:`U \in \mathbb{R}^{784 \times d}` orthonormal and :math:`\Lambda` the PCA
    variances. The map works on coordinates of unit variance because the digits' variances span
    two decades: in raw coordinates Adam's steps (about ``lr`` per weight) were too large for the
    leading directions and too small (below its :math:`\epsilon`) for the rest. :math:`\mu`,
    :math:`U` and :math:`\Lambda^{1/2}` are fixed buffers; only :attr:`map` trains.

    Arguments:
        transport: :math:`T`, a :class:`~otcolor.models.GradientMap` on :math:`d` features.
        mean: :math:`\mu`, :math:`(784,)`.
        basis: :math:`U^\top`, :math:`(d, 784)`.
        scale: :math:`\mathrm{diag}(\Lambda^{1/2})`, :math:`(d,)`.
    """

    def __init__(self, transport: GradientMap, mean: Tensor, basis: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.map = transport
        self.register_buffer("mean", mean.clone())
        self.register_buffer("basis", basis.clone())
        self.register_buffer("scale", scale.clone())

    @property
    def latent_features(self) -> int:
        return int(self.basis.shape[0])

    def encode(self, x: Tensor) -> Tensor:
        r"""Whitened PCA coordinates :math:`\Lambda^{-1/2} U^\top (x - \mu)`,
        :math:`(N, 784) \to (N, d)`."""

        return (x - self.mean) @ self.basis.T / self.scale

    def decode(self, c: Tensor) -> Tensor:
        r""":math:`\mu + U \Lambda^{1/2} c`, :math:`(N, d) \to (N, 784)` (not clipped)."""

        return (c * self.scale) @ self.basis + self.mean

    def forward(self, z: Tensor) -> Tensor:
        r""":math:`G(z)`, :math:`(N, d) \to (N, 784)` (not clipped)."""

        return self.decode(self.map(z))


def build_generator(
    name: str,
    data: Tensor,
    seed: int = 0,
    latent: int = 50,
    nonlinear_scale: float = 0.5,
) -> LatentGenerator:
    r"""Returns the map ``name`` in the ``latent``-dimensional PCA space of ``data``, started at
    the closed-form Gaussian OT map.

    The whitened PCA coordinates of the digits have mean 0 and covariance :math:`I_d`, so the
    Brenier map from :math:`\mathcal{N}(0, I_d)` to the Gaussian with those moments is the
    identity (decoded: :math:`z \mapsto \mu + U \Lambda^{1/2} z`). The map starts there via
    :meth:`~otcolor.models.GradientMap.init_linear`, its nonlinear part randomly initialised
    (seeded) and shrunk to ``nonlinear_scale`` of that slope so that training has gradients to
    follow. Nothing is copied from a training digit.

    Arguments:
        name: a key of :data:`GENERATOR_MODELS`.
        data: training digits, with shape :math:`(N, 784)` in :math:`[0, 1]`.
        seed: seeds the nonlinear part's initialisation.
        latent: :math:`d`.
        nonlinear_scale: see :meth:`~otcolor.models.GradientMap.init_linear`.
    """

    mean, basis, variances = pca_basis(data, latent)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transport = build_model(name, basis.shape[0], **GENERATOR_MODELS[name])
    d = basis.shape[0]
    transport.init_linear(torch.eye(d), torch.zeros(d), nonlinear_scale=nonlinear_scale)
    return LatentGenerator(transport, mean, basis, variances.sqrt())


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    n: int,
    seed: int,
    device: torch.device | str = "cpu",
    chunk: int = 2000,
) -> Tensor:
    r"""Returns ``n`` digits :math:`G(z)`, :math:`z \sim \mathcal{N}(0, I_d)` from a seeded
    CPU generator (so a seed gives the same latents on every device), clipped to
    :math:`[0, 1]`, with shape :math:`(n, 784)`, on the CPU. ``d`` is the model's
    ``latent_features`` (784 for a pixel-space map)."""

    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, getattr(model, "latent_features", PIXELS), generator=generator)
    out = [model(latents[i : i + chunk].to(device)).clamp(0, 1).cpu() for i in range(0, n, chunk)]
    return torch.cat(out)
