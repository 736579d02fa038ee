r"""MNIST data: the IDX file format, where the files are looked for, and their download.

The four standard files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) are read from
the first of: an explicit folder, ``$OTCOLOR_DATA``, the cache folder
(``$XDG_CACHE_HOME/otcolor/mnist`` or ``~/.cache/otcolor/mnist``). Only the cache folder is
ever downloaded into.
"""

from __future__ import annotations

__all__ = [
    "FILES",
    "MAX_IDX_BYTES",
    "MIRRORS",
    "MnistData",
    "cache_dir",
    "download",
    "find_data",
    "load_mnist",
    "read_idx",
]

import contextlib
import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..io import open_regular

#: The standard files by role: name (without ``.gz``), and size and MD5 of the ``.gz`` that the
#: mirrors serve (the checksums every MNIST loader checks; a truncated or corrupt download is
#: refused).
FILES: dict[str, tuple[str, int, str]] = {
    "train_images": (
        "train-images-idx3-ubyte",
        9912422,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "train_labels": (
        "train-labels-idx1-ubyte",
        28881,
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "test_images": (
        "t10k-images-idx3-ubyte",
        1648877,
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    "test_labels": (
        "t10k-labels-idx1-ubyte",
        4542,
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
}

#: Public mirrors of the original files, tried in order.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

# IDX type codes (the third byte of the magic number) and the numpy dtypes they denote.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Progress = Callable[[int, int], None]


#: The largest IDX payload read, in bytes (256 MiB: over five times MNIST's 47 MB training
#: images). A header that declares more is refused before anything is decompressed, and no
#: file is ever read past what its header declares, so a small compressed file cannot expand
#: into gigabytes (a gzip bomb).
MAX_IDX_BYTES = 1 << 28

# Decompressed bytes read per call: bounds the memory one read takes besides the result.
_CHUNK = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_HINT_REFETCH = "delete it and fetch it again"


def read_idx(path: str | os.PathLike[str], max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    r"""Reads an IDX file, raw or gzip-compressed (recognised by its first bytes, not its name).

    The format: two zero bytes, a type code, the number of dimensions :math:`k`, :math:`k`
    big-endian 32-bit sizes, then the values in C order. The payload size the header declares
    (computed exactly, so no product of sizes can overflow) is checked against ``max_bytes``
    before the payload is read, and the payload is read in bounded chunks, one byte past the
    declared size at most (to tell a file with trailing data).

    Raises:
        InputError: the file is missing, not a regular file, unreadable, not IDX, truncated,
            longer than its header says, or declares more than ``max_bytes`` of values.

    Example:
        >>> import gzip, os, struct, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.gz")
        >>> with open(path, "wb") as fp:
        ...     _ = fp.write(gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2, 3) + bytes(6)))
        >>> read_idx(path).shape
        (2, 3)
    """

    path = Path(path)
    # open_regular refuses a missing file, a folder, a FIFO or a device before a byte is read,
    # and never blocks on the open.
    with open_regular(path, what="data file", hint=_HINT_REFETCH) as raw:
        try:
            with _decompressed(raw) as fp:
                return _read_idx_stream(fp, path, max_bytes)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise InputError(f"{path}: cannot read: {err}", _HINT_REFETCH) from None


@contextlib.contextmanager
def _decompressed(raw: BinaryIO) -> Iterator[BinaryIO]:
    r"""The file itself, or a streaming gzip reader over it when it starts like gzip."""

    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        yield raw
        return
    with gzip.GzipFile(fileobj=raw, mode="rb") as fp:
        yield fp  # type: ignore[misc]


def _read_exactly(fp: BinaryIO, size: int) -> bytes:
    r"""Reads up to ``size`` bytes in chunks of :data:`_CHUNK` (fewer only at the end)."""

    parts = []
    while size > 0:
        part = fp.read(min(size, _CHUNK))
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_idx_stream(fp: BinaryIO, path: Path, max_bytes: int) -> np.ndarray:
    magic = _read_exactly(fp, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise InputError(f"{path}: not an IDX file (bad magic number)", _HINT_REFETCH)
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    sizes = _read_exactly(fp, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise InputError(f"{path}: truncated IDX header", _HINT_REFETCH)
    shape = struct.unpack(f">{ndim}I", sizes)
    # Python integers: a product of up to 255 sizes below 2**32 is exact, never wrapped.
    expected = math.prod(shape) * dtype.itemsize
    if expected > max_bytes:
        raise InputError(
            f"{path}: IDX header declares shape {shape} ({expected:,} bytes), above the "
            f"limit of {max_bytes:,} bytes",
            "this is not an MNIST-sized file; check the --data folder",
        )
    payload = _read_exactly(fp, expected + 1)  # one more byte tells a longer file
    if len(payload) != expected:
        found = "more" if len(payload) > expected else f"{len(payload)}"
        raise InputError(
            f"{path}: IDX size mismatch ({found} data bytes, expected {expected} for shape "
            f"{shape})",
            "the file is truncated or corrupt; delete it and fetch it again",
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


@dataclass
class MnistData:
    r"""The MNIST images as float32 in :math:`[0, 1]` and labels as int64.

    Attributes:
        train_images: shape :math:`(N, 28, 28)`; train_labels: :math:`(N,)`.
        test_images: shape :math:`(M, 28, 28)`; test_labels: :math:`(M,)`.
        folder: where the files were read from.
        fingerprint: SHA-256 (hex, 16 digits) of the decoded images and labels: keys caches.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    folder: Path
    fingerprint: str


def cache_dir() -> Path:
    r"""The folder otcolor downloads into and caches in: ``$XDG_CACHE_HOME/otcolor`` or
    ``~/.cache/otcolor``."""

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "otcolor"


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder: Path) -> bool:
    return all(_file_in(folder, name) is not None for name, _, _ in FILES.values())


def find_data(folder: str | os.PathLike[str] | None = None) -> Path | None:
    r"""Returns the folder holding the four MNIST files, or ``None`` when none does.

    Looks in ``folder`` when given (and only there), else ``$OTCOLOR_DATA``, else
    ``cache_dir() / "mnist"``.

    Raises:
        InputError: an explicitly given folder (argument or ``$OTCOLOR_DATA``) lacks a file.
    """

    explicit = folder if folder is not None else os.environ.get("OTCOLOR_DATA") or None
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if not explicit.is_dir():
            raise InputError(
                f"{explicit}: no such folder", "give the folder holding the MNIST IDX files"
            )
        missing = [name for name, _, _ in FILES.values() if _file_in(explicit, name) is None]
        if missing:
            raise InputError(
                f"{explicit}: missing MNIST file(s) {', '.join(missing)} (raw or .gz)",
                "put the four IDX files there, or omit --data to download them",
            )
        return explicit
    cached = cache_dir() / "mnist"
    return cached if _complete(cached) else None


def download(
    folder: str | os.PathLike[str] | None = None,
    mirrors: list[str] | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    r"""Downloads the four ``.gz`` files into ``folder`` (the cache by default).

    Each file is streamed to a temporary file in the same folder, its size and MD5 are
    checked against :data:`FILES`, and only then is it renamed into place: an interrupted or
    corrupt download never leaves a file that looks complete. Files already present are kept.

    Arguments:
        folder: where to put the files; ``cache_dir() / "mnist"`` by default.
        mirrors: base URLs tried in order; :data:`MIRRORS` by default.
        progress: called as ``progress(bytes_done, bytes_total)`` while downloading.
        timeout: seconds before a silent connection is given up.

    Returns:
        The folder.

    Raises:
        InputError: no mirror served a file (offline, say): one line that says where to put
            the files by hand.
    """

    folder = Path(folder) if folder is not None else cache_dir() / "mnist"
    mirrors = MIRRORS if mirrors is None else mirrors
    todo = [
        (name, size, md5) for name, size, md5 in FILES.values() if _file_in(folder, name) is None
    ]
    total = sum(size for _, size, _ in todo)
    done = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{folder}: cannot create the MNIST cache folder: {err.strerror}"
        ) from None
    for name, size, md5 in todo:
        errors = []
        for mirror in mirrors:
            try:
                _fetch(
                    f"{mirror}{name}.gz",
                    folder / f"{name}.gz",
                    size,
                    md5,
                    timeout,
                    lambda n, base=done: progress(base + n, total) if progress else None,
                )
                break
            except (OSError, ValueError, urllib.error.URLError) as err:
                errors.append(f"{mirror}: {getattr(err, 'reason', err)}")
        else:
            raise InputError(
                f"cannot download MNIST ({errors[-1] if errors else 'no mirror'})",
                f"put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in {folder}, "
                f"or pass --data DIR",
            )
        done += size
    return folder


def _fetch(
    url: str, path: Path, size: int, md5: str, timeout: float, progress: Callable[[int], None]
) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.otcolor-tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            received = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress(received)
            out.flush()
            os.fsync(out.fileno())
        if received != size or digest.hexdigest() != md5:
            raise ValueError(f"{url}: got {received} bytes with an unexpected checksum")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_mnist(
    folder: str | os.PathLike[str] | None = None,
    download_missing: bool = True,
    progress: Progress | None = None,
    mirrors: list[str] | None = None,
) -> MnistData:
    r"""Finds (see :func:`find_data`), downloads if needed (see :func:`download`) and reads MNIST.

    Raises:
        InputError: missing files that cannot be downloaded, or a corrupt or inconsistent file.
    """

    found = find_data(folder)
    if found is None:
        target = cache_dir() / "mnist"
        if not download_missing:
            raise InputError(
                "MNIST not found",
                f"put the four IDX files in {target}, set OTCOLOR_DATA or pass --data DIR",
            )
        found = download(target, mirrors=mirrors, progress=progress)
    arrays = {role: read_idx(_file_in(found, name)) for role, (name, _, _) in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = found / FILES[f"{split}_images"][0]
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise InputError(
                f"{where}: expected uint8 images of shape (N, 28, 28), got {images.dtype} "
                f"{images.shape}"
            )
        if images.shape[0] < 2:
            raise InputError(f"{where}: needs at least 2 images, got {images.shape[0]}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise InputError(
                f"{where}: {images.shape[0]} images but "
                f"{labels.shape[0] if labels.ndim == 1 else labels.shape} labels"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise InputError(f"{found / FILES[f'{split}_labels'][0]}: labels outside 0..9")
    digest = hashlib.sha256()
    for role in FILES:
        digest.update(arrays[role].tobytes())
    return MnistData(
        train_images=arrays["train_images"].astype(np.float32) / 255,
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"].astype(np.float32) / 255,
        test_labels=arrays["test_labels"].astype(np.int64),
        folder=found,
        fingerprint=digest.hexdigest()[:16],
    )
