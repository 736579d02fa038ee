r"""The latent space of the MNIST generator: a small convolutional autoencoder, trained once on
the training digits and cached with a checksum.

A monotone map in pixel or PCA space cannot draw digits: the optimal transport map from a
Gaussian onto clustered digits is discontinuous, and a *linear* decoder turns every in-between
code into an overlay of two digits. Korotin et al. (W2GN, ICLR 2021) learn the monotone map in
an autoencoder's latent space instead, whose nonlinear decoder turns codes into digits; this
module is that autoencoder. It is deterministic (the encoder returns one code per digit) and
seeded, so a seed gives the same weights on every run of the same machine.
"""

from __future__ import annotations

__all__ = [
    "AutoencoderConfig",
    "ConvAutoencoder",
    "load_or_train_autoencoder",
    "train_autoencoder",
]

import hashlib
import io
import math
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, OutputError
from ..io import read_regular, write_atomically

#: A cache file larger than this is not read (the default autoencoder's is about 0.3 MB).
_MAX_CACHE_BYTES = 64 << 20


class ConvAutoencoder(nn.Module):
    r"""Creates a small convolutional autoencoder for 28×28 digits.

    .. math::
        E(x) = A\, \mathrm{flat}\big(\mathrm{conv}_{2c}(\mathrm{conv}_c(x))\big) + a
        \in \mathbb{R}^d, \qquad
        D(y) = \mathrm{sigmoid}\big(\mathrm{deconv}_1(\mathrm{deconv}_c(B y + b))\big)

    Encoder: two 4×4 convolutions of stride 2 (28 → 14 → 7, with :math:`c` and :math:`2c`
    channels, SiLU), then a linear layer to :math:`d` numbers. Decoder: its mirror, a linear
    layer and two 4×4 transposed convolutions of stride 2, then a sigmoid. About 0.4 M
    multiply-adds per digit each way with :math:`c = 16`.

    Arguments:
        latent: the code dimension :math:`d`.
        channels: :math:`c`.
    """

    def __init__(self, latent: int = 16, channels: int = 16) -> None:
        super().__init__()
        self.latent = latent
        self.channels = channels
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1),  # 28 -> 14
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1),  # 14 -> 7
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * c * 7 * 7, latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 2 * c * 7 * 7),
            nn.Unflatten(1, (2 * c, 7, 7)),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1),  # 7 -> 14
            nn.SiLU(),
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # 14 -> 28
            nn.Flatten(),
        )

    def encode(self, x: Tensor) -> Tensor:
        r"""Returns the codes :math:`E(x)`, :math:`(N, 784)` in :math:`[0, 1]` :math:`\to (N, d)`."""

        return self.encoder(x.reshape(-1, 1, 28, 28))

    def logits(self, y: Tensor) -> Tensor:
        r"""Returns the decoder's pixel logits, :math:`(N, d) \to (N, 784)`."""

        return self.decoder(y)

    def decode(self, y: Tensor) -> Tensor:
        r"""Returns the digits :math:`D(y)`, :math:`(N, d) \to (N, 784)` in :math:`[0, 1]`."""

        return torch.sigmoid(self.logits(y))

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns the reconstructions :math:`D(E(x))`, :math:`(N, 784) \to (N, 784)`."""

        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"latent={self.latent}, channels={self.channels}"


@dataclass
class AutoencoderConfig:
    r"""How the autoencoder is built and trained. Part of its cache key: changing it retrains.

    The loss is the pixels' binary cross-entropy (sharper digits than the squared error) plus
    ``code_penalty`` times :math:`\|E(x)\|^2`, a regularised autoencoder's (RAE) bound on the
    codes' scale. During training the decoder sees each code plus Gaussian noise of
    ``code_noise`` times the batch's code spread, so that it decodes the neighbourhood of a
    code, not the code alone: the map places its samples between training codes, and the
    decoder must draw digits there too (measured, docs/mnist.md: 0.1 gave the best samples,
    0.3 and 0.6 blurred the reconstructions).
    """

    latent: int = 16
    channels: int = 16
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    code_penalty: float = 1e-3
    code_noise: float = 0.1
    seed: int = 0


def train_autoencoder(
    images: Tensor,
    config: AutoencoderConfig,
    device: torch.device | str = "cpu",
    callback: Callable[[int, int], None] | None = None,
) -> ConvAutoencoder:
    r"""Trains a :class:`ConvAutoencoder` on ``images`` :math:`(N, 784)` in :math:`[0, 1]`.

    Adam with a cosine learning rate over ``epochs`` passes of seeded shuffles; the
    initialisation, the shuffles and the code noise all come from ``config.seed``, so the same
    seed and device give the same weights.

    Returns:
        The autoencoder, in eval mode, on the CPU.
    """

    device = torch.device(device)
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ConvAutoencoder(config.latent, config.channels)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = images.shape[0]
    batch = min(config.batch_size, n)
    per_epoch = n // batch
    total = config.epochs * per_epoch
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, per_epoch * batch, batch):
            x = images[order[start : start + batch]].to(device)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            codes = model.encode(x)
            spread = codes.detach().std(0).mean()
            noise = torch.randn(codes.shape, generator=generator).to(device)
            logits = model.logits(codes + config.code_noise * spread * noise)
            # Summed over the pixels, averaged over the digits: the usual scale of a BCE
            # autoencoder, against which code_penalty is set.
            loss = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
            loss = loss + config.code_penalty * codes.square().sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if callback is not None:
                callback(step, total)
    return model.cpu().eval()


def _cache_path(cache: Path, fingerprint: str, config: AutoencoderConfig) -> Path:
    key = "-".join(f"{k}{v}" for k, v in asdict(config).items())
    return cache / f"mnist-autoencoder-{fingerprint}-{key}.pt"


def _load_checked(path: Path, config: AutoencoderConfig) -> ConvAutoencoder | None:
    r"""The cached autoencoder, or ``None`` when the file or its checksum is missing, does not
    match, or does not load (each of which retrains)."""

    sidecar = path.with_name(path.name + ".sha256")
    if not (path.exists() and sidecar.exists()):
        return None
    try:
        # Regular files of bounded size only: a FIFO or a device in the cache never blocks.
        payload = read_regular(path, _MAX_CACHE_BYTES, what="cache file")
        expected = read_regular(sidecar, 1024, what="checksum file").decode("ascii", "replace")
    except InputError:
        return None
    expected = expected.strip()
    if hashlib.sha256(payload).hexdigest() != expected:
        warnings.warn(
            f"{path}: checksum mismatch; the autoencoder is retrained and replaced", stacklevel=3
        )
        return None
    model = ConvAutoencoder(config.latent, config.channels)
    try:
        model.load_state_dict(
            torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        )
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    return model.eval()


def load_or_train_autoencoder(
    images: Tensor,
    fingerprint: str,
    cache: str | os.PathLike[str],
    config: AutoencoderConfig | None = None,
    device: torch.device | str = "cpu",
    callback: Callable[[int, int], None] | None = None,
) -> tuple[ConvAutoencoder, bool]:
    r"""Returns the autoencoder of ``config`` for the digits ``fingerprint``, from ``cache`` or
    trained now (and then cached).

    The cache file (``mnist-autoencoder-<fingerprint>-<settings>.pt``, beside the metric
    classifier's) comes with a ``.sha256`` file holding its SHA-256; a file that does not match
    its checksum, or does not load, is retrained and replaced. Both are written atomically. An
    unwritable cache only costs the retraining next time (a warning says so).

    Arguments:
        images: the training digits, :math:`(N, 784)` in :math:`[0, 1]`.
        fingerprint: :attr:`otcolor.mnist.data.MnistData.fingerprint`.
        cache: the folder of the cache files.
        config: the autoencoder's settings.
        device: where to train it.
        callback: ``callback(step, total)`` during training.

    Returns:
        The autoencoder (eval mode, CPU) and whether it was trained now.
    """

    config = config or AutoencoderConfig()
    path = _cache_path(Path(cache), fingerprint, config)
    cached = _load_checked(path, config)
    if cached is not None:
        return cached, False
    model = train_autoencoder(images, config, device, callback)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    payload = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda fp: fp.write(payload))
        digest = hashlib.sha256(payload).hexdigest() + "\n"
        write_atomically(
            path.with_name(path.name + ".sha256"), lambda fp: fp.write(digest.encode())
        )
    except (OSError, OutputError) as err:
        reason = err.message if isinstance(err, OutputError) else str(err)
        warnings.warn(
            f"{reason}; the autoencoder was not cached (it is retrained next run)", stacklevel=2
        )
    return model, True
