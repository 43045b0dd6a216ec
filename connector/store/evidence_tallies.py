"""Catch-all tallies kept as evidence is written, so a cycle reads a few counts per domain instead of
counting every evidence row of every Autocreate domain (``policy.catch_all.tally``).

``evidence_tallies`` holds per domain how many addresses have evidence, how many of them were refused
at RCPT TO (``rejected_at`` set) and how many bounced after a 250 (``bounced_after_accept``). Whatever
writes or deletes evidence rows changes the counts in the same transaction: ``count_writes`` before
``evidence_rows.save_evidence_many`` writes, ``delete_evidence`` for housekeeping. The examples of
bounced addresses are read when a finding needs them (``catch_all_tallies``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, delete, func, or_, select
from sqlalchemy.orm import Session

from connector.domain.evidence import AddressEvidence
from connector.policy.catch_all import EXAMPLES, DomainTally, bounced_after_accept
from connector.store.models import EvidenceRow, EvidenceTallyRow

IN_CHUNK = 500

Counts = list[int]  # recipients, refused at RCPT TO, bounced after a 250


def bounced_after_accept_condition() -> ColumnElement[bool]:
    """``policy.catch_all.bounced_after_accept`` in SQL: accepted with a 2xx, failed permanently later,
    and that failure was not a refusal at RCPT TO."""
    row = EvidenceRow
    return and_(
        row.accepted_at.is_not(None),
        row.invalidated_at.is_not(None),
        row.invalidated_at > row.accepted_at,
        or_(row.rejected_at.is_(None), row.rejected_at != row.invalidated_at),
    )


# What a row counts for, read before it is overwritten or deleted (compiled once).
_STORED = select(
    EvidenceRow.address,
    EvidenceRow.domain,
    case((EvidenceRow.rejected_at.is_not(None), 1), else_=0),
    case((bounced_after_accept_condition(), 1), else_=0),
).where(EvidenceRow.address.in_(bindparam("addresses", expanding=True)))


def _stored(session: Session, addresses: Sequence[str]) -> Iterator[Any]:
    """``(address, domain, refused, bounced)`` of each stored row of ``addresses``."""
    for start in range(0, len(addresses), IN_CHUNK):
        yield from session.execute(_STORED, {"addresses": list(addresses[start : start + IN_CHUNK])})


Flags = tuple[int, int]  # refused at RCPT TO, bounced after a 250: what one row counts for besides itself


def flags_of(evidence: AddressEvidence) -> Flags:
    # Most rows never failed permanently: no bounce to test (``bounced_after_accept`` needs the failure).
    bounced = evidence.invalidated_at is not None and bounced_after_accept(evidence)
    return int(evidence.rejected_at is not None), int(bounced)


def count_writes(
    session: Session,
    items: Sequence[tuple[AddressEvidence, str]],
    stored: Mapping[str, Flags | None] | None = None,
) -> None:
    """``items`` are about to be written (insert or replace): move the counts from what each address's row
    held to what it will hold. An address given twice counts as its last.

    ``stored``: what the caller knows each row holds now (None: no row; ``evidence_cache`` read them), so
    that only the other addresses are read.
    """
    new: dict[str, tuple[AddressEvidence, str]] = {evidence.address: (evidence, domain) for evidence, domain in items}
    if not new:
        return
    known = stored or {}
    deltas: dict[str, Counts] = defaultdict(lambda: [0, 0, 0])
    unknown = []
    for address, (evidence, domain) in new.items():  # one pass, no call per row but the flags: 35,000 a commit
        delta = deltas[domain]
        refused, bounced = flags_of(evidence)
        if address not in known:
            unknown.append(address)
        elif (was := known[address]) is not None:
            refused, bounced = refused - was[0], bounced - was[1]
            delta[0] -= 1
        delta[0] += 1
        delta[1] += refused
        delta[2] += bounced
    for _address, domain, refused, bounced in _stored(session, unknown):
        _count(deltas[domain], -1, (refused, bounced))
    _apply(session, deltas)


def _count(delta: Counts, sign: int, flags: Flags) -> None:
    delta[0] += sign
    delta[1] += sign * flags[0]
    delta[2] += sign * flags[1]


def delete_evidence(session: Session, addresses: Sequence[str]) -> int:
    """Delete the evidence rows of ``addresses`` and their counts; how many rows went."""
    deltas: dict[str, Counts] = defaultdict(lambda: [0, 0, 0])
    for _address, domain, refused, bounced in _stored(session, addresses):
        _count(deltas[domain], -1, (refused, bounced))
    deleted = 0
    for start in range(0, len(addresses), IN_CHUNK):
        chunk = list(addresses[start : start + IN_CHUNK])
        result: Any = session.execute(delete(EvidenceRow).where(EvidenceRow.address.in_(chunk)))
        deleted += int(result.rowcount)
    _apply(session, deltas)
    return deleted


def _apply(session: Session, deltas: dict[str, Counts]) -> None:
    """Add ``deltas`` to the stored counts (a domain's first row makes its tally)."""
    changes = {domain: delta for domain, delta in deltas.items() if any(delta)}
    if not changes:
        return
    dialect = session.connection().dialect.name
    marker = "?" if dialect == "sqlite" else "%s"
    sql = (
        "INSERT INTO evidence_tallies (domain, recipients, refused_at_rcpt, async_bounces) "
        f"VALUES ({marker}, {marker}, {marker}, {marker}) ON CONFLICT (domain) DO UPDATE SET "
        "recipients = evidence_tallies.recipients + excluded.recipients, "
        "refused_at_rcpt = evidence_tallies.refused_at_rcpt + excluded.refused_at_rcpt, "
        "async_bounces = evidence_tallies.async_bounces + excluded.async_bounces"
    )
    rows = [(domain, *delta) for domain, delta in sorted(changes.items())]
    session.connection().exec_driver_sql(sql, rows)


def catch_all_tallies(session: Session, domains: Iterable[str], *, examples_from: int = 1) -> dict[str, DomainTally]:
    """``policy.catch_all.tally`` of every stored address of each of ``domains``: the kept counts, and
    the first bounced addresses (by address) of the domains with at least ``examples_from`` bounces
    (a finding names them only from its threshold on). A domain without evidence gets an empty tally."""
    wanted = sorted(set(domains))
    tallies = {domain: DomainTally() for domain in wanted}
    if not wanted:
        return tallies
    counts = select(
        EvidenceTallyRow.domain,
        EvidenceTallyRow.recipients,
        EvidenceTallyRow.refused_at_rcpt,
        EvidenceTallyRow.async_bounces,
    ).where(EvidenceTallyRow.domain.in_(wanted))
    with_bounces = []
    for domain, recipients, refused, bounces in session.execute(counts):
        tally = tallies[domain]
        tally.recipients, tally.refused_at_rcpt, tally.async_bounces = recipients, refused, bounces
        if bounces and bounces >= examples_from:
            with_bounces.append(domain)
    if with_bounces:
        _add_examples(session, tallies, with_bounces)
    return tallies


def _add_examples(session: Session, tallies: dict[str, DomainTally], domains: list[str]) -> None:
    bounced = bounced_after_accept_condition()
    place = func.row_number().over(partition_by=EvidenceRow.domain, order_by=EvidenceRow.address).label("place")
    ranked = (
        select(EvidenceRow.domain, EvidenceRow.address, place)
        .where(EvidenceRow.domain.in_(domains), bounced)
        .subquery()
    )
    examples = select(ranked.c.domain, ranked.c.address).where(ranked.c.place <= EXAMPLES)
    for domain, address in session.execute(examples.order_by(ranked.c.domain, ranked.c.address)):
        tallies[domain].bounce_examples.append(address)
