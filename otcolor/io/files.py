r"""Output policy and atomic writes: what may be written where, and writing it all or nothing.

Every module that writes a file (images, maps, LUTs, reports, videos) goes through
:func:`write_atomically` or :func:`commit_file`: a synced temporary file beside the target,
then a rename, so that no partial output is ever left behind.
"""

from __future__ import annotations

__all__ = [
    "check_distinct_outputs",
    "check_output_path",
    "commit_file",
    "describe_os_error",
    "identity_and_digest",
    "tmp_prefix",
    "write_atomically",
]

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from ..errors import InputError, OutputError, UsageError
from .formats import ALPHA_FORMATS, HINT_PATH, HINT_READ, HINT_WRITABLE, output_format

#: The temporary file's name is ``.`` + a prefix of the output's name + this + 8 random
#: characters; the prefix is shortened so that the whole name fits the file system's limit.
_TMP_MARK = ".otcolor-tmp-"


def identity_and_digest(path: Path, hash_it: bool = True) -> tuple[tuple[int, ...], str]:
    r"""The file's (device, inode, size, mtime) and, with ``hash_it``, its SHA-256."""

    digest = hashlib.sha256()
    try:
        info = path.stat()
        if hash_it:
            with path.open("rb") as fp:
                for block in iter(lambda: fp.read(1 << 20), b""):
                    digest.update(block)
    except OSError as err:
        raise InputError(f"{path}: cannot read: {describe_os_error(err)}", HINT_READ) from err
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns), digest.hexdigest()


def check_output_path(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    force: bool,
    has_alpha: bool = False,
    image: bool = True,
) -> None:
    r"""Checks, before any training, that an output can be written where asked.

    Arguments:
        output: the output file; its extension picks the format.
        inputs: the input files, which the output must never replace.
        force: whether an existing output may be overwritten.
        has_alpha: whether the output will carry an alpha channel.
        image: whether the output is an image (else its extension is not checked).

    Raises:
        UsageError: unsupported extension, output is an input, is a directory, or exists
            without ``force``.
        OutputError: the directory is missing or not writable, or the format cannot hold
            the alpha channel.
    """

    output = Path(output)
    try:
        _check_output_path(output, inputs, force=force, has_alpha=has_alpha, image=image)
    except OSError as err:
        # E.g. ENAMETOOLONG from is_dir() or EACCES on a folder above: anticipated, not a bug.
        raise UsageError(
            f"{output}: cannot use this path: {describe_os_error(err)}", HINT_PATH
        ) from err


def check_distinct_outputs(
    outputs: Sequence[str | os.PathLike[str] | None],
    inputs: Sequence[str | os.PathLike[str] | None],
) -> None:
    r"""Checks that no output is an input and that no two outputs are the same file.

    Two outputs on one path would silently keep only the one written last; ``--force`` does
    not change that, so this is checked with or without it.

    Raises:
        UsageError: an output is an input, or two outputs name the same file.
    """

    paths = [Path(p) for p in outputs if p is not None]
    sources = [Path(p) for p in inputs if p is not None]
    for i, output in enumerate(paths):
        for source in sources:
            if _same_file(output, source):
                raise UsageError(
                    f"{output}: is the input {source}; refusing to overwrite an input",
                    "choose another output path",
                )
        for other in paths[:i]:
            if _same_file(output, other):
                raise UsageError(
                    f"{output}: is given as two outputs ({other})",
                    "give every output its own path",
                )


