"""``connector explain ADDRESS``: why an address was, or was not, created, and what the
lifecycle planner would do now with the managed user it belongs to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.app import Connector
from connector.compliance.known import load_known
from connector.compliance.refusals import RETRY_HINT, refusal_fingerprints
from connector.config.state import EventLogMode
from connector.directory.lookup import lookup_candidates
from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.directory import DirectoryAnswer
from connector.domain.evidence import AddressEvidence
from connector.domain.lifecycle import (
    Change,
    ChangeSet,
    DirectoryState,
    ManagedStatus,
    ManagedUser,
    Ownership,
    TargetUser,
)
from connector.domain.safe_text import printable
from connector.domain.safety import CatchAllFinding
from connector.errors import RetriableError
from connector.policy import catch_all
from connector.policy.addresses import DomainRule, MappedAddress
from connector.policy.exclusions import Exclusions
from connector.policy.known import KnownAddresses
from connector.policy.plans import change_key
from connector.policy.reconcile import canonical_or
from connector.store import lifecycle as lifecycle_store
from connector.store import repository
from connector.store import safety as safety_store
from connector.store.models import CandidateRow, EventLogRow, HeldChangeRow, StagedRow


@dataclass(frozen=True, slots=True)
class LifecyclePlan:
    """What the cycle's lifecycle planner says about one managed user now.

    Built by the CLI with the cycle's own functions (``jobs/reconcile.py: gather``
    with ``only={address}``, then ``plan``), so that explain shows what a run does.
    """

    directory: DirectoryState | None
    actual: TargetUser | None
    changes: ChangeSet
    target_error: str | None = None
    unavailable: str | None = None  # the lifecycle is off, or the target cannot read users back


PlanUser = Callable[[str], LifecyclePlan]
DecideNow = Callable[[str], Decision | None]


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else "never"


def _evidence_lines(evidence: AddressEvidence) -> list[str]:
    lines = [
        f"  events seen: {evidence.events_seen} "
        f"(first {_iso(evidence.first_seen_at)}, last {_iso(evidence.last_seen_at)})",
    ]
    if evidence.seen_as:
        lines.append(f"  also seen as: {', '.join(evidence.seen_as)}")
    if evidence.recent:
        lines.append("  latest valid messages kept:")
        lines.extend(f"    {d.at.isoformat()}  {d.message_key}" for d in evidence.recent)
    else:
        lines.append("  no valid message kept")
    if evidence.qualified_at:
        lines.append(f"  SmartCreate rule met at {evidence.qualified_at.isoformat()} by:")
        lines.extend(f"    {d.at.isoformat()}  {d.message_key}" for d in evidence.qualifying)
    if evidence.accepted_at:
        lines.append(f"  downstream accepted RCPT TO at {evidence.accepted_at.isoformat()}: {evidence.accepted_reply}")
    if evidence.rejected_at:
        lines.append(f"  downstream rejected RCPT TO at {evidence.rejected_at.isoformat()}: {evidence.rejected_reply}")
    if evidence.invalidated_at:
        lines.append(
            f"  evidence voided by a permanent failure at {evidence.invalidated_at.isoformat()}: "
            f"{evidence.invalidated_reply}"
        )
    return lines


def _events_since(evidence: AddressEvidence | None, rule: DomainRule | None, now: datetime) -> datetime:
    """From the first qualifying message, or one window before the latest event."""
    window = rule.window if rule is not None else timedelta(days=14)
    if evidence is None or evidence.last_seen_at is None:
        return now - window
    since = evidence.last_seen_at - window
    if evidence.qualifying:
        since = min(since, evidence.qualifying[0].at)
    return since


EVENTS_HEADING = {
    EventLogMode.FULL: "Delivery events since {since} (the rule's window):",
    EventLogMode.DECISIVE: "Delivery events that count toward a decision since {since} (the rule's window; "
    "state.event_log: decisive keeps no deferral, notification or duplicate):",
    EventLogMode.OFF: "Delivery events since {since}: not kept (state.event_log: off); the evidence above is all",
}


def _event_lines(events: list[EventLogRow], address: str, mode: EventLogMode) -> list[str]:
    lines = []
    for event in events:
        sender = "<>" if event.sender == "" else (event.sender or "?")
        line = f"  {event.at.isoformat()}  {event.status:<8} {event.message_key}  from {sender}"
        if event.recipient is not None and event.recipient != address:
            line += f" to {event.recipient}"
        lines.append(line)
        reply = event.reply or ("not kept" if mode is EventLogMode.DECISIVE and event.status == "sent" else "-")
        lines.append(f"      reply: {reply}; read at {event.location or '?'}")
    return lines


def explain(
    connector: Connector,
    address: str,
    *,
    now: datetime,
    plan_user: PlanUser | None = None,
    decide_now: DecideNow | None = None,
    known_addresses: Callable[[], KnownAddresses] | None = None,
) -> str:
    """Normalisation steps, stored evidence, target and directory answers, the decision, and
    (with ``plan_user``) the lifecycle of the managed user the address belongs to.

    ``decide_now`` (``jobs/cycle.py: simulate``) and ``plan_user`` are the cycle's own
    functions, handed in by the CLI: explain shows what a run would do, it does not re-implement it.
    ``known_addresses`` reads the target's addresses (default: ``load_known``, each call); the report
    pages, which tell hundreds of addresses, hand in one that reads them once.
    Raises ``InvalidAddress`` for text that is not an address (the CLI says so once, exit 2)."""
    mapped = connector.address_map.map(address)
    stored = _read_stored(connector, mapped, now)
    evidence = stored.evidence or AddressEvidence(address=mapped.address)
    known, target_lines = _ask_target(connector, mapped.address, known_addresses)
    answer, directory_lines = _ask_directory(connector, mapped.address, evidence)
    out = [
        *_normalisation_lines(address, mapped),
        *_owner_lines(connector, mapped.address, answer, known),  # the user it resolves to
        *_evidence_section(connector, mapped.address, stored),
        *_catch_all_lines(connector, mapped, stored.finding),
        *_guard_section(connector, mapped.address, stored),
        "Compliance directory:",
        *target_lines,
        "Mail directory:",
        *directory_lines,
        "Decision if a run happened now (the cycle's own code, every guard, nothing written):",
        *_decision_lines(connector, stored.candidate, mapped.address, now, decide_now),
    ]
    if plan_user is not None:
        out += ["Lifecycle:", *_lifecycle_lines(connector, mapped.address, known, plan_user)]
    out += _last_decision_lines(stored.candidate)
    return _text(out)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the state database holds about one address, read in one session."""

    evidence: AddressEvidence | None
    candidate: CandidateRow | None
    events: list[EventLogRow]
    events_since: datetime
    finding: CatchAllFinding | None  # of the address's domain
    blocked: set[str]
    staged: list[StagedRow]


