"""One full cycle: ingest -> decide -> directory cross-check -> sync -> report."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import BatchCreate, ComplianceDirectory, NewUser
from connector.compliance.dry_run import DryRunComplianceDirectory
from connector.directory.base import Directory
from connector.domain.decisions import Decision, Outcome, Reason
from connector.domain.directory import DirectoryAnswer
from connector.domain.evidence import AddressEvidence
from connector.domain.report import RunReport
from connector.errors import ConnectorError, RetriableError, SkippableError
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress
from connector.policy.decide import assess, resolve
from connector.policy.known import KnownAddresses
from connector.store import repository
from jobs.ingest import IngestResult, ingest

log = logging.getLogger(__name__)
LOOKUP_BATCH = 500


def load_known(target: ComplianceDirectory, address_map: AddressMap) -> KnownAddresses:
    """The target's users and aliases, canonicalised like candidates are."""
    snapshot = target.known_addresses()
    known = KnownAddresses()

    def canonical(address: str) -> str | None:
        try:
            return address_map.canonical(address)
        except InvalidAddress:
            return None

    for user in snapshot.users:
        if (primary := canonical(user)) is not None:
            known.add_user(primary)
    for alias, owner in snapshot.aliases.items():
        alias_c, owner_c = canonical(alias), canonical(owner)
        if alias_c and owner_c:
            known.add_alias(alias_c, owner_c)
    return known


def _rule(address_map: AddressMap, evidence: AddressEvidence) -> DomainRule | None:
    return address_map.rule_for(evidence.address.rpartition("@")[2])


def _lookup_all(
    directory: Directory, addresses: Sequence[str], report: RunReport
) -> dict[str, DirectoryAnswer | RetriableError]:
    """Directory answers in batches; a batch that fails maps to its error (deferred)."""
    answers: dict[str, DirectoryAnswer | RetriableError] = {}
    for start in range(0, len(addresses), LOOKUP_BATCH):
        chunk = addresses[start : start + LOOKUP_BATCH]
        try:
            found = directory.lookup(chunk)
        except RetriableError as exc:
            log.warning("directory unavailable: %s", exc)
            report.errors.append({"stage": "directory", "error": str(exc), "addresses": len(chunk)})
            answers.update({address: exc for address in chunk})
            continue
        answers.update({address: found.get(address) for address in chunk})
    return answers


def _new_user(decision: Decision) -> NewUser:
    assert decision.user_address is not None and decision.org is not None
    return NewUser(
        primary_address=decision.user_address,
        org=decision.org,
        aliases=decision.aliases,
        display_name=decision.display_name,
        external_id=decision.external_id,
    )


def _create_in_batch(
    address_map: AddressMap,
    target: ComplianceDirectory,
    to_check: Sequence[AddressEvidence],
    answers: Mapping[str, DirectoryAnswer | RetriableError],
    known: KnownAddresses,
    now: datetime,
) -> dict[str, bool | ConnectorError]:
    """Create at once the users this run will create, where the target offers it (SCIM Bulk).

    A trial pass decides every candidate as if each creation succeeded; the real
    pass then takes each creation's result from here. Where the passes differ
    (a creation failed), the real pass falls back to creating one at a time.
    """
    if not isinstance(target, BatchCreate):
        return {}
    trial = copy.deepcopy(known)
    users: list[NewUser] = []
    for evidence in to_check:
        rule, answer = _rule(address_map, evidence), answers[evidence.address]
        if rule is None or isinstance(answer, RetriableError):
            continue
        decision = assess(evidence.address, rule, evidence, trial, now) or resolve(
            evidence.address, rule, evidence, answer, trial, address_map
        )
        if decision.outcome is Outcome.CREATE_USER:
            users.append(_new_user(decision))
            trial.add_user(users[-1].primary_address, users[-1].aliases)
        elif decision.outcome is Outcome.ADD_ALIAS and decision.user_address is not None:
            trial.add_alias(decision.address, decision.user_address)
    if len(users) < 2:
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
            user = _new_user(decision)
            result = (batch or {}).get(user.primary_address)
            if isinstance(result, ConnectorError):
                raise result
            if result is None:  # not created in the batch: one at a time
                target.ensure_org(user.org)
                target.create_user(user)
            known.add_user(user.primary_address, user.aliases)
        elif decision.outcome is Outcome.ADD_ALIAS:
            assert decision.user_address is not None
            target.add_alias(decision.user_address, decision.address)
            known.add_alias(decision.address, decision.user_address)
    except RetriableError as exc:
        report.errors.append({"stage": "target", "address": decision.address, "error": str(exc)})
        return Decision(
            decision.address,
            Outcome.DEFER,
            Reason.TARGET_UNAVAILABLE,
            str(exc),
            org=decision.org,
            method=decision.method,
        )
    except SkippableError as exc:
        report.errors.append({"stage": "target", "address": decision.address, "error": str(exc)})
        return Decision(
            decision.address, Outcome.SKIP, Reason.TARGET_REJECTED, str(exc), org=decision.org, method=decision.method
        )
    return decision


