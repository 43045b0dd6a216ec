"""The embedded compliance directory: orgs, users and aliases in the state database.

The default target: small sites need nothing else, and the demo runs offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot, NewUser
from connector.errors import RetriableError, SkippableError
from connector.store.models import TargetAliasRow, TargetOrgRow, TargetUserRow


class EmbeddedComplianceDirectory:
    """Each write commits on its own, so a crash never leaves half a user."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One committed transaction; a locked or unreachable database is an outage."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise RetriableError(f"embedded directory not writable: {exc}") from exc

    def describe(self) -> str:
        return "embedded compliance directory (state database)"

    def known_addresses(self) -> KnownSnapshot:
        try:
            with self._sessions() as session:
                users = {
                    uid: addr for uid, addr in session.execute(select(TargetUserRow.id, TargetUserRow.primary_address))
                }
                aliases = {
                    alias: users[uid]
                    for alias, uid in session.execute(select(TargetAliasRow.address, TargetAliasRow.user_id))
                }
        except OperationalError as exc:
            raise RetriableError(f"embedded directory unreadable: {exc}") from exc
        return KnownSnapshot(users=tuple(sorted(users.values())), aliases=aliases)

    def _org(self, session: Session, name: str) -> TargetOrgRow:
        org = session.scalars(select(TargetOrgRow).where(TargetOrgRow.name == name)).first()
        if org is None:
            org = TargetOrgRow(name=name, created_at=self._clock())
            session.add(org)
            session.flush()
        return org

    def ensure_org(self, name: str) -> None:
        with self._write() as session:
            self._org(session, name)

    def create_user(self, user: NewUser) -> bool:
        with self._write() as session:
            existing = session.scalars(
                select(TargetUserRow).where(TargetUserRow.primary_address == user.primary_address)
            ).first()
            if existing is not None:
                return False
            if session.get(TargetAliasRow, user.primary_address) is not None:
                raise SkippableError(f"{user.primary_address} is already an alias of another user")
            org = self._org(session, user.org)
            row = TargetUserRow(
                primary_address=user.primary_address,
                org_id=org.id,
                display_name=user.display_name,
                external_id=user.external_id,
                created_at=self._clock(),
            )
            session.add(row)
            session.flush()
            for alias in user.aliases:
                if session.get(TargetAliasRow, alias) is None:
                    session.add(TargetAliasRow(address=alias, user_id=row.id, created_at=self._clock()))
            return True

    def add_alias(self, primary_address: str, alias: str) -> bool:
        with self._write() as session:
            user = session.scalars(
                select(TargetUserRow).where(TargetUserRow.primary_address == primary_address)
            ).first()
            if user is None:
                raise SkippableError(f"no user {primary_address} to attach {alias} to")
            existing = session.get(TargetAliasRow, alias)
            if existing is not None:
                if existing.user_id != user.id:
                    raise SkippableError(f"{alias} is already an alias of another user")
                return False
            session.add(TargetAliasRow(address=alias, user_id=user.id, created_at=self._clock()))
            return True

    def flush(self) -> None:
        """Every write commits on its own: nothing to do."""

    def users_by_org(self) -> dict[str, list[tuple[str, list[str]]]]:
        """Org name -> [(primary, aliases)], for the CLI and tests."""
        with self._sessions() as session:
            orgs = {o.id: o.name for o in session.scalars(select(TargetOrgRow))}
            result: dict[str, list[tuple[str, list[str]]]] = {name: [] for name in orgs.values()}
            aliases: dict[int, list[str]] = {}
            for alias in session.scalars(select(TargetAliasRow).order_by(TargetAliasRow.address)):
                aliases.setdefault(alias.user_id, []).append(alias.address)
            for user in session.scalars(select(TargetUserRow).order_by(TargetUserRow.primary_address)):
                result[orgs[user.org_id]].append((user.primary_address, aliases.get(user.id, [])))
        return result
