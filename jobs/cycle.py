"""One full cycle: ingest -> decide -> directory cross-check -> sync -> report."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import BatchCreate, ComplianceDirectory, PlannedWrites, TargetFindings, new_user_for
from connector.compliance.dry_run import DryRunComplianceDirectory
from connector.compliance.known import load_known
from connector.compliance.refusals import refusal_fingerprints
from connector.directory.base import RefreshableMirror, ReloadableDirectory
from connector.directory.lookup import lookup_candidates
from connector.directory.presets import preset_check_of
from connector.domain.decisions import Decision, Outcome, Reason
from connector.domain.directory import DirectoryAnswer
from connector.domain.evidence import AddressEvidence
from connector.domain.report import RunReport
from connector.domain.report_model import ErrorJson, SourceJson
from connector.domain.status import RunStatus
from connector.errors import ConnectorError, InvariantError, RetriableError, SkippableError
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.decide import assess, resolve
from connector.policy.known import KnownAddresses
from connector.store import lifecycle as lifecycle_store
from connector.store import repository
from connector.store import safety as safety_store
from jobs import recovery
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
            if decision.user_address is None:  # ``resolve`` names the user of every alias it adds
                raise InvariantError(f"an add_alias decision for {decision.address} without the user's address")
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
    if decision.outcome is Outcome.ADD_ALIAS and applied.outcome is Outcome.ADD_ALIAS and decision.user_address:
        lifecycle_store.mark_addresses(session, [decision.user_address])  # its aliases changed in the target
    if decision.outcome is not Outcome.CREATE_USER or decision.user_address is None:
        return
    if applied.outcome is Outcome.CREATE_USER:
        lifecycle_store.confirm(session, decision.user_address, now=now)
    elif applied.reason is Reason.ALREADY_KNOWN and decision.user_address in new_intents:
        lifecycle_store.forget(session, decision.user_address)  # made outside the connector: not ours
    elif applied.reason is Reason.ALREADY_KNOWN:
        lifecycle_store.confirm(session, decision.user_address, now=now)  # an earlier run's creation
    # deferred or refused: the intent stays; the reconcile step confirms or forgets it


DECIDE_CHUNK = 1000  # due candidates decided, saved and reported at a time


def _screen_due(
    session: Session,
    due: repository.DueQuery,
    safety: SafetyStage,
    known: KnownAddresses,
    address_map: AddressMap,
    *,
    now: datetime,
) -> tuple[list[str], list[AddressEvidence]]:
    """First pass over the due evidence (streamed): every due address in order, and the evidence of
    those that need the directory. The rest is decided again, from the same rules, by ``_decide_the_rest``.
    """
    order: list[str] = []
    to_check: list[AddressEvidence] = []
    seen_also: set[str] = set()

    def screen(evidence: AddressEvidence) -> None:
        order.append(evidence.address)
        if evidence.address in due.also:
            seen_also.add(evidence.address)
        if (
            safety.screen(evidence, known) is None
            and assess(evidence.address, _rule(address_map, evidence), evidence, known, now) is None
        ):
            to_check.append(evidence)

    for evidence in repository.iter_due(session, due, batch=DECIDE_CHUNK):
        screen(evidence)
    # Named in ``also`` but not read with the due ones (e.g. a domain no longer managed).
    for evidence in repository.load_evidence(session, due.also - seen_also).values():
        screen(evidence)
    return order, to_check


def _decide_the_rest(
    session: Session,
    safety: SafetyStage,
    report: RunReport,
    order: Sequence[str],
    final: Mapping[str, Decision],
    undecided: Collection[str],
    known: KnownAddresses,
    address_map: AddressMap,
    due: repository.DueQuery,
    *,
    now: datetime,
    also: Collection[str],
) -> list[Decision]:
    """Decide, save and report every due address, a chunk at a time; the decisions of ``also``.

    ``final`` holds the decisions already made (directory and target); the others are
    the guards' (``screen``) or the rules' (``assess``), taken now that the creations of
    this run are known, so that a user created above (e.g. from their alias) counts as known.
    """
    staged = safety_store.staged_addresses(session)
    relevant: list[tuple[Decision, AddressEvidence]] = []  # what ``safety.finish`` acts on
    kept: list[Decision] = []
    wanted = set(also)
    for start in range(0, len(order), DECIDE_CHUNK):
        chunk = [a for a in order[start : start + DECIDE_CHUNK] if a not in undecided]
        evidence_of = repository.load_evidence(session, chunk)
        to_save: list[repository.DecisionToSave] = []
        for address in chunk:
            evidence = evidence_of[address]
            decision = final.get(address) or safety.screen(evidence, known)
            if decision is None:
                decision = assess(address, _rule(address_map, evidence), evidence, known, now)
            if decision is None:  # cannot happen: a settled case stays settled as ``known`` grows
                log.warning("no decision for %s in this run: decided next run", address)
                continue
            domain = address.rpartition("@")[2]
            to_save.append(
                repository.DecisionToSave(decision, domain, evidence.revision, due.fingerprint_for(decision, domain))
            )
            report.add_decision(decision, now=now)
            if decision.outcome is Outcome.HOLD or address in staged:
                relevant.append((decision, evidence))
            if address in wanted:
                kept.append(decision)
        repository.save_decisions(session, to_save, now=now, run_id=report.run_id)
    safety.finish(relevant)
    return kept


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
    ``lifecycle=False`` leaves the managed users alone. Returns the final decisions of the
    ``also`` addresses; every decision is in the run's records and (bounded) report.

    Memory stays flat in the number of due candidates (an attack of 500,000 new addresses):
    the due evidence is read twice as a stream (``_screen_due``, ``_decide_the_rest``); only
    the candidates that need the directory are held, with their decisions.
    """
    run = _Run(session, connector, target, report, now, commit)
    known, target_down = _read_known(run)
    due = _due_query(connector, now, recheck, also)
    safety = SafetyStage.prepare(session, connector, report, due, known, now=now, plan=plan, commit=commit)
    address_map = safety.address_map  # the rules after catch-all detection (auto resolved)
    order, to_check = _screen_due(session, due, safety, known, address_map, now=now)
    final: dict[str, Decision] = {}  # address -> decision, for the candidates decided apart from the rest
    if target_down is not None:
        final.update(_all_deferred(to_check, target_down))
        to_check = []
    answers = _ask_directory(run, to_check)
    planned = _decide_with_every_guard(run, safety, to_check, answers, known, address_map)  # phase 1
    final.update(_apply_planned(run, safety, planned, known))  # phase 2
    _claim_stored_aliases_only(final, _report_findings(target, report))
    undecided = {e.address for e in to_check} - set(final)  # a shutdown in phase 1 left these: they stay due
    kept = _decide_the_rest(
        session, safety, report, order, final, undecided, known, address_map, due, now=now, also=also
    )
    if commit:  # the next run reads what changes from now on, not every row kept (store/due_marks.py)
        repository.settle_due_marks(session, due)
    _end_transaction(run)
    if lifecycle:
        _reconcile_managed(run, final, known, address_map, plan=plan, target_down=target_down, full=recheck)
    _finish_target(run)
    return kept


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every step of one ``decide_and_sync`` works on."""

    session: Session
    connector: Connector
    target: ComplianceDirectory
    report: RunReport
    now: datetime
    commit: bool  # False: a dry run or ``explain``, nothing is committed


Planned = list[tuple[Decision, AddressEvidence]]


def _read_known(run: _Run) -> tuple[KnownAddresses, RetriableError | None]:
    """The target's addresses; when it cannot list them, none and the error (nothing is sent to it then)."""
    try:
        return load_known(run.target, run.connector.address_map), None
    except RetriableError as exc:
        run.report.errors.append({"stage": "target", "error": f"cannot list known addresses: {exc}"})
        return KnownAddresses(), exc


