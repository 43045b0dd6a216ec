"""The embedded compliance directory: orgs, users and aliases in the state database.

The default target: small sites need nothing else, and the demo runs offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot, NewUser, recreated_user
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
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
                if _holder(session, alias) is None:  # an address another user holds is left out, as on SCIM
                    session.add(TargetAliasRow(address=alias, user_id=row.id, created_at=self._clock()))
            return True

    def add_alias(self, primary_address: str, alias: str) -> bool:
        with self._write() as session:
            user = session.scalars(
                select(TargetUserRow).where(TargetUserRow.primary_address == primary_address)
            ).first()
            if user is None:
                raise SkippableError(f"no user {primary_address} to attach {alias} to")
            holder = _holder(session, alias)
            if holder is not None:
                if holder != user.id:
                    raise SkippableError(f"{alias} is already held by another user")
                return False
            session.add(TargetAliasRow(address=alias, user_id=user.id, created_at=self._clock()))
            return True

    def flush(self) -> None:
        """Every write commits on its own: nothing to do."""

    # -- lifecycle (LifecycleTarget) ----------------------------------------------------------------

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these users (by primary address)."""
        result: dict[str, TargetUser] = {}
        wanted = list(dict.fromkeys(addresses))
        try:
            with self._sessions() as session:
                orgs = {o.id: o.name for o in session.scalars(select(TargetOrgRow))}
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    users = list(session.scalars(select(TargetUserRow).where(TargetUserRow.primary_address.in_(chunk))))
                    ids = [u.id for u in users]
                    aliases: dict[int, list[str]] = {}
                    for alias in session.scalars(select(TargetAliasRow).where(TargetAliasRow.user_id.in_(ids))):
                        aliases.setdefault(alias.user_id, []).append(alias.address)
                    for user in users:
                        result[user.primary_address] = TargetUser(
                            primary_address=user.primary_address,
                            target_id=str(user.id),
                            orgs=(orgs[user.org_id],),
                            aliases=tuple(sorted(aliases.get(user.id, []))),
                            display_name=user.display_name,
                            external_id=user.external_id,
                            active=bool(user.active),
                        )
        except OperationalError as exc:
            raise RetriableError(f"embedded directory unreadable: {exc}") from exc
        return result

    def _user_for(self, session: Session, change: Change) -> TargetUserRow:
        user = None
        if change.target_id and change.target_id.isdigit():
            user = session.get(TargetUserRow, int(change.target_id))
        if user is None:
            user = session.scalars(select(TargetUserRow).where(TargetUserRow.primary_address == change.address)).first()
        if user is None:
            raise SkippableError(f"no user {change.address} in the embedded directory")
        return user

    def apply_change(self, change: Change) -> str | None:
        """Carry out one lifecycle change in its own transaction (idempotent)."""
        if change.kind is ChangeKind.RECREATE:
            self.create_user(recreated_user(change))
            with self._sessions() as session:
                return str(self._user_for(session, change).id)
        with self._write() as session:
            user = self._user_for(session, change)
            if change.kind in (ChangeKind.SUSPEND, ChangeKind.REACTIVATE):
                user.active = change.kind is ChangeKind.REACTIVATE
            elif change.kind is ChangeKind.DELETE:
                for alias in session.scalars(select(TargetAliasRow).where(TargetAliasRow.user_id == user.id)):
                    session.delete(alias)
                session.delete(user)
                return None
            elif change.kind is ChangeKind.UPDATE:
                self._update(session, user, change)
            elif change.kind in (ChangeKind.MOVE, ChangeKind.REPAIR) and change.org and not change.aliases:
                user.org_id = self._org(session, change.org).id
            if change.kind in (ChangeKind.ADD_ALIASES, ChangeKind.REPAIR):
                # The old primary after a rename that was refused is still the primary: not an alias too.
                for address in (a for a in change.aliases if a != user.primary_address):
                    holder = _holder(session, address)
                    if holder is not None and holder != user.id:
                        raise SkippableError(f"{address} is already held by another user")
                    if holder is None:
                        session.add(TargetAliasRow(address=address, user_id=user.id, created_at=self._clock()))
            elif change.kind is ChangeKind.REMOVE_ALIASES:
                for address in change.aliases:
                    existing = session.get(TargetAliasRow, address)
                    if existing is not None and existing.user_id == user.id:
                        session.delete(existing)
            return str(user.id)

    def _update(self, session: Session, user: TargetUserRow, change: Change) -> None:
        if "display_name" in change.fields:
            user.display_name = change.fields["display_name"]
        if "external_id" in change.fields:
            user.external_id = change.fields["external_id"]
        new_primary = change.fields.get("primary_address")
        if new_primary and new_primary != user.primary_address:
            taken = session.scalars(select(TargetUserRow).where(TargetUserRow.primary_address == new_primary)).first()
            if taken is not None:
                raise SkippableError(f"cannot rename {user.primary_address} to {new_primary}: that user exists")
            alias = session.get(TargetAliasRow, new_primary)
            if alias is not None:
                if alias.user_id != user.id:
                    raise SkippableError(f"cannot rename {user.primary_address}: {new_primary} is another's alias")
                session.delete(alias)
            user.primary_address = new_primary

    def all_users(self) -> list[TargetUser]:
        """Every user of the embedded directory, by primary address (``connector users``)."""
        try:
            with self._sessions() as session:
                orgs = {o.id: o.name for o in session.scalars(select(TargetOrgRow))}
                aliases: dict[int, list[str]] = {}
                for alias in session.scalars(select(TargetAliasRow).order_by(TargetAliasRow.address)):
                    aliases.setdefault(alias.user_id, []).append(alias.address)
                return [
                    TargetUser(
                        primary_address=user.primary_address,
                        target_id=str(user.id),
                        orgs=(orgs[user.org_id],),
                        aliases=tuple(aliases.get(user.id, [])),
                        display_name=user.display_name,
                        external_id=user.external_id,
                        active=bool(user.active),
                    )
                    for user in session.scalars(select(TargetUserRow).order_by(TargetUserRow.primary_address))
                ]
        except OperationalError as exc:
            raise RetriableError(f"embedded directory unreadable: {exc}") from exc

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


def _holder(session: Session, address: str) -> int | None:
    """The id of the user holding ``address`` as primary or alias: one address, one user."""
    alias = session.get(TargetAliasRow, address)
    if alias is not None:
        return alias.user_id
    return session.scalars(select(TargetUserRow.id).where(TargetUserRow.primary_address == address)).first()
