r"""Tests for otcolor.mnist and ``otcolor mnist``: IDX files, data errors, offline download,
metrics, and short end-to-end runs on a tiny synthetic digit set (never the network)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app
from otcolor.errors import InputError, UsageError
from otcolor.mnist import MnistConfig, load_mnist, read_idx, run_mnist
from otcolor.mnist import data as mnist_data
from otcolor.mnist.autoencoder import AutoencoderConfig
from otcolor.mnist.classifier import ClassifierConfig, class_consistency, frechet_distance
from otcolor.mnist.gmm import GaussianMixtureConfig

runner = CliRunner()
UNREACHABLE = ["http://127.0.0.1:9/"]  # the discard port: connection refused at once

#: What a run on the tiny synthetic digits uses: small models and references, fast.
TINY = {
    "samples": 64,
    "device": "cpu",
    "check_samples": 32,
    "classifier": ClassifierConfig(epochs=4, batch_size=32),
    "autoencoder": AutoencoderConfig(channels=4, epochs=2, batch_size=32),
    "gmm": GaussianMixtureConfig(components=5, iterations=5),
}
REFERENCES = {
    "train_digits",
    "gaussian",
    "noise",
    "gmm_pca",
    "pca_reconstructions",
    "ae_reconstructions",
    "ae_gaussian",
    "ae_gmm",
}
METRICS = {"fid", "confidence", "class_entropy", "sliced_w2", "energy"}
METRICS |= {"nn_median", "test_nn_median", "nn_ratio", "near_copies"}


def write_idx(path: Path, array: np.ndarray) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    array = np.ascontiguousarray(array)
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    raw = header + array.tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def synthetic_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""Ten easily told apart 28×28 patterns (a bright bar whose row depends on the class) plus
    noise, as uint8 images and their labels."""

    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for k, label in enumerate(labels):
        row = 3 + 2 * int(label)
        images[k, row : row + 2, 4:24] = 255
    return images, labels


def make_dataset(folder: Path, gz: bool = True, n_train: int = 300, n_test: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        images, labels = synthetic_digits(n, rng)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cache and download folder inside the test; mirrors that can never reach the network.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OTCOLOR_DATA", raising=False)
    monkeypatch.setattr(mnist_data, "MIRRORS", UNREACHABLE)


# --- IDX files -------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    floats = rng.standard_normal((3, 4)).astype(">f4")
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(write_idx(tmp_path / f"i{suffix}", images)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / f"l{suffix}", labels)), labels)
    out = read_idx(write_idx(tmp_path / f"f{suffix}", floats))
    assert out.dtype == np.float32 and np.array_equal(out, floats.astype(np.float32))


