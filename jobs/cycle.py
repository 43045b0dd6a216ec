"""One full cycle: ingest -> decide -> directory cross-check -> sync -> report."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import BatchCreate, ComplianceDirectory, new_user_for
from connector.compliance.dry_run import DryRunComplianceDirectory
from connector.compliance.known import load_known
from connector.directory.lookup import lookup_candidates
from connector.directory.mirror import MirrorDirectory
from connector.domain.decisions import Decision, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.report import RunReport
from connector.errors import ConnectorError, RetriableError, SkippableError
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.decide import assess, resolve
from connector.policy.known import KnownAddresses
from connector.store import lifecycle as lifecycle_store
from connector.store import repository
from jobs.ingest import IngestResult, ingest
from jobs.reconcile import reconcile
from jobs.reports import publish_reports
from jobs.safety import SafetyStage

log = logging.getLogger(__name__)


def _rule(address_map: AddressMap, evidence: AddressEvidence) -> DomainRule | None:
    return address_map.rule_for(evidence.address.rpartition("@")[2])


def _create_in_batch(target: ComplianceDirectory, decisions: Sequence[Decision]) -> dict[str, bool | ConnectorError]:
    """Create at once the users this run decided to create, where the target offers it (SCIM Bulk).

    Only decisions that already passed every guard come here. A user missing from
    the result is created one at a time by ``_apply``, as without a batch.
    """
    users = [new_user_for(d) for d in decisions if d.outcome is Outcome.CREATE_USER]
    if not isinstance(target, BatchCreate) or len(users) < 2:
        return {}
    try:
        results = target.create_users(users)
    except ConnectorError as exc:  # e.g. the batched lookup failed: one at a time, as usual
        log.warning("batch creation unavailable, creating one at a time: %s", exc)
        return {}
    return {user.primary_address: result for user, result in zip(users, results, strict=True)}


def _apply(
    decision: Decision,
    target: ComplianceDirectory,
    known: KnownAddresses,
    report: RunReport,
    batch: Mapping[str, bool | ConnectorError] | None = None,
) -> Decision:
    """Make the change a decision asks for; a failure turns it into defer/skip."""
    try:
        if decision.outcome is Outcome.CREATE_USER:
            user = new_user_for(decision)
            result = (batch or {}).get(user.primary_address)
            if isinstance(result, ConnectorError):
                raise result
            if result is None:  # not created in the batch: one at a time
                target.ensure_org(user.org)
                result = target.create_user(user)
            if not result:
                # Created outside this connector since the known-address snapshot was taken.
                known.add_user(user.primary_address, user.aliases)
                detail = f"{user.primary_address} already exists in the compliance directory"
                return decision.instead(Outcome.SKIP, Reason.ALREADY_KNOWN, detail)
            via = f" via {decision.address}" if decision.address != user.primary_address else ""
            known.add_user(user.primary_address, user.aliases, origin=f"created in this run{via}")
        elif decision.outcome is Outcome.ADD_ALIAS:
            assert decision.user_address is not None
            target.add_alias(decision.user_address, decision.address)
            known.add_alias(decision.address, decision.user_address)
    except RetriableError as exc:
        report.errors.append({"stage": "target", "address": decision.address, "error": str(exc)})
        return decision.instead(Outcome.DEFER, Reason.TARGET_UNAVAILABLE, str(exc))
    except SkippableError as exc:
        report.errors.append({"stage": "target", "address": decision.address, "error": str(exc)})
        return decision.instead(Outcome.SKIP, Reason.TARGET_REJECTED, str(exc))
    return decision


def _depends_on_a_failed_creation(decision: Decision, known: KnownAddresses) -> bool:
    """Phase 1 counted on a user that phase 2 could not create: this decision must wait too.

    Without this, an alias skipped as ``alias_of`` a user that never came to be
    would be lost (its evidence does not change, so it is not decided again).
    """
    if decision.reason in (Reason.ALIAS_OF, Reason.ALREADY_KNOWN) and decision.outcome is Outcome.SKIP:
        return known.owner_of(decision.address) is None
    if decision.outcome is Outcome.ADD_ALIAS and decision.user_address is not None:
        return known.owner_of(decision.user_address) is None
    return False


def _record_intents(session: Session, decisions: Sequence[Decision], *, now: datetime, run_id: int) -> set[str]:
    """Write the managed-user intent of every creation; the addresses whose intent is new."""
    return {
        d.user_address
        for d in decisions
        if d.outcome is Outcome.CREATE_USER
        and d.user_address is not None
        and lifecycle_store.record_creation_intent(session, d, now=now, run_id=run_id)
    }


def _settle_intent(
    session: Session, decision: Decision, applied: Decision, new_intents: set[str], *, now: datetime
) -> None:
    """After the target answered: confirm what it created, forget what turned out to be someone else's."""
    if decision.outcome is not Outcome.CREATE_USER or decision.user_address is None:
        return
    if applied.outcome is Outcome.CREATE_USER:
        lifecycle_store.confirm(session, decision.user_address, now=now)
    elif applied.reason is Reason.ALREADY_KNOWN and decision.user_address in new_intents:
        lifecycle_store.forget(session, decision.user_address)  # made outside the connector: not ours
    elif applied.reason is Reason.ALREADY_KNOWN:
        lifecycle_store.confirm(session, decision.user_address, now=now)  # an earlier run's creation
    # deferred or refused: the intent stays; the reconcile step confirms or forgets it


