"""The audit log of decisions: every approve, deny, block (and unblock) a person made, in the browser or a shell.

Written by ``jobs/decisions.py`` (the one code path of ``connector approve | deny | block``
and of the console's buttons) once the decision was carried out (or refused: a busy cycle
lock, nothing matching), in its own transaction; ``client`` is the browser's address, or
``cli`` for the command line (``who`` is then the OS user). Read by the console's audit page
and by the run pages (``jobs/report_context.py``). The table keeps its first name,
``console_audit``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.audit import AuditEntry
from connector.store.models import ConsoleAuditRow

DETAIL_CHARS = 4000  # what an outcome's text keeps (a run of 5,000 approvals is summarised, not listed)


def record(
    session: Session,
    *,
    at: datetime,
    who: str,
    client: str,
    action: str,
    subject: str,
    run_id: int | None,
    outcome: str,
    detail: str,
) -> None:
    """Add one entry (the caller commits)."""
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1] + "…"
    session.add(
        ConsoleAuditRow(
            at=at,
            who=who[:255],
            client=client[:64],
            action=action,
            subject=subject[:320],
            run_id=run_id,
            outcome=outcome,
            detail=detail,
        )
    )


def _entry(row: ConsoleAuditRow) -> AuditEntry:
    return AuditEntry(row.at, row.who, row.client, row.action, row.subject, row.run_id, row.outcome, row.detail)


def latest(session: Session, *, limit: int = 200, run_id: int | None = None) -> list[AuditEntry]:
    """The newest entries first (of one run's held items, when ``run_id`` is given)."""
    stmt = select(ConsoleAuditRow).order_by(ConsoleAuditRow.id.desc()).limit(limit)
    if run_id is not None:
        stmt = stmt.where(ConsoleAuditRow.run_id == run_id)
    return [_entry(row) for row in session.scalars(stmt)]
