"""Catch-all detection from the logs, and what a finding means for a domain's rule (pure).

Passive evidence (from stored per-address evidence):
- at least ``min_recipients`` distinct recipients and not one refused at RCPT TO
  with a 5xx: the server takes anything;
- ``async_bounces`` addresses that were accepted with a 250 and bounced later:
  the server accepts first and finds out afterwards.
A 5xx refusal at RCPT TO (and no asynchronous bounce) is evidence of a strict server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.domain.decisions import Method
from connector.domain.evidence import AddressEvidence
from connector.domain.safety import CatchAllFinding, CatchAllStatus, ProbeResult
from connector.policy.addresses import DomainRule

EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class CatchAllThresholds:
    """The numbers the catch-all rules use: plain values, so policy does not depend on the config models.

    Built from ``safety.catch_all`` by the composition root (``connector/config/safety.py: CatchAllSettings``).
    """

    min_recipients: int  # passive: this many distinct recipients and not one refused at RCPT TO: accept-all
    async_bounces: int  # passive: this many bounces after a 250: accept-all
    accept_all_ttl: timedelta  # how long an accept-all finding is trusted
    strict_ttl: timedelta  # how long a strict finding is trusted


@dataclass
class DomainTally:
    """Per-domain counts the passive rule needs."""

    recipients: int = 0
    refused_at_rcpt: int = 0
    async_bounces: int = 0
    bounce_examples: list[str] = dataclasses.field(default_factory=list)


def bounced_after_accept(evidence: AddressEvidence) -> bool:
    """Accepted with a 2xx, then failed permanently later, not at RCPT TO."""
    return (
        evidence.accepted_at is not None
        and evidence.invalidated_at is not None
        and evidence.invalidated_at > evidence.accepted_at
        and not evidence.refused_at_rcpt
    )


def tally(evidences: Iterable[AddressEvidence]) -> DomainTally:
    result = DomainTally()
    for evidence in evidences:
        result.recipients += 1
        if evidence.rejected_at is not None:
            result.refused_at_rcpt += 1
        if bounced_after_accept(evidence):
            result.async_bounces += 1
            if len(result.bounce_examples) < EXAMPLES:
                result.bounce_examples.append(evidence.address)
    return result


def passive_finding(domain: str, counts: DomainTally, settings: CatchAllThresholds, now: datetime) -> CatchAllFinding:
    """What the logs say about ``domain``'s downstream server."""
    if counts.async_bounces >= settings.async_bounces:
        status = CatchAllStatus.ACCEPT_ALL
        detail = (
            f"{counts.async_bounces} address(es) accepted with 250 and bounced later "
            f"(e.g. {', '.join(counts.bounce_examples)})"
        )
    elif counts.refused_at_rcpt:
        status = CatchAllStatus.STRICT
        detail = f"{counts.refused_at_rcpt} of {counts.recipients} recipient(s) refused at RCPT TO with 5xx"
    elif counts.recipients >= settings.min_recipients:
        status = CatchAllStatus.ACCEPT_ALL
        detail = f"{counts.recipients} distinct recipients and not one refused at RCPT TO"
    else:
        status = CatchAllStatus.UNKNOWN
        detail = (
            f"{counts.recipients} distinct recipient(s), none refused yet "
            f"(accept-all is assumed from {settings.min_recipients})"
        )
    ttl = {
        CatchAllStatus.ACCEPT_ALL: settings.accept_all_ttl,
        CatchAllStatus.STRICT: settings.strict_ttl,
        CatchAllStatus.UNKNOWN: timedelta(0),  # nothing learnt: look again next run
    }[status]
    return CatchAllFinding(domain, status, "passive", detail, now, now + ttl)


def probe_finding(result: ProbeResult, settings: CatchAllThresholds, now: datetime) -> CatchAllFinding:
    """The finding from one active probe."""
    status = result.status
    verb = {
        CatchAllStatus.ACCEPT_ALL: "accepted",
        CatchAllStatus.STRICT: "refused",
        CatchAllStatus.UNKNOWN: "answered",
    }[status]
    detail = f"{result.server} {verb} RCPT TO:<{result.probe_address}> with {result.reply_code} {result.reply}"
    ttl = settings.accept_all_ttl if status is CatchAllStatus.ACCEPT_ALL else settings.strict_ttl
    return CatchAllFinding(result.domain, status, "probe", detail, now, now + ttl)


def combine(passive: CatchAllFinding, probe: CatchAllFinding | None) -> CatchAllFinding:
    """Accept-all from either source wins; otherwise a probe's answer beats the logs' silence."""
    if passive.status is CatchAllStatus.ACCEPT_ALL or probe is None:
        return passive
    if probe.status is CatchAllStatus.UNKNOWN and passive.status is CatchAllStatus.STRICT:
        return passive
    return probe


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    """The rule a run applies to a domain after catch-all detection."""

    rule: DomainRule
    suspended: bool = False  # autocreate on an accept-all server: nothing is created
    waiting: bool = False  # autocreate, the probe could not run: nothing is created yet
    note: str = ""


def effective_rule(rule: DomainRule, finding: CatchAllFinding | None, probe_configured: bool) -> EffectiveRule:
    """Autocreate only where a 250 means something; ``auto`` falls back to SmartCreate."""
    status = finding.status if finding is not None else CatchAllStatus.UNKNOWN
    if rule.method is Method.AUTO:
        if status is CatchAllStatus.STRICT:
            return EffectiveRule(dataclasses.replace(rule, method=Method.AUTOCREATE), note="strict: Autocreate")
        why = "accepts every address" if status is CatchAllStatus.ACCEPT_ALL else "not known to be strict"
        return EffectiveRule(
            dataclasses.replace(rule, method=Method.SMARTCREATE),
            note=f"{why}: SmartCreate with the directory check",
        )
    if rule.method is Method.AUTOCREATE:
        if status is CatchAllStatus.ACCEPT_ALL:
            return EffectiveRule(rule, suspended=True, note="accepts every address: Autocreate suspended")
        if status is CatchAllStatus.UNKNOWN and probe_configured:
            return EffectiveRule(rule, waiting=True, note="probe failed: Autocreate waits")
    return EffectiveRule(rule)