def decide_and_sync(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    report: RunReport,
    *,
    now: datetime,
    commit: bool,
    plan: frozenset[str] | None = None,
    recheck: bool = False,
    also: Collection[str] = (),
    lifecycle: bool = True,
) -> list[Decision]:
    """Decide every due candidate, cross-check the qualified ones, provision them, reconcile managed users.

    With ``plan`` (``connector apply``), only the changes named in it are made.
    ``also`` names canonical addresses decided as well even when not due (``explain``);
    ``lifecycle=False`` leaves the managed users alone. Returns the run's final decisions.
    """
    address_map = connector.address_map
    try:
        known = load_known(target, address_map)
        target_down: RetriableError | None = None
    except RetriableError as exc:
        known, target_down = KnownAddresses(), exc
        report.errors.append({"stage": "target", "error": f"cannot list known addresses: {exc}"})

    fingerprints = connector.rule_fingerprints
    due = [item[0] for item in repository.candidates_due(session, fingerprints, now, recheck=recheck)]
    if also:
        due_addresses = {e.address for e in due}
        extra = repository.load_evidence(session, [a for a in also if a not in due_addresses])
        due = sorted([*due, *extra.values()], key=lambda e: (e.address.rpartition("@")[2], e.address))
    safety = SafetyStage.prepare(session, connector, report, due, known, now=now, plan=plan)
    address_map = safety.address_map  # the rules after catch-all detection (auto resolved)
    to_check: list[AddressEvidence] = []
    settled_later: list[AddressEvidence] = []
    decisions: list[tuple[Decision, AddressEvidence]] = []
    for evidence in due:
        if (guarded := safety.screen(evidence, known)) is not None:
            decisions.append((guarded, evidence))
        elif assess(evidence.address, _rule(address_map, evidence), evidence, known, now) is None:
            to_check.append(evidence)
        else:
            settled_later.append(evidence)

    if target_down is not None:
        for evidence in to_check:
            decision = Decision(evidence.address, Outcome.DEFER, Reason.TARGET_UNAVAILABLE, str(target_down))
            decisions.append((decision, evidence))
        to_check = []
    if commit:
        session.commit()  # no write lock held while the directory (or its mirror) is read
    answers = lookup_candidates(connector.directory, to_check)
    failures = {str(a) for a in answers.values() if isinstance(a, RetriableError)}
    for failure in sorted(failures):
        report.errors.append({"stage": "directory", "error": failure})

    # Phase 1: decide, with every guard, as if each creation succeeds (a tentative
    # copy of the known addresses), so that the creations can go out in one batch.
    tentative = copy.deepcopy(known)
    planned: list[tuple[Decision, AddressEvidence]] = []
    for evidence in to_check:
        if connector.stop.is_set():
            # Shutdown: what is decided so far is saved below; the rest has no new decision and stays due.
            report.warnings.append("interrupted by shutdown: the remaining candidates are decided next run")
            break
        rule = _rule(address_map, evidence)
        assert rule is not None
        answer = answers[evidence.address]
        if isinstance(answer, RetriableError):
            decision = Decision(
                evidence.address,
                Outcome.DEFER,
                Reason.DIRECTORY_UNAVAILABLE,
                str(answer),
                org=rule.org,
                method=rule.method,
            )
        else:
            # Re-assess first: an earlier creation in this run may already cover this address.
            decision = assess(evidence.address, rule, evidence, tentative, now) or resolve(
                evidence.address, rule, evidence, answer, tentative, address_map, connector.org_rules
            )
            decision = safety.gate(decision)
            if decision.outcome is Outcome.CREATE_USER and decision.user_address is not None:
                via = f" via {decision.address}" if decision.address != decision.user_address else ""
                tentative.add_user(decision.user_address, decision.aliases, origin=f"created in this run{via}")
            elif decision.outcome is Outcome.ADD_ALIAS and decision.user_address is not None:
                tentative.add_alias(decision.address, decision.user_address)
        planned.append((decision, evidence))

    # Phase 2: apply in order with the real results; ``known`` learns only what worked.
    # The intent to manage each new user is committed before the target is asked, so a
    # crash or a failed membership write after the create is repaired by the reconcile step.
    new_intents = _record_intents(session, [d for d, _ in planned], now=now, run_id=report.run_id)
    if commit:
        session.commit()  # hold no write lock while the target writes
    batch = _create_in_batch(target, [d for d, _ in planned])
    for decision, evidence in planned:
        if _depends_on_a_failed_creation(decision, known):
            detail = f"its user {decision.user_address or decision.address} could not be created in this run"
            decision = decision.instead(Outcome.DEFER, Reason.TARGET_UNAVAILABLE, detail)
        elif decision.outcome in (Outcome.CREATE_USER, Outcome.ADD_ALIAS):
            if commit:
                session.commit()
            applied = _apply(decision, target, known, report, batch)
            _settle_intent(session, decision, applied, new_intents, now=now)
            decision = applied
        decisions.append((decision, evidence))
    # Assessed last, so that users created above (e.g. from their alias) count as known.
    for evidence in settled_later:
        decision_or_none = assess(evidence.address, _rule(address_map, evidence), evidence, known, now)
        assert decision_or_none is not None  # ``known`` only grows, so a settled case stays settled
        decisions.append((decision_or_none, evidence))

    for decision, evidence in decisions:
        domain = evidence.address.rpartition("@")[2]
        repository.save_decision(
            session,
            decision,
            domain=domain,
            evidence_revision=evidence.revision,
            rule_fingerprint=fingerprints.get(domain, ""),
            now=now,
            run_id=report.run_id,
        )
        report.add_decision(decision, now=now)
    safety.finish(decisions)
    if commit:
        session.commit()
    else:
        session.flush()
    if lifecycle and target_down is None and not connector.stop.is_set():
        created_now = {d.user_address for d, _ in decisions if d.outcome is Outcome.CREATE_USER and d.user_address}
        reconcile(
            session,
            connector,
            target,
            report,
            now=now,
            commit=commit,
            address_map=address_map,
            known_users=known.users(),
            skip=created_now,
            plan_keys=plan,
        )
    elif lifecycle and target_down is not None:
        report.errors.append({"stage": "lifecycle", "error": "managed users not reconciled: the target is down"})
    if commit:
        try:
            target.flush()
        except RetriableError as exc:  # the changes stay recorded; the next run writes them
            report.errors.append({"stage": "target", "error": f"flush failed: {exc}"})
    else:
        session.flush()
    if isinstance(target, DryRunComplianceDirectory):
        report.planned_changes = list(target.planned)
    return [decision for decision, _ in decisions]


