r"""The convex potential :math:`\varphi` behind each monotone map :math:`T = \nabla\varphi`, and
:math:`T^{-1}` by Newton's method: what the semi-dual objective needs.

The three architectures of :mod:`otcolor.models` are gradients of potentials with a closed
form (up to an additive constant, which no objective sees):

* C-MGN, :math:`T(x) = W^\top g(Wx) + V^\top V x + b` with :math:`g` acting element-wise, so
  :math:`\varphi(x) = \sum_h G_h(w_h^\top x) + \tfrac12 \|Vx\|^2 + b^\top x`,
  :math:`G_h' = g_h`. For one sigmoid layer :math:`G_h(u) = \mathrm{softplus}(\beta(u +
  b_h))/\beta`; otherwise :math:`G_h(u) = u \int_0^1 g_h(tu)\,dt` by 16-point Gauss–Legendre.
* M-MGN: :math:`\varphi(x) = \sum_k \tfrac12 s_k(W_k x + b_k)^2 + \tfrac12\|Vx\|^2 + a^\top x`.
* ICNN: its own potential plus the same quadratic and linear terms.
"""

from __future__ import annotations

__all__ = ["invert", "jacobian", "potential", "ridge_slopes"]

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import CMGN, ICNN, MMGN, GradientMap

# Gauss-Legendre nodes and weights on [0, 1] for the C-MGN's 1-D integrals.
_NODES, _WEIGHTS = (torch.from_numpy(v) for v in np.polynomial.legendre.leggauss(16))
_NODES, _WEIGHTS = (_NODES + 1) / 2, _WEIGHTS / 2


def _quadratic(model: GradientMap, x: Tensor) -> Tensor:
    r""":math:`\tfrac12 \|Vx\|^2 + b^\top x`, :math:`(N, D) \to (N,)`."""

    return 0.5 * (x @ model.linear.V.mT).square().sum(-1) + x @ model.bias


def _cmgn_ridges(model: CMGN, u: Tensor) -> Tensor:
    r""":math:`g_h(u)` of the cascade, element-wise on :math:`u = Wx`, :math:`(N, H)`."""

    z = u + model.b[0]
    for layer in range(1, model.layers):
        z = u + model.sigma(z) + model.b[layer]
    return model.sigma(z)


def ridge_slopes(model: CMGN, x: Tensor) -> Tensor:
    r"""Returns the C-MGN's ridge slopes :math:`g_h'(w_h^\top x)`, :math:`(N, D) \to (N, H)`,
    not tracked: its Jacobian is :math:`W^\top \operatorname{diag}(g'(Wx)) W + V^\top V`."""

    with torch.enable_grad():
        u = (x @ model.W.mT).detach().requires_grad_(True)
        (slopes,) = torch.autograd.grad(_cmgn_ridges(model, u).sum(), u)
    return slopes.detach()


def _cmgn(model: CMGN, x: Tensor) -> Tensor:
    u = x @ model.W.mT  # (N, H)
    if model.layers == 1 and model.activation == "sigmoid":
        beta = model.steepness
        ridges = F.softplus(beta * (u + model.b[0])) / beta
    else:
        nodes, weights = _NODES.to(u)[:, None, None], _WEIGHTS.to(u)[:, None, None]
        values = _cmgn_ridges(model, nodes * u)  # (16, N, H): g_h(t u) at each node t
        ridges = u * (weights * values).sum(0)
    return ridges.sum(-1)


def _mmgn(model: MMGN, x: Tensor) -> Tensor:
    z = torch.einsum("khd,nd->nkh", model.W, x) + model.b  # (N, K, H)
    return 0.5 * F.softplus(z).sum(-1).square().sum(-1)


def potential(model: GradientMap, x: Tensor) -> Tensor:
    r"""Returns :math:`\varphi(x)` with :math:`\nabla\varphi = ` ``model``, :math:`(N, D) \to (N,)`,
    differentiable in the model's parameters.

    Example:
        >>> import torch
        >>> from otcolor.models import build_model
        >>> model = build_model("cmgn", 3, hidden_features=8, layers=2, activation="sigmoid")
        >>> x = torch.randn(5, 3, requires_grad=True)
        >>> (grad,) = torch.autograd.grad(potential(model, x).sum(), x)
        >>> bool(torch.allclose(grad, model(x), atol=1e-5))
        True
    """

    if isinstance(model, CMGN):
        nonlinear = _cmgn(model, x)
    elif isinstance(model, MMGN):
        nonlinear = _mmgn(model, x)
    elif isinstance(model, ICNN):
        nonlinear = model.potential(x)
    else:
        raise TypeError(f"no closed-form potential for {type(model).__name__}")
    return nonlinear + _quadratic(model, x)


def _outer_rows(weight: Tensor) -> Tensor:
    r""":math:`w_h w_h^\top` of each row, flattened: :math:`(H, D) \to (H, D^2)`."""

    h, d = weight.shape
    return (weight.unsqueeze(2) * weight.unsqueeze(1)).reshape(h, d * d)


