"""The review queue: creations held for a person (``mode: approve`` or a creation limit).

``approve`` creates exactly what was staged; ``deny`` and ``block`` make sure an
address is never created automatically (``block --remove`` lifts that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import new_user_for
from connector.domain.decisions import CandidateState, Decision, Outcome, Reason
from connector.errors import RetriableError, SkippableError
from connector.store import repository
from connector.store import safety as store
from connector.store.models import StagedRow

log = logging.getLogger(__name__)


@dataclass
class ReviewResult:
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _record(session: Session, row: StagedRow, decision: Decision, state: CandidateState, now: datetime) -> None:
    candidate = repository.get_candidate(session, row.address)
    repository.save_decision(
        session,
        decision,
        domain=row.domain,
        evidence_revision=candidate.evidence_revision if candidate else 0,
        rule_fingerprint=candidate.rule_fingerprint if candidate else "",
        now=now,
        run_id=row.run_id,
        state=state,
    )


def approve(connector: Connector, rows: list[StagedRow], *, who: str, now: datetime) -> ReviewResult:
    """Create each staged user exactly as it was staged; an outage stops and keeps the rest staged."""
    result = ReviewResult()
    target = connector.target
    with connector.sessions() as session:
        for row in rows:
            creation = store.decision_from_json(row.decision)
            user = new_user_for(creation)
            try:
                target.ensure_org(user.org)
                created = target.create_user(user)
            except RetriableError as exc:
                result.failed.append((row.address, str(exc)))
                break
            except SkippableError as exc:
                result.failed.append((row.address, str(exc)))
                continue
            note = "" if created else "; it already existed in the compliance directory"
            approved = Decision(
                creation.address,
                Outcome.CREATE_USER,
                Reason.QUALIFIED,
                f"approved by {who} (held: {row.reason}); {creation.detail}{note}",
                org=creation.org,
                method=creation.method,
                user_address=creation.user_address,
            )
            _record(session, row, approved, CandidateState.CREATED, now)
            store.unstage(session, row.address)
            session.commit()
            via = f" (via {row.address})" if creation.user_address != row.address else ""
            result.done.append(f"{creation.user_address}{via}")
    try:
        target.flush()  # a batch-file target writes its file now, not at the next cycle
    except RetriableError as exc:
        result.failed.append(("(flush)", str(exc)))
    return result


def deny(connector: Connector, rows: list[StagedRow], *, who: str, now: datetime) -> ReviewResult:
    """Drop the staged creations and block the addresses (never auto-created again)."""
    result = ReviewResult()
    with connector.sessions() as session:
        for row in rows:
            creation = store.decision_from_json(row.decision)
            denied = Decision(
                row.address, Outcome.SKIP, Reason.DENIED, f"denied by {who} (held: {row.reason})", org=creation.org
            )
            _record(session, row, denied, CandidateState.SKIPPED, now)
            store.block(session, row.address, f"denied by {who} in the review of run {row.run_id}", now)
            store.unstage(session, row.address)
            result.done.append(row.address)
        session.commit()
    return result


def block(connector: Connector, address: str, *, note: str, now: datetime) -> bool:
    """Never auto-create ``address``; a staged creation for it is dropped. True if it was staged."""
    with connector.sessions() as session:
        staged = store.staged(session, address=address)
        for row in staged:
            creation = store.decision_from_json(row.decision)
            blocked = Decision(address, Outcome.SKIP, Reason.BLOCKED, note, org=creation.org)
            _record(session, row, blocked, CandidateState.SKIPPED, now)
            store.unstage(session, address)
        store.block(session, address, note, now)
        session.commit()
    return bool(staged)
