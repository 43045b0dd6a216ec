"""Tables. One schema for SQLite and PostgreSQL.

Owners: ``evidence`` and ``checkpoints`` are written by ingest; ``candidates``
by the decide/sync cycle; ``runs`` by every cycle; ``job_status`` by the job
runner (jobs/registry.py); ``target_orgs/users/aliases`` belong to the
embedded compliance directory only; ``target_known`` and ``target_state`` to the SCIM
target (and jobs/refresh_known.py); ``target_exports`` to the batch-file target.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Holds any address ``normalise_address`` lets through: at most 254 octets canonical, and at most
# 64 + 1 + 253 once mapped onto a managed domain (connector/policy/addresses.py). PostgreSQL counts
# characters, SQLite counts nothing: the check is in the code, at the edge, for both.
ADDRESS = String(320)


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


DUE_UNSETTLED = datetime(1970, 1, 1, tzinfo=UTC)  # ``EvidenceRow.due_at`` of a row no cycle has settled yet


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class EvidenceRow(Base):
    """Evidence per canonical address (bounded: last ``threshold`` deliveries), one column per field.

    Real columns, not a JSON document: ingest writes tens of thousands of rows per commit
    without building JSON, and the catch-all tally and the attack guard aggregate them in SQL.
    ``recent`` and ``qualifying`` hold a few deliveries in the compact text of
    ``connector/store/evidence_rows.py``; ``seen_as`` the spellings, one per line.
    """

    __tablename__ = "evidence"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime | None] = mapped_column(index=True)
    first_seen_at: Mapped[datetime | None]
    events_seen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recent: Mapped[str] = mapped_column(Text, default="", server_default="")
    qualified_at: Mapped[datetime | None]
    qualifying: Mapped[str] = mapped_column(Text, default="", server_default="")
    accepted_at: Mapped[datetime | None]
    accepted_reply: Mapped[str | None] = mapped_column(Text)
    accepted_message_key: Mapped[str | None] = mapped_column(Text)
    rejected_at: Mapped[datetime | None]
    rejected_reply: Mapped[str | None] = mapped_column(Text)
    invalidated_at: Mapped[datetime | None]
    invalidated_reply: Mapped[str | None] = mapped_column(Text)
    seen_as: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When this row may be due (``connector/store/due_marks.py``): 1970 = unsettled, look at it; a time = its
    # recheck time; None = not until new mail; 9999 = not even then. Indexed: a cycle reads a range of it.
    due_at: Mapped[datetime | None] = mapped_column(index=True, default=DUE_UNSETTLED)


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
    # Copied from report["counts"] so that history pages need not load every report.
    created_count: Mapped[int | None] = mapped_column(Integer)
    skipped_count: Mapped[int | None] = mapped_column(Integer)
    deferred_count: Mapped[int | None] = mapped_column(Integer)
    held_count: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int | None] = mapped_column(Integer)
    warning_count: Mapped[int | None] = mapped_column(Integer)
    lifecycle_change_count: Mapped[int | None] = mapped_column(Integer)  # lifecycle changes made
    lifecycle_held_count: Mapped[int | None] = mapped_column(Integer)  # destructive changes held


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
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")


class TargetAliasRow(Base):
    """Embedded compliance directory: an alias address of a user."""

    __tablename__ = "target_aliases"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("target_users.id"), index=True)
    created_at: Mapped[datetime]


class CatchAllRow(Base):
    """Safety: the latest catch-all finding per domain, trusted until ``expires_at``."""

    __tablename__ = "catch_all"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # accept_all | strict | unknown
    source: Mapped[str] = mapped_column(String(16))  # probe | passive
    detail: Mapped[str] = mapped_column(Text, default="")
    checked_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # compare-and-set (store/safety.py)


class EvidenceTallyRow(Base):
    """Per domain, what the passive catch-all rule counts over its evidence rows, kept as they are written
    and deleted (``connector/store/evidence_tallies.py``): a cycle reads it instead of counting the rows."""

    __tablename__ = "evidence_tallies"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    refused_at_rcpt: Mapped[int] = mapped_column(Integer, default=0)
    async_bounces: Mapped[int] = mapped_column(Integer, default=0)


class DueSettledRow(Base):
    """The rule (and refusal) fingerprints the ``due_at`` marks of a domain's evidence were settled under
    (``connector/store/due_marks.py``): while they are the current ones, the marks say which rows are due."""

    __tablename__ = "due_settled"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule_fingerprint: Mapped[str] = mapped_column(String(64))
    refusal_fingerprint: Mapped[str | None] = mapped_column(String(64))
    settled_at: Mapped[datetime]


class StagedRow(Base):
    """Safety: a creation waiting for a person (review queue or creation limit)."""

    __tablename__ = "staged"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    reason: Mapped[str] = mapped_column(String(40))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    staged_at: Mapped[datetime]


class BlockRow(Base):
    """Safety: an address that is never auto-created again (``connector block``)."""

    __tablename__ = "blocked"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    note: Mapped[str] = mapped_column(Text, default="")
    blocked_at: Mapped[datetime]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


class UtcMicroseconds(TypeDecorator[datetime]):
    """A UTC time stored as microseconds since 1970 (8 bytes, where SQLite's text form takes 26), for the
    event log's millions of rows and their indexes; read back timezone-aware UTC, compared exactly."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return (value - EPOCH) // ONE_MICROSECOND

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else EPOCH + timedelta(microseconds=value)


class EventLogRow(Base):
    """Explain and re-reads: the delivery events of managed addresses (``state.event_log``), one narrow row each.

    Only what ``connector explain`` shows and ``connector/store/reread.py`` compares: no relay, the time
    as an integer, ``recipient`` only when the log spelled it otherwise than the canonical ``address``
    (migration ``i13_event_log``). Pruned while explain can no longer ask (jobs/housekeeping.py: ``event_log_cutoff``);
    evidence decisions never read it.
    """

    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_address_at", "address", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(ADDRESS)
    at: Mapped[datetime] = mapped_column(UtcMicroseconds, index=True)
    message_key: Mapped[str] = mapped_column(String(998))
    status: Mapped[str] = mapped_column(String(16))
    reply: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(ADDRESS)
    recipient: Mapped[str | None] = mapped_column(ADDRESS)  # None: the same as ``address``
    location: Mapped[str] = mapped_column(Text, default="")


# The attack guard's look back (``repository.first_seen_since``): the addresses of one domain first seen
# since a time, found by a range of this index, so a cycle's cost does not grow with the days of evidence
# kept (migration ``i13_event_log``; declared here, apart from ``EvidenceRow``, with the event log's work).
Index("ix_evidence_domain_first_seen", EvidenceRow.domain, EvidenceRow.first_seen_at)


class DirectoryMirrorEntryRow(Base):
    """Directory mirror: one object read from the mail directory, as the mapped answer."""

    __tablename__ = "directory_mirror_entries"

    dn_key: Mapped[str] = mapped_column(String(1024), primary_key=True)  # DN lower-cased
    dn: Mapped[str] = mapped_column(Text)
    # kind, addresses, enabled ... and the raw attributes (lower-case names, for org rules): one JSON
    # document, so a lookup decodes one value per object.
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    change_mark: Mapped[str | None] = mapped_column(String(64))


class DirectoryMirrorAddressRow(Base):
    """Directory mirror: address -> owning object (two rows for one address: ambiguous)."""

    __tablename__ = "directory_mirror_addresses"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    dn_key: Mapped[str] = mapped_column(String(1024), primary_key=True, index=True)


class DirectoryMirrorStateRow(Base):
    """Directory mirror: which directory it copies and how fresh it is."""

    __tablename__ = "directory_mirror_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1: one mail directory
    source: Mapped[str] = mapped_column(Text)
    full_at: Mapped[datetime]
    refreshed_at: Mapped[datetime]
    change_mark: Mapped[str | None] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer, default=0)


