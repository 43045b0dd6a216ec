"""The review queue: creations held for a person (``mode: approve`` or a creation limit),
and destructive lifecycle changes held by the lifecycle limits.

``approve`` creates exactly what was staged; ``deny`` and ``block`` make sure a
person is never created automatically (``block --remove`` lifts that). They act on
the person, not on the one address mail came to: a queue item shown as
"bob@acme.com (via robert@acme.com)" blocks bob@acme.com and every alias of his,
so the next mail to bob does not put him back in the queue.
``approve_held`` makes held lifecycle changes at once, through the cycle's own
gather, planner and apply (``jobs/reconcile.py``); ``deny_held`` drops them and
records the denial on the managed user, so the planner does not propose the
same change again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import new_user_for
from connector.directory.lookup import lookup_candidates
from connector.domain.decisions import CandidateState, Decision, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.lifecycle import Change
from connector.errors import RetriableError, SkippableError
from connector.policy.reconcile import canonical_or, directory_aliases
from connector.store import lifecycle as lifecycle_store
from connector.store import repository
from connector.store import safety as store
from connector.store.models import HeldChangeRow, StagedRow

if TYPE_CHECKING:
    from jobs.reconcile import ReconcileResult

log = logging.getLogger(__name__)


@dataclass
class ReviewResult:
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class HeldReview:
    """What ``approve_held`` / ``deny_held`` did with held lifecycle changes."""

    done: list[Change] = field(default_factory=list)  # made (approve) or denied (deny)
    waiting: list[tuple[Change, str]] = field(default_factory=list)  # approved, left for the next run: why
    failed: list[tuple[Change, str]] = field(default_factory=list)  # the target refused it (stays approved)
    dropped: list[tuple[Change, str]] = field(default_factory=list)  # no longer planned: the approval is dropped
    errors: list[str] = field(default_factory=list)  # e.g. the target's flush failed


@dataclass(frozen=True)
class Person:
    """The user a creation is for and every address of theirs: what ``deny`` and ``block`` act on."""

    user: str
    addresses: tuple[str, ...]  # the user first, then the aliases and the address mail came to

    def label(self) -> str:
        others = [a for a in self.addresses if a != self.user]
        return self.user + (f" and its aliases {', '.join(others)}" if others else "")


def person_of(row: StagedRow) -> Person:
    """The person of a held creation, as the directory described them when it was held."""
    creation = store.decision_from_json(row.decision)
    user = creation.user_address or row.address
    return Person(user, tuple(dict.fromkeys((user, *creation.aliases, row.address))))


def staged_for(session: Session, address: str) -> list[StagedRow]:
    """The held creations of the person ``address`` is: the queue shows "bob@acme.com (via
    robert@acme.com)", and either address (or another alias of bob's) selects the item."""
    return [row for row in store.staged(session) if address in person_of(row).addresses]


@dataclass
class BlockResult:
    """What ``block`` did: the addresses blocked, the held creations dropped, and why only part of the person."""

    person: Person
    dropped: list[str] = field(default_factory=list)
    note: str | None = None


def resolve_person(connector: Connector, address: str) -> tuple[Person, str | None]:
    """The person ``address`` belongs to: a held creation's, else the mail directory's user entry.

    Returns the person and, when the directory could not be asked, why only the address is used.
    No transaction is open while the directory is asked.
    """
    with connector.sessions() as session:
        people = [person_of(row) for row in staged_for(session, address)]
        stored = repository.load_evidence(session, [address]).get(address)
    if people:
        return people[0], None
    answer = lookup_candidates(connector.directory, [stored or AddressEvidence(address=address)])[address]
    if isinstance(answer, RetriableError):
        return Person(address, (address,)), f"the mail directory could not be asked ({answer}): only {address}"
    if answer is None or not answer.is_user:
        return Person(address, (address,)), None
    user = canonical_or(connector.address_map, answer.primary_address, address)
    return Person(user, (user, *directory_aliases(answer, connector.address_map, user, address))), None


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
            # As in the cycle: the intent to manage the user is committed before the target is asked.
            new_intent = lifecycle_store.record_creation_intent(session, creation, now=now, run_id=row.run_id)
            session.commit()
            try:
                target.ensure_org(user.org)
                created = target.create_user(user)
            except RetriableError as exc:
                result.failed.append((row.address, str(exc)))
                break
            except SkippableError as exc:
                result.failed.append((row.address, str(exc)))
                continue
            if created or not new_intent:
                lifecycle_store.confirm(session, user.primary_address, now=now)
            else:  # made outside the connector meanwhile: not ours
                lifecycle_store.forget(session, user.primary_address)
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