def _read_stored(connector: Connector, mapped: MappedAddress, now: datetime) -> _Stored:
    with connector.sessions() as session:
        evidence = repository.load_evidence(session, [mapped.address]).get(mapped.address)
        candidate = repository.get_candidate(session, mapped.address)
        since = _events_since(evidence, mapped.rule, now)
        events = safety_store.logged_events(session, mapped.address, since)
        finding = safety_store.load_catch_all(session, mapped.domain)
        blocked = safety_store.blocked_addresses(session)
        staged = safety_store.staged(session, address=mapped.address)
    return _Stored(evidence, candidate, events, since, finding, blocked, staged)


def _normalisation_lines(address: str, mapped: MappedAddress) -> list[str]:
    return [
        f"Address: {address}",
        "Normalisation:",
        *(f"  {step}" for step in mapped.steps),
        f"  canonical address: {mapped.address}",
    ]


def _evidence_section(connector: Connector, address: str, stored: _Stored) -> list[str]:
    """The evidence kept, then the delivery events the event log kept (as ``state.event_log`` says)."""
    out = ["Evidence from the logs:"]
    if stored.evidence is not None:
        out.extend(_evidence_lines(stored.evidence))
    else:
        out.append("  none stored (no delivery seen, or domain not managed)")
    mode = connector.settings.state.event_log
    out.append(EVENTS_HEADING[mode].format(since=stored.events_since.isoformat()))
    if mode is not EventLogMode.OFF or stored.events:  # events kept before the log was switched off are still told
        out.extend(_event_lines(stored.events, address, mode) or ["  none kept"])
    return out


