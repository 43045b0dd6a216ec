"""From evidence to a decision, in two pure steps.

``assess`` settles what needs no directory (unmanaged domain, method off, already
known, not qualified yet). Only the rest is looked up in the directory, in one
batch; ``resolve`` then turns the directory's answer into the final decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.directory import DirectoryAnswer, DirectoryEntry
from connector.domain.evidence import AddressEvidence
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.known import KnownAddresses
from connector.policy.org_rules import OrgRule, org_for
from connector.policy.reconcile import canonical_or, directory_aliases


def _decision(address: str, rule: DomainRule, outcome: Outcome, reason: Reason, detail: str, **extra: Any) -> Decision:
    return Decision(address, outcome, reason, detail, org=rule.org, method=rule.method, **extra)


def evidence_summary(evidence: AddressEvidence, method: Method) -> dict[str, Any]:
    """The evidence a report shows for a created user."""
    if method is Method.AUTOCREATE:
        return {
            "smtp_reply": evidence.accepted_reply,
            "accepted_at": evidence.accepted_at.isoformat() if evidence.accepted_at else None,
            "message_id": evidence.accepted_message_key,
        }
    return {
        "messages": [d.to_json() for d in evidence.qualifying],
        "qualified_at": evidence.qualified_at.isoformat() if evidence.qualified_at else None,
    }


def _known(address: str, rule: DomainRule, known: KnownAddresses) -> Decision | None:
    owner = known.owner_of(address)
    if owner == address:
        origin = known.origin_of(address)
        detail = f"already a user ({origin})" if origin else "already a user"
        return _decision(address, rule, Outcome.SKIP, Reason.ALREADY_KNOWN, detail)
    if owner is not None:
        detail = f"already an alias of {owner}"
        return _decision(address, rule, Outcome.SKIP, Reason.ALIAS_OF, detail, user_address=owner)
    return None


def _refused(address: str, rule: DomainRule, evidence: AddressEvidence) -> Decision:
    detail = f"recipient refused at RCPT TO: {evidence.rejected_reply}"
    return _decision(address, rule, Outcome.SKIP, Reason.REJECTED_BY_SERVER, detail)


def _not_yet(address: str, rule: DomainRule, ready_at: datetime) -> Decision:
    """Evidence stamped later than the clock (skew, or a replayed log): wait for the clock."""
    reason = Reason.NO_SMTP_ACCEPT if rule.method is Method.AUTOCREATE else Reason.BELOW_THRESHOLD
    detail = f"evidence is stamped {ready_at.isoformat()}, later than now; decided again then"
    return _decision(address, rule, Outcome.WAIT, reason, detail, recheck_at=ready_at)


def assess(
    address: str,
    rule: DomainRule | None,
    evidence: AddressEvidence,
    known: KnownAddresses,
    now: datetime,
) -> Decision | None:
    """A final decision that needs no directory, or ``None`` if the directory must answer."""
    if rule is None:
        return Decision(address, Outcome.SKIP, Reason.DOMAIN_NOT_MANAGED, "domain is not managed")
    if rule.method is Method.OFF:
        return _decision(address, rule, Outcome.SKIP, Reason.METHOD_OFF, f"user creation is off for {rule.domain}")
    if (decision := _known(address, rule, known)) is not None:
        return decision
    if rule.method in (Method.SMARTCREATE, Method.AUTO):  # unresolved auto: the safe rule
        if evidence.qualified_at is None:
            if not evidence.recent and evidence.refused_at_rcpt:
                return _refused(address, rule, evidence)
            detail = _below_threshold_detail(evidence, rule)
            return _decision(address, rule, Outcome.WAIT, Reason.BELOW_THRESHOLD, detail)
        if evidence.qualified_at > now:
            return _not_yet(address, rule, evidence.qualified_at)
        return None
    if not evidence.smtp_accepted:
        if evidence.refused_at_rcpt:
            return _refused(address, rule, evidence)
        detail = "no 2xx answer to RCPT TO seen yet"
        if evidence.invalidated_at is not None:
            detail = f"bounced after acceptance at {evidence.invalidated_at.isoformat()}: {evidence.invalidated_reply}"
        return _decision(address, rule, Outcome.WAIT, Reason.NO_SMTP_ACCEPT, detail)
    if evidence.accepted_at is not None and evidence.accepted_at > now:
        return _not_yet(address, rule, evidence.accepted_at)
    return None


def _below_threshold_detail(evidence: AddressEvidence, rule: DomainRule) -> str:
    recent = evidence.recent
    in_window = 0
    if recent:
        newest = recent[-1].at
        in_window = sum(1 for d in recent if newest - d.at < rule.window)
    days = rule.window.total_seconds() / 86400
    detail = f"{in_window} of {rule.threshold} valid messages within {days:g} days"
    if len(recent) > in_window:
        detail += f", {len(recent) - in_window} earlier one(s) too old to count"
    if recent:
        detail += f" (latest {recent[-1].at.isoformat()})"
    if evidence.invalidated_at is not None:
        detail += (
            f"; earlier evidence voided by a bounce at {evidence.invalidated_at.isoformat()}: "
            f"{evidence.invalidated_reply}"
        )
    return detail


def resolve(
    address: str,
    rule: DomainRule,
    evidence: AddressEvidence,
    answer: DirectoryAnswer,
    known: KnownAddresses,
    address_map: AddressMap,
    org_rules: Sequence[OrgRule] = (),
) -> Decision:
    """The decision for a qualified address, given the directory's answer.

    The user joins the org of its primary address's domain (when managed), unless
    one of the ordered ``org_rules`` matches its directory entry.
    """
    if answer is None or not answer.is_user or not answer.enabled:
        return _not_a_user(address, rule, answer)
    primary = canonical_or(address_map, answer.primary_address, address)
    owner = known.owner_of(primary)
    evidence_json = evidence_summary(evidence, rule.method)
    if owner is not None:
        # The person exists in the target; this address is one of their aliases.
        detail = f"alias of existing user {owner} ({answer.dn})"
        return _decision(
            address, rule, Outcome.ADD_ALIAS, Reason.QUALIFIED, detail, user_address=owner, evidence=evidence_json
        )
    # The user joins the org of its primary address's domain; that domain must be managed and on.
    primary_rule = address_map.rule_for(primary.rpartition("@")[2])
    if primary_rule is None or primary_rule.method is Method.OFF:
        return _primary_not_created(address, rule, primary, primary_rule, answer)
    return _creation(address, rule, answer, primary, primary_rule, address_map, org_rules, evidence_json)


def _not_a_user(address: str, rule: DomainRule, answer: DirectoryAnswer) -> Decision:
    """Skipped: the directory has no object with the address, or not an enabled user."""
    if answer is None:
        detail = "the mail directory has no object with this address"
        return _decision(address, rule, Outcome.SKIP, Reason.NOT_IN_DIRECTORY, detail)
    if not answer.is_user:
        detail = f"directory object is a {answer.kind.value} ({answer.dn})"
        return _decision(address, rule, Outcome.SKIP, Reason.NOT_A_USER, detail)
    return _decision(address, rule, Outcome.SKIP, Reason.DISABLED_IN_DIRECTORY, f"account is disabled ({answer.dn})")


def _primary_not_created(
    address: str, rule: DomainRule, primary: str, primary_rule: DomainRule | None, entry: DirectoryEntry
) -> Decision:
    """Skipped: the user's primary address is in a domain not managed, or where creation is off."""
    if primary_rule is None:
        detail = f"its primary address {primary} is in a domain that is not managed ({entry.dn})"
        return _decision(address, rule, Outcome.SKIP, Reason.DOMAIN_NOT_MANAGED, detail)
    detail = f"its primary address {primary} is in {primary_rule.domain}, where user creation is off"
    return _decision(address, rule, Outcome.SKIP, Reason.METHOD_OFF, detail)


def _creation(
    address: str,
    rule: DomainRule,
    entry: DirectoryEntry,
    primary: str,
    primary_rule: DomainRule,
    address_map: AddressMap,
    org_rules: Sequence[OrgRule],
    evidence_json: dict[str, Any],
) -> Decision:
    """Create the user of ``primary`` in the org of its domain, or of the first org rule that matches."""
    org, rule_index = org_for(entry, primary_rule.domain, primary_rule.org, org_rules)
    aliases = directory_aliases(entry, address_map, primary, address)
    detail = "qualified" if primary == address else f"qualified as {address}, an alias of {primary}"
    if rule_index is not None:
        detail += f", org from org rule {rule_index + 1}"
    return Decision(
        address,
        Outcome.CREATE_USER,
        Reason.QUALIFIED,
        f"{detail} ({entry.dn})",
        org=org,
        method=rule.method,
        user_address=primary,
        aliases=aliases,
        display_name=entry.display_name,
        external_id=entry.external_id,
        evidence=evidence_json,
        directory_address=entry.primary_address if entry.primary_address != primary else None,
    )