def _drop_person(session: Session, person: Person, why: Callable[[StagedRow], Decision], now: datetime) -> list[str]:
    """Unstage every held creation of ``person`` (robert's and bob's own), recording ``why``; their addresses."""
    dropped = []
    for row in store.staged(session):
        if person_of(row).user == person.user or row.address in person.addresses:
            _record(session, row, why(row), CandidateState.SKIPPED, now)
            store.unstage(session, row.address)
            dropped.append(row.address)
    return dropped


def _skip(row: StagedRow, reason: Reason, detail: str) -> Decision:
    return Decision(row.address, Outcome.SKIP, reason, detail, org=store.decision_from_json(row.decision).org)


def deny(connector: Connector, rows: list[StagedRow], *, who: str, now: datetime) -> ReviewResult:
    """Drop the staged creations and block their people: the user and every alias (never auto-created again)."""
    result = ReviewResult()
    with connector.sessions() as session:
        for row in rows:
            person = person_of(row)
            if person.label() in result.done:  # robert's and bob's own item: one person
                continue
            _drop_person(
                session, person, lambda held: _skip(held, Reason.DENIED, f"denied by {who} (held: {held.reason})"), now
            )
            for address in person.addresses:
                store.block(session, address, f"denied by {who} in the review of run {row.run_id}", now)
            result.done.append(person.label())
        session.commit()
    return result


def block(connector: Connector, address: str, *, note: str, now: datetime) -> BlockResult:
    """Never auto-create the person ``address`` belongs to (the user and every alias); their held
    creations are dropped. The person comes from a held creation, else from the mail directory."""
    person, partial = resolve_person(connector, address)
    with connector.sessions() as session:
        dropped = _drop_person(session, person, lambda held: _skip(held, Reason.BLOCKED, note), now)
        for each in person.addresses:
            store.block(session, each, note, now)
        session.commit()
    return BlockResult(person, dropped, partial)


def unblock(connector: Connector, address: str) -> tuple[list[str], str | None]:
    """Lift the block of the person ``address`` belongs to (found as ``block`` finds them): the addresses unblocked."""
    person, partial = resolve_person(connector, address)
    with connector.sessions() as session:
        removed = [each for each in dict.fromkeys((address, *person.addresses)) if store.unblock(session, each)]
        session.commit()
    return removed, partial


def approve_held(connector: Connector, rows: list[HeldChangeRow], *, who: str, now: datetime) -> HeldReview:
    """Approve held lifecycle changes, then make them at once as the cycle would.

    The users are planned again (``jobs/reconcile.py: gather`` and ``plan``, with
    these changes approved so that they pass the limits) and only the approved
    destructive changes the planner still proposes are applied. The approval is
    committed first: an outage leaves the changes approved, and the next run makes
    them. An approved change the planner no longer proposes (the user came back)
    is dropped.
    """
    result = HeldReview()
    held = [(row.id, row.run_id, lifecycle_store.change_from_json(row.change)) for row in rows]
    with connector.sessions() as session:
        _mark_approved(session, [row_id for row_id, _, _ in held], who=who, now=now)
        why = _why_not_reconciled(connector)
        if why is not None:
            result.waiting.extend((change, f"approved, not made: {why}") for _, _, change in held)
            return result
        changes, outcome = _make_approved(session, connector, held, now=now)
        _settle_not_made(session, held, changes, outcome.plan.unknown, result)
        session.commit()
    result.done.extend(outcome.applied)
    result.waiting.extend(outcome.deferred)
    result.failed.extend(outcome.failed)
    if outcome.applied:
        try:
            connector.target.flush()
        except RetriableError as exc:
            result.errors.append(f"flush failed: {exc}")
    return result


