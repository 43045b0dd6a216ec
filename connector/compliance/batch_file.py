"""The batch-file target: one CSV of changes per run, for services that take uploads.

Each change is recorded in ``target_exports`` when the cycle makes it, and
written out by ``flush`` at the end of the cycle: the rows are first assigned
to a file name (committed), then the file is written to a temporary name,
synced and renamed, then the rows are marked written. A crash between those
steps leaves rows assigned but unwritten, and the next ``flush`` writes that
file again under the same name; a change is never assigned to two files, so
nobody is exported twice.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot, NewUser
from connector.errors import FatalError, RetriableError, SkippableError
from connector.store.models import TargetExportRow

ADD_USER, ADD_ALIAS = "add_user", "add_alias"
HEADER = ("change", "address", "user_address", "org", "display_name", "external_id", "recorded_at")


def render_csv(rows: list[TargetExportRow]) -> str:
    """The file body: the documented header, then one line per change (docs/targets.md)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(
            (
                row.change,
                row.address,
                row.user_address,
                row.org or "",
                row.display_name or "",
                row.external_id or "",
                row.recorded_at.isoformat(),
            )
        )
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` so that a reader sees either no file or the whole file."""
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


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

    def describe(self) -> str:
        return f"batch file export to {self._directory}"

    def known_addresses(self) -> KnownSnapshot:
        """Everything ever exported: the service has it, or has it in its upload queue."""
        with self._sessions() as session:
            rows = session.execute(
                select(TargetExportRow.change, TargetExportRow.address, TargetExportRow.user_address).where(
                    TargetExportRow.target == self._key
                )
            ).all()
        users = tuple(sorted(a for c, a, _ in rows if c == ADD_USER))
        return KnownSnapshot(users=users, aliases={a: u for c, a, u in rows if c == ADD_ALIAS})

    def ensure_org(self, name: str) -> None:
        """Orgs are named on every line; the service creates them."""

    def _row(self, change: str, address: str, user: str, org: str | None = None) -> TargetExportRow:
        return TargetExportRow(
            target=self._key, change=change, address=address, user_address=user, org=org, recorded_at=self._clock()
        )

    def create_user(self, user: NewUser) -> bool:
        try:
            with self._sessions.begin() as session:
                if session.get(TargetExportRow, (self._key, ADD_USER, user.primary_address)) is not None:
                    return False
                if session.get(TargetExportRow, (self._key, ADD_ALIAS, user.primary_address)) is not None:
                    raise SkippableError(f"{user.primary_address} was exported as an alias of another user")
                row = self._row(ADD_USER, user.primary_address, user.primary_address, user.org)
                row.display_name, row.external_id = user.display_name, user.external_id
                session.add(row)
                for alias in user.aliases:
                    if session.get(TargetExportRow, (self._key, ADD_ALIAS, alias)) is None:
                        session.add(self._row(ADD_ALIAS, alias, user.primary_address, user.org))
                return True
        except IntegrityError:  # a concurrent run recorded it first
            return False
        except SQLAlchemyError as exc:
            raise RetriableError(f"cannot record the change: {exc}") from exc

    def add_alias(self, primary_address: str, alias: str) -> bool:
        with self._sessions.begin() as session:
            existing = session.get(TargetExportRow, (self._key, ADD_ALIAS, alias))
            if existing is not None:
                if existing.user_address != primary_address:
                    raise SkippableError(f"{alias} was exported as an alias of {existing.user_address}")
                return False
            owner = session.get(TargetExportRow, (self._key, ADD_USER, primary_address))
            session.add(self._row(ADD_ALIAS, alias, primary_address, owner.org if owner else None))
            return True

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
            self._directory.mkdir(parents=True, exist_ok=True)
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
                    .order_by(TargetExportRow.recorded_at, TargetExportRow.change.desc(), TargetExportRow.address)
                )
            )
        try:
            write_atomically(self._directory / name, render_csv(rows))
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
