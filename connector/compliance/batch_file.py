"""The batch-file target: one CSV of changes per run, for services that take uploads.

Each change is recorded in ``target_exports`` when the cycle makes it (``id``
numbers the rows in the order they were made), and written out by ``flush``
at the end of the cycle: the rows are first assigned to a file name
(committed), then the file is written to a temporary name, synced and
renamed, then the rows are marked written. A crash between those steps
leaves rows assigned but unwritten, and the next ``flush`` writes that file
again under the same name; a change is never assigned to two files, so
nobody is exported twice.

The service is never read back. What it holds (the known addresses, and the
actual state the lifecycle compares with) is what the connector has recorded
so far: every row replayed in order (``ExportedState``). A change that would
not alter that state is not recorded, so recording is idempotent. One cycle
writes at a time (the ``cycle`` lock, jobs/registry.py).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot, NewUser, recreated_user
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
from connector.domain.safe_text import spreadsheet_cell
from connector.errors import FatalError, RetriableError, SkippableError
from connector.private_files import PRIVATE, PRIVATE_FOLDER, ensure_folder, write_atomically
from connector.store.models import TargetExportRow

ADD_USER, ADD_ALIAS, REMOVE_ALIAS = "add_user", "add_alias", "remove_alias"
UPDATE_USER, MOVE_USER = "update_user", "move_user"
SUSPEND_USER, REACTIVATE_USER, DELETE_USER = "suspend_user", "reactivate_user", "delete_user"
# Columns are only ever appended, so that existing consumers keep working.
HEADER = ("change", "address", "user_address", "org", "display_name", "external_id", "recorded_at", "new_address")


class ExportLine(NamedTuple):
    """One change as the file states it (docs/targets.md), without the bookkeeping."""

    change: str
    address: str  # the user's primary (before a rename), or the alias
    user_address: str  # the user's primary (before a rename)
    org: str | None = None
    display_name: str | None = None
    external_id: str | None = None
    new_address: str | None = None  # update_user: the new primary of a rename


_LINE_COLUMNS = (
    TargetExportRow.change,
    TargetExportRow.address,
    TargetExportRow.user_address,
    TargetExportRow.org,
    TargetExportRow.display_name,
    TargetExportRow.external_id,
    TargetExportRow.new_address,
)


@dataclass(slots=True)
class ExportedUser:
    """A user as the exported changes leave it."""

    primary: str
    org: str | None
    display_name: str | None = None
    external_id: str | None = None
    active: bool = True


@dataclass
class ExportedState:
    """What the service holds once it has loaded every file: the recorded changes replayed in order."""

    users: dict[str, ExportedUser] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> primary
    last_id: int = 0  # the last row replayed
    renamed: dict[str, str] = field(default_factory=dict)  # old primary -> new: a run's later changes name the old
    _owned: dict[str, set[str]] = field(default_factory=dict)  # primary -> aliases

    def _attach(self, alias: str, primary: str) -> None:
        self._detach(alias)
        self.aliases[alias] = primary
        self._owned.setdefault(primary, set()).add(alias)

    def _detach(self, alias: str) -> None:
        owner = self.aliases.pop(alias, None)
        if owner is not None:
            self._owned[owner].discard(alias)

    def aliases_of(self, primary: str) -> tuple[str, ...]:
        return tuple(sorted(self._owned.get(primary, ())))

    def apply(self, line: ExportLine) -> None:
        """Replay one recorded change."""
        if line.change == ADD_USER:
            self.users[line.address] = ExportedUser(line.address, line.org, line.display_name, line.external_id)
        elif line.change == ADD_ALIAS:
            self._attach(line.address, line.user_address)
        elif line.change == REMOVE_ALIAS and self.aliases.get(line.address) == line.user_address:
            self._detach(line.address)
        user = self.users.get(line.user_address)
        if user is None:
            return
        if line.change == UPDATE_USER:
            user.display_name = line.display_name if line.display_name is not None else user.display_name
            user.external_id = line.external_id if line.external_id is not None else user.external_id
            if line.new_address and line.new_address != user.primary:
                self._rename(user, line.new_address)
        elif line.change == MOVE_USER:
            user.org = line.org
        elif line.change in (SUSPEND_USER, REACTIVATE_USER):
            user.active = line.change == REACTIVATE_USER
        elif line.change == DELETE_USER:
            del self.users[user.primary]
            for alias in self.aliases_of(user.primary):
                self._detach(alias)

    def _rename(self, user: ExportedUser, new_primary: str) -> None:
        old = user.primary
        self._detach(new_primary)  # an alias that becomes the primary is no longer an alias
        del self.users[old]
        user.primary = new_primary
        self.users[new_primary] = user
        self.renamed[old] = new_primary
        for alias in self.aliases_of(old):
            self._attach(alias, new_primary)

    def target_user(self, primary: str) -> TargetUser | None:
        user = self.users.get(primary)
        if user is None:
            return None
        return TargetUser(
            primary_address=user.primary,
            target_id=None,  # a file has no ids
            orgs=(user.org,) if user.org else (),
            aliases=self.aliases_of(user.primary),
            display_name=user.display_name,
            external_id=user.external_id,
            active=user.active,
        )


def creation_lines(user: NewUser, state: ExportedState) -> list[ExportLine]:
    """The user, then each alias not exported yet."""
    primary = user.primary_address
    lines = [ExportLine(ADD_USER, primary, primary, user.org, user.display_name, user.external_id)]
    for alias in dict.fromkeys(user.aliases):
        if alias != primary and alias not in state.aliases and alias not in state.users:
            lines.append(ExportLine(ADD_ALIAS, alias, primary, user.org))
    return lines


def _text(fields: dict[str, Any], name: str, current: str | None) -> str | None:
    """An UPDATE's new value of ``name``; a missing or empty value leaves it as it is."""
    value = fields.get(name)
    return value if isinstance(value, str) and value else current