def _due_query(connector: Connector, now: datetime, recheck: bool, also: Collection[str]) -> repository.DueQuery:
    fingerprints = connector.rule_fingerprints
    refused = refusal_fingerprints(fingerprints, connector.settings.target)  # a refusal is retried when they change
    return repository.DueQuery(fingerprints, now, recheck, frozenset(also), refused)


def _all_deferred(to_check: Sequence[AddressEvidence], target_down: RetriableError) -> dict[str, Decision]:
    """The target cannot list its addresses: every candidate that needs the directory waits."""
    return {
        e.address: Decision(e.address, Outcome.DEFER, Reason.TARGET_UNAVAILABLE, str(target_down)) for e in to_check
    }


def _ask_directory(run: _Run, to_check: Sequence[AddressEvidence]) -> dict[str, DirectoryAnswer | RetriableError]:
    """The directory's answers, asked with no transaction open; its failures and an unfit preset reported."""
    if run.commit:
        run.session.commit()  # no write lock held while the directory (or its mirror) is read
    directory = run.connector.directory
    answers = lookup_candidates(directory, to_check)
    failures = {str(a) for a in answers.values() if isinstance(a, RetriableError)}
    for failure in sorted(failures):
        run.report.errors.append({"stage": "directory", "error": failure})
    if (preset := preset_check_of(directory)) is not None and (warning := preset.warning()) is not None:
        run.report.warnings.append(warning)  # a schema preset that does not fit the directory's entries
    return answers


