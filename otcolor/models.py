r"""Monotone gradient maps :math:`T = \nabla\varphi`, :math:`\varphi` convex: C-MGN, M-MGN, ICNN.

All models share one interface: ``model(x) -> T(x)`` with shapes :math:`(N, D) \to (N, D)`,
an affine part :math:`V^\top V x + b` that can hold any PSD linear map exactly (used to start
from the closed-form Gaussian OT map, see :meth:`GradientMap.init_linear`), and a nonlinear part
that is the gradient of a convex function, so the Jacobian is symmetric PSD everywhere.
"""

from __future__ import annotations

__all__ = [
    "AffineMap",
    "CMGN",
    "ColorMap",
    "ConstantMap",
    "ICNN",
    "MMGN",
    "MAP_MODELS",
    "MODELS",
    "GradientMap",
    "build_model",
]

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nn import CONVEX_ACTIVATIONS, DERIVATIVES, PositiveLinear, PSDLinear, autograd_jacobian
from .nn import activation as get_activation


class GradientMap(nn.Module):
    r"""Base class of the maps :math:`T = \nabla \varphi`.

    Subclasses define :attr:`linear` (a :class:`PSDLinear`), :attr:`bias` and the nonlinear part
    :meth:`nonlinear`, and may override :meth:`forward`.

    Arguments:
        features: the dimension :math:`D`.
    """

    linear: PSDLinear
    bias: nn.Parameter

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features

    def config(self) -> dict[str, object]:  # pragma: no cover - abstract
        r"""The constructor arguments besides ``features``, JSON-ready: what a map file stores,
        so that ``type(m).from_config(m.features, **m.config())`` rebuilds ``m``'s shape."""

        raise NotImplementedError

    @classmethod
    def from_config(cls, features: int, **config: object) -> GradientMap:
        r"""An untrained model of the shape :meth:`config` describes."""

        return cls(features, **config)  # type: ignore[arg-type]

    def nonlinear(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        r"""The gradient of the convex nonlinear part of :math:`\varphi`, :math:`(N, D) \to (N, D)`."""

        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        r"""
        Arguments:
            x: points, with shape :math:`(N, D)`.

        Returns:
            :math:`T(x)`, with shape :math:`(N, D)`.
        """

        return self.nonlinear(x) + self.linear(x) + self.bias

    def _shrink_nonlinear(self, factor: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def jacobian(self, x: Tensor) -> Tensor:
        r"""Returns the Jacobians :math:`J_T(x_i)`, :math:`(N, D) \to (N, D, D)`, differentiable.

        By autograd here (one backward pass per output); subclasses with a closed form override it.
        """

        return autograd_jacobian(self, x)

    def nonlinear_jacobian(self, point: Tensor) -> Tensor:
        r"""Returns the Jacobian of the nonlinear part at ``point`` :math:`(D,)`, shape :math:`(D, D)`."""

        return autograd_jacobian(self.nonlinear, point.detach().unsqueeze(0))[0].detach()

    def init_linear(
        self,
        matrix: Tensor,
        shift: Tensor,
        center: Tensor | None = None,
        nonlinear_scale: float = 0.05,
    ) -> None:
        r"""Starts the map at the affine map :math:`x \mapsto A x + s` (:math:`A` symmetric PSD).

        The nonlinear part is shrunk (its weights, not to zero, so that gradients still reach
        them) until its Jacobian at ``center`` is at most ``nonlinear_scale`` times the norm of
        :math:`A`; then :math:`V^\top V` takes :math:`A` minus that Jacobian (projected onto the
        PSD cone) and the bias takes :math:`s` minus the nonlinear part's value at ``center``. So
        the map equals :math:`A x + s` at ``center``; its Jacobian there is :math:`A` exactly when
        :math:`A` minus the nonlinear Jacobian is PSD (always for a small ``nonlinear_scale``;
        a large one, which trains better, gives up exactness of the slope). With
        ``nonlinear_scale=0`` the nonlinear part is silenced as far as the architecture allows.

        Arguments:
            matrix: :math:`A`, with shape :math:`(D, D)`.
            shift: :math:`s`, with shape :math:`(D,)`.
            center: where the start is exact (e.g. the data mean), with shape :math:`(D,)`;
                the origin by default.
            nonlinear_scale: the allowed size of the nonlinear Jacobian, relative to :math:`A`.
        """

        matrix = matrix.to(self.bias)
        center = torch.zeros_like(self.bias) if center is None else center.to(self.bias)
        budget = nonlinear_scale * torch.linalg.matrix_norm(matrix, ord=2)
        with torch.no_grad():
            for _ in range(60):
                if torch.linalg.matrix_norm(self.nonlinear_jacobian(center), ord=2) <= budget:
                    break
                self._shrink_nonlinear(0.5)
            jac = self.nonlinear_jacobian(center)
            self.linear.set_matrix(matrix - jac)
            value = self.nonlinear(center.unsqueeze(0))[0]
            self.bias.copy_(shift.to(self.bias) - value + jac @ center)


class CMGN(GradientMap):
    r"""Creates a cascaded monotone gradient network (C-MGN).

    .. math::
        z_0 = W x + b_0, \quad z_\ell = W x + \sigma(z_{\ell-1}) + b_\ell \ (\ell = 1..L-1),
        \quad T(x) = W^\top \sigma(z_{L-1}) + V^\top V x + b_L

    with one weight :math:`W \in \mathbb{R}^{H \times D}` shared by every layer and a
    non-decreasing :math:`\sigma`, so that
    :math:`J_T = W^\top \big(\sum_\ell \prod_{i \geq \ell} J_\sigma(z_{i-1})\big) W + V^\top V`
    is symmetric PSD.

    References:
        | Learning Gradients of Convex Functions with Monotone Gradient Networks
        | Chaudhari, Pranav and Moura, ICASSP 2023 (https://arxiv.org/abs/2301.10862)

    Arguments:
        features: the dimension :math:`D`.
        hidden_features: the width :math:`H`.
        layers: the number of activations :math:`L \geq 1`.
        activation: the name of a non-decreasing activation (see :data:`otcolor.nn.ACTIVATIONS`).
        steepness: :math:`\beta > 0` in :math:`\sigma(\beta z)`; steeper activations let a
            narrow width bend the map sharply where the data need it.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        layers: int = 3,
        activation: str = "softplus",
        steepness: float = 1.0,
    ) -> None:
        super().__init__(features)
        if layers < 1:
            raise ValueError("a C-MGN needs at least one layer")
        if not steepness > 0:
            raise ValueError("the steepness must be positive (the activation must not decrease)")
        self.hidden_features = hidden_features
        self.layers = layers
        self.activation = activation
        self.steepness = steepness
        self._sigma = get_activation(activation)
        self._derivative = DERIVATIVES[activation]
        self.W = nn.Parameter(torch.randn(hidden_features, features) / features**0.5)
        self.b = nn.Parameter(0.1 * torch.randn(layers, hidden_features))
        self.linear = PSDLinear(features)
        self.bias = nn.Parameter(torch.zeros(features))

    def config(self) -> dict[str, object]:
        return {
            "hidden_features": self.hidden_features,
            "layers": self.layers,
            "activation": self.activation,
            "steepness": float(self.steepness),
        }

    def sigma(self, z: Tensor) -> Tensor:
        r"""The activation :math:`\sigma(\beta z)`, elementwise."""

        return self._sigma(self.steepness * z)

    def nonlinear(self, x: Tensor) -> Tensor:
        wx = x @ self.W.mT  # (N, H), shared by every layer
        z = wx + self.b[0]
        for layer in range(1, self.layers):
            z = wx + self.sigma(z) + self.b[layer]
        return self.sigma(z) @ self.W

    def jacobian(self, x: Tensor) -> Tensor:
        r"""Returns :math:`J_T(x) = W^\top \operatorname{diag}(d(x)) W + V^\top V` in closed form.

        With :math:`\partial z_\ell / \partial x = c_\ell \odot W` (rows scaled),
        :math:`c_0 = 1`, :math:`c_\ell = 1 + \sigma'(z_{\ell-1}) c_{\ell-1}`, and
        :math:`d = \sigma'(z_{L-1}) c_{L-1}`: no backward pass, so penalties on the Jacobian
        cost one forward pass more instead of :math:`D` backward ones.

        Arguments:
            x: points, with shape :math:`(N, D)`.

        Returns:
            The Jacobians, with shape :math:`(N, D, D)`.
        """

        wx = x @ self.W.mT  # (N, H)
        z = wx + self.b[0]
        scale = torch.ones_like(z)
        for layer in range(1, self.layers):
            scale = 1 + self._slope(z) * scale
            z = wx + self.sigma(z) + self.b[layer]
        d = self._slope(z) * scale  # (N, H), >= 0
        return torch.einsum("hi,nh,hj->nij", self.W, d, self.W) + self.linear.matrix()

    def _slope(self, z: Tensor) -> Tensor:
        return self.steepness * self._derivative(self.steepness * z)

    def _shrink_nonlinear(self, factor: float) -> None:
        self.W.mul_(factor)

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden_features={self.hidden_features}, "
            f"layers={self.layers}, activation={self.activation!r}, steepness={self.steepness}"
        )


class MMGN(GradientMap):
    r"""Creates a modular monotone gradient network (M-MGN).

    .. math::
        z_k = W_k x + b_k, \quad
        T(x) = a + V^\top V x + \sum_{k=1}^K s_k(z_k) \, W_k^\top \sigma_k(z_k)

    with the non-negative, non-decreasing, convex scaling
    :math:`s_k(z) = \sum_i \mathrm{softplus}(z_i)` and :math:`\sigma_k = \nabla s_k` (the
    sigmoid, non-decreasing). Module :math:`k` is the gradient of :math:`\tfrac12 s_k(W_k x +
    b_k)^2`, whose Hessian :math:`W_k^\top(\sigma_k\sigma_k^\top + s_k J_{\sigma_k})W_k` is PSD.

    References:
        | Learning Gradients of Convex Functions with Monotone Gradient Networks
        | Chaudhari, Pranav and Moura, ICASSP 2023 (https://arxiv.org/abs/2301.10862)

    Arguments:
        features: the dimension :math:`D`.
        hidden_features: the width :math:`H` of each module.
        modules: the number of modules :math:`K`.
    """

    def __init__(self, features: int, hidden_features: int = 32, modules: int = 4) -> None:
        super().__init__(features)
        self.hidden_features = hidden_features
        self.n_modules = modules
        self.W = nn.Parameter(torch.randn(modules, hidden_features, features) / features**0.5)
        self.b = nn.Parameter(0.1 * torch.randn(modules, hidden_features))
        self.linear = PSDLinear(features)
        self.bias = nn.Parameter(torch.zeros(features))  # the paper's a

    def config(self) -> dict[str, object]:
        return {"hidden_features": self.hidden_features, "modules": self.n_modules}

    def nonlinear(self, x: Tensor) -> Tensor:
        z = torch.einsum("khd,nd->nkh", self.W, x) + self.b  # (N, K, H)
        scale = F.softplus(z).sum(-1, keepdim=True)  # (N, K, 1): s_k(z_k) >= 0
        return torch.einsum("nkh,khd->nd", scale * torch.sigmoid(z), self.W)

    def _shrink_nonlinear(self, factor: float) -> None:
        self.W.mul_(factor)

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden_features={self.hidden_features}, "
            f"modules={self.n_modules}"
        )


class ICNN(GradientMap):
    r"""Creates an input-convex neural network (ICNN) potential and returns its gradient map.

    .. math::
        z_1 = \sigma(A_0 x + b_0), \quad z_{\ell+1} = \sigma(W^+_\ell z_\ell + A_\ell x + b_\ell),
        \quad \varphi(x) = w^{+\top} z_L + \tfrac12 \|V x\|^2 + b^\top x

    with non-negative :math:`W^+_\ell, w^+` (softplus-parameterised, see
    :class:`otcolor.nn.PositiveLinear`) and a convex non-decreasing :math:`\sigma`, so
    :math:`\varphi` is convex; the map is :math:`T = \nabla\varphi`, computed by autograd.

    References:
        | Input Convex Neural Networks
        | Amos, Xu and Kolter, ICML 2017 (https://arxiv.org/abs/1609.07152)

    Arguments:
        features: the dimension :math:`D`.
        hidden_features: the widths of the hidden layers.
        activation: a convex non-decreasing activation (softplus, relu or elu).
    """

    def __init__(
        self,
        features: int,
        hidden_features: tuple[int, ...] = (64, 64),
        activation: str = "softplus",
    ) -> None:
        super().__init__(features)
        if activation not in CONVEX_ACTIVATIONS:
            raise ValueError(f"an ICNN needs a convex activation, one of {CONVEX_ACTIVATIONS}")
        self.hidden_features = tuple(hidden_features)
        self.activation = activation
        self.sigma = get_activation(activation)
        self.inputs = nn.ModuleList(nn.Linear(features, h) for h in self.hidden_features)
        self.hiddens = nn.ModuleList(
            PositiveLinear(h_in, h_out)
            for h_in, h_out in zip(
                self.hidden_features[:-1], self.hidden_features[1:], strict=True
            )
        )
        self.output = PositiveLinear(self.hidden_features[-1], 1)
        self.linear = PSDLinear(features)
        self.bias = nn.Parameter(torch.zeros(features))

    def config(self) -> dict[str, object]:
        return {"hidden_features": list(self.hidden_features), "activation": self.activation}

    def potential(self, x: Tensor) -> Tensor:
        r"""Returns the convex nonlinear part of :math:`\varphi`, :math:`(N, D) \to (N,)`."""

        z = self.sigma(self.inputs[0](x))
        for hidden, inputs in zip(self.hiddens, self.inputs[1:], strict=True):
            z = self.sigma(hidden(z) + inputs(x))
        return self.output(z).squeeze(-1)

    def nonlinear(self, x: Tensor) -> Tensor:
        # Backpropagating through the gradient (training, Jacobian tests) needs create_graph;
        # inference under no_grad must still differentiate the potential once.
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.potential(x).sum(), x, create_graph=keep_graph)
        return grad if keep_graph else grad.detach()

    def _shrink_nonlinear(self, factor: float) -> None:
        self.output.raw_weight.copy_(
            torch.log(torch.expm1(F.softplus(self.output.raw_weight) * factor))
        )

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden_features={self.hidden_features}, "
            f"activation={self.activation!r}"
        )


class AffineMap(nn.Module):
    r"""Creates the affine map :math:`T(x) = A x + b` with :math:`A` symmetric PSD: the gradient of
    the convex quadratic :math:`\tfrac12 x^\top A x + b^\top x`, e.g. the closed-form Gaussian
    OT map of :func:`otcolor.gaussian.bures_map`.

    Arguments:
        matrix: :math:`A`, with shape :math:`(D, D)`.
        shift: :math:`b`, with shape :math:`(D,)`.
    """

    def __init__(self, matrix: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.register_buffer("matrix", matrix.clone())
        self.register_buffer("shift", shift.clone())

    def config(self) -> dict[str, object]:
        r"""Nothing besides the tensors, which the map file stores."""

        return {}

    @classmethod
    def from_config(cls, features: int) -> AffineMap:
        r"""The zero map on ``features`` dimensions, to load a state into."""

        return cls(torch.zeros(features, features), torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns :math:`A x + b`, :math:`(N, D) \to (N, D)`."""

        return x @ self.matrix.mT + self.shift


class ColorMap(nn.Module):
    r"""Creates the colour map :math:`T(x) = c + s\, G\big((x - c) / s\big)` around a model :math:`G`.

    The model works in coordinates centred on the source mean :math:`c` and scaled by one
    scalar :math:`s` (the source's spread), where its default initialisation is well scaled. An
    isotropic change of variables maps OT maps to OT maps, and :math:`T` is the gradient of
    :math:`s^2 \psi((x - c)/s) + \ldots` when :math:`G = \nabla \psi`: still monotone.

    Arguments:
        model: :math:`G`, :math:`(N, 3) \to (N, 3)`.
        center: :math:`c`, with shape :math:`(3,)`.
        scale: :math:`s > 0`.
    """

    def __init__(self, model: nn.Module, center: Tensor, scale: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("center", center.clone())
        self.scale = float(scale)

    def config(self) -> dict[str, object]:
        r"""The constructor arguments besides the model and the tensors: ``{"scale": s}``."""

        return {"scale": self.scale}

    def normalize(self, x: Tensor) -> Tensor:
        r"""Returns :math:`(x - c) / s`, :math:`(N, 3) \to (N, 3)`."""

        return (x - self.center) / self.scale

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns :math:`T(x)`, :math:`(N, 3) \to (N, 3)`."""

        return self.center + self.scale * self.model(self.normalize(x))


class ConstantMap(nn.Module):
    r"""Creates :math:`T(x) = c`: the exact OT map onto a single colour (and the barycentric
    map out of one), the gradient of the linear :math:`c^\top x`."""

    #: Nothing to regrain: every pixel goes to one colour (otcolor.regrain applies it pure).
    constant = True

    def __init__(self, colour: Tensor) -> None:
        super().__init__()
        self.register_buffer("colour", colour.clone())

    def config(self) -> dict[str, object]:
        r"""Nothing besides the colour, which the map file stores as a tensor."""

        return {}

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns :math:`c` for every point, :math:`(N, 3) \to (N, 3)`."""

        return self.colour.expand(x.shape[0], -1)


#: The architectures by name.
MODELS: dict[str, type[GradientMap]] = {"cmgn": CMGN, "mmgn": MMGN, "icnn": ICNN}

#: Every model a map file can hold inside a :class:`ColorMap`, by the name the file stores.
MAP_MODELS: dict[str, type[nn.Module]] = {**MODELS, "affine": AffineMap}


def build_model(name: str, features: int, **kwargs: object) -> GradientMap:
    r"""Returns a new model ``MODELS[name](features, **kwargs)``.

    Raises:
        ValueError: if ``name`` is not a key of :data:`MODELS`.

    Example:
        >>> import torch
        >>> model = build_model("cmgn", 3, hidden_features=8)
        >>> x = torch.rand(5, 3)
        >>> model(x).shape
        torch.Size([5, 3])
        >>> J = model.jacobian(x)  # symmetric PSD at every point: T is a gradient of a convex function
        >>> bool(torch.allclose(J, J.mT, atol=1e-6) and (torch.linalg.eigvalsh(J) > -1e-6).all())
        True
    """

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](features, **kwargs)