def _update_lines(change: Change, user: ExportedUser, state: ExportedState) -> list[ExportLine]:
    primary = user.primary
    new_primary = change.fields.get("primary_address")
    rename = new_primary if isinstance(new_primary, str) and new_primary != primary else None
    if rename is not None:
        if rename in state.users:
            raise SkippableError(f"cannot rename {primary} to {rename}: that user was exported")
        owner = state.aliases.get(rename)
        if owner is not None and owner != primary:
            raise SkippableError(f"cannot rename {primary}: {rename} was exported as an alias of {owner}")
    display_name = _text(change.fields, "display_name", user.display_name)
    external_id = _text(change.fields, "external_id", user.external_id)
    if rename is None and (display_name, external_id) == (user.display_name, user.external_id):
        return []
    # The line carries the user's attributes as they are after the change, not only what changed.
    return [ExportLine(UPDATE_USER, primary, primary, user.org, display_name, external_id, rename)]


def lines_for(change: Change, state: ExportedState) -> list[ExportLine]:
    """The lines that carry out ``change``; none when the export already says so.

    Follows the embedded target's semantics (compliance/embedded.py).
    """
    kind = change.kind
    new_primary = change.fields.get("primary_address") if kind is ChangeKind.UPDATE else None
    user = state.users.get(change.address)
    if user is None and isinstance(new_primary, str):
        user = state.users.get(new_primary)  # renamed already
    if user is None and change.address in state.renamed:
        user = state.users.get(state.renamed[change.address])  # renamed earlier in this run: it follows
    if kind is ChangeKind.RECREATE:
        if user is not None:
            return []
        if change.address in state.aliases:
            raise SkippableError(f"{change.address} was exported as an alias of {state.aliases[change.address]}")
        return creation_lines(recreated_user(change), state)
    if user is None:
        if kind is ChangeKind.DELETE:
            return []
        raise SkippableError(f"no user {change.address} in the batch-file export")
    primary = user.primary
    if kind is ChangeKind.SUSPEND:
        return [ExportLine(SUSPEND_USER, primary, primary, user.org)] if user.active else []
    if kind is ChangeKind.REACTIVATE:
        return [] if user.active else [ExportLine(REACTIVATE_USER, primary, primary, user.org)]
    if kind is ChangeKind.DELETE:
        return [ExportLine(DELETE_USER, primary, primary, user.org)]
    if kind is ChangeKind.UPDATE:
        return _update_lines(change, user, state)
    lines: list[ExportLine] = []
    if kind in (ChangeKind.MOVE, ChangeKind.REPAIR) and change.org and not change.aliases and change.org != user.org:
        lines.append(ExportLine(MOVE_USER, primary, primary, change.org))
    if kind in (ChangeKind.ADD_ALIASES, ChangeKind.REPAIR):
        for alias in dict.fromkeys(change.aliases):
            owner = state.aliases.get(alias)
            if owner == primary or alias == primary:
                continue
            if owner is not None or alias in state.users:
                raise SkippableError(f"{alias} was exported as an address of {owner or 'another user'}")
            lines.append(ExportLine(ADD_ALIAS, alias, primary, user.org))
    elif kind is ChangeKind.REMOVE_ALIASES:
        for alias in dict.fromkeys(change.aliases):
            if state.aliases.get(alias) == primary:
                lines.append(ExportLine(REMOVE_ALIAS, alias, primary, user.org))
    return lines