HeldEntry = tuple[int, int, Change]  # a held change's row id, its run, the change


def _mark_approved(session: Session, ids: list[int], *, who: str, now: datetime) -> None:
    """Committed first: an outage leaves the changes approved, and the next run makes them."""
    for row in session.scalars(select(HeldChangeRow).where(HeldChangeRow.id.in_(ids))):
        if row.approved_at is None:
            row.approved_at, row.approved_by = now, who
    session.commit()


def _why_not_reconciled(connector: Connector) -> str | None:
    """Why no lifecycle change can be made now (the lifecycle is off, the target cannot), or None."""
    from jobs import reconcile

    if not reconcile.reconciles(connector.target):
        return "the target cannot read users back"
    if not connector.settings.lifecycle.enabled:
        return "lifecycle.enabled is off"
    return None


def _make_approved(
    session: Session, connector: Connector, held: list[HeldEntry], *, now: datetime
) -> tuple[list[Change], ReconcileResult]:
    """Plan the users again (the approved changes pass the limits) and make the approved destructive
    changes the planner still proposes; those changes, and what came of them."""
    from jobs import reconcile  # the cycle's own gather / plan / apply

    wanted = {(change.address, change.kind.value) for _, _, change in held}
    policy = reconcile.lifecycle_policy(connector)
    address_map, target = connector.address_map, connector.target
    inputs = reconcile.gather(session, connector, target, address_map=address_map, only={a for a, _ in wanted})
    change_set = reconcile.plan(inputs, policy, now)
    changes = [c for c in change_set.changes if c.destructive and (c.address, c.kind.value) in wanted]
    outcome = reconcile.ReconcileResult(change_set)
    reconcile.apply_changes(
        session,
        connector,
        target,
        changes,
        outcome,
        inputs=inputs,
        policy=policy,
        address_map=address_map,
        now=now,
        run_id=held[0][1] if held else None,
        commit=True,
    )
    lifecycle_store.drop_applied(session, [(c.address, c.kind.value) for c in outcome.applied])
    return changes, outcome


def _settle_not_made(
    session: Session,
    held: list[HeldEntry],
    changes: list[Change],
    unknown_users: list[tuple[str, str]],
    result: HeldReview,
) -> None:
    """An approved change not planned now waits while its user could not be checked; else it is dropped."""
    unknown = dict(unknown_users)
    planned = {(c.address, c.kind.value) for c in changes}
    stale = []
    for row_id, _, change in held:
        if (change.address, change.kind.value) in planned:
            continue
        if change.address in unknown:  # the directory or the target could not answer: keep it approved
            result.waiting.append((change, unknown[change.address]))
        else:
            stale.append(row_id)
            result.dropped.append((change, "no longer proposed: the directory or the target changed"))
    lifecycle_store.drop_held(session, stale)


def deny_held(connector: Connector, rows: list[HeldChangeRow], *, who: str, now: datetime) -> HeldReview:
    """Drop held lifecycle changes; each denial is recorded on its managed user so the
    planner does not propose the same change again (``ManagedUser.denied``)."""
    result = HeldReview()
    with connector.sessions() as session:
        for row in rows:
            change = lifecycle_store.change_from_json(row.change)
            lifecycle_store.deny(session, change.address, change.kind.value, change.reason, now=now)
            log.debug(
                "lifecycle change denied by %s: %s %s (run %s)", who, change.kind.value, change.address, row.run_id
            )
            result.done.append(change)
        lifecycle_store.drop_held(session, [row.id for row in rows])
        session.commit()
    return result
