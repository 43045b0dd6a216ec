"""Runs whose process died are closed as ``interrupted``, with what they did recovered.

A process killed in the middle of a run (``kill -9``, out of memory, power
loss) leaves its ``runs`` row without ``finished_at``. The next real run
closes it before it reads or decides anything, so the users the dead run
created are reported as its creations, not as ``already_known`` by the next
run, and ``report list`` and the CSV export show them
(docs/reliability.md#interrupted-runs).

When is it safe to say the process is dead? A real run always runs under the
``cycle`` lock (``run_job``, ``connector apply``), and that lock dies with its
holder (``flock``, a PostgreSQL session lock). So while a run holds it, every
other run row still open belongs to a process that is gone. (The dry runs of
``connector plan`` take no lock: one that is still alive and gets closed writes
its own report over it when it finishes; a dry run changes nothing anyway.)

What the dead run did comes from its records: its candidate rows when it got
as far as committing its decisions; otherwise the creations and aliases it was
about to send (saved with its ``creating`` records before the first target
write, see ``record_progress``), each kept if the target has it now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from connector.compliance.base import ComplianceDirectory, LifecycleTarget
from connector.domain.decisions import CandidateState, Decision, Method, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.lifecycle import ManagedStatus, TargetUser
from connector.domain.report import RunReport, UnreadableReport, stored_report
from connector.domain.report_model import RunReportJson
from connector.domain.status import RunStatus
from connector.errors import RetriableError
from connector.reporting.files import HtmlReportDirectory
from connector.store import lifecycle as lifecycle_store
from connector.store import repository, run_progress
from connector.store.models import CandidateRow
from connector.store.safety import decision_to_json

log = logging.getLogger(__name__)

INTERRUPTED = RunStatus.INTERRUPTED
_SENT = (Outcome.CREATE_USER, Outcome.ADD_ALIAS)
_OUTCOME_OF_STATE = {
    CandidateState.CREATED.value: Outcome.CREATE_USER,
    CandidateState.SKIPPED.value: Outcome.SKIP,
    CandidateState.DEFERRED.value: Outcome.DEFER,
    CandidateState.HELD.value: Outcome.HOLD,
    CandidateState.PENDING.value: Outcome.WAIT,
}


# -- while a run goes on -------------------------------------------------------------------------


def _intended(decision: Decision, evidence: AddressEvidence, fingerprint: str) -> dict[str, Any]:
    """A creation or alias about to be sent, with what its candidate row needs."""
    return {
        **decision_to_json(decision),
        "outcome": decision.outcome.value,
        "domain": decision.address.rpartition("@")[2],
        "evidence_revision": evidence.revision,
        "rule_fingerprint": fingerprint,
    }


def record_progress(
    session: Session,
    report: RunReport,
    planned: Iterable[tuple[Decision, AddressEvidence]] = (),
    fingerprints: Mapping[str, str] | None = None,
) -> None:
    """Save the run's report as it stands, and the creations and aliases it is about to send.

    Written, not committed: the cycle commits it with the ``creating`` records,
    before the first target write.
    """
    progress: dict[str, Any] = {
        **report.to_json(),
        "intended": [
            _intended(decision, evidence, (fingerprints or {}).get(decision.address.rpartition("@")[2], ""))
            for decision, evidence in planned
            if decision.outcome in _SENT
        ],
    }
    run_progress.save_progress(session, report.run_id, progress)


# -- closing a dead run --------------------------------------------------------------------------


def _decision(entry: Mapping[str, Any]) -> Decision:
    """A saved intent as its decision (``ValueError``, ``KeyError`` or ``TypeError`` if it cannot be read)."""
    return Decision(
        entry["address"],
        Outcome(entry["outcome"]),
        Reason(entry["reason"]),
        entry.get("detail") or "",
        org=entry.get("org"),
        method=Method(entry["method"]) if entry.get("method") else None,
        user_address=entry.get("user_address"),
        aliases=tuple(entry.get("aliases") or ()),
        display_name=entry.get("display_name"),
        external_id=entry.get("external_id"),
        evidence=entry.get("evidence") or {},
        directory_address=entry.get("directory_address"),
    )


def _decision_of_row(row: CandidateRow, intended: Mapping[str, Any] | None) -> Decision:
    """A committed decision record as the decision it was (details from the intent, when one was saved)."""
    if intended is not None and row.state == CandidateState.CREATED.value:
        return _decision(intended)
    outcome = _OUTCOME_OF_STATE.get(row.state, Outcome.SKIP)
    if outcome is Outcome.CREATE_USER and row.user_address not in (None, row.address):
        outcome = Outcome.ADD_ALIAS  # no saved intent says it created its user via this address
    return Decision(
        row.address,
        outcome,
        Reason(row.reason),
        row.detail,
        org=row.org,
        method=Method(row.method) if row.method else None,
        user_address=row.user_address,
    )


def _saved_intents(run: run_progress.OpenRun) -> list[Any]:
    """The creations and aliases the dead run saved beside its report (``record_progress``), unchecked."""
    intended = run.progress.get("intended") if isinstance(run.progress, dict) else None
    return list(intended) if isinstance(intended, list) else []


def _saved_report(run: run_progress.OpenRun) -> RunReportJson | None:
    """The report the dead run last saved (``record_progress``); None when it saved none it can read."""
    if not run.progress:
        return None
    try:
        return stored_report(run.progress)
    except UnreadableReport as exc:
        log.warning("run %s: its saved report cannot be read: %s", run.run_id, exc)
        return None


def _readable(run: run_progress.OpenRun, rebuilt: RunReport) -> list[dict[str, Any]]:
    """The saved intents that can be read; a warning for any that cannot (nothing here may stop a run)."""
    readable = []
    for entry in _saved_intents(run):
        try:
            _decision(entry)
            if not isinstance(entry["domain"], str) or not isinstance(entry["rule_fingerprint"], str):
                raise TypeError("domain and rule_fingerprint must be text")
            int(entry["evidence_revision"])
        except (ValueError, KeyError, TypeError) as exc:
            rebuilt.warnings.append(
                f"a saved creation intent cannot be read ({type(exc).__name__}: {exc}): {entry!r:.200}"
            )
            continue
        readable.append(entry)
    return readable


def _report_of(run: run_progress.OpenRun) -> RunReport:
    """The dead run's report as it last saved it (sources, warnings, guards, errors), without decisions."""
    saved = _saved_report(run)
    if saved is None:
        return RunReport(run_id=run.run_id, started_at=run.started_at, dry_run=run.dry_run)
    return RunReport(
        run_id=run.run_id,
        started_at=run.started_at,
        dry_run=run.dry_run,
        directory=saved.get("directory") or "",
        target=saved.get("target") or "",
        sources=list(saved.get("sources") or []),
        warnings=list(saved.get("warnings") or []),
        guards=list(saved.get("guards") or []),
        errors=list(saved.get("errors") or []),
        target_health=saved.get("target_health"),
    )