def render_csv(rows: list[TargetExportRow]) -> str:
    """The file body: the documented header, then one line per change (docs/targets.md).

    Every cell that a spreadsheet would read as a formula (or that starts with the guard
    itself) gets a leading apostrophe (``spreadsheet_cell``); ``from_spreadsheet_cell``
    gives the value back. The connector never reads its files: its state is the rows.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        cells = (
            row.change,
            row.address,
            row.user_address,
            row.org,
            row.display_name,
            row.external_id,
            row.recorded_at.isoformat(),
            row.new_address,
        )
        writer.writerow([spreadsheet_cell(cell) for cell in cells])
    return out.getvalue()


class BatchFileComplianceDirectory:
    """Changes go to ``<directory>/changes-<UTC time>.csv``, one file per run that changed something."""

    def __init__(
        self, sessions: sessionmaker[Session], directory: Path, clock: Callable[[], datetime], log: logging.Logger
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._key = f"batch_file:{directory}"
        self._clock = clock
        self._log = log
        self._replayed: ExportedState | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"batch file export to {self._directory}"

    def _state(self, session: Session) -> ExportedState:
        """The recorded changes replayed; only the rows recorded since the last call are read.

        Rows are only ever added, by one cycle at a time, so the ids grow in commit order.
        """
        mine = TargetExportRow.target == self._key
        with self._lock:
            last = session.scalar(select(func.max(TargetExportRow.id)).where(mine)) or 0
            state = self._replayed
            if state is None or last < state.last_id:  # first use, or a state database restored from a backup
                state = ExportedState()
            if last > state.last_id:
                query = select(TargetExportRow.id, *_LINE_COLUMNS).where(mine, TargetExportRow.id > state.last_id)
                for row in session.execute(query.order_by(TargetExportRow.id)):
                    state.apply(ExportLine(row.change, row.address, row.user_address, *row[4:]))
                    state.last_id = row.id
            self._replayed = state
            return state

    def known_addresses(self) -> KnownSnapshot:
        """Everything exported and not deleted since: the service has it, or has it in its upload queue."""
        try:
            with self._sessions() as session:
                state = self._state(session)
                return KnownSnapshot(users=tuple(sorted(state.users)), aliases=dict(state.aliases))
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot read the batch-file exports: {exc}") from exc

    def ensure_org(self, name: str) -> None:
        """Orgs are named on every line; the service creates them."""

    def _record(self, session: Session, lines: Sequence[ExportLine]) -> None:
        now = self._clock()
        for line in lines:
            session.add(TargetExportRow(target=self._key, recorded_at=now, **line._asdict()))

    def create_user(self, user: NewUser) -> bool:
        try:
            with self._sessions.begin() as session:
                state = self._state(session)
                if user.primary_address in state.users:
                    return False
                if user.primary_address in state.aliases:
                    raise SkippableError(f"{user.primary_address} was exported as an alias of another user")
                self._record(session, creation_lines(user, state))
                return True
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot record the change: {exc}") from exc

    def add_alias(self, primary_address: str, alias: str) -> bool:
        try:
            with self._sessions.begin() as session:
                state = self._state(session)
                owner = state.aliases.get(alias)
                if owner is not None:
                    if owner != primary_address:
                        raise SkippableError(f"{alias} was exported as an alias of {owner}")
                    return False
                if alias in state.users:
                    raise SkippableError(f"{alias} was exported as a user")
                user = state.users.get(primary_address)
                self._record(session, [ExportLine(ADD_ALIAS, alias, primary_address, user.org if user else None)])
                return True
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot record the change: {exc}") from exc

    # -- lifecycle (LifecycleTarget) ----------------------------------------------------------------

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The users as the exported changes leave them (suspended ones included, deleted ones not)."""
        try:
            with self._sessions() as session:
                state = self._state(session)
                found = {address: state.target_user(address) for address in addresses}
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot read the batch-file exports: {exc}") from exc
        return {address: user for address, user in found.items() if user is not None}

    def apply_change(self, change: Change) -> str | None:
        """Record one lifecycle change for the next file; nothing when the export already says so.

        A file has no ids: always None.
        """
        try:
            with self._sessions.begin() as session:
                self._record(session, lines_for(change, self._state(session)))
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot record the change: {exc}") from exc
        return None

    # -- files ------------------------------------------------------------------------------------------

    def _file_name(self, session: Session, now: datetime) -> str:
        stem = f"changes-{now.strftime('%Y%m%dT%H%M%SZ')}"
        name, n = f"{stem}.csv", 1
        while (self._directory / name).exists() or session.scalars(
            select(TargetExportRow.file).where(TargetExportRow.target == self._key, TargetExportRow.file == name)
        ).first():
            n += 1
            name = f"{stem}-{n}.csv"
        return name

    def flush(self) -> None:
        """Assign this run's changes to a new file, then write every assigned but unwritten file."""
        try:
            ensure_folder(self._directory, PRIVATE_FOLDER)
        except OSError as exc:
            raise RetriableError(f"cannot create {self._directory}: {exc.strerror}") from exc
        with self._sessions.begin() as session:
            pending = session.scalars(
                select(TargetExportRow).where(TargetExportRow.target == self._key, TargetExportRow.file.is_(None))
            ).all()
            if pending:
                name = self._file_name(session, self._clock())
                for row in pending:
                    row.file = name
        with self._sessions() as session:
            files = sorted(
                {
                    name
                    for name in session.scalars(
                        select(TargetExportRow.file).where(
                            TargetExportRow.target == self._key,
                            TargetExportRow.file.is_not(None),
                            TargetExportRow.written_at.is_(None),
                        )
                    )
                    if name is not None
                }
            )
        for name in files:
            self._write(name)

    def _write(self, name: str) -> None:
        with self._sessions() as session:
            rows = list(
                session.scalars(
                    select(TargetExportRow)
                    .where(TargetExportRow.target == self._key, TargetExportRow.file == name)
                    .order_by(TargetExportRow.id)
                )
            )
        try:
            write_atomically(self._directory / name, render_csv(rows), PRIVATE)
        except OSError as exc:
            raise RetriableError(f"cannot write {self._directory / name}: {exc.strerror}") from exc
        try:
            with self._sessions.begin() as session:
                session.execute(
                    update(TargetExportRow)
                    .where(TargetExportRow.target == self._key, TargetExportRow.file == name)
                    .values(written_at=self._clock())
                )
        except SQLAlchemyError as exc:
            raise FatalError(f"wrote {name} but cannot record it: {exc}") from exc
        self._log.info("wrote %s (%d change(s))", name, len(rows))
