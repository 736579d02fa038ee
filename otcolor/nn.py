r"""Building blocks that carry constraints: PSD linear maps, non-negative weights, activations."""

from __future__ import annotations

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "autograd_jacobian",
    "PSDLinear",
    "PositiveLinear",
    "activation",
    "sqrtm_psd",
]

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Non-decreasing activations by name. Each is also convex or concave-free enough for its use:
#: MGNs only need non-decreasing, the ICNN needs convex *and* non-decreasing (softplus, relu, elu).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "elu": F.elu,
}

#: The derivatives of :data:`ACTIVATIONS`, in closed form (differentiable themselves, so a
#: penalty on a closed-form Jacobian can be trained).
DERIVATIVES: dict[str, Callable[[Tensor], Tensor]] = {
    "softplus": torch.sigmoid,
    "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
    "tanh": lambda z: 1 - torch.tanh(z).square(),
    "relu": lambda z: (z > 0).to(z.dtype),
    "elu": lambda z: torch.where(z > 0, torch.ones_like(z), torch.exp(z.clamp(max=0))),
}

#: Activations that are convex and non-decreasing, as an ICNN hidden layer requires.
CONVEX_ACTIVATIONS = ("softplus", "relu", "elu")


def activation(name: str) -> Callable[[Tensor], Tensor]:
    r"""Returns the non-decreasing activation called ``name``.

    Raises:
        ValueError: if ``name`` is not a key of :data:`ACTIVATIONS`.
    """

    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def autograd_jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    r"""Returns the Jacobians of a pointwise map at each point, differentiable (``create_graph``).

    Arguments:
        fn: a map acting row by row, :math:`(N, D) \to (N, E)`.
        x: points, with shape :math:`(N, D)`.

    Returns:
        :math:`J_{fn}(x_i)`, with shape :math:`(N, E, D)`: one backward pass per output.
    """

    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = fn(x)
        rows = [
            torch.autograd.grad(out[:, k].sum(), x, create_graph=True)[0]
            for k in range(out.shape[1])
        ]
    return torch.stack(rows, 1)


def sqrtm_psd(matrix: Tensor) -> Tensor:
    r"""Returns the symmetric PSD square root of a symmetric PSD matrix.

    Negative eigenvalues (round-off on rank-deficient inputs) are clamped to zero.

    Arguments:
        matrix: a symmetric matrix, with shape :math:`(D, D)`.
    """

    eigval, eigvec = torch.linalg.eigh((matrix + matrix.mT) / 2)
    return (eigvec * eigval.clamp(min=0).sqrt()) @ eigvec.mT


class PSDLinear(nn.Module):
    r"""Creates the linear map :math:`x \mapsto V^\top V x`, PSD by construction.

    Arguments:
        features: the dimension :math:`D`.
        scale: the initial :math:`V = \text{scale} \cdot I`.
    """

    def __init__(self, features: int, scale: float = 1.0) -> None:
        super().__init__()
        self.V = nn.Parameter(scale * torch.eye(features))

    def matrix(self) -> Tensor:
        r"""Returns :math:`V^\top V`, with shape :math:`(D, D)`."""

        return self.V.mT @ self.V

    def set_matrix(self, matrix: Tensor) -> None:
        r"""Makes :math:`V^\top V` equal the symmetric PSD ``matrix`` (via its square root)."""

        with torch.no_grad():
            self.V.copy_(sqrtm_psd(matrix.to(self.V)))

    def forward(self, x: Tensor) -> Tensor:
        r"""
        Arguments:
            x: inputs, with shape :math:`(*, D)`.

        Returns:
            :math:`V^\top V x`, with shape :math:`(*, D)`.
        """

        return (x @ self.V.mT) @ self.V


class PositiveLinear(nn.Module):
    r"""Creates a linear layer whose weights are non-negative by construction.

    The stored parameter is unconstrained; the weight used is its softplus, so gradient steps
    can never break the constraint (clamping after each step would need a hook in every
    optimiser, and an ICNN with one negative weight is no longer convex).

    Arguments:
        in_features: the input size :math:`H_{in}`.
        out_features: the output size :math:`H_{out}`.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        # softplus(raw) starts near 1 / in_features so that activations neither vanish
        # nor explode with depth.
        target = 1.0 / in_features
        raw = math.log(math.expm1(target))
        self.raw_weight = nn.Parameter(raw + 0.1 * torch.randn(out_features, in_features))

    def weight(self) -> Tensor:
        r"""Returns the non-negative weight, with shape :math:`(H_{out}, H_{in})`."""

        return F.softplus(self.raw_weight)

    def forward(self, z: Tensor) -> Tensor:
        r"""
        Arguments:
            z: inputs, with shape :math:`(*, H_{in})`.

        Returns:
            :math:`W^+ z`, with shape :math:`(*, H_{out})`.
        """

        return z @ self.weight().mT
