r"""Committing finished temporary files: one at a time, or all the outputs of a command
together (:func:`outputs_together`), and the temporary names they live under meanwhile.

Writers (:func:`otcolor.io.write_atomically`, the video encoder) produce a complete, synced
temporary file beside the target and hand it to :func:`finish_file`; this module decides when
it becomes the output.
"""

from __future__ import annotations

__all__ = ["TMP_MARK", "commit_file", "finish_file", "name_max", "outputs_together", "tmp_prefix"]

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

#: The temporary file's name is ``.`` + a prefix of the output's name + this + 8 random
#: characters; the prefix is shortened so that the whole name fits the file system's limit.
TMP_MARK = ".otcolor-tmp-"


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


@dataclass(frozen=True)
class _Staged:
    r"""A finished temporary file waiting for the end of :func:`outputs_together`."""

    tmp: Path
    path: Path
    overwrite: bool


#: The files staged by the innermost :func:`outputs_together` block, or ``None`` outside one.
_STAGED: contextvars.ContextVar[list[_Staged] | None] = contextvars.ContextVar(
    "otcolor_staged_outputs", default=None
)


def finish_file(
    tmp: str | os.PathLike[str], path: str | os.PathLike[str], *, overwrite: bool
) -> None:
    r"""Commits a finished temporary file onto ``path`` (:func:`commit_file`), or, inside
    :func:`outputs_together`, stages it for the block's end.

    The temporary file must be complete, synced and have its final mode (:func:`new_file_mode`);
    from here on it belongs to this module (removed on failure).
    """

    staged = _STAGED.get()
    if staged is None:
        commit_file(tmp, Path(path), overwrite=overwrite)
    else:
        staged.append(_Staged(Path(tmp), Path(path), overwrite))


@contextlib.contextmanager
def outputs_together() -> Iterator[None]:
    r"""Commits every output written inside the block together, at its end, or none of them.

    Inside, :func:`write_atomically` (so every image, map, LUT and report writer) and
    :func:`finish_file` leave their finished temporary file staged instead of renaming it.
    When the block ends normally, the staged files are committed in the order written; when it
    raises (Ctrl-C and SIGTERM included), they are removed and nothing is written. Should a
    commit itself fail (a file appeared at an output path, without ``--force``), the commits
    already made are undone: a new file is removed, a replaced one gets its previous content
    back (kept meanwhile as a hard link beside it). A block inside another joins it.

    Example:
        >>> import os, tempfile
        >>> from pathlib import Path
        >>> from otcolor.io import write_atomically
        >>> folder = Path(tempfile.mkdtemp())
        >>> try:
        ...     with outputs_together():
        ...         write_atomically(folder / "a.txt", lambda fp: fp.write(b"a"))
        ...         raise KeyboardInterrupt  # the second output never comes
        ... except KeyboardInterrupt:
        ...     pass
        >>> sorted(os.listdir(folder))  # neither the first output nor a temporary file
        []
    """

    if _STAGED.get() is not None:
        yield
        return
    staged: list[_Staged] = []
    token: contextvars.Token | None = _STAGED.set(staged)
    try:
        yield
        _STAGED.reset(token)
        token = None
        _commit_all(staged)
    finally:
        if token is not None:
            _STAGED.reset(token)
        for item in staged:  # those not committed (all of them on failure)
            with contextlib.suppress(OSError):
                os.unlink(item.tmp)


def _commit_all(staged: list[_Staged]) -> None:
    r"""Commits staged files in order; on any failure undoes the commits already made."""

    done: list[tuple[Path, Path | None, bool]] = []  # path, backup of the old file, existed
    backups: list[Path] = []
    try:
        for item in staged:
            existed = os.path.lexists(item.path)
            backup = _hard_link_backup(item.path) if existed and item.overwrite else None
            if backup is not None:
                backups.append(backup)
            commit_file(item.tmp, item.path, overwrite=item.overwrite)
            done.append((item.path, backup, existed))
    except BaseException:
        for path, backup, existed in reversed(done):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, path)
                elif not existed:
                    os.unlink(path)
        raise
    finally:
        for backup in backups:
            with contextlib.suppress(OSError):
                os.unlink(backup)


def _hard_link_backup(path: Path) -> Path | None:
    r"""A second name for the file at ``path`` (a temporary name beside it), so that a commit
    over it can be undone; ``None`` where the file system has no hard links."""

    for _ in range(16):
        candidate = path.parent / f"{tmp_prefix(path)}{os.urandom(4).hex()}"
        try:
            os.link(path, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            return None
        return candidate
    return None


def name_max(folder: Path) -> int:
    r"""The longest file name, in bytes, that ``folder``'s file system accepts."""

    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX"))
    return 255


def tmp_prefix(path: Path) -> str:
    r"""``.<name>.otcolor-tmp-``, with ``name`` cut so that the temporary name fits.

    A legal 251-byte output name would otherwise fail after the fit, on its temporary file.
    """

    room = name_max(path.parent) - 1 - len(TMP_MARK) - 8  # the dot, the mark, mkstemp's 8
    name = os.fsencode(path.name)[: max(room, 0)].decode("utf-8", "ignore")
    return f".{name}{TMP_MARK}"