def _decide_with_every_guard(
    run: _Run,
    safety: SafetyStage,
    to_check: Sequence[AddressEvidence],
    answers: Mapping[str, DirectoryAnswer | RetriableError],
    known: KnownAddresses,
    address_map: AddressMap,
) -> Planned:
    """Phase 1: decide, with every guard, as if each creation succeeds (a tentative
    copy of the known addresses), so that the creations can go out in one batch."""
    tentative = copy.deepcopy(known)
    planned: Planned = []
    for evidence in to_check:
        if run.connector.stop.is_set():
            # Shutdown: what is decided so far is saved below; the rest has no new decision and stays due.
            run.report.warnings.append("interrupted by shutdown: the remaining candidates are decided next run")
            break
        decision = _decide_one(run, safety, evidence, answers[evidence.address], tentative, address_map)
        planned.append((decision, evidence))
    return planned


def _decide_one(
    run: _Run,
    safety: SafetyStage,
    evidence: AddressEvidence,
    answer: DirectoryAnswer | RetriableError,
    tentative: KnownAddresses,
    address_map: AddressMap,
) -> Decision:
    """One candidate with the directory's answer, through the gate; a creation counts in ``tentative`` at once."""
    rule = _rule(address_map, evidence)
    if rule is None:  # ``_screen_due`` sends only addresses of managed domains to the directory
        raise InvariantError(f"{evidence.address} was asked of the directory but its domain has no rule")
    if isinstance(answer, RetriableError):
        return Decision(
            evidence.address, Outcome.DEFER, Reason.DIRECTORY_UNAVAILABLE, str(answer), org=rule.org, method=rule.method
        )
    # Re-assess first: an earlier creation in this run may already cover this address.
    decision = assess(evidence.address, rule, evidence, tentative, run.now) or resolve(
        evidence.address, rule, evidence, answer, tentative, address_map, run.connector.org_rules
    )
    decision = safety.gate(decision)
    if decision.outcome is Outcome.CREATE_USER and decision.user_address is not None:
        via = f" via {decision.address}" if decision.address != decision.user_address else ""
        tentative.add_user(decision.user_address, decision.aliases, origin=f"created in this run{via}")
    elif decision.outcome is Outcome.ADD_ALIAS and decision.user_address is not None:
        tentative.add_alias(decision.address, decision.user_address)
    return decision


def _apply_planned(run: _Run, safety: SafetyStage, planned: Planned, known: KnownAddresses) -> dict[str, Decision]:
    """Phase 2: apply in order with the real results; ``known`` learns only what worked.

    The intent to manage each new user is committed before the target is asked, so a
    crash or a failed membership write after the create is repaired by the reconcile step.
    """
    session, report = run.session, run.report
    planned = safety.recheck_blocks(planned)  # a person may have blocked one while the directory was asked
    new_intents = _record_intents(session, [d for d, _ in planned], now=run.now, run_id=report.run_id)
    if run.commit:
        # If the process dies from here on, the run's record tells what it was about to send.
        recovery.record_progress(session, report, planned, run.connector.rule_fingerprints)
        session.commit()  # hold no write lock while the target writes
    batch = _create_in_batch(run.target, [d for d, _ in planned])
    applied: dict[str, Decision] = {}
    for decision, _ in planned:
        outcome = _apply_one(run, decision, known, batch, new_intents)
        applied[outcome.address] = outcome
    return applied