def _report_ingest(report: RunReport, result: IngestResult) -> None:
    report.sources = result.sources
    report.errors.extend(result.errors)
    for source in result.sources:
        if source["restarted"]:
            report.warnings.append(f"source {source['name']}: {source['restarted']}")
        if source["bad_lines"]:
            report.warnings.append(f"source {source['name']}: {source['bad_lines']} malformed line(s) skipped")
    if result.invalid_recipients:
        report.warnings.append(
            f"{result.invalid_recipients} delivery(ies) to unparseable addresses, e.g. {result.invalid_examples}"
        )
    for domain, tally in sorted(result.unmanaged.items()):
        report.skipped.append(
            {
                "address": f"*@{domain}",
                "reason": Reason.DOMAIN_NOT_MANAGED.value,
                "state": "skipped",
                "detail": (
                    f"{tally.deliveries} delivery(ies) to {len(tally.addresses)} address(es); domain is not managed"
                ),
            }
        )


def run_cycle(
    connector: Connector,
    *,
    clock: Callable[[], datetime],
    dry_run: bool = False,
    plan: frozenset[str] | None = None,
    ingest_logs: bool = True,
    recheck: bool = False,
) -> RunReport:
    """Run ingest -> decide -> cross-check -> sync once and store the report.

    A dry run does everything but writes nothing: the state changes are rolled
    back and the target only records what it would do. Its report is kept,
    marked ``dry_run``. ``ingest_logs=False`` decides on the evidence already
    stored (a decide-only instance; ingest-only instances feed it).
    """
    now = clock()
    target: ComplianceDirectory = DryRunComplianceDirectory(connector.target) if dry_run else connector.target
    if isinstance(connector.directory, MirrorDirectory):
        try:
            connector.directory.refresh_if_due()  # before this cycle holds any lock on the state database
        except RetriableError as exc:
            log.warning("directory mirror not refreshed: %s", exc)  # lookups defer if it stays unusable
    with connector.sessions() as session:
        run_id = repository.start_run(session, now, dry_run)
        session.commit()
        report = RunReport(
            run_id=run_id,
            started_at=now,
            dry_run=dry_run,
            directory=connector.directory.describe(),
            target=target.describe(),
        )
        status = "failed"
        try:
            if ingest_logs:
                result = ingest(
                    session, connector.sources, connector.address_map, now=now, commit=not dry_run, stop=connector.stop
                )
                _report_ingest(report, result)
                if result.interrupted:
                    report.warnings.append("interrupted by shutdown while reading logs: the rest is read next run")
            if not connector.stop.is_set():
                decide_and_sync(
                    session, connector, target, report, now=now, commit=not dry_run, plan=plan, recheck=recheck
                )
            interrupted = any(w.startswith("interrupted by shutdown") for w in report.warnings)
            status = "ok" if not report.errors and not interrupted else "partial"
        except ConnectorError as exc:
            log.error("cycle failed: %s", exc)
            report.errors.append({"stage": "cycle", "error": str(exc)})
        finally:
            session.rollback()  # dry run: discard; real run: nothing is pending any more
            if connector.target_health is not None:
                report.target_health = connector.target_health.take_summary()
            report.status = status
            report.finished_at = clock()
            repository.finish_run(session, run_id, report.finished_at, status, report.to_json())
            session.commit()
    publish_reports(connector, report.to_json(), now=report.finished_at)
    return report


def simulate(connector: Connector, addresses: Collection[str], *, now: datetime) -> dict[str, Decision]:
    """What a run would decide now, with every guard, for ``addresses`` (and every due candidate).

    The same ``decide_and_sync`` as a real run, against a dry-run target, in a
    session that is rolled back: nothing is stored, nothing is written. The
    managed users are left out (``explain`` plans its one user with the lifecycle
    planner). Canonical address -> decision; an address without evidence is absent.
    """
    target = DryRunComplianceDirectory(connector.target)
    report = RunReport(
        run_id=0,
        started_at=now,
        dry_run=True,
        directory=connector.directory.describe(),
        target=target.describe(),
    )
    with connector.sessions() as session:
        try:
            decisions = decide_and_sync(
                session, connector, target, report, now=now, commit=False, also=addresses, lifecycle=False
            )
        finally:
            session.rollback()
    wanted = set(addresses)
    return {d.address: d for d in decisions if d.address in wanted}
