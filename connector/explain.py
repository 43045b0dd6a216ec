"""``connector explain ADDRESS``: why an address was, or was not, created."""

from __future__ import annotations

from datetime import datetime

from connector.app import Connector
from connector.domain.evidence import AddressEvidence
from connector.errors import RetriableError
from connector.policy.addresses import InvalidAddress
from connector.policy.decide import assess, resolve
from connector.store import repository
from jobs.cycle import load_known


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

    with connector.sessions() as session:
        stored = repository.load_evidence(session, [mapped.address]).get(mapped.address)
        candidate = repository.get_candidate(session, mapped.address)
    out.append("Evidence from the logs:")
    evidence = stored or AddressEvidence(address=mapped.address)
    out.extend(_evidence_lines(evidence) if stored else ["  none stored (no delivery seen, or domain not managed)"])

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
        answer = connector.directory.lookup([mapped.address]).get(mapped.address)
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
        decision = assess(mapped.address, mapped.rule, evidence, known, now)
        if decision is None and mapped.rule is not None:
            decision = resolve(
                mapped.address, mapped.rule, evidence, answer, known, connector.address_map, connector.org_rules
            )
        if decision is not None:
            out.append(f"  {decision.outcome.value}: {decision.reason.value}: {decision.detail}")
    if candidate is not None:
        out.append("Last recorded decision:")
        out.append(
            f"  {candidate.state} ({candidate.reason}) in run {candidate.run_id} at "
            f"{candidate.decided_at.isoformat()}: {candidate.detail}"
        )
    return "\n".join(out) + "\n"