def _apply_one(
    run: _Run,
    decision: Decision,
    known: KnownAddresses,
    batch: Mapping[str, bool | ConnectorError],
    new_intents: set[str],
) -> Decision:
    """One planned decision against the target; deferred when it counted on a creation that failed."""
    if _depends_on_a_failed_creation(decision, known):
        detail = f"its user {decision.user_address or decision.address} could not be created in this run"
        return decision.instead(Outcome.DEFER, Reason.TARGET_UNAVAILABLE, detail)
    if decision.outcome not in (Outcome.CREATE_USER, Outcome.ADD_ALIAS):
        return decision
    if run.commit:
        run.session.commit()
    applied = _apply(decision, run.target, known, run.report, batch)
    _settle_intent(run.session, decision, applied, new_intents, now=run.now)
    return applied


def _claim_stored_aliases_only(final: dict[str, Decision], dropped: Mapping[str, set[str]]) -> None:
    """A creation claims only the aliases the target stored (``dropped``: by user, the ones it did not)."""
    for address, decision in list(final.items()):
        if decision.outcome is Outcome.CREATE_USER and (lost := dropped.get(decision.user_address or "")):
            final[address] = dataclasses.replace(decision, aliases=tuple(a for a in decision.aliases if a not in lost))


def _end_transaction(run: _Run) -> None:
    if run.commit:
        run.session.commit()
    else:
        run.session.flush()


def _reconcile_managed(
    run: _Run,
    final: Mapping[str, Decision],
    known: KnownAddresses,
    address_map: AddressMap,
    *,
    plan: frozenset[str] | None,
    target_down: RetriableError | None,
    full: bool = False,
) -> None:
    """The lifecycle of every managed user (``full``: each one planned); not while the target is down, nor
    during a shutdown."""
    if target_down is not None:
        run.report.errors.append({"stage": "lifecycle", "error": "managed users not reconciled: the target is down"})
        return
    if run.connector.stop.is_set():
        return
    created_now = {d.user_address for d in final.values() if d.outcome is Outcome.CREATE_USER and d.user_address}
    reconcile(
        run.session,
        run.connector,
        run.target,
        run.report,
        now=run.now,
        commit=run.commit,
        address_map=address_map,
        known_users=known.users(),
        skip=created_now,
        plan_keys=plan,
        full=full,
    )


def _finish_target(run: _Run) -> None:
    """What the target did other than asked in the report, its held writes sent (a real run), a dry run's plan."""
    target, report = run.target, run.report
    _report_findings(target, report)
    if run.commit:
        try:
            target.flush()
        except RetriableError as exc:  # the changes stay recorded; the next run writes them
            report.errors.append({"stage": "target", "error": f"flush failed: {exc}"})
    else:
        run.session.flush()
    if isinstance(target, PlannedWrites):
        report.planned_changes = list(target.planned)


def _report_findings(target: ComplianceDirectory, report: RunReport) -> dict[str, set[str]]:
    """What the target did other than asked (an alias it did not store, a user made by hand): in the report.

    Returns the aliases the target did not store, by user: a creation does not claim them.
    """
    dropped: dict[str, set[str]] = {}
    if not isinstance(target, TargetFindings):
        return dropped
    for finding in target.take_findings():
        if finding.reason in ("target_dropped_alias", "alias_held_by_other"):  # not made: not claimed
            dropped.setdefault(finding.address, set()).update(finding.addresses)
        if finding.problem:
            detail = f"{finding.reason}: {finding.detail}"
            report.errors.append(
                {"stage": "target", "address": finding.address, "reason": finding.reason, "error": detail}
            )
        else:
            report.warnings.append(f"{finding.address}: {finding.reason}: {finding.detail}")
    return dropped


