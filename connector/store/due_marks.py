"""Due marks: a cycle finds its due addresses by a range of one index, not by testing every evidence row.

Each evidence row carries ``due_at``, when it may be due (``due_mark``): ``DUE_UNSETTLED`` (1970) for a
row no cycle has looked at since it changed, its candidate's ``recheck_at``, None (not before new mail)
or ``DUE_NEVER`` (not even then: created, or a target's refusal that only a new rule or target retries).
A mark is relative to the rule (and refusal) fingerprints of its domain, stored in ``due_settled``.

- Ingest writes every changed row with ``DUE_UNSETTLED``, except a ``DUE_NEVER`` row, which new mail
  does not make due (``evidence_rows``).
- Whatever writes a candidate unsettles its evidence (``unsettle``).
- A real cycle settles, at the end of its decisions, every row marked at or before ``now``, and every
  row of a domain whose fingerprints changed since it was settled (a config change: once).

Then, for a domain settled under the current fingerprints, the due rows are exactly those marked at or
before ``now``; a domain settled under others (or never) is read whole (``candidate_addresses``). The
due condition itself (``repository._due``) is still applied to what the marks select, so a mark can
only make a query cheaper, never change its answer (``tests/integration/test_due_marks.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select, union_all, update
from sqlalchemy.orm import Session

from connector.domain.decisions import CandidateState, Reason
from connector.store.models import DUE_UNSETTLED, CandidateRow, DueSettledRow, EvidenceRow

DUE_NEVER = datetime(9999, 12, 31, tzinfo=UTC)
IN_CHUNK = 500

_EVIDENCE = cast(Table, EvidenceRow.__table__)
Fingerprints = tuple[str, str | None]  # a domain's rule fingerprint, and its refusal fingerprint (or None)


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """The columns of a candidate row its mark depends on."""

    state: str
    reason: str
    evidence_revision: int
    rule_fingerprint: str
    recheck_at: datetime | None


def due_mark(candidate: StoredDecision | None, revision: int | None, settled: Fingerprints | None) -> datetime | None:
    """When an evidence row at ``revision`` is due, under its domain's fingerprints ``settled`` (pure).

    The due condition of ``repository._due`` turned into one time: due at ``now`` exactly when the mark
    is at or before ``now`` (None: not due until the row changes).
    """
    if candidate is None:
        return DUE_UNSETTLED  # never decided: due
    if candidate.state == CandidateState.CREATED.value:
        return DUE_NEVER
    if settled is None:
        return DUE_UNSETTLED  # no fingerprints to compare with: a cycle must look
    rule, refusal = settled
    if refusal is not None and candidate.reason == Reason.TARGET_REJECTED.value:
        # A refusal is retried when the request may differ, not on new mail (connector/compliance/refusals.py).
        return DUE_NEVER if candidate.rule_fingerprint == refusal else DUE_UNSETTLED
    changed = (
        candidate.rule_fingerprint != rule
        or (revision is not None and candidate.evidence_revision != revision)  # SQL: a comparison with NULL fails
        or candidate.state == CandidateState.DEFERRED.value
    )
    return DUE_UNSETTLED if changed else candidate.recheck_at


def is_due(
    candidate: StoredDecision | None, revision: int | None, current: Fingerprints, now: datetime, recheck: bool
) -> bool:
    """The due condition of ``repository._due`` for one row, under its domain's ``current`` fingerprints (pure):
    never decided; or not created and ``recheck``, or marked (``due_mark``) at or before ``now``."""
    if candidate is None:
        return True
    if candidate.state == CandidateState.CREATED.value:
        return False
    if recheck:
        return True
    mark = due_mark(candidate, revision, current)
    return mark is not None and mark <= now


def current_fingerprints(fingerprints: Mapping[str, str], refusals: Mapping[str, str]) -> dict[str, Fingerprints]:
    return {domain: (rule, refusals.get(domain)) for domain, rule in fingerprints.items()}


def settled_fingerprints(session: Session) -> dict[str, Fingerprints]:
    """Domain -> the fingerprints its marks were settled under."""
    rows = session.execute(
        select(DueSettledRow.domain, DueSettledRow.rule_fingerprint, DueSettledRow.refusal_fingerprint)
    )
    return {domain: (rule, refusal) for domain, rule, refusal in rows}


def unsettled_domains(session: Session, current: Mapping[str, Fingerprints]) -> list[str]:
    """The managed domains whose marks were settled under other fingerprints (or never): read whole."""
    settled = settled_fingerprints(session)
    return sorted(domain for domain, fingerprints in current.items() if settled.get(domain) != fingerprints)


def candidate_addresses(session: Session, current: Mapping[str, Fingerprints], now: datetime) -> Select[Any]:
    """The addresses that may be due at ``now``: marked at or before it (a range of ``ix_evidence_due_at``),
    and every address of a domain not settled under ``current``. A superset of the due ones."""
    marked = select(EvidenceRow.address).where(EvidenceRow.due_at <= now)
    unsettled = unsettled_domains(session, current)
    if not unsettled:
        return marked
    whole = select(EvidenceRow.address).where(EvidenceRow.domain.in_(unsettled))
    return cast(Select[Any], union_all(marked, whole))


DECISION = (
    CandidateRow.address,
    CandidateRow.state,
    CandidateRow.reason,
    CandidateRow.evidence_revision,
    CandidateRow.rule_fingerprint,
    CandidateRow.recheck_at,
)
"""A candidate row's columns ``StoredDecision`` takes, after its address (None: no candidate row)."""


