r"""The seed's adversarial loss: the dual 1-Wasserstein distance estimated by a critic trained
alongside the map, with a gradient penalty (WGAN-GP)."""

from __future__ import annotations

__all__ = ["Critic", "WassersteinGP"]

import torch
from torch import Tensor, nn


class Critic(nn.Module):
    r"""Creates the WGAN critic: a 3-layer MLP, hidden width 64, leaky ReLU.

    Arguments:
        features: the dimension :math:`D`.
        hidden_features: the hidden width.
    """

    def __init__(self, features: int, hidden_features: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden_features),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_features, hidden_features),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_features, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns the critic scores, :math:`(N, D) \to (N,)`."""

        return self.net(x).squeeze(-1)


class WassersteinGP(nn.Module):
    r"""Creates the adversarial dual 1-Wasserstein loss with a gradient penalty (WGAN-GP).

    By Kantorovich–Rubinstein duality
    :math:`W_1(\mu, \nu) = \sup_{\|f\|_{Lip} \leq 1} \mathbb{E}_\nu f - \mathbb{E}_\mu f`.
    Each call first takes ``critic_steps`` Adam steps on the critic :math:`f` (its own optimiser,
    owned by the loss) to maximise

    .. math::
        \mathbb{E}_y f(y) - \mathbb{E}_x f(T(x))
        - \lambda\, \mathbb{E}_{\hat x} \big(\|\nabla f(\hat x)\| - 1\big)^2

    on detached samples, :math:`\hat x` uniform on segments between mapped and target points;
    then it returns :math:`\mathbb{E}_y f(y) - \mathbb{E}_x f(T(x))`, the current estimate of
    :math:`W_1`, whose gradient flows into the map only.

    References:
        | Improved Training of Wasserstein GANs
        | Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, NeurIPS 2017

    Arguments:
        features: the dimension :math:`D`.
        hidden_features: the critic's hidden width.
        penalty: :math:`\lambda`.
        critic_steps: critic updates per call.
        lr: the critic's learning rate.
        generator: the random generator of the interpolation weights.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        penalty: float = 10.0,
        critic_steps: int = 5,
        lr: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.critic = Critic(features, hidden_features)
        self.penalty = penalty
        self.critic_steps = critic_steps
        self.generator = generator
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.9))

    def gradient_penalty(self, mapped: Tensor, target: Tensor) -> Tensor:
        r"""Returns :math:`\mathbb{E}(\|\nabla f(\hat x)\| - 1)^2` on random interpolates."""

        n = min(mapped.shape[0], target.shape[0])
        t = torch.rand(n, 1, generator=self.generator, dtype=mapped.dtype).to(mapped.device)
        x_hat = torch.lerp(mapped[:n], target[:n], t).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
        return (grad.norm(dim=-1) - 1).square().mean()

    def train_critic(self, mapped: Tensor, target: Tensor, steps: int) -> None:
        r"""Takes ``steps`` Adam steps on the critic, on detached samples (a call to the loss
        takes ``critic_steps`` of them; more, before the map moves, warm the critic up)."""

        fake, real = mapped.detach(), target.detach()
        with torch.enable_grad():
            for _ in range(steps):
                gap = self.critic(real).mean() - self.critic(fake).mean()
                critic_loss = -gap + self.penalty * self.gradient_penalty(fake, real)
                self.optimizer.zero_grad(set_to_none=True)
                critic_loss.backward()
                self.optimizer.step()

    def forward(self, mapped: Tensor, target: Tensor) -> Tensor:
        r"""
        Arguments:
            mapped: :math:`T(x)`, with shape :math:`(N, D)`.
            target: :math:`y`, with shape :math:`(M, D)`.

        Returns:
            The critic's :math:`W_1` estimate, a scalar differentiable in ``mapped``.
        """

        self.train_critic(mapped, target, self.critic_steps)
        for p in self.critic.parameters():
            p.requires_grad_(False)
        try:
            return self.critic(target).mean() - self.critic(mapped).mean()
        finally:
            for p in self.critic.parameters():
                p.requires_grad_(True)
