r"""Files in and out: reading only regular files of a bounded size, what may be written where,
and writing it all or nothing.

Every file otcolor reads goes through :func:`open_regular` (or :func:`read_regular`), so that a
FIFO or a device such as ``/dev/zero`` is refused instead of blocking or reading without end.
Every module that writes a file (images, maps, LUTs, reports, videos) goes through
:func:`write_atomically` or :func:`finish_file`: a synced temporary file beside the target, then
a rename, so that no partial output is ever left behind; inside :func:`outputs_together` the
renames of one command wait for its end and happen together, or not at all.
"""

from __future__ import annotations

__all__ = [
    "check_distinct_outputs",
    "check_file_name",
    "check_output_path",
    "commit_file",
    "describe_os_error",
    "finish_file",
    "identity_and_digest",
    "new_file_mode",
    "open_regular",
    "outputs_together",
    "read_regular",
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
from typing import IO, BinaryIO, TypeVar

from ..errors import InputError, OutputError, UsageError
from .commit import commit_file, finish_file, name_max, outputs_together, tmp_prefix
from .formats import ALPHA_FORMATS, HINT_PATH, HINT_READ, HINT_WRITABLE, output_format

_T = TypeVar("_T")


def open_regular(
    path: str | os.PathLike[str],
    limit: int | None = None,
    *,
    what: str = "file",
    hint: str | None = None,
) -> BinaryIO:
    r"""Opens an input file for reading, refusing anything but a regular file of at most
    ``limit`` bytes, without ever blocking.

    A FIFO, a socket, a terminal or a device (``/dev/zero``, ``/dev/urandom``) given where a file
    is expected would block the open or feed bytes without end; each is refused here, with one
    line, before a byte is read. How:

    1. ``os.stat``: the path must name a regular file (through symlinks) of at most ``limit``
       bytes;
    2. ``os.open`` with ``O_NONBLOCK``, so that a FIFO swapped in after the check cannot block
       the open (``O_NOCTTY``: a terminal never becomes the controlling one);
    3. ``os.fstat`` of the open descriptor: the same checks again, on the file actually opened;
    4. ``O_NONBLOCK`` is cleared (a regular file ignores it; the reader gets ordinary reads).

    The caller reads the file and closes it (a ``with`` block); :func:`read_regular` reads it
    whole, also stopping at ``limit`` bytes should the file grow meanwhile.

    Arguments:
        path: the file.
        limit: the largest accepted size in bytes, or ``None`` for no limit.
        what: what the file is, for messages (``"map file"``, ``"LUT"``, ``"image"``).
        hint: the hint of the too-large message (default: the class's).

    Returns:
        The open binary file, positioned at its start.

    Raises:
        InputError: missing, unreadable, a directory, not a regular file, larger than
            ``limit``, or a path holding a NUL byte (exit code 3).
        TypeError: ``path`` is not a path at all (an int, ``None``).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "notes.txt")
        >>> with open(path, "wb") as fp:
        ...     _ = fp.write(b"hello")
        >>> with open_regular(path, limit=16) as fp:
        ...     fp.read()
        b'hello'
        >>> fifo = os.path.join(folder, "pipe")
        >>> os.mkfifo(fifo)
        >>> open_regular(fifo)
        Traceback (most recent call last):
        otcolor.errors.InputError: ...pipe: is a FIFO (named pipe), not a regular file (...)
    """

    path = Path(path)  # TypeError for an int or None, as open() gives
    info = _stat_input(path, lambda: os.stat(path))
    _check_regular(path, info, limit, what, hint)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = _stat_input(path, lambda: os.open(path, flags | getattr(os, "O_CLOEXEC", 0)))
    try:
        _check_regular(path, os.fstat(fd), limit, what, hint)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(
    path: str | os.PathLike[str],
    limit: int,
    *,
    what: str = "file",
    hint: str | None = None,
) -> bytes:
    r"""The whole content of a regular file of at most ``limit`` bytes (:func:`open_regular`).

    At most ``limit + 1`` bytes are ever read, so a file that grows while it is read is refused
    too, not read without end.

    Raises:
        InputError: as :func:`open_regular`, or the file grew past ``limit`` while read.
    """

    with open_regular(path, limit, what=what, hint=hint) as fp:
        try:
            data = fp.read(limit + 1)
        except OSError as err:
            raise InputError(f"{path}: cannot read: {describe_os_error(err)}", HINT_READ) from err
    if len(data) > limit:
        raise InputError(f"{path}: grew past {limit:,} bytes while it was read", hint)
    return data


def _stat_input(path: Path, call: Callable[[], _T]) -> _T:
    r"""``call()`` (a stat or an open of ``path``) with its failures as one-line input errors."""

    try:
        return call()
    except ValueError as err:  # os.stat and os.open refuse NUL bytes this way
        name = os.fsdecode(path).replace("\x00", "\\x00")
        raise InputError(f"{name}: not a file name (it holds a NUL byte)", HINT_READ) from err
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file", HINT_READ) from err
    except PermissionError as err:
        raise InputError(f"{path}: permission denied", HINT_READ) from err
    except OSError as err:
        raise InputError(f"{path}: cannot read: {describe_os_error(err)}", HINT_READ) from err


def _check_regular(
    path: Path, info: os.stat_result, limit: int | None, what: str, hint: str | None
) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory, not a {what}", f"give a {what}")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {_file_kind(mode)}, not a regular file", f"give a {what}")
    if limit is not None and info.st_size > limit:
        raise InputError(
            f"{path}: {info.st_size:,} bytes is too large for a {what} (limit {limit:,})", hint
        )