def stored_decision(columns: Sequence[Any]) -> StoredDecision | None:
    """The ``DECISION`` columns of an outer join as a ``StoredDecision`` (None: never decided)."""
    return StoredDecision(*columns[1:]) if columns[0] is not None else None


def unsettle(session: Session, addresses: Iterable[str]) -> None:
    """Their candidates changed: the next cycle looks at these rows again (and settles them)."""
    wanted = sorted(set(addresses))
    for start in range(0, len(wanted), IN_CHUNK):
        session.execute(
            update(EvidenceRow)
            .where(EvidenceRow.address.in_(wanted[start : start + IN_CHUNK]))
            .values(due_at=DUE_UNSETTLED)
            .execution_options(synchronize_session=False)
        )


_SETTLE_READ = (EvidenceRow.address, EvidenceRow.domain, EvidenceRow.revision, EvidenceRow.due_at, *DECISION)


def settle(session: Session, current: Mapping[str, Fingerprints], now: datetime) -> int:
    """Mark every row marked at or before ``now``, and every row of a domain whose fingerprints changed,
    with ``due_mark`` under ``current``; record ``current``. In the caller's transaction; how many changed.

    The addresses are read first (a cycle holds its due addresses anyway), then a chunk at a time by
    primary key: no cursor stays open on the index the marks are written to.
    """
    stored = settled_fingerprints(session)
    changed = sorted(domain for domain, fingerprints in current.items() if stored.get(domain) != fingerprints)
    for domain in changed:
        rule, refusal = current[domain]
        session.merge(DueSettledRow(domain=domain, rule_fingerprint=rule, refusal_fingerprint=refusal, settled_at=now))
    session.flush()
    looked_at = EvidenceRow.due_at <= now
    which = looked_at | EvidenceRow.domain.in_(changed) if changed else looked_at
    addresses = list(session.scalars(select(EvidenceRow.address).where(which)))
    under = {**stored, **current}
    written = 0
    for start in range(0, len(addresses), IN_CHUNK):
        written += _settle_chunk(session, addresses[start : start + IN_CHUNK], under)
    return written


_SETTLE_ROWS = (
    select(EvidenceRow.address, EvidenceRow.domain, EvidenceRow.revision, EvidenceRow.due_at, *DECISION)
    .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
    .where(EvidenceRow.address.in_(bindparam("addresses", expanding=True)))
)
_WRITE_MARK = update(_EVIDENCE).where(_EVIDENCE.c.address == bindparam("key")).values(due_at=bindparam("mark"))


def _settle_chunk(session: Session, addresses: list[str], under: Mapping[str, Fingerprints]) -> int:
    marks: list[dict[str, Any]] = []
    for address, domain, revision, old, *decision in session.execute(_SETTLE_ROWS, {"addresses": addresses}):
        mark = due_mark(stored_decision(decision), revision, under.get(domain))
        if mark != old:
            marks.append({"key": address, "mark": mark})
    if marks:
        session.execute(_WRITE_MARK, marks)
    return len(marks)