def _mmgn_jacobian(model: MMGN, x: Tensor) -> Tensor:
    k, h, d = model.W.shape
    z = torch.einsum("khd,nd->nkh", model.W, x) + model.b  # (N, K, H)
    sig = torch.sigmoid(z)
    scale = F.softplus(z).sum(-1, keepdim=True)  # (N, K, 1)
    rows = torch.einsum("nkh,khd->nkd", sig, model.W)  # (N, K, D): W_k^T sigma_k
    outer = rows.mT @ rows  # (N, D, D): sum_k of their outer products
    curvature = (scale * sig * (1 - sig)).reshape(-1, k * h)  # (N, K H)
    curved = curvature @ _outer_rows(model.W.reshape(k * h, d))
    return outer + curved.reshape(-1, d, d)


# The first two derivatives of the ICNN activations with a closed-form Hessian.
_SECOND_ORDER = {
    "softplus": (torch.sigmoid, lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a))),
}


def _icnn_jacobian(model: ICNN, x: Tensor) -> Tensor:
    r""":math:`\nabla^2` of the ICNN's potential, :math:`\sum_l J_l^\top \operatorname{diag}(
    \delta_l \odot \sigma''(a_l)) J_l` over its pre-activations :math:`a_l` (affine in the
    previous layer and :math:`x`), :math:`J_l = \partial a_l / \partial x` carried forward,
    :math:`\delta_l = \partial\varphi / \partial z_l` carried back."""

    first, second = _SECOND_ORDER[model.activation]
    d = x.shape[1]
    pre = [model.inputs[0](x)]  # a_1
    slopes = [first(pre[0])]
    jac = [model.inputs[0].weight.expand(x.shape[0], -1, -1)]  # (N, H_1, D)
    for hidden, inputs in zip(model.hiddens, model.inputs[1:], strict=True):
        weight = hidden.weight()  # (H_out, H_in), non-negative
        pre.append(hidden(model.sigma(pre[-1])) + inputs(x))
        jac.append(weight @ (slopes[-1].unsqueeze(-1) * jac[-1]) + inputs.weight)
        slopes.append(first(pre[-1]))
    adjoint = model.output.weight().expand(x.shape[0], -1)  # dphi/dz_L, (N, H_L)
    hessian = torch.zeros(x.shape[0], d, d, dtype=x.dtype, device=x.device)
    for layer in range(len(pre) - 1, -1, -1):
        curvature = adjoint * second(pre[layer])  # (N, H_l)
        if layer == 0:  # J_1 is the same matrix for every point
            hessian = hessian + (curvature @ _outer_rows(model.inputs[0].weight)).reshape(-1, d, d)
        else:
            hessian = hessian + jac[layer].mT @ (curvature.unsqueeze(-1) * jac[layer])
            weight = model.hiddens[layer - 1].weight()
            adjoint = (adjoint * slopes[layer]) @ weight
    return hessian


def jacobian(model: GradientMap, x: Tensor) -> Tensor:
    r"""Returns :math:`J_T(x) = \nabla^2\varphi(x)`, :math:`(N, D) \to (N, D, D)`, not tracked
    by autograd.

    In closed form, each built from matrix products (on a CPU ten to fifty times faster than
    the einsums or autograd passes they replace; the Jacobian is most of a semi-dual step):

    * C-MGN: :math:`W^\top \operatorname{diag}(g'(Wx)) W`, as the slopes :math:`(N, H)` times
      the ridges' outer products :math:`w_h w_h^\top` :math:`(H, D^2)`;
    * M-MGN: :math:`\sum_k W_k^\top(\sigma_k\sigma_k^\top + s_k \operatorname{diag}\sigma_k')W_k`,
      :math:`\sigma_k` the sigmoid of :math:`z_k = W_k x + b_k` and :math:`s_k` the sum of their
      softplus;
    * ICNN with softplus: see :func:`_icnn_jacobian`; autograd for other activations;

    plus :math:`V^\top V`.
    """

    with torch.no_grad():
        if isinstance(model, CMGN):
            nonlinear = ridge_slopes(model, x) @ _outer_rows(model.W)
            nonlinear = nonlinear.reshape(-1, model.features, model.features)
        elif isinstance(model, MMGN):
            nonlinear = _mmgn_jacobian(model, x)
        elif isinstance(model, ICNN) and model.activation in _SECOND_ORDER:
            nonlinear = _icnn_jacobian(model, x)
        else:
            return model.jacobian(x).detach()
        return nonlinear + model.linear.matrix()


@torch.no_grad()
def invert(
    model: GradientMap, y: Tensor, start: Tensor, iterations: int = 2, max_step: float = 2.0
) -> Tensor:
    r"""Returns :math:`x \approx T^{-1}(y)` by damped Newton steps from ``start``.

    Each step solves :math:`J_T(x)\,\delta = T(x) - y` and moves by :math:`\delta`, shortened
    to at most about ``max_step`` in length (a Newton step can overshoot far from the
    solution, where the ridges of :math:`T` are flat). :math:`T^{-1}(y)` maximises
    :math:`\langle x, y\rangle - \varphi(x)`, whose value is the convex conjugate
    :math:`\varphi^*(y)`.

    Arguments:
        model: :math:`T`, with a :func:`jacobian`.
        y: points, with shape :math:`(N, D)`.
        start: the first guess, with shape :math:`(N, D)` (e.g. the last step's answer).
        iterations: Newton steps.
        max_step: the longest step.
    """

    x = start.clone()
    for _ in range(iterations):
        residual = model(x) - y
        delta = torch.linalg.solve(jacobian(model, x), residual.unsqueeze(-1)).squeeze(-1)
        length = delta.norm(dim=-1, keepdim=True)
        x = x - delta * (max_step / length.clamp(min=max_step))
    return x