def _catch_all_lines(connector: Connector, mapped: MappedAddress, finding: CatchAllFinding | None) -> list[str]:
    out = [f"Catch-all status of {mapped.domain}:"]
    if finding is None:
        out.append("  not checked (only autocreate and auto domains are)")
    else:
        out.append(
            f"  {finding.status.value} ({finding.source}, checked {finding.checked_at.isoformat()}, "
            f"trusted until {finding.expires_at.isoformat()}): {finding.detail}"
        )
    rule = mapped.rule
    if rule is not None and rule.method in (Method.AUTOCREATE, Method.AUTO):
        probe_configured = connector.probe is not None and connector.probe.configured(mapped.domain)
        effective = catch_all.effective_rule(rule, finding, probe_configured)
        out.append(f"  effect: {effective.note or 'Autocreate'}")
    return out


def _guard_section(connector: Connector, address: str, stored: _Stored) -> list[str]:
    exclusions = Exclusions(connector.settings.safety.exclusions.local_parts, stored.blocked)
    guard_lines = []
    if exclusions.blocked(address):
        guard_lines.append("  blocked (connector block): never created automatically")
    if (pattern := exclusions.matching_pattern(address)) is not None:
        guard_lines.append(f"  excluded: local part matches {pattern!r}")
    guard_lines.extend(f"  held in run {row.run_id}: {row.reason} (connector pending)" for row in stored.staged)
    candidate = stored.candidate
    if candidate is not None and candidate.reason in ("dictionary_attack", "limit_reached", "catch_all_suspended"):
        guard_lines.append(f"  last run: {candidate.reason}: {candidate.detail}")
    return ["Guards:", *(guard_lines or ["  none hit"])]


def _ask_target(
    connector: Connector, address: str, known_addresses: Callable[[], KnownAddresses] | None
) -> tuple[KnownAddresses | None, list[str]]:
    """The target's addresses (None when it cannot be read) and what it says of ``address``."""
    try:
        known = known_addresses() if known_addresses else load_known(connector.target, connector.address_map)
    except RetriableError as exc:
        return None, [f"  unavailable: {exc}"]
    owner = known.owner_of(address)
    if owner is None:
        return known, ["  not known"]
    return known, ["  known as a user" if owner == address else f"  known as an alias of {owner}"]


def _ask_directory(connector: Connector, address: str, evidence: AddressEvidence) -> tuple[DirectoryAnswer, list[str]]:
    """The mail directory's answer for the address (None: no object, or the directory is unavailable)."""
    try:
        looked_up = lookup_candidates(connector.directory, [evidence])[address]
        if isinstance(looked_up, RetriableError):
            raise looked_up
    except RetriableError as exc:
        return None, [f"  unavailable: {exc}"]
    if looked_up is None:
        return None, ["  no object has this address"]
    return looked_up, [
        f"  {looked_up.kind.value} {looked_up.dn}",
        f"  primary {looked_up.primary_address}; aliases: {', '.join(looked_up.aliases) or 'none'}",
        f"  display name {looked_up.display_name!r}; enabled: {looked_up.enabled}",
    ]


def _decision_lines(
    connector: Connector, candidate: CandidateRow | None, address: str, now: datetime, decide_now: DecideNow | None
) -> list[str]:
    """A standing refusal of the target, or what the cycle's own code decides now."""
    refusal = _refusal_lines(connector, candidate, address, now)
    if refusal.standing:  # a standing refusal is not sent again: nothing to simulate
        return refusal.lines
    return [*refusal.lines, _decision_line(decide_now, address)]


def _last_decision_lines(candidate: CandidateRow | None) -> list[str]:
    if candidate is None:
        return []
    return [
        "Last recorded decision:",
        f"  {candidate.state} ({candidate.reason}) in run {candidate.run_id} at "
        f"{candidate.decided_at.isoformat()}: {candidate.detail}",
    ]


def _owner_lines(
    connector: Connector, address: str, answer: DirectoryAnswer, known: KnownAddresses | None
) -> list[str]:
    """Whose address this is, when not its own user's: the canonical form of an alias is still the alias."""
    if answer is not None and answer.is_user:
        primary = canonical_or(connector.address_map, answer.primary_address, address)
        if primary != address:
            return [f"  {address} is an alias of {primary} in the mail directory: the user is {primary}"]
        return []
    owner = known.owner_of(address) if known is not None else None
    if owner is not None and owner != address:
        return [f"  {address} is an alias of {owner} in the compliance directory: the user is {owner}"]
    return []


