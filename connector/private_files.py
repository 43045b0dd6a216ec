"""Files and folders that hold personal data, created with their mode whatever the umask.

Addresses, names and delivery evidence are personal data. What the connector
creates is readable by its own user only (``PRIVATE``: the state database,
batch files), or also by a group (``GROUP_READABLE``: the HTML reports a web
server shows). The mode is set explicitly after creation, so neither a
permissive umask (022, 000) nor a strict one changes it. Folders and files
that already exist keep the mode an admin gave them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600  # state database, batch files
GROUP_READABLE = 0o640  # reports: owner and group (the web server) only
PRIVATE_FOLDER = 0o700  # the state folder, the batch-file folder
GROUP_FOLDER = 0o750  # the reports folder


def ensure_folder(path: Path, mode: int) -> None:
    """Create ``path`` (its parents as usual) with ``mode`` exactly; an existing folder is left alone."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return  # made meanwhile by another process: its mode is that process's business
    os.chmod(path, mode)  # mkdir applied the umask


def create_private_file(path: Path, mode: int = PRIVATE) -> bool:
    """Create an empty ``path`` with ``mode`` unless it exists (another program fills it, e.g. SQLite).

    True when it was created here.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Write ``path`` with ``mode`` so that a reader sees either the old file or the whole new one.

    A new temporary file in the same folder (``.<name>.<random>.tmp``, created 0600 and
    exclusively: two writers never share one, and a planted link is never followed) is
    written, given ``mode``, synced and renamed over ``path``; then the folder is synced.
    """
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_private(path: Path, text: str) -> None:
    """Write ``path`` in place; created ``PRIVATE`` when new (a file named by a person, e.g. a plan).

    An existing file (or ``/dev/stdout``) keeps its mode: the person chose it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)  # the umask can only take bits away
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(text)
