"""Local console users: a secret file of ``name:role:argon2-hash`` lines, and checking a password.

The file format (docs/console.md#local-users)::

    # name:role:hash     role is viewer or approver
    alice:approver:$argon2id$v=19$m=65536,t=3,p=4$...
    bob:viewer:$argon2id$v=19$m=65536,t=3,p=4$...

The file is re-read when it changes, so removing a user or changing a role takes
effect on the next request without a restart. A wrong name costs the same time
as a wrong password: the password is then checked against a dummy hash.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from connector.errors import ConfigError

log = logging.getLogger(__name__)
Role = Literal["viewer", "approver"]
ROLES: tuple[Role, ...] = ("viewer", "approver")
NAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
"""User names: no separator, no space, nothing that needs escaping in a log line."""

_HASHER = PasswordHasher()
_DUMMY_PASSWORD = "not a password: only here so an unknown name takes as long as a wrong password"


@dataclass(frozen=True)
class LocalUser:
    name: str
    role: Role
    password_hash: str


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with the library's recommended parameters."""
    return _HASHER.hash(password)


def users_line(name: str, role: str, password: str) -> str:
    """One line of the users file; ``ValueError`` for a name or role the file cannot hold."""
    if not NAME.fullmatch(name):
        raise ValueError("a user name is 1 to 64 letters, digits or . _ @ + -")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return f"{name}:{role}:{hash_password(password)}"


def parse_users(text: str, source: str) -> dict[str, LocalUser]:
    """The users in a users file's text; ``ConfigError`` naming the line (never its content: it holds a hash)."""
    users: dict[str, LocalUser] = {}
    problems: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, password_hash = rest.partition(":")
        where = f"{source}:{number}"
        if not NAME.fullmatch(name):
            problems.append((where, "expected name:role:hash with a name of letters, digits or . _ @ + -"))
        elif role not in ROLES:
            problems.append((where, f"role must be one of {', '.join(ROLES)}"))
        elif not password_hash.startswith("$argon2"):
            problems.append((where, "the hash must be an argon2 hash (make one with connector console hash-password)"))
        elif name in users:
            problems.append((where, f"user {name} is listed twice"))
        else:
            users[name] = LocalUser(name, role, password_hash)
    if problems:
        raise ConfigError(problems)
    return users


_DUMMIES: dict[str, str] = {}


def dummy_hash(parameters: Parameters | None = None) -> str:
    """A hash of nothing with ``parameters`` (the users file's own): checking it costs what a real one does."""
    key = repr(parameters)
    if key not in _DUMMIES:
        hasher = PasswordHasher.from_parameters(parameters) if parameters is not None else _HASHER
        _DUMMIES[key] = hasher.hash(_DUMMY_PASSWORD)
    return _DUMMIES[key]


def verify_password(user: LocalUser | None, password: str, dummy: str | None = None) -> bool:
    """Whether ``password`` is ``user``'s; an unknown user (``None``) is checked against ``dummy`` and fails."""
    try:
        return _HASHER.verify(user.password_hash if user else dummy or dummy_hash(), password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class LocalUsersFile:
    """The users file, re-read when its modification time or size changes.

    A missing or broken file stops the console at start-up (the line named). Broken
    later, it counts as empty until fixed: nobody signs in rather than somebody the
    admin was removing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users = self._read()

    def _read(self) -> dict[str, LocalUser]:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([("console.users_file", f"cannot read {self.path}: {exc.strerror}")]) from exc
        users = parse_users(text, str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return users

    def users(self) -> dict[str, LocalUser]:
        """The current users (none while the file is unreadable or broken)."""
        with self._lock:
            try:
                stat = self.path.stat()
                changed = (stat.st_mtime_ns, stat.st_size) != self._stamp
            except OSError:
                changed = True
            if changed:
                try:
                    self._users = self._read()
                except ConfigError as exc:
                    log.error("local users file unusable, nobody can sign in until it is fixed: %s", exc)
                    self._users, self._stamp = {}, None
            return self._users

    def get(self, name: str) -> LocalUser | None:
        return self.users().get(name)

    def dummy_hash(self) -> str:
        """For an unknown name: a hash made like the file's first one, so the failure takes as long."""
        first = next(iter(self.users().values()), None)
        try:
            return dummy_hash(extract_parameters(first.password_hash) if first is not None else None)
        except InvalidHashError:
            return dummy_hash()