def _decision_line(decide_now: DecideNow | None, address: str) -> str:
    if decide_now is None:
        return "  not computed"
    if (decision := decide_now(address)) is None:
        return "  nothing to decide: no evidence is stored for this address"
    return f"  {decision.outcome.value}: {decision.reason.value}: {decision.detail}"


@dataclass(frozen=True, slots=True)
class _Refusal:
    standing: bool  # the target's refusal holds: a run now does not send the address again
    lines: list[str]


def _refusal_lines(connector: Connector, candidate: CandidateRow | None, address: str, now: datetime) -> _Refusal:
    """What a run now does with an address the target refused (``target_rejected``): the repository's own
    due rule says whether it is sent again (``connector/compliance/refusals.py``)."""
    managed = address.rpartition("@")[2] in connector.rule_fingerprints
    if candidate is None or candidate.reason != Reason.TARGET_REJECTED.value or not managed:
        return _Refusal(False, [])
    refused = (
        f"the compliance directory refused it in run {candidate.run_id} at {candidate.decided_at.isoformat()}: "
        f"{candidate.detail}"
    )
    refusals = refusal_fingerprints(connector.rule_fingerprints, connector.settings.target)
    query = repository.DueQuery(connector.rule_fingerprints, now, refusals=refusals)
    with connector.sessions() as session:
        due = repository.is_due(session, query, address)
    if due:
        changed = "the target's configuration, the connector's version or the domain's rule changed since"
        return _Refusal(False, [f"  {refused}", f"  {changed}: a run now tries again:"])
    return _Refusal(
        True,
        [f"  {Outcome.SKIP.value}: {Reason.TARGET_REJECTED.value}: not sent again: {refused}", f"  {RETRY_HINT}"],
    )


def _text(lines: list[str]) -> str:
    """The lines escaped for a terminal: addresses, message ids, replies and directory values are
    a stranger's text (an ``ESC ] 0 ; ... BEL`` in an address must not retitle the admin's window)."""
    return "\n".join(printable(line) for line in lines) + "\n"


def _find_managed(connector: Connector, address: str, known: KnownAddresses | None) -> ManagedUser | None:
    """The managed user ``address`` is, or is an alias of (in the target, or in the connector's records)."""
    with connector.sessions() as session:
        managed = lifecycle_store.get_managed(session, address)
        owner = known.owner_of(address) if known is not None else None
        if managed is None and owner is not None and owner != address:
            managed = lifecycle_store.get_managed(session, owner)
        if managed is None and (primary := lifecycle_store.managed_owner_of(session, address)) is not None:
            managed = lifecycle_store.get_managed(session, primary)
    return managed


def _change_lines(change: Change, prefix: str = "") -> list[str]:
    return [f"    {prefix}{change.kind.value}: {change.detail}", f"      plan key: {change_key(change.key())}"]


def _held_line(row: HeldChangeRow) -> str:
    detail = (row.change or {}).get("detail", "")
    if row.approved_at is not None:
        state = f"approved by {row.approved_by} at {row.approved_at.isoformat()}: the next run makes it"
    else:
        state = f"held in run {row.run_id} ({row.why}): connector approve --run {row.run_id} or deny --run {row.run_id}"
    return f"    {row.kind}: {detail}; {state}"


def _target_text(actual: TargetUser) -> str:
    return (
        f"{'active' if actual.active else 'suspended'}; org(s) {', '.join(actual.orgs) or '(none)'}; "
        f"aliases: {', '.join(actual.aliases) or 'none'}; display name {actual.display_name!r}; "
        f"external id {actual.external_id!r}; id {actual.target_id}"
    )


def _directory_text(state: DirectoryState | None) -> str:
    if state is None:
        return "not looked up"
    text = f"{state.verdict.value}: {state.detail}"
    if state.desired is not None:
        desired = state.desired
        text += (
            f"; wants primary {desired.primary_address} in org {desired.org}, aliases: "
            f"{', '.join(desired.aliases) or 'none'}, display name {desired.display_name!r}, "
            f"external id {desired.external_id!r}"
        )
    return text