def _read_target(target: ComplianceDirectory, addresses: Sequence[str]) -> dict[str, TargetUser]:
    """What the target holds now for these users (``RetriableError`` when it cannot say)."""
    if not addresses:
        return {}
    if isinstance(target, LifecycleTarget):
        return target.read_users(addresses)
    users = {u.lower() for u in target.known_addresses().users}
    return {a: TargetUser(a, None) for a in addresses if a.lower() in users}


def _made(entry: Mapping[str, Any], actual: Mapping[str, TargetUser], managed: set[str]) -> bool:
    """Did the dead run make this change? The target has it (a creation also kept its record)."""
    user = actual.get(entry.get("user_address") or "")
    if user is None:
        return False
    if entry["outcome"] == Outcome.CREATE_USER.value:
        return user.primary_address.lower() == str(entry["user_address"]).lower() and entry["user_address"] in managed
    return str(entry["address"]).lower() in {a.lower() for a in user.aliases}


def _settle_records(
    session: Session, run_id: int, users: Sequence[str], actual: Mapping[str, TargetUser], *, now: datetime
) -> set[str]:
    """Confirm the dead run's ``creating`` records the target has; drop its others. The addresses still managed."""
    rows = lifecycle_store.managed_rows(session, users)
    for address, row in rows.items():
        if row.status != ManagedStatus.CREATING.value:
            continue
        if address in actual:
            lifecycle_store.confirm(session, address, now=now, target_id=actual[address].target_id)
        elif row.run_id == run_id:
            lifecycle_store.forget(session, address)  # never sent, or never arrived: the next decision starts afresh
    return {a for a, row in rows.items() if row.status != ManagedStatus.CREATING.value or a in actual}


