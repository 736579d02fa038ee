r"""The generator: a monotone map :math:`T = \nabla\varphi` from a standard Gaussian onto the
whitened codes of a latent space, decoded to pixels.

Two latent spaces (:data:`SPACES`), each a *codec* between pixels and whitened codes
:math:`c \in \mathbb{R}^d` of mean 0 and covariance :math:`I_d` over the training digits:

* ``ae`` (default): the codes of a small convolutional autoencoder
  (:mod:`otcolor.mnist.autoencoder`), whitened, :math:`c = S^{-1/2}(E(x) - m)`; a digit is
  :math:`D(m + S^{1/2} c)`, a *nonlinear* decoder (W2GN, Korotin et al. ICLR 2021);
* ``pca``: the seed's literal setting, the top-:math:`d` PCA coordinates, whitened,
  :math:`c = \Lambda^{-1/2} U^\top (x - \mu)`; a digit is :math:`\mu + U \Lambda^{1/2} c`,
  clipped to :math:`[0, 1]`: a *linear* decoder, under which every in-between code is an
  overlay of two digits.

The map starts near the closed-form Gaussian (Bures) map, the identity in whitened
coordinates, with a nonlinear part large enough to move (:func:`nonlinear_start`). Nothing in
the generator is copied from an individual training digit: the whitening and PCA are moments
of all of them, and the autoencoder is trained by gradient descent on all of them.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_MODELS",
    "PIXELS",
    "SPACES",
    "AutoencoderCodec",
    "LatentGenerator",
    "PCACodec",
    "build_generator",
    "nonlinear_start",
    "pca_basis",
    "sample",
]

import math

import torch
from torch import Tensor, nn

from ..models import CMGN, GradientMap, build_model
from .autoencoder import ConvAutoencoder
from .potentials import jacobian, ridge_slopes

PIXELS = 28 * 28

#: The latent spaces, and their default dimension :math:`d`.
SPACES: dict[str, int] = {"ae": 16, "pca": 50}

#: The architectures of :math:`T` (see docs/mnist.md for how they were chosen). The C-MGN is
#: one layer of steep sigmoid ridges: each hidden unit :math:`h` adds a step of height
#: :math:`\|w_h\|` across the hyperplane :math:`w_h^\top z = -b_h`, which is what a map from one
#: Gaussian onto clustered codes needs (the exact map jumps between clusters).
GENERATOR_MODELS: dict[str, dict[str, object]] = {
    "cmgn": {"hidden_features": 512, "layers": 1, "activation": "sigmoid", "steepness": 16.0},
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


class PCACodec(nn.Module):
    r"""Whitened PCA coordinates: a linear codec.

    .. math::
        c = \Lambda^{-1/2} U^\top (x - \mu), \qquad x = \mu + U \Lambda^{1/2} c

    The map works on coordinates of unit variance because the digits' variances span two
    decades: in raw coordinates Adam's steps (about ``lr`` per weight) were too large for the
    leading directions and too small for the rest.

    Arguments:
        mean: :math:`\mu`, :math:`(784,)`.
        basis: :math:`U^\top`, :math:`(d, 784)`.
        scale: :math:`\mathrm{diag}(\Lambda^{1/2})`, :math:`(d,)`.
    """

    def __init__(self, mean: Tensor, basis: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("basis", basis.clone())
        self.register_buffer("scale", scale.clone())

    @classmethod
    def fit(cls, data: Tensor, latent: int) -> PCACodec:
        r"""The codec of the top ``latent`` PCA coordinates of ``data`` :math:`(N, 784)`."""

        mean, basis, variances = pca_basis(data, latent)
        return cls(mean, basis, variances.sqrt())

    @property
    def latent_features(self) -> int:
        return int(self.basis.shape[0])

    @property
    def unwhitening(self) -> Tensor:
        r""":math:`\Lambda^{1/2}`, :math:`(d, d)`: whitened codes times it are raw PCA
        coordinates, whose distances are pixel distances (up to the discarded tail)."""

        return torch.diag(self.scale)

    def encode(self, x: Tensor) -> Tensor:
        r""":math:`(N, 784) \to (N, d)`."""

        return (x - self.mean) @ self.basis.T / self.scale

    def decode(self, c: Tensor) -> Tensor:
        r""":math:`(N, d) \to (N, 784)`, clipped to :math:`[0, 1]`."""

        return ((c * self.scale) @ self.basis + self.mean).clamp(0, 1)


class AutoencoderCodec(nn.Module):
    r"""Whitened autoencoder codes: a nonlinear codec.

    .. math::
        c = S^{-1/2}\big(E(x) - m\big), \qquad x = D\big(m + S^{1/2} c\big)

    with :math:`m, S` the mean and covariance of the training codes, :math:`S^{\pm 1/2}` their
    symmetric square roots.

    Arguments:
        autoencoder: :math:`E` and :math:`D`.
        mean: :math:`m`, :math:`(d,)`.
        covariance: :math:`S`, :math:`(d, d)`, positive definite.
    """

    def __init__(self, autoencoder: ConvAutoencoder, mean: Tensor, covariance: Tensor) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        values, vectors = torch.linalg.eigh(covariance.double())
        values = values.clamp(min=1e-12 * float(values.max()))
        self.register_buffer("mean", mean.clone().float())
        self.register_buffer("root", ((vectors * values.sqrt()) @ vectors.T).float())
        self.register_buffer("inverse_root", ((vectors / values.sqrt()) @ vectors.T).float())

    @classmethod
    @torch.no_grad()
    def fit(
        cls, autoencoder: ConvAutoencoder, data: Tensor, chunk: int = 5000
    ) -> AutoencoderCodec:
        r"""The codec whitening the codes of ``data`` :math:`(N, 784)`."""

        codes = torch.cat(
            [autoencoder.encode(data[i : i + chunk]) for i in range(0, len(data), chunk)]
        )
        codes = codes.double()
        return cls(autoencoder, codes.mean(0), torch.cov(codes.T).reshape(codes.shape[1], -1))

    @property
    def latent_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def unwhitening(self) -> Tensor:
        r""":math:`S^{1/2}`, :math:`(d, d)`: whitened codes times it are the autoencoder's own
        codes, less their mean."""

        return self.root

    def encode(self, x: Tensor, chunk: int = 5000) -> Tensor:
        r""":math:`(N, 784) \to (N, d)`."""

        codes = torch.cat(
            [self.autoencoder.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        )
        return (codes - self.mean) @ self.inverse_root

    def decode(self, c: Tensor) -> Tensor:
        r""":math:`(N, d) \to (N, 784)`, in :math:`[0, 1]`."""

        return self.autoencoder.decode(c @ self.root + self.mean)


class LatentGenerator(nn.Module):
    r"""A monotone map in a whitened latent space, decoded to pixels.

    .. math::
        G(z) = \mathrm{decode}\big(T(z)\big), \quad z \sim \mathcal{N}(0, I_d), \;
        T = \nabla\varphi : \mathbb{R}^d \to \mathbb{R}^d

    Only :attr:`map` trains; the codec is fixed.

    Arguments:
        transport: :math:`T`, a :class:`~otcolor.models.GradientMap` on :math:`d` features.
        codec: a :class:`PCACodec` or :class:`AutoencoderCodec`.
    """

    def __init__(self, transport: GradientMap, codec: PCACodec | AutoencoderCodec) -> None:
        super().__init__()
        self.map = transport
        self.codec = codec.requires_grad_(False)

    @property
    def latent_features(self) -> int:
        return self.codec.latent_features

    def encode(self, x: Tensor) -> Tensor:
        r"""Whitened codes of digits, :math:`(N, 784) \to (N, d)`."""

        return self.codec.encode(x)

    def decode(self, c: Tensor) -> Tensor:
        r"""Digits of whitened codes, :math:`(N, d) \to (N, 784)` in :math:`[0, 1]`."""

        return self.codec.decode(c)

    def forward(self, z: Tensor) -> Tensor:
        r""":math:`G(z)`, :math:`(N, d) \to (N, 784)` in :math:`[0, 1]`."""

        return self.decode(self.map(z))


@torch.no_grad()
def nonlinear_start(
    model: GradientMap,
    seed: int = 0,
    nonlinear_share: float = 0.5,
    offsets: float = 0.375,
    samples: int = 2048,
) -> None:
    r"""Starts ``model`` near the identity, the Gaussian map in whitened coordinates, with a
    nonlinear part that can move.

    A near-linear start stays linear: with small pre-activations every sigmoid of a C-MGN works
    in its linear range, the map's nonlinear part is a second linear map, and no objective
    moved it (measured in docs/mnist.md). So the C-MGN's ridges are placed where the Gaussian
    has mass: unit directions :math:`w_h` scaled by one radius :math:`r`, offsets
    :math:`b_h \sim \mathcal{N}(0, \text{offsets}^2)`, and :math:`r` chosen (by bisection) so that the
    nonlinear Jacobian :math:`W^\top \operatorname{diag}(\sigma') W` averages
    ``nonlinear_share`` :math:`\cdot I` over :math:`z \sim \mathcal{N}(0, I)`. The other models
    keep their own initialisation, shrunk by
    :meth:`~otcolor.models.GradientMap.init_linear` to that share at the origin. Then
    :math:`V^\top V = I - \mathbb{E}\,J_{\text{nonlinear}}` (projected onto the PSD cone) and the
    bias cancels the nonlinear part's mean, so :math:`T(z) \approx z` on average.

    Arguments:
        model: the map on :math:`d` features.
        seed: seeds the directions, offsets and the Gaussian sample.
        nonlinear_share: the nonlinear Jacobian's average size, relative to the identity.
        offsets: the standard deviation of the C-MGN's offsets.
        samples: Gaussian draws the averages are taken over.
    """

    d = model.features
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, d, generator=generator).to(model.bias)
    eye = torch.eye(d).to(model.bias)
    if isinstance(model, CMGN):
        directions = torch.randn(model.W.shape, generator=generator).to(model.W)
        directions /= directions.norm(dim=1, keepdim=True)
        model.b.copy_(offsets * torch.randn(model.b.shape, generator=generator))

        def share(radius: float) -> float:
            # The mean diagonal of W^T diag(g') W, whose rows all have length `radius`.
            model.W.copy_(radius * directions)
            return float(ridge_slopes(model, z).sum(1).mean()) * radius**2 / d

        low, high = 1e-4, 1e2
        for _ in range(40):
            middle = math.sqrt(low * high)
            low, high = (low, middle) if share(middle) > nonlinear_share else (middle, high)
        model.W.copy_(low * directions)
    else:
        model.init_linear(eye, torch.zeros(d), nonlinear_scale=nonlinear_share)
    nonlinear = jacobian(model, z[:1024]) - model.linear.matrix()
    rest = eye - nonlinear.mean(0)
    values, vectors = torch.linalg.eigh((rest + rest.T) / 2)
    model.linear.set_matrix((vectors * values.clamp(min=1e-3)) @ vectors.T)
    model.bias.zero_()
    model.bias.copy_(-model(z).mean(0))


def build_generator(
    name: str,
    codec: PCACodec | AutoencoderCodec,
    seed: int = 0,
    nonlinear_share: float = 0.5,
) -> LatentGenerator:
    r"""Returns the map ``name`` (a key of :data:`GENERATOR_MODELS`) on ``codec``'s whitened
    codes, started by :func:`nonlinear_start` (seeded)."""

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transport = build_model(name, codec.latent_features, **GENERATOR_MODELS[name])
    nonlinear_start(transport, seed, nonlinear_share)
    return LatentGenerator(transport, codec)


@torch.no_grad()
def sample(
    model: nn.Module,
    n: int,
    seed: int,
    device: torch.device | str = "cpu",
    chunk: int = 2000,
) -> Tensor:
    r"""Returns ``n`` digits :math:`G(z)`, :math:`z \sim \mathcal{N}(0, I_d)` from a seeded
    CPU generator (so a seed gives the same latents on every device), clipped to
    :math:`[0, 1]`, with shape :math:`(n, 784)`, on the CPU. ``d`` is the model's
    ``latent_features``."""

    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, getattr(model, "latent_features", PIXELS), generator=generator)
    out = [model(latents[i : i + chunk].to(device)).clamp(0, 1).cpu() for i in range(0, n, chunk)]
    return torch.cat(out) if out else torch.zeros(0, PIXELS)