class JobStatusRow(Base):
    """The last run of each scheduled job on each instance (health checks, ``connector jobs``)."""

    __tablename__ = "job_status"

    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[str] = mapped_column(String(16), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")


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
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # compare-and-set (target_state.py)


class ScimGroupRow(Base):
    """The id of an org's group at a SCIM target (migration ``i17_scim_groups``): found or created once,
    not looked up again by every process (a server whose group filter answers nothing would 409 forever)."""

    __tablename__ = "scim_groups"

    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(255))
    seen_at: Mapped[datetime]


class TargetExportRow(Base):
    """One change for the batch-file target, ``id`` in the order it was made (a user may be suspended twice);
    ``file`` is set once it is assigned to a file, never twice."""

    __tablename__ = "target_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(255), index=True)
    change: Mapped[str] = mapped_column(String(16))  # add_user | add_alias | update_user | ... (batch_file.py)
    address: Mapped[str] = mapped_column(ADDRESS)
    user_address: Mapped[str] = mapped_column(ADDRESS)
    org: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime]
    new_address: Mapped[str | None] = mapped_column(ADDRESS)  # update_user: the new primary of a rename
    file: Mapped[str | None] = mapped_column(String(255), index=True)
    written_at: Mapped[datetime | None]


class ManagedUserRow(Base):
    """A target user the connector owns (created by it or adopted), and where its lifecycle stands."""

    __tablename__ = "managed_users"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)  # primary address in the target
    ownership: Mapped[str] = mapped_column(String(16))  # created | adopted
    status: Mapped[str] = mapped_column(String(16), index=True)  # creating | active | suspended | deleted
    org: Mapped[str | None] = mapped_column(String(255), index=True)
    target_id: Mapped[str | None] = mapped_column(String(255))
    directory_address: Mapped[str | None] = mapped_column(ADDRESS)
    aliases: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"aliases": [...]} last applied
    managed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    suspended_at: Mapped[datetime | None]
    suspend_reason: Mapped[str | None] = mapped_column(String(32))
    denied: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(Integer)
    # Reconcile marks (jobs/reconcile_marks.py): every write that may change the user's plan bumps
    # ``plan_revision`` and clears ``in_line_basis``; a reconcile that found the user in line under the
    # current basis (config, directory version) sets it, with ``recheck_at`` (its next timed step or full check).
    plan_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    in_line_basis: Mapped[str | None] = mapped_column(String(64))
    recheck_at: Mapped[datetime | None]