def _close(
    session: Session, run: run_progress.OpenRun, target: ComplianceDirectory, *, now: datetime, closed_by: int
) -> tuple[RunReport, bool]:
    """Recover what ``run`` did and store it as ``interrupted``; ``RetriableError`` if the target cannot say.

    Also says whether the run may have written the target without recording it.
    """
    rebuilt = _report_of(run)
    intended = [] if run.dry_run else _readable(run, rebuilt)
    users = sorted({str(e["user_address"]) for e in intended if e.get("user_address")})
    actual = _read_target(target, users)
    by_address = {str(e["address"]): e for e in intended}
    decided = run_progress.decisions_of(session, run.run_id)
    managed = _settle_records(session, run.run_id, users, actual, now=now)
    for row in decided:  # what it committed of its decisions says what it did
        try:
            decision = _decision_of_row(row, by_address.get(row.address))
        except ValueError as exc:  # a reason this version does not know (written by a newer one)
            rebuilt.warnings.append(f"decision record of {row.address} not shown: {exc}")
            continue
        rebuilt.add_decision(decision, now=run.started_at)
    recorded = {row.address for row in decided}
    for entry in intended:  # creations and aliases sent before its decisions were committed
        if entry["address"] in recorded or not _made(entry, actual, managed):
            continue  # recorded above, or not done: then the address is still due and decided again
        decision = _decision(entry)
        rebuilt.add_decision(decision, now=run.started_at)
        existing = repository.get_candidate(session, decision.address)
        if existing is None or existing.state != CandidateState.CREATED.value:
            repository.save_decision(
                session,
                decision,
                domain=entry["domain"],
                evidence_revision=int(entry["evidence_revision"]),
                rule_fingerprint=entry["rule_fingerprint"],
                now=run.started_at,
                run_id=run.run_id,
            )
        # Its other spellings were decided (if at all) while the run was still open, as if this
        # user did not exist: decide them again now.
        others = {decision.user_address or "", *decision.aliases} - {decision.address, ""}
        run_progress.decide_again(session, others, now)
    rebuilt.warnings.append(
        f"interrupted: the process running this run stopped before it finished (killed or crashed); "
        f"run {closed_by} closed it with what it had done"
    )
    rebuilt.status = INTERRUPTED
    rebuilt.finished_at = now
    repository.finish_run(session, run.run_id, now, INTERRUPTED, rebuilt.to_json())
    return rebuilt, bool(set(by_address) - recorded)


def close_interrupted_runs(
    session: Session,
    target: ComplianceDirectory,
    report: RunReport,
    *,
    now: datetime,
    pages: HtmlReportDirectory | None = None,
) -> list[RunReport]:
    """Close every other run left open, as ``interrupted``. Call only while holding the ``cycle`` lock.

    Each closed run is committed on its own (and gets its HTML page in ``pages``).
    A run whose creations the target cannot confirm now stays open for a later
    run (a warning says so).
    """
    closed: list[RunReport] = []
    for run in run_progress.open_runs(session, other_than=report.run_id):
        session.commit()  # no transaction open while the target is asked
        try:
            rebuilt, wrote_target = _close(session, run, target, now=now, closed_by=report.run_id)
        except RetriableError as exc:
            session.rollback()
            report.warnings.append(
                f"run {run.run_id} was interrupted; it stays open until the target can tell what it created: {exc}"
            )
            continue
        session.commit()
        created = len(rebuilt.created)
        log.warning("run %s was interrupted; closed with %d user(s) it created", run.run_id, created)
        report.warnings.append(
            f"run {run.run_id} was interrupted (its process stopped before it finished): "
            f"closed as interrupted with the {created} user(s) it created"
        )
        closed.append(rebuilt)
        if pages is not None:
            _write_page(pages, rebuilt)
        if wrote_target:
            _refresh_known(target, report)
    return closed


def _write_page(pages: HtmlReportDirectory, report: RunReport) -> None:
    try:
        pages.write_run(report.to_json())  # the index, written at the end of this run, links to it
    except RetriableError as exc:
        log.warning("reports directory: %s", exc)


def _refresh_known(target: ComplianceDirectory, report: RunReport) -> None:
    """Pull a remote target's addresses again: the dead run may have created users its copy lacks.

    Without it, an alias of a user the dead run created would be decided as if its user did not exist.
    """
    refresh = getattr(target, "refresh_known", None)  # remote targets only (SCIM)
    if not callable(refresh):
        return
    try:
        refresh()
    except RetriableError as exc:  # the old copy stays; each creation still looks its user up first
        report.warnings.append(f"the target's known addresses were not pulled again after the interruption: {exc}")
