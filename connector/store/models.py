"""Tables. One schema for SQLite and PostgreSQL.

Owners: ``evidence`` and ``checkpoints`` are written by ingest; ``candidates``
by the decide/sync cycle; ``runs`` by every cycle; ``target_orgs/users/aliases`` belong to the
embedded compliance directory only; ``target_known`` and ``target_state`` to the SCIM
target (and jobs/refresh_known.py); ``target_exports`` to the batch-file target.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ADDRESS = String(320)  # RFC 5321 path limit


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns timezone-aware UTC (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class EvidenceRow(Base):
    """Evidence per canonical address (bounded: last ``threshold`` deliveries)."""

    __tablename__ = "evidence"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime | None] = mapped_column(index=True)


class CandidateRow(Base):
    """The latest decision per canonical address."""

    __tablename__ = "candidates"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    org: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str | None] = mapped_column(String(16))
    user_address: Mapped[str | None] = mapped_column(ADDRESS)
    evidence_revision: Mapped[int] = mapped_column(Integer, default=0)
    rule_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime]
    recheck_at: Mapped[datetime | None]  # decide again then, even without new evidence
    run_id: Mapped[int | None] = mapped_column(Integer)


class CheckpointRow(Base):
    """Where each log source stopped, committed with the evidence it produced."""

    __tablename__ = "checkpoints"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class RunRow(Base):
    """One cycle and its JSON report."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TargetOrgRow(Base):
    """Embedded compliance directory: an organisation."""

    __tablename__ = "target_orgs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime]


class TargetUserRow(Base):
    """Embedded compliance directory: a user and the org it is a member of."""

    __tablename__ = "target_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    primary_address: Mapped[str] = mapped_column(ADDRESS, unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("target_orgs.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class TargetAliasRow(Base):
    """Embedded compliance directory: an alias address of a user."""

    __tablename__ = "target_aliases"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("target_users.id"), index=True)
    created_at: Mapped[datetime]


class TargetKnownRow(Base):
    """Addresses a remote target (SCIM) holds, pulled on a schedule by jobs/refresh_known.py."""

    __tablename__ = "target_known"

    target: Mapped[str] = mapped_column(String(255), primary_key=True)  # the target's key, e.g. its URL
    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    owner: Mapped[str | None] = mapped_column(ADDRESS)  # None: a user's primary; else the primary of this alias
    refreshed_at: Mapped[datetime]


class TargetStateRow(Base):
    """Health of a remote target: consecutive failures, quarantine, last pull of known addresses."""

    __tablename__ = "target_state"

    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    quarantined_until: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    known_refreshed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class TargetExportRow(Base):
    """A change for the batch-file target; ``file`` is set once it is assigned to a file, never twice."""

    __tablename__ = "target_exports"

    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    change: Mapped[str] = mapped_column(String(16), primary_key=True)  # add_user | add_alias
    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    user_address: Mapped[str] = mapped_column(ADDRESS)
    org: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime]
    file: Mapped[str | None] = mapped_column(String(255), index=True)
    written_at: Mapped[datetime | None]