def _lifecycle_lines(
    connector: Connector, address: str, known: KnownAddresses | None, plan_user: PlanUser
) -> list[str]:
    """Ownership, status, the directory's verdict, the target's state and the planner's changes."""
    managed = _find_managed(connector, address, known)
    if managed is None:
        return _unmanaged_lines(address, known)
    lines = _managed_lines(address, managed)
    if managed.status is ManagedStatus.DELETED:
        return [*lines, "  deleted by the connector: nothing more is planned for it"]
    plan = plan_user(managed.address)
    if plan.unavailable is not None:
        return [*lines, f"  not reconciled: {plan.unavailable}"]
    if plan.target_error is not None:
        return [*lines, f"  compliance directory unreadable, nothing would change: {plan.target_error}"]
    lines.append(f"  mail directory verdict: {_directory_text(plan.directory)}")
    lines.append(
        "  in the compliance directory: "
        + (_target_text(plan.actual) if plan.actual is not None else "missing (not in the target)")
    )
    return lines + _planned_lines(connector, managed.address, plan)


def _unmanaged_lines(address: str, known: KnownAddresses | None) -> list[str]:
    owner = known.owner_of(address) if known is not None else None
    if owner is not None:
        alias = "" if owner == address else f" (an alias of {owner})"
        return [f"  unmanaged: never changed by the connector{alias}"]
    if known is None:
        return ["  not managed by the connector (the compliance directory could not be read)"]
    return ["  not a user of the compliance directory, and not managed by the connector"]


def _managed_lines(address: str, managed: ManagedUser) -> list[str]:
    """Whose the address is, how and since when the connector manages it, what it did to it."""
    lines = []
    if managed.address != address:
        lines.append(f"  {address} belongs to the managed user {managed.address}")
    how = "created by the connector" if managed.ownership is Ownership.CREATED else "adopted (taken over on purpose)"
    since = managed.managed_at.isoformat() if managed.managed_at else "?"
    lines.append(
        f"  managed since {since}: {how}; status {managed.status.value}; org {managed.org or '(none recorded)'}; "
        f"target id {managed.target_id or '(not known yet)'}"
    )
    if managed.suspended_at is not None:
        lines.append(f"  suspended by the connector at {managed.suspended_at.isoformat()}: {managed.suspend_reason}")
    if managed.denied:
        lines.append(f"  denied by an admin: {managed.denied} (not proposed again until the directory changes)")
    return lines


def _planned_lines(connector: Connector, address: str, plan: LifecyclePlan) -> list[str]:
    """The changes a run would make now, those held for a person, and the planner's notes (``address``: managed)."""
    with connector.sessions() as session:
        stored = lifecycle_store.held_changes(session, address=address)
    held_kinds = {row.kind for row in stored if row.approved_at is None}
    changes = plan.changes.for_address(address)
    now_changes = [c for c in changes if not (c.destructive and c.kind.value in held_kinds)]
    held = [c for c in changes if c.destructive and c.kind.value in held_kinds]
    held += [h.change for h in plan.changes.held if h.change.address == address]
    lines = ["  changes a run would make now:"]
    for change in now_changes:
        lines.extend(_change_lines(change))
    if not now_changes:
        lines.append("    none")
    lines.extend(_held_lines(connector, stored, held, now_changes))
    if address in plan.changes.abandoned:
        lines.append("  its creation never reached the target: the next run forgets this record")
    if address in plan.changes.confirmed:
        lines.append("  its creation is in the target: the next run records it as active")
    lines.extend(f"  note: {note}" for a, note in plan.changes.notes if a == address)
    lines.extend(f"  not checked: {why}" for a, why in plan.changes.unknown if a == address)
    return lines


def _held_lines(
    connector: Connector, stored: Sequence[HeldChangeRow], held: Sequence[Change], now_changes: Sequence[Change]
) -> list[str]:
    """The destructive changes held for a person, or why a run might still hold the ones planned now."""
    if held or stored:
        lines = ["  held for a person (destructive changes beyond the lifecycle limits):"]
        lines.extend(_held_line(row) for row in stored)
        for change in held:
            if change.kind.value not in {row.kind for row in stored}:
                lines.extend(_change_lines(change, "held: "))
        return lines
    if any(c.destructive for c in now_changes):
        limits = connector.settings.lifecycle
        return [
            "  (limits are counted over all managed users in a run: beyond max_suspend_per_run="
            f"{limits.max_suspend_per_run}, max_delete_per_run={limits.max_delete_per_run} or "
            f"max_share_of_org={limits.max_share_of_org:g}, a run holds every destructive change instead)"
        ]
    return []