class HeldChangeRow(Base):
    """A destructive lifecycle change held back by a limit, waiting for `connector approve --run N`."""

    __tablename__ = "held_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    address: Mapped[str] = mapped_column(ADDRESS, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    why: Mapped[str] = mapped_column(Text, default="")
    held_at: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(Text)


class NotifyStateRow(Base):
    """A condition the latest runs found (an attack at a domain, a source in error ...): since when,
    how many runs in a row, when it was last notified (connector/notify/policy.py, jobs/outcomes.py)."""

    __tablename__ = "notify_state"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # the instance, for per-instance conditions
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)  # a domain, a source name, "target" ...
    value: Mapped[str] = mapped_column(String(64), default="")
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    runs: Mapped[int] = mapped_column(Integer, default=1)
    last_sent_at: Mapped[datetime | None]


class ConsoleAuditRow(Base):
    """One decision a person made, in the review console or on the command line (approve, deny, block, unblock):
    who, when, what, from where, and what came of it (connector/store/audit.py, jobs/decisions.py)."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    who: Mapped[str] = mapped_column(String(255))
    client: Mapped[str] = mapped_column(String(64))  # the browser's IP (behind a trusted proxy: X-Forwarded-For); cli
    action: Mapped[str] = mapped_column(String(16))  # approve | deny | block | unblock (CLI only)
    subject: Mapped[str] = mapped_column(ADDRESS)  # an address, or "run N" for a whole run
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # done | partial | nothing | busy | failed
    detail: Mapped[str] = mapped_column(Text, default="")
