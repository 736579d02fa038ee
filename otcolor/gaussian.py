r"""Closed forms for Gaussians: moments, the Bures (linear Monge–Kantorovich) OT map, W2 and KL."""

from __future__ import annotations

__all__ = [
    "bures_map",
    "gaussian_kl",
    "gaussian_w2",
    "moments",
]

import torch
from torch import Tensor

from .nn import sqrtm_psd


def moments(x: Tensor, eps: float = 0.0) -> tuple[Tensor, Tensor]:
    r"""Returns the mean and the (biased) covariance of samples, plus ``eps`` on the diagonal.

    Arguments:
        x: samples, with shape :math:`(N, D)`.

    Returns:
        The mean, with shape :math:`(D,)`, and the covariance, with shape :math:`(D, D)`.
    """

    mean = x.mean(0)
    centered = x - mean
    cov = centered.mT @ centered / x.shape[0]
    if eps:
        cov = cov + eps * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return mean, cov


def bures_map(
    m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor, eps: float = 1e-8
) -> tuple[Tensor, Tensor]:
    r"""Returns the optimal transport map from :math:`\mathcal{N}(m_0, S_0)` to
    :math:`\mathcal{N}(m_1, S_1)` for the quadratic cost, as :math:`T(x) = A x + b`.

    .. math::
        A = S_0^{-1/2} \big(S_0^{1/2} S_1 S_0^{1/2}\big)^{1/2} S_0^{-1/2}, \quad b = m_1 - A m_0

    :math:`A` is symmetric PSD, so :math:`T` is the gradient of the convex
    :math:`\tfrac12 x^\top A x + b^\top x`. A rank-deficient :math:`S_0` (a grey image, a
    flat colour) is regularised by ``eps`` on the diagonal instead of failing.

    References:
        | A Class of Wasserstein Metrics for Probability Distributions
        | Givens and Shortt, 1984
        | The Linear Monge-Kantorovitch Linear Colour Mapping for Example-Based Colour Transfer
        | Pitié and Kokaram, 2007

    Arguments:
        m0, S0: the source mean :math:`(D,)` and covariance :math:`(D, D)`.
        m1, S1: the target mean :math:`(D,)` and covariance :math:`(D, D)`.

    Returns:
        :math:`A`, with shape :math:`(D, D)`, and :math:`b`, with shape :math:`(D,)`.

    Example:
        >>> import torch
        >>> A, b = bures_map(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
        >>> A  # N(0, I) -> N(1, 4 I): scale by 2, then shift
        tensor([[2., 0.],
                [0., 2.]])
        >>> b
        tensor([1., 1.])
    """

    eye = torch.eye(S0.shape[-1], dtype=S0.dtype, device=S0.device)
    S0 = S0 + eps * eye
    eigval, eigvec = torch.linalg.eigh((S0 + S0.mT) / 2)
    root = (eigvec * eigval.sqrt()) @ eigvec.mT
    inv_root = (eigvec / eigval.sqrt()) @ eigvec.mT
    A = inv_root @ sqrtm_psd(root @ S1 @ root) @ inv_root
    A = (A + A.mT) / 2
    return A, m1 - A @ m0


def gaussian_w2(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> Tensor:
    r"""Returns the squared 2-Wasserstein distance between two Gaussians.

    .. math::
        W_2^2 = \|m_0 - m_1\|^2 + \operatorname{tr}\big(S_0 + S_1
        - 2 (S_0^{1/2} S_1 S_0^{1/2})^{1/2}\big)
    """

    root = sqrtm_psd(S0)
    cross = sqrtm_psd(root @ S1 @ root)
    value = (m0 - m1).square().sum() + torch.trace(S0 + S1 - 2 * cross)
    return value.clamp(min=0)


def gaussian_kl(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> Tensor:
    r"""Returns :math:`D_{KL}(\mathcal{N}(m_0, S_0) \,\|\, \mathcal{N}(m_1, S_1))`.

    .. math::
        \tfrac12 \Big[\operatorname{tr}(S_1^{-1} S_0) + (m_1 - m_0)^\top S_1^{-1} (m_1 - m_0)
        - D + \log \frac{\det S_1}{\det S_0}\Big]

    Differentiable in every argument (Cholesky solves, no explicit inverse).
    """

    d = m0.shape[-1]
    L1 = torch.linalg.cholesky(S1)
    L0 = torch.linalg.cholesky(S0)
    trace = torch.cholesky_solve(S0, L1).diagonal().sum()
    diff = (m1 - m0).unsqueeze(-1)
    mahalanobis = (diff.mT @ torch.cholesky_solve(diff, L1)).squeeze()
    logdet = 2 * (L1.diagonal().log().sum() - L0.diagonal().log().sum())
    return 0.5 * (trace + mahalanobis - d + logdet)
