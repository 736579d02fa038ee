r"""The MNIST classifier behind the metrics: a small CNN trained once and cached, its features,
and the Fréchet distance (FID) in that feature space.

The FID of Heusel et al. uses Inception-v3 features of natural images; for MNIST the usual
practice (e.g. in the WGAN and OT-GAN literature) is a small MNIST classifier instead, whose
penultimate layer describes digits. The numbers are therefore comparable between otcolor runs
(same cached classifier), not with Inception FIDs.
"""

from __future__ import annotations

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "atomic_torch_save",
    "class_consistency",
    "frechet_distance",
    "load_or_train_classifier",
    "predict",
]

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

#: A cache file larger than this is not read (the classifier's is about 0.3 MB).
_MAX_CACHE_BYTES = 64 << 20


class Classifier(nn.Module):
    r"""Creates a small CNN for 28×28 digits: two 5×5 convolutions (16 and 32 channels) with
    max-pooling, then a 128-unit hidden layer (the feature layer) and 10 logits.

    About 0.8 M multiply-adds per image: a few epochs train in about a minute on one core.
    """

    features = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)  # 28 -> 24, pooled to 12
        self.conv2 = nn.Conv2d(16, 32, 5)  # 12 -> 8, pooled to 4
        self.hidden = nn.Linear(32 * 4 * 4, self.features)
        self.head = nn.Linear(self.features, 10)

    def embed(self, x: Tensor) -> Tensor:
        r"""Returns the penultimate features, :math:`(N, 784)` in :math:`[0, 1]` :math:`\to (N, 128)`."""

        x = (x.reshape(-1, 1, 28, 28) - 0.1307) / 0.3081  # the usual MNIST standardisation
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.hidden(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        r"""Returns the logits, :math:`(N, 784) \to (N, 10)`."""

        return self.head(self.embed(x))


@dataclass
class ClassifierConfig:
    r"""How the metric classifier is trained. Part of the cache key: changing it retrains."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0


def _train(
    images: Tensor,
    labels: Tensor,
    config: ClassifierConfig,
    callback: Callable[[int, int], None] | None = None,
) -> Classifier:
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = images.shape[0]
    per_epoch = math.ceil(n / config.batch_size)
    total = config.epochs * per_epoch
    model.train()
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            # One-cosine schedule: high rate to learn fast, small one to settle.
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if callback is not None:
                callback(step, total)
    model.eval()
    return model


@torch.no_grad()
def predict(model: Classifier, images: Tensor, batch: int = 2000) -> tuple[Tensor, Tensor]:
    r"""Returns the features :math:`(N, 128)` and softmax probabilities :math:`(N, 10)` of images
    :math:`(N, 784)` in :math:`[0, 1]`, computed in chunks on the CPU."""

    model.eval()
    feats, probs = [], []
    for start in range(0, images.shape[0], batch):
        f = model.embed(images[start : start + batch].float().cpu())
        feats.append(f)
        probs.append(model.head(f).softmax(-1))
    return torch.cat(feats), torch.cat(probs)


def load_or_train_classifier(
    train_images: Tensor,
    train_labels: Tensor,
    fingerprint: str,
    cache: str | os.PathLike[str],
    config: ClassifierConfig | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[Classifier, bool]:
    r"""Returns the metric classifier, loaded from ``cache`` or trained and saved there.

    The file name holds the data fingerprint and the configuration, so other data or settings
    never reuse a classifier they were not trained with. The file is written atomically.
    Training always runs on the CPU (seeded), so every machine gets the same classifier.

    Arguments:
        train_images: :math:`(N, 784)` in :math:`[0, 1]`; train_labels: :math:`(N,)`.
        fingerprint: :attr:`otcolor.mnist.data.MnistData.fingerprint`.
        cache: the folder of the cache file.
        callback: ``callback(step, total)`` during training.

    Returns:
        The classifier (eval mode, CPU) and whether it was trained now.
    """

    config = config or ClassifierConfig()
    key = "-".join(f"{k}{v}" for k, v in asdict(config).items())
    path = Path(cache) / f"mnist-classifier-{fingerprint}-{key}.pt"
    model = Classifier()
    if path.exists():
        try:
            # A regular file of bounded size only: a FIFO or a device in the cache never blocks.
            payload = read_regular(path, _MAX_CACHE_BYTES, what="cache file")
            model.load_state_dict(
                torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
            )
            model.eval()
            return model, False
        except (InputError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
            model = Classifier()  # a corrupt cache is retrained and replaced, never fatal
    # Checked before the ~25 s of training, which an unwritable cache must not waste: the
    # classifier is then trained for this run only.
    problem = _cache_problem(path.parent)
    model = _train(train_images.cpu(), train_labels.cpu(), config, callback)
    if problem is not None:
        warnings.warn(
            f"{problem}; the classifier was not cached (it is retrained next run)", stacklevel=2
        )
        return model, True
    try:
        atomic_torch_save(model.state_dict(), path)
    except OutputError as err:
        warnings.warn(f"{err.message}; the classifier was not cached", stacklevel=2)
    return model, True


def _cache_problem(folder: Path) -> str | None:
    r"""Why the cache folder cannot take a file (created if missing), or ``None``."""

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"{folder}: cannot create the cache folder: {err.strerror or err}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder}: the cache folder is not writable"
    return None


def atomic_torch_save(obj: object, path: Path, overwrite: bool = True) -> None:
    r"""``torch.save(obj, path)`` through :func:`otcolor.io.write_atomically` (a synced
    temporary file in the same folder, then a rename): ``path`` never holds a partial file.

    Raises:
        OutputError: the file cannot be written.
    """

    write_atomically(path, lambda fp: torch.save(obj, fp), overwrite)


def frechet_distance(a: Tensor, b: Tensor) -> float:
    r"""Returns the Fréchet distance between Gaussians fitted to two feature sets.

    .. math::
        \|m_a - m_b\|^2 + \operatorname{tr}\big(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}\big)

    in float64, with square roots of symmetric PSD matrices by eigendecomposition (stable where
    ``scipy.linalg.sqrtm`` of the non-symmetric :math:`S_a S_b` returns complex round-off).

    Arguments:
        a: features, with shape :math:`(N, F)`; b: features, with shape :math:`(M, F)`.
    """

    from ..gaussian import gaussian_w2, moments

    m_a, s_a = moments(a.double())
    m_b, s_b = moments(b.double())
    # moments() is biased (1/N); FID uses the unbiased covariance, which differs by N/(N-1).
    s_a = s_a * a.shape[0] / max(a.shape[0] - 1, 1)
    s_b = s_b * b.shape[0] / max(b.shape[0] - 1, 1)
    return float(gaussian_w2(m_a, s_a, m_b, s_b))


def class_consistency(probs: Tensor) -> tuple[float, float]:
    r"""Returns the mean max-softmax confidence and the entropy (nats) of the predicted-class
    histogram: :math:`\log 10 \approx 2.303` when the ten digits are equally frequent."""

    confidence = float(probs.max(-1).values.mean())
    counts = torch.bincount(probs.argmax(-1), minlength=probs.shape[-1]).double()
    p = counts / counts.sum()
    entropy = max(0.0, float(-(p[p > 0] * p[p > 0].log()).sum()))  # no -0.0
    return confidence, entropy