def _report_ingest(report: RunReport, result: IngestResult) -> None:
    # jobs/ingest.py (being rewritten for speed) still hands its sources and errors over as plain dicts
    # of their report shapes (``SourceJson``, ``ErrorJson``): typed here, at the hand-over.
    report.sources = cast(list[SourceJson], result.sources)
    report.errors.extend(cast(list[ErrorJson], result.errors))
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
        report.add_skipped(
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
    _refresh_adapters(connector)
    with connector.sessions() as session:
        report = _start_run(session, connector, target, now=now, dry_run=dry_run)
        status = RunStatus.FAILED
        try:
            status = _run_stages(
                session,
                connector,
                target,
                report,
                now=now,
                dry_run=dry_run,
                plan=plan,
                ingest_logs=ingest_logs,
                recheck=recheck,
            )
        except ConnectorError as exc:
            log.error("cycle failed: %s", exc)
            report.errors.append({"stage": "cycle", "error": str(exc)})
        finally:
            finished_at = _finish_run(session, connector, report, status, clock)
    publish_reports(connector, report.to_json(), now=finished_at)
    return report


def _refresh_adapters(connector: Connector) -> None:
    """Before the cycle holds any lock on the state database: the directory's copy, the target's health."""
    if isinstance(connector.directory, RefreshableMirror):
        try:
            connector.directory.refresh_if_due()
        except RetriableError as exc:
            log.warning("directory mirror not refreshed: %s", exc)  # lookups defer if it stays unusable
    elif isinstance(connector.directory, ReloadableDirectory):
        connector.directory.refresh_if_changed()  # parsed again only when the export changed since the last run
    if connector.target_health is not None:
        connector.target_health.reload()  # shared with other replicas: read it again each run


def _start_run(
    session: Session, connector: Connector, target: ComplianceDirectory, *, now: datetime, dry_run: bool
) -> RunReport:
    """The run's row (committed: the run is seen as open from now on) and its empty report."""
    run_id = repository.start_run(session, now, dry_run)
    session.commit()
    return RunReport(
        run_id=run_id,
        started_at=now,
        dry_run=dry_run,
        directory=connector.directory.describe(),
        target=target.describe(),
        listed_per_reason=connector.settings.reports.listed_per_reason,
    )


def _run_stages(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    report: RunReport,
    *,
    now: datetime,
    dry_run: bool,
    plan: frozenset[str] | None,
    ingest_logs: bool,
    recheck: bool,
) -> RunStatus:
    """Close dead runs, ingest, decide and sync; the run's status when nothing stopped it."""
    if not dry_run:  # a real run holds the cycle lock: a run still open elsewhere has died
        recovery.close_interrupted_runs(session, target, report, now=now, pages=connector.report_pages)
    if ingest_logs:
        _ingest_logs(session, connector, report, now=now, dry_run=dry_run)
    if not connector.stop.is_set():
        decide_and_sync(session, connector, target, report, now=now, commit=not dry_run, plan=plan, recheck=recheck)
    interrupted = any(w.startswith("interrupted by shutdown") for w in report.warnings)
    return RunStatus.OK if not report.errors and not interrupted else RunStatus.PARTIAL


def _ingest_logs(session: Session, connector: Connector, report: RunReport, *, now: datetime, dry_run: bool) -> None:
    """Read the logs into evidence; what was read is saved with the run, should the process die later."""
    result = ingest(session, connector.sources, connector.address_map, now=now, commit=not dry_run, stop=connector.stop)
    _report_ingest(report, result)
    if not dry_run:
        recovery.record_progress(session, report)
        session.commit()
    if result.interrupted:
        report.warnings.append("interrupted by shutdown while reading logs: the rest is read next run")


def _finish_run(
    session: Session, connector: Connector, report: RunReport, status: RunStatus, clock: Callable[[], datetime]
) -> datetime:
    """Store the final report (a dry run's changes discarded first: a real run has none pending); when it ended."""
    session.rollback()
    if connector.target_health is not None:
        report.target_health = connector.target_health.take_summary()
    report.status = status
    report.finished_at = clock()
    repository.finish_run(session, report.run_id, report.finished_at, status, report.to_json())
    session.commit()
    return report.finished_at


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