def decide_and_sync(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    report: RunReport,
    *,
    now: datetime,
    commit: bool,
) -> None:
    """Decide every due candidate, cross-check the qualified ones, provision them."""
    address_map = connector.address_map
    try:
        known = load_known(target, address_map)
        target_down: RetriableError | None = None
    except RetriableError as exc:
        known, target_down = KnownAddresses(), exc
        report.errors.append({"stage": "target", "error": f"cannot list known addresses: {exc}"})

    fingerprints = connector.rule_fingerprints
    due = [item[0] for item in repository.candidates_due(session, fingerprints, now)]
    to_check: list[AddressEvidence] = []
    settled_later: list[AddressEvidence] = []
    for evidence in due:
        if assess(evidence.address, _rule(address_map, evidence), evidence, known, now) is None:
            to_check.append(evidence)
        else:
            settled_later.append(evidence)

    decisions: list[tuple[Decision, AddressEvidence]] = []
    if target_down is not None:
        for evidence in to_check:
            decision = Decision(evidence.address, Outcome.DEFER, Reason.TARGET_UNAVAILABLE, str(target_down))
            decisions.append((decision, evidence))
        to_check = []
    answers = _lookup_all(connector.directory, [e.address for e in to_check], report)
    if commit:
        session.commit()  # hold no write lock while the target writes
    batch = _create_in_batch(address_map, target, to_check, answers, known, now)
    for evidence in to_check:
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
            decision = assess(evidence.address, rule, evidence, known, now) or resolve(
                evidence.address, rule, evidence, answer, known, address_map
            )
            if decision.outcome in (Outcome.CREATE_USER, Outcome.ADD_ALIAS):
                if commit:
                    session.commit()  # hold no write lock while the target writes
                decision = _apply(decision, target, known, report, batch)
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
    if commit:
        session.commit()
        try:
            target.flush()
        except RetriableError as exc:  # the changes stay recorded; the next run writes them
            report.errors.append({"stage": "target", "error": f"flush failed: {exc}"})
    else:
        session.flush()
    if isinstance(target, DryRunComplianceDirectory):
        report.planned_changes = list(target.planned)


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


def run_cycle(connector: Connector, *, clock: Callable[[], datetime], dry_run: bool = False) -> RunReport:
    """Run ingest -> decide -> cross-check -> sync once and store the report.

    A dry run does everything but writes nothing: the state changes are rolled
    back and the target only records what it would do. Its report is kept,
    marked ``dry_run``.
    """
    now = clock()
    target: ComplianceDirectory = DryRunComplianceDirectory(connector.target) if dry_run else connector.target
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
            result = ingest(session, connector.sources, connector.address_map, now=now, commit=not dry_run)
            _report_ingest(report, result)
            decide_and_sync(session, connector, target, report, now=now, commit=not dry_run)
            status = "ok" if not report.errors else "partial"
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
    return report