def test_read_idx_rejects_corrupt_files(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good", np.zeros((2, 3, 3), np.uint8)).read_bytes()
    cases = {
        "magic": b"\x01\x02" + good[2:],
        "truncated": good[:-1],
        "header": good[:6],
        "long": good + b"\x00",
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(InputError, match=name if name == "magic" else "IDX"):
            read_idx(tmp_path / name)
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot gzip at all")  # gzip's magic, then junk
    with pytest.raises(InputError, match="cannot read"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(InputError, match="no such file"):
        read_idx(tmp_path / "absent")


def test_load_mnist_raw_and_gz_agree(tmp_path: Path) -> None:
    raw = load_mnist(make_dataset(tmp_path / "raw", gz=False))
    packed = load_mnist(make_dataset(tmp_path / "gz", gz=True))
    assert raw.train_images.shape == (300, 28, 28) and raw.test_labels.shape == (100,)
    assert raw.train_images.dtype == np.float32 and raw.train_images.max() == 1.0
    assert np.array_equal(raw.train_images, packed.train_images)
    assert raw.fingerprint == packed.fingerprint


def test_load_mnist_errors_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_dataset(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="missing MNIST file.*t10k-labels"):
        load_mnist(folder)
    monkeypatch.setenv("OTCOLOR_DATA", str(folder))  # the environment is explicit too
    with pytest.raises(InputError, match="t10k-labels"):
        load_mnist()
    with pytest.raises(InputError, match="no such folder"):
        load_mnist(tmp_path / "nowhere")
    # Labels that do not match the images.
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(InputError, match="100 images but 5 labels"):
        load_mnist(folder)


def test_offline_download_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_mnist()
    message = str(info.value)
    assert "\n" not in message
    assert "cannot download MNIST" in message
    assert str(tmp_path / "cache" / "otcolor" / "mnist") in message
    assert not list((tmp_path / "cache" / "otcolor" / "mnist").glob("*"))  # nothing half-written


def test_download_checks_and_places_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A local file:// "mirror" of synthetic files, with their sizes and checksums registered.
    mirror = make_dataset(tmp_path / "mirror")
    files = {}
    for role, (name, _, _) in mnist_data.FILES.items():
        raw = (mirror / f"{name}.gz").read_bytes()
        files[role] = (name, len(raw), hashlib.md5(raw, usedforsecurity=False).hexdigest())
    monkeypatch.setattr(mnist_data, "FILES", files)
    seen = []
    data = load_mnist(mirrors=[mirror.as_uri() + "/"], progress=lambda d, t: seen.append((d, t)))
    cache = tmp_path / "cache" / "otcolor" / "mnist"
    assert data.folder == cache and data.train_images.shape == (300, 28, 28)
    assert seen[-1][0] == seen[-1][1] == sum(size for _, size, _ in files.values())
    # A file whose checksum does not match is refused and leaves nothing behind.
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    name, size, _ = files["test_labels"]
    files["test_labels"] = (name, size, "0" * 32)
    with pytest.raises(InputError, match="unexpected checksum"):
        load_mnist(mirrors=[mirror.as_uri() + "/"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{n}.gz" for n, _, _ in files.values() if n != name
    )


def test_cli_offline_exit_code_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mnist", "-o", str(tmp_path / "g.png"), "--steps", "1"])
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot download MNIST")
    assert not (tmp_path / "g.png").exists()


# --- metrics ---------------------------------------------------------------------------------


def test_frechet_distance_closed_form() -> None:
    a = torch.randn(4000, 5, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([3.0, 0, 0, 0, 0], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-6)
    # Scaling by 2: N(m, S) to N(2m, 4S) costs |m|^2 + tr(S) (2 - 1)^2.
    expected = float(torch.cov(a.T).trace() + a.mean(0).square().sum())
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_class_consistency() -> None:
    balanced = torch.eye(10).repeat(5, 1)
    assert class_consistency(balanced) == pytest.approx((1.0, math.log(10)))
    one_class = torch.full((20, 10), 0.02)
    one_class[:, 3] = 0.82
    confidence, entropy = class_consistency(one_class)
    assert confidence == pytest.approx(0.82) and entropy == 0.0


# --- end to end ------------------------------------------------------------------------------


def test_run_mnist_five_steps(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "d")
    config = MnistConfig(steps=5, batch_size=16, data=folder, **TINY)
    grid = tmp_path / "grid.png"
    result = run_mnist(
        config, grid, save_model=tmp_path / "map.pt", samples_out=tmp_path / "s.npy"
    )
    (model,) = result.models
    assert model.model == "cmgn" and model.grid == str(grid)
    with Image.open(grid) as image:
        assert image.size == (8 * 28 + 9 * 2,) * 2
    assert set(result.reference) == REFERENCES
    for metrics in [
        model.metrics,
        model.start_metrics,
        *result.reference.values(),
    ]:
        assert set(metrics) == METRICS
        assert all(math.isfinite(v) for v in metrics.values())
    # The audit file: float32, one row of 784 pixels in [0, 1] per scored sample.
    samples = np.load(tmp_path / "s.npy")
    assert samples.dtype == np.float32 and samples.shape == (64, 784)
    assert samples.min() >= 0 and samples.max() <= 1
    # The classifier learns the synthetic classes; real digits score far better than noise.
    assert result.classifier["test_accuracy"] > 0.9 and result.classifier["trained_now"]
    assert result.autoencoder["trained_now"] and result.space == "ae" and result.latent == 16
    assert result.reference["train_digits"]["fid"] < result.reference["noise"]["fid"]
    saved = torch.load(tmp_path / "map.pt", weights_only=True)
    assert saved["model"] == "cmgn" and saved["space"] == "ae"
    assert any(k.startswith("codec.autoencoder.") for k in saved["state_dict"])
    # Same seed, cached classifier and autoencoder: the same numbers; no overwrite without force.
    with pytest.raises(UsageError, match="exists"):
        run_mnist(config, grid)
    again = run_mnist(config, grid, force=True, save_model=tmp_path / "map.pt")
    assert not again.classifier["trained_now"] and not again.autoencoder["trained_now"]
    assert again.models[0].metrics == model.metrics
    assert again.reference == result.reference


def test_run_mnist_pca_space(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "d")
    config = MnistConfig(steps=3, batch_size=16, data=folder, space="pca", latent=8, **TINY)
    result = run_mnist(config)
    assert result.space == "pca" and result.latent == 8 and not result.autoencoder
    assert set(result.reference) == REFERENCES - {"ae_reconstructions", "ae_gaussian", "ae_gmm"}
    assert math.isfinite(result.models[0].metrics["fid"])
    assert not list((tmp_path / "cache" / "otcolor").glob("mnist-autoencoder-*"))


def test_cli_json_all_models(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "d", n_train=200, n_test=64)
    out = tmp_path / "g.png"
    args = [
        "mnist",
        "-o",
        str(out),
        "--data",
        str(folder),
        "--model",
        "all",
        "--steps",
        "3",
        "--batch",
        "8",
        "--samples",
        "32",
        "--device",
        "cpu",
        "--json",
        "--loss",
        "wgan",  # the library test covers the default loss, this one the seed's
        "--space",
        "pca",  # and the autoencoder (its training dominates a run on these digits)
        "--latent",
        "8",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [m["model"] for m in payload["models"]] == ["cmgn", "mmgn", "icnn"]
    for name in ("cmgn", "mmgn", "icnn"):
        assert (tmp_path / f"g-{name}.png").is_file()
    assert set(payload["reference"]) == {
        "train_digits",
        "gaussian",
        "noise",
        "gmm_pca",
        "pca_reconstructions",
    }
    assert all("nn_ratio" in m["start_metrics"] for m in payload["models"])
    assert payload["steps"] == 3 and payload["device"] == "cpu" and payload["loss"] == "wgan"
    # Existing grids are kept without --force: usage error, before any training.
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.stderr


def test_cli_bad_data_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mnist", "-o", str(tmp_path / "g.png"), "--data", str(tmp_path)])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and "missing MNIST file" in result.stderr