def _file_kind(mode: int) -> str:
    r"""What a file that is not a regular file is, for messages."""

    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def identity_and_digest(path: Path, hash_it: bool = True) -> tuple[tuple[int, ...], str]:
    r"""The file's (device, inode, size, mtime) and, with ``hash_it``, its SHA-256.

    Raises:
        InputError: as :func:`open_regular` (a FIFO or device is never opened to be hashed).
    """

    digest = hashlib.sha256()
    try:
        with open_regular(path) as fp:
            info = os.fstat(fp.fileno())
            if hash_it:
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
    check_file_name(output)
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
    limit = name_max(output.parent)
    if len(os.fsencode(output.name)) > limit:
        raise UsageError(
            f"{output}: file name is {len(os.fsencode(output.name))} bytes, "
            f"above this file system's limit of {limit}",
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
        UsageError: ``overwrite`` is false and ``path`` exists when the file is committed, or
            the path holds a NUL byte.
        OutputError: the file cannot be written.
    """

    path = Path(path)
    check_file_name(path)
    _atomic_write(path, write, overwrite)


def check_file_name(path: str | os.PathLike[str]) -> None:
    r"""Refuses an output path no system call accepts: one holding a NUL byte (Python's
    ``ValueError``, exit 1, otherwise).

    Raises:
        UsageError: the path holds a NUL byte (exit code 2).
    """

    name = os.fsdecode(path)
    if "\x00" in name:
        shown = name.replace("\x00", "\\x00")
        raise UsageError(f"{shown}: not a file name (it holds a NUL byte)", "choose another path")


def _same_file(a: Path, b: Path) -> bool:
    r"""Whether two paths name the same file: symlinks, hard links and other spellings."""

    with contextlib.suppress(OSError, ValueError):  # ValueError: a NUL byte, refused elsewhere
        if os.path.samefile(a, b):
            return True
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        return a.resolve() == b.resolve()
    return False


def new_file_mode(path: Path) -> int:
    r"""The permissions an output at ``path`` gets: those of the file it replaces, else what
    ``open()`` would give a new file (``0o666`` less the umask: ``0o644`` usually).

    Temporary files are created ``0o600`` (``mkstemp``); every writer sets this mode on its
    temporary file before the commit, images, maps, LUTs and videos alike.
    """

    try:
        return stat.S_IMODE(path.stat().st_mode)
    except (OSError, ValueError):
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> None:
    r"""Writes through a synced temporary file in the same directory, then commits it
    (:func:`finish_file`).

    With ``overwrite`` the commit is a rename over ``path``. Without it, the commit cannot
    replace a file: a hard link (or, where the file system has none, an exclusive create
    followed by the rename), so a file that appeared at ``path`` while we were fitting or
    writing is kept and the write fails, instead of the check at start-up being trusted.
    """

    mode = new_file_mode(path)
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
        finish_file(tmp, path, overwrite=overwrite)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, Exception) and not isinstance(err, (OutputError, UsageError)):
            raise OutputError(
                f"{path}: cannot write: {describe_os_error(err)}", _HINT_SPACE
            ) from err
        raise


_HINT_SPACE = "check free space and permissions"


def describe_os_error(err: BaseException) -> str:
    r"""A one-line description of an exception, for error messages."""

    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
