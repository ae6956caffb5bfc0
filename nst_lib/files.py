"""Atomic file writes: a file appears complete or not at all.

Stopping a program (Ctrl-C's SIGINT, or the SIGTERM that ``kill``, a closing
terminal, a CI timeout or a job scheduler sends) while a file is being written
leaves the previous file as it was and no temporary file behind: during a
write from the main thread, SIGTERM raises ``Terminated``, a
``KeyboardInterrupt``, unless the program handles SIGTERM itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import tempfile
import threading
from pathlib import Path

# The temporary file's name keeps this many characters of the target's, so that it stays short
# whatever the target's name: ".<start of the name>.<random>.part".
TEMPORARY_NAME_KEEPS = 32


class WriteError(OSError):
    """A file cannot be written where asked; the message says why and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same cleanup runs."""


class Interrupted(KeyboardInterrupt):
    """A run (a sweep, a report build) was stopped by Ctrl-C or SIGTERM; the message says what it kept
    and what it did not."""


# What a user can cause, each said in one sentence: a value that cannot be used (ValueError, which
# AssetError, ImageError, WeightsError and CheckpointError are) or a file that cannot be read or written
# (OSError, which WriteError is). The command line prints them on one line, the explorer in its message line.
USER_ERRORS = (ValueError, OSError)


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within this block, SIGTERM raises ``Terminated`` (a KeyboardInterrupt), as Ctrl-C does.

    Only where it can be and need be: in the main thread, and when SIGTERM has
    no handler of the program's own; the previous handler comes back after.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, name: str | None = None) -> Path:
    """Raise a one-sentence ``WriteError`` unless a file can be written at ``path``.

    The folder must exist and take new files (tried, not guessed from
    permissions), ``path`` must not be a folder, and its name must fit the
    file system. ``name`` is what the path is called in the message (an
    option such as ``--output``).
    """
    path = Path(path)
    label = f"{name} {path}" if name else str(path)
    folder = path.parent
    if not folder.is_dir():
        raise WriteError(f"{label}: the folder {folder} does not exist.")
    length, most = len(os.fsencode(path.name)), _longest_name(folder)
    if length > most:
        raise WriteError(f"{label}: the file name is {length} bytes long, and this file system allows {most}.")
    if path.is_dir():
        raise WriteError(f"{label} is a folder: give the name of a file inside it.")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise WriteError(f"{label}: the folder {folder} takes no new files ({error.strerror or error}).") from None
    return path


def check_folder(path: str | os.PathLike, name: str | None = None, beside: tuple[str, ...] = ()) -> Path:
    """Raise a one-sentence ``WriteError`` unless ``path`` is a folder that takes new files, or one that
    can be made with its missing parents.

    No part of ``path`` may be a file, every name still to be made must fit the
    file system, and the folder that receives them must take them (tried, not
    guessed from permissions). ``beside``: suffixes of folders also made next
    to ``path`` (its name with the suffix added), whose names must fit too and
    whose folder must take them. ``name`` is what the path is called in the
    message (an option such as ``--output``).
    """
    label = f"{name} {path}" if name else str(path)
    path = Path(os.path.abspath(path))
    missing, existing = _missing_parts(path)
    if existing == path and not path.is_dir():
        raise WriteError(f"{label} is a file: give a folder (it is made if missing).")
    if not existing.is_dir():
        raise WriteError(f"{label}: {existing} is a file, not a folder.")
    most = _longest_name(existing)
    for part in missing:
        length = len(os.fsencode(part.name))
        if length > most:
            which = "the folder name" if part == path else f"the name of the folder {part.name[:16]}..."
            raise WriteError(f"{label}: {which} is {length} bytes long, and this file system allows {most}.")
    for suffix in beside:
        length = len(os.fsencode(path.name + suffix))
        if length > most:
            raise WriteError(f"{label}: with {suffix!r} added, as the folder made beside it is named, its name is "
                             f"{length} bytes long, and this file system allows {most}.")
    folder = existing if missing else path.parent if beside else path
    try:
        if missing or beside:
            os.rmdir(tempfile.mkdtemp(dir=folder))
        else:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        what = "folders" if missing or beside else "files"
        raise WriteError(f"{label}: the folder {folder} takes no new {what} ({error.strerror or error}).") from None
    return path


def _missing_parts(path: Path) -> tuple[list[Path], Path]:
    """The parts of ``path`` that do not exist (the deepest first), and the deepest one that does."""
    missing = []
    while True:
        try:
            os.stat(path)
            return missing, path
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as error:
            if error.errno != errno.ENAMETOOLONG:
                raise WriteError(f"{path}: cannot be looked at ({error.strerror or error}).") from None
        missing.append(path)
        path = path.parent


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (links and relative paths resolved)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _longest_name(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # not POSIX, or the file system does not say
        return 255


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Yield a file handle whose content replaces ``path`` only if the block succeeds.

    The data goes to a hidden temporary file in the same folder (its name is
    short, whatever ``path``'s), is flushed to disk, then renamed over
    ``path``; an exception or an interrupt (Ctrl-C, SIGTERM) leaves ``path``
    as it was and removes the temporary file. A folder that does not exist or
    takes no files, or a ``path`` that is a folder, is a ``WriteError``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise WriteError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    if path.is_dir():
        raise WriteError(f"Cannot write {path}: it is a folder.")
    tmp = path.parent / f".{path.name[:TEMPORARY_NAME_KEEPS]}.{secrets.token_hex(6)}.part"
    with terminate_as_interrupt():
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as error:
                raise WriteError(f"Cannot write {path}: {error.strerror or error}.") from None
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