def _check_output_path(
    output: Path,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    force: bool,
    has_alpha: bool,
    image: bool,
) -> None:
    fmt = output_format(output) if image else ""
    name_max = _name_max(output.parent)
    if len(os.fsencode(output.name)) > name_max:
        raise UsageError(
            f"{output}: file name is {len(os.fsencode(output.name))} bytes, "
            f"above this file system's limit of {name_max}",
            "choose a shorter name",
        )

    for source in map(Path, inputs):
        if _same_file(output, source):
            raise UsageError(
                f"{output}: is the input {source}; refusing to overwrite an input",
                "choose another output path",
            )

    if output.is_dir():
        raise UsageError(f"{output}: is a directory", "give a file name such as out.png")
    if output.exists() or output.is_symlink():
        if not force:
            raise UsageError(f"{output}: already exists", "use --force to overwrite")
        if output.exists() and not stat.S_ISREG(output.stat().st_mode):
            raise UsageError(f"{output}: exists and is not a regular file", "choose another path")

    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: directory {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: directory {parent} is not writable", HINT_WRITABLE)

    if has_alpha and fmt not in ALPHA_FORMATS:
        raise OutputError(
            f"{output}: {fmt} cannot hold the input's alpha channel", "use .png/.webp/.tiff"
        )


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], overwrite: bool = True
) -> None:
    r"""Writes any file as :func:`save_image` does: synced temporary file, then a rename.

    Raises:
        UsageError: ``overwrite`` is false and ``path`` exists when the file is committed.
        OutputError: the file cannot be written.
    """

    _atomic_write(Path(path), write, overwrite)


def _same_file(a: Path, b: Path) -> bool:
    r"""Whether two paths name the same file: symlinks, hard links and other spellings."""

    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    with contextlib.suppress(OSError, RuntimeError):
        return a.resolve() == b.resolve()
    return False


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> None:
    r"""Writes through a synced temporary file in the same directory, then commits it.

    With ``overwrite`` the commit is a rename over ``path``. Without it, the commit cannot
    replace a file: a hard link (or, where the file system has none, an exclusive create
    followed by the rename), so a file that appeared at ``path`` while we were fitting or
    writing is kept and the write fails, instead of the check at start-up being trusted.
    """

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        # mkstemp creates 0600 files; give new outputs the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    try:
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), dir=path.parent)
    except OSError as err:
        message = f"{path}: cannot create a file: {describe_os_error(err)}"
        raise OutputError(message, HINT_WRITABLE) from err

    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, mode)
        commit_file(tmp, path, overwrite=overwrite)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, Exception) and not isinstance(err, (OutputError, UsageError)):
            raise OutputError(
                f"{path}: cannot write: {describe_os_error(err)}", _HINT_SPACE
            ) from err
        raise


_HINT_SPACE = "check free space and permissions"


def commit_file(tmp: str | os.PathLike[str], path: Path, *, overwrite: bool) -> None:
    r"""Moves a finished temporary file onto ``path``: a rename over it with ``overwrite``,
    else only if ``path`` does not exist, atomically with respect to other programs.

    Raises:
        UsageError: ``overwrite`` is false and ``path`` exists (``tmp`` is left for the caller
            to remove).
    """

    if overwrite:
        os.replace(tmp, path)
        return

    appeared = UsageError(
        f"{path}: appeared while otcolor was running; it was kept and nothing was written",
        "use --force to overwrite",
    )
    try:
        os.link(tmp, path)
    except FileExistsError as err:
        raise appeared from err
    except OSError:
        # No hard links here (FAT, some network and FUSE file systems): reserve the name
        # exclusively, then rename over our own empty reservation.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError as err:
            raise appeared from err
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _name_max(folder: Path) -> int:
    r"""The longest file name, in bytes, that ``folder``'s file system accepts."""

    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX"))
    return 255


def tmp_prefix(path: Path) -> str:
    r"""``.<name>.otcolor-tmp-``, with ``name`` cut so that the temporary name fits.

    A legal 251-byte output name would otherwise fail after the fit, on its temporary file.
    """

    room = _name_max(path.parent) - 1 - len(_TMP_MARK) - 8  # the dot, the mark, mkstemp's 8
    name = os.fsencode(path.name)[: max(room, 0)].decode("utf-8", "ignore")
    return f".{name}{_TMP_MARK}"


def describe_os_error(err: BaseException) -> str:
    r"""A one-line description of an exception, for error messages."""

    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
