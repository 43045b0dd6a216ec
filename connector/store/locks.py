"""Locks that keep jobs of several processes (and replicas) from running at once.

PostgreSQL: a session advisory lock per name, held on a connection of its own
for as long as the job runs; the server releases it when the connection ends,
so a crashed process never leaves a stale lock. SQLite: ``flock`` on a file
next to the database (same guarantee: the kernel drops it with the process).
SQLite has a single writer anyway, so there every name shares one lock file.

Jobs of one process queue for each other (a thread lock, taken first); only
another process holding the lock makes a job skip its turn (``LockBusy``).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import RetriableError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2


class LockBusy(RetriableError):
    """Another process holds the lock; the job skips this turn."""


class JobLocks(Protocol):
    """Named, cross-process, non-reentrant locks."""

    def hold(self, names: Sequence[str], *, wait_seconds: float = 0) -> AbstractContextManager[None]:
        """Hold every lock in ``names`` (in a fixed order); ``LockBusy`` after ``wait_seconds``."""

    def describe(self) -> str:
        """What kind of lock, for logs."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (the same in every process)."""
    digest = hashlib.sha256(f"mailflow-connector:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _until(deadline: float) -> bool:
    if time.monotonic() >= deadline:
        return False
    time.sleep(POLL_SECONDS)
    return True


class PostgresJobLocks:
    """Session advisory locks on a dedicated connection per held name."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local: dict[str, threading.Lock] = {}
        self._local_guard = threading.Lock()

    def _local_lock(self, name: str) -> threading.Lock:
        with self._local_guard:
            return self._local.setdefault(name, threading.Lock())

    def describe(self) -> str:
        return "PostgreSQL advisory locks"

    @contextmanager
    def _one(self, name: str, wait_seconds: float) -> Iterator[None]:
        with self._local_lock(name), self._advisory(name, wait_seconds):
            yield

    @contextmanager
    def _advisory(self, name: str, wait_seconds: float) -> Iterator[None]:
        key = lock_key(name)
        deadline = time.monotonic() + wait_seconds
        try:
            connection: Connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot reach the state database for lock {name!r}: {exc}") from exc
        try:
            while True:
                got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
                connection.commit()  # no transaction stays open while the lock is held
                if got:
                    break
                if not _until(deadline):
                    raise LockBusy(f"another process holds the {name!r} lock")
            log.debug("lock %s acquired", name)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
                log.debug("lock %s released", name)
        except SQLAlchemyError as exc:
            raise RetriableError(f"lock {name!r}: {exc}") from exc
        finally:
            connection.close()

    @contextmanager
    def hold(self, names: Sequence[str], *, wait_seconds: float = 0) -> Iterator[None]:
        with ExitStack() as stack:
            for name in sorted(set(names)):  # one order everywhere: no deadlock between two holders
                stack.enter_context(self._one(name, wait_seconds))
            yield


class FileJobLocks:
    """``flock`` on ``<database>.lock``: one lock for every name (SQLite has one writer)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.Lock()

    def describe(self) -> str:
        return f"file lock {self._path}"

    @contextmanager
    def hold(self, names: Sequence[str], *, wait_seconds: float = 0) -> Iterator[None]:
        with self._local, self._flock(names, wait_seconds):
            yield

    @contextmanager
    def _flock(self, names: Sequence[str], wait_seconds: float) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not _until(deadline):
                        raise LockBusy(f"another process holds {self._path} ({', '.join(names)})") from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class ThreadJobLocks:
    """For an in-memory database: only this process can see it, so a thread lock (jobs queue) is enough."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "in-process lock"

    @contextmanager
    def hold(self, names: Sequence[str], *, wait_seconds: float = 0) -> Iterator[None]:
        with self._lock:
            yield


def make_job_locks(engine: Engine) -> PostgresJobLocks | FileJobLocks | ThreadJobLocks:
    """The lock kind that fits the state database behind ``engine``."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresJobLocks(engine)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return FileJobLocks(Path(f"{url.database}.lock"))
    return ThreadJobLocks()
