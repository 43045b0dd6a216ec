"""``connector explain ADDRESS``: why an address was, or was not, created."""

from __future__ import annotations

from datetime import datetime, timedelta

from connector.app import Connector
from connector.compliance.known import load_known
from connector.config.safety import Mode
from connector.directory.lookup import lookup_candidates
from connector.domain.decisions import Method, Outcome
from connector.domain.evidence import AddressEvidence
from connector.errors import RetriableError
from connector.policy import catch_all
from connector.policy.addresses import DomainRule, InvalidAddress
from connector.policy.decide import assess, resolve
from connector.policy.exclusions import Exclusions
from connector.store import repository
from connector.store import safety as safety_store
from connector.store.models import EventLogRow


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


def _event_lines(events: list[EventLogRow], address: str) -> list[str]:
    lines = []
    for event in events:
        sender = "<>" if event.sender == "" else (event.sender or "?")
        line = f"  {event.at.isoformat()}  {event.status:<8} {event.message_key}  from {sender}"
        if event.recipient != address:
            line += f" to {event.recipient}"
        lines.append(line)
        lines.append(f"      reply: {event.reply or '-'}; relay {event.relay or '-'}; read at {event.location or '?'}")
    return lines


def explain(connector: Connector, address: str, *, now: datetime) -> str:
    """Normalisation steps, stored evidence, target and directory answers, the decision."""
    out = [f"Address: {address}"]
    try:
        mapped = connector.address_map.map(address)
    except InvalidAddress as exc:
        return f"Address: {address}\n  not an address: {exc}\n"
    out.append("Normalisation:")
    out.extend(f"  {step}" for step in mapped.steps)
    out.append(f"  canonical address: {mapped.address}")

    rule = mapped.rule
    effective_note, suspended, waiting = "", False, False
    with connector.sessions() as session:
        stored = repository.load_evidence(session, [mapped.address]).get(mapped.address)
        candidate = repository.get_candidate(session, mapped.address)
        events = safety_store.logged_events(session, mapped.address, since := _events_since(stored, rule, now))
        finding = safety_store.load_catch_all(session, mapped.domain)
        blocked = safety_store.blocked_addresses(session)
        staged = safety_store.staged(session, address=mapped.address)
    out.append("Evidence from the logs:")
    evidence = stored or AddressEvidence(address=mapped.address)
    out.extend(_evidence_lines(evidence) if stored else ["  none stored (no delivery seen, or domain not managed)"])
    out.append(f"Delivery events since {since.isoformat()} (the rule's window):")
    out.extend(_event_lines(events, mapped.address) or ["  none kept"])

    out.append(f"Catch-all status of {mapped.domain}:")
    if finding is None:
        out.append("  not checked (only autocreate and auto domains are)")
    else:
        out.append(
            f"  {finding.status.value} ({finding.source}, checked {finding.checked_at.isoformat()}, "
            f"trusted until {finding.expires_at.isoformat()}): {finding.detail}"
        )
    if rule is not None and rule.method in (Method.AUTOCREATE, Method.AUTO):
        probe_configured = connector.probe is not None and connector.probe.configured(mapped.domain)
        effective = catch_all.effective_rule(rule, finding, probe_configured)
        out.append(f"  effect: {effective.note or 'Autocreate'}")
        rule = effective.rule
        effective_note, suspended, waiting = effective.note, effective.suspended, effective.waiting

    out.append("Guards:")
    exclusions = Exclusions(connector.settings.safety.exclusions.local_parts, blocked)
    guard_lines = []
    if exclusions.blocked(mapped.address):
        guard_lines.append("  blocked (connector block): never created automatically")
    if (pattern := exclusions.matching_pattern(mapped.address)) is not None:
        guard_lines.append(f"  excluded: local part matches {pattern!r}")
    guard_lines.extend(f"  held in run {row.run_id}: {row.reason} (connector pending)" for row in staged)
    if candidate is not None and candidate.reason in ("dictionary_attack", "limit_reached", "catch_all_suspended"):
        guard_lines.append(f"  last run: {candidate.reason}: {candidate.detail}")
    out.extend(guard_lines or ["  none hit"])
    guard_verdicts = []  # what replaces a creation, most specific first (as in a run)
    if exclusions.blocked(mapped.address):
        guard_verdicts.append("skip: blocked")
    if pattern is not None:
        guard_verdicts.append("skip: excluded_address")
    if effective_note and (suspended or waiting):
        reason = "catch_all_suspended" if suspended else "catch_all_unknown"
        guard_verdicts.append(f"skip: {reason}: {mapped.domain} {effective_note}")

    out.append("Compliance directory:")
    try:
        known = load_known(connector.target, connector.address_map)
        owner = known.owner_of(mapped.address)
        out.append(
            "  not known"
            if owner is None
            else ("  known as a user" if owner == mapped.address else f"  known as an alias of {owner}")
        )
    except RetriableError as exc:
        out.append(f"  unavailable: {exc}")
        known = None

    out.append("Mail directory:")
    answer = None
    directory_ok = True
    try:
        looked_up = lookup_candidates(connector.directory, [evidence])[mapped.address]
        if isinstance(looked_up, RetriableError):
            raise looked_up
        answer = looked_up
        if answer is None:
            out.append("  no object has this address")
        else:
            out.append(f"  {answer.kind.value} {answer.dn}")
            out.append(f"  primary {answer.primary_address}; aliases: {', '.join(answer.aliases) or 'none'}")
            out.append(f"  display name {answer.display_name!r}; enabled: {answer.enabled}")
    except RetriableError as exc:
        directory_ok = False
        out.append(f"  unavailable: {exc}")

    out.append("Decision if a run happened now:")
    if known is None or not directory_ok:
        out.append("  deferred: a directory is unavailable")
    else:
        decision = assess(mapped.address, rule, evidence, known, now)
        if decision is None and rule is not None:
            decision = resolve(
                mapped.address, rule, evidence, answer, known, connector.address_map, connector.org_rules
            )
        if decision is not None:
            out.append(f"  {decision.outcome.value}: {decision.reason.value}: {decision.detail}")
            if decision.outcome is Outcome.CREATE_USER and guard_verdicts:
                out.append(f"  but the guards say: {guard_verdicts[0]}")
            elif decision.outcome is Outcome.CREATE_USER and connector.settings.safety.mode is Mode.APPROVE:
                out.append("  but review mode holds it: awaiting_approval (connector approve)")
    if candidate is not None:
        out.append("Last recorded decision:")
        out.append(
            f"  {candidate.state} ({candidate.reason}) in run {candidate.run_id} at "
            f"{candidate.decided_at.isoformat()}: {candidate.detail}"
        )
    return "\n".join(out) + "\n"
