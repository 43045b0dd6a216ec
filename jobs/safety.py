"""The safety stage of a cycle: catch-all status, exclusions, attack guard, limits, review.

``decide_and_sync`` (jobs/cycle.py) calls it in three places:
``SafetyStage.prepare`` before deciding, ``screen`` for every due candidate
before the usual rules, ``gate`` before a creation is applied, and ``finish``
once every decision is made. The rules are pure (connector/policy/catch_all,
guards, exclusions, limits); this module does the I/O around them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.config.safety import Mode
from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.report import RunReport
from connector.domain.safety import CatchAllFinding, CatchAllStatus
from connector.errors import RetriableError
from connector.policy import catch_all, guards
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.decide import assess
from connector.policy.exclusions import Exclusions
from connector.policy.known import KnownAddresses
from connector.policy.limits import CreationBudget
from connector.policy.plans import change_key, change_of
from connector.store import safety as store

log = logging.getLogger(__name__)


def catch_all_status(
    session: Session, connector: Connector, domain: str, now: datetime, *, force_probe: bool = False
) -> CatchAllFinding:
    """The domain's finding: a fresh cached accept-all, else this run's passive evidence plus the probe
    (whose answer is cached for its lifetime: the server is not asked every run)."""
    settings = connector.settings.safety.catch_all
    cached = store.load_catch_all(session, domain)
    if cached is not None and cached.fresh(now) and cached.status is CatchAllStatus.ACCEPT_ALL and not force_probe:
        return cached  # positive lifetime: an accept-all server stays suspect until it expires
    passive = catch_all.passive_finding(domain, catch_all.tally(store.domain_evidence(session, domain)), settings, now)
    probe_finding = None
    probe = connector.probe
    if probe is not None and probe.configured(domain):
        if cached is not None and cached.source == "probe" and cached.fresh(now) and not force_probe:
            probe_finding = cached
        else:
            try:
                probe_finding = catch_all.probe_finding(probe.probe(domain), settings, now)
            except RetriableError as exc:
                log.warning("catch-all probe of %s failed: %s", domain, exc)
                probe_finding = CatchAllFinding(
                    domain,
                    passive.status,
                    "probe",
                    f"probe failed: {exc}",
                    now,
                    now,  # expires at once: retried
                )
    finding = catch_all.combine(passive, probe_finding)
    store.save_catch_all(session, finding)
    return finding


@dataclass
class SafetyStage:
    """Per-run state of the guards."""

    session: Session
    connector: Connector
    report: RunReport
    now: datetime
    address_map: AddressMap
    effective: dict[str, catch_all.EffectiveRule]
    exclusions: Exclusions
    budget: CreationBudget
    plan: frozenset[str] | None = None
    attacked: dict[str, str] = field(default_factory=dict)  # address -> burst description
    deferred: dict[str, str] = field(default_factory=dict)  # address -> why (directory down during the guard)
    creations: dict[str, Decision] = field(default_factory=dict)  # held address -> the creation it came from
    limit_held: int = 0
    top_warnings: list[str] = field(default_factory=list)  # put before every other warning by ``finish``

    @classmethod
    def prepare(
        cls,
        session: Session,
        connector: Connector,
        report: RunReport,
        due: Sequence[AddressEvidence],
        known: KnownAddresses,
        *,
        now: datetime,
        plan: frozenset[str] | None = None,
    ) -> SafetyStage:
        settings = connector.settings
        safety = settings.safety
        rules = connector.address_map.rules
        # The event log serves explain; it keeps at least the longest window.
        keep = max([timedelta(days=safety.event_log_days), *(rule.window for rule in rules.values())])
        store.prune_event_log(session, now - keep - timedelta(days=1))
        effective: dict[str, catch_all.EffectiveRule] = {}
        top: list[str] = []  # catch-all findings that change what a domain does, shown first
        for domain, rule in rules.items():
            if rule.method in (Method.AUTOCREATE, Method.AUTO):
                finding = catch_all_status(session, connector, domain, now)
                probe_configured = connector.probe is not None and connector.probe.configured(domain)
                effective[domain] = catch_all.effective_rule(rule, finding, probe_configured)
                entry = {"guard": "catch_all", "domain": domain, "method": rule.method.value, **finding.to_json()}
                entry["effect"] = effective[domain].note or "Autocreate"
                report.guards.append(entry)
                if effective[domain].suspended or effective[domain].waiting or rule.method is Method.AUTO:
                    top.append(f"{domain}: {effective[domain].note} ({finding.detail})")
            else:
                effective[domain] = catch_all.EffectiveRule(rule)
        address_map = AddressMap({d: e.rule for d, e in effective.items()}, settings.domain_aliases)
        exclusions = Exclusions(safety.exclusions.local_parts, store.blocked_addresses(session))
        utc_now = now.astimezone(UTC)
        day_start = datetime.combine(utc_now.date(), time(), tzinfo=UTC)  # limits count per UTC day
        org_users: dict[str, int] = defaultdict(int)
        users_by_org: dict[str, int] = defaultdict(int)
        for user in known.users():
            if (user_rule := rules.get(user.rpartition("@")[2])) is not None:
                users_by_org[user_rule.org] += 1
        for domain, rule in rules.items():
            org_users[domain] = users_by_org[rule.org]
        budget = CreationBudget(safety.limits, store.created_since(session, day_start), org_users)
        stage = cls(session, connector, report, now, address_map, effective, exclusions, budget, plan)
        stage.top_warnings.extend(top)
        stage._guard_bursts(due)
        return stage

    def _guard_bursts(self, due: Sequence[AddressEvidence]) -> None:
        """Find bursts of never-seen addresses and ask the directory about their members."""
        settings = self.connector.settings.safety.attack_guard
        by_domain: dict[str, dict[str, datetime]] = defaultdict(dict)
        due_addresses = {evidence.address for evidence in due}
        for evidence in due:
            domain = evidence.address.rpartition("@")[2]
            if evidence.first_seen_at is not None and domain in self.effective:
                by_domain[domain][evidence.address] = evidence.first_seen_at
        for domain, first_seen in sorted(by_domain.items()):
            # Addresses decided in earlier runs but first seen close by belong to the same burst.
            since = min(first_seen.values()) - settings.window
            first_seen = {**store.first_seen_since(self.session, domain, since), **first_seen}
            for burst in guards.find_bursts(domain, first_seen, settings.min_addresses, settings.window):
                if not any(a in due_addresses for a in burst.addresses):
                    continue  # wholly decided before
                try:
                    answers = self.connector.directory.lookup(list(burst.addresses))
                except RetriableError as exc:
                    self.deferred.update({a: str(exc) for a in burst.addresses})
                    self.report.errors.append({"stage": "attack_guard", "error": str(exc), "domain": domain})
                    continue
                answers_all = {a: answers.get(a) for a in burst.addresses}
                share = guards.unknown_share(burst, answers_all)
                attack = share >= settings.unknown_share
                description = (
                    f"{len(burst.addresses)} never-seen addresses of {domain} first seen between "
                    f"{burst.first_at.isoformat()} and {burst.last_at.isoformat()}, "
                    f"{share:.0%} unknown to the directory"
                )
                self.report.guards.append(
                    {
                        "guard": "dictionary_attack",
                        "domain": domain,
                        "attack": attack,
                        "addresses": list(burst.addresses),
                        "first_at": burst.first_at.isoformat(),
                        "last_at": burst.last_at.isoformat(),
                        "unknown_share": round(share, 3),
                    }
                )
                if attack:
                    self.top_warnings.insert(0, f"dictionary attack: {description}; nothing from it is created")
                    self.attacked.update({a: description for a in burst.addresses})

    def rule(self, address: str) -> DomainRule | None:
        return self.address_map.rule_for(address.rpartition("@")[2])

    def screen(self, evidence: AddressEvidence, known: KnownAddresses) -> Decision | None:
        """A guard's decision that replaces the usual rules, or None."""
        address = evidence.address
        rule = self.rule(address)
        if rule is None or rule.method is Method.OFF:
            return None
        if self.exclusions.blocked(address):
            return _skip(address, rule, Reason.BLOCKED, "blocked by a person (connector block)")
        pattern = self.exclusions.matching_pattern(address)
        if pattern is not None:
            return _skip(address, rule, Reason.EXCLUDED_ADDRESS, f"local part matches excluded pattern {pattern!r}")
        if address in self.deferred:
            return Decision(address, Outcome.DEFER, Reason.DIRECTORY_UNAVAILABLE, self.deferred[address], org=rule.org)
        if address in self.attacked and known.owner_of(address) is None:
            return _skip(address, rule, Reason.DICTIONARY_ATTACK, self.attacked[address])
        effective = self.effective.get(rule.domain)
        paused = effective is not None and (effective.suspended or effective.waiting)
        if paused and effective is not None and assess(address, rule, evidence, known, self.now) is None:
            # Decided again when the finding expires, even without new evidence.
            reason = Reason.CATCH_ALL_SUSPENDED if effective.suspended else Reason.CATCH_ALL_UNKNOWN
            finding = store.load_catch_all(self.session, rule.domain)
            recheck = finding.expires_at if finding is not None else None
            detail = f"{rule.domain} {effective.note}"
            return Decision(address, Outcome.SKIP, reason, detail, org=rule.org, method=rule.method, recheck_at=recheck)
        return None

    def gate(self, decision: Decision) -> Decision:
        """A creation passes, or is held: not in the plan, review mode, or a limit reached."""
        if decision.outcome not in (Outcome.CREATE_USER, Outcome.ADD_ALIAS):
            return decision
        if self.plan is not None:
            change = change_of(decision)
            if change is None or change_key(change) not in self.plan:
                return self._hold(decision, Reason.NOT_IN_PLAN, "not in the plan being applied")
        if decision.outcome is not Outcome.CREATE_USER:
            return decision  # an alias of an existing user costs no seat
        if self.connector.settings.safety.mode is Mode.APPROVE:
            return self._hold(decision, Reason.AWAITING_APPROVAL, "review mode: waiting for connector approve")
        refusal = self.budget.take(decision.address.rpartition("@")[2])
        if refusal is not None:
            self.limit_held += 1
            return self._hold(decision, Reason.LIMIT_REACHED, refusal)
        return decision

    def _hold(self, decision: Decision, reason: Reason, detail: str) -> Decision:
        held = Decision(
            decision.address,
            Outcome.HOLD,
            reason,
            f"{detail}; decided: {decision.detail}",
            org=decision.org,
            method=decision.method,
            user_address=decision.user_address,
            aliases=decision.aliases,
            evidence=decision.evidence,
        )
        self.creations[decision.address] = decision
        return held

    def finish(self, decisions: Sequence[tuple[Decision, AddressEvidence]]) -> None:
        """Stage held creations, drop stale ones, and say at the top of the report what was held."""
        staged_before = store.staged_addresses(self.session)
        for decision, _ in decisions:
            domain = decision.address.rpartition("@")[2]
            if decision.outcome is Outcome.HOLD and decision.address in self.creations:
                creation = self.creations[decision.address]
                store.stage(
                    self.session, decision, creation=creation, domain=domain, run_id=self.report.run_id, now=self.now
                )
            elif decision.address in staged_before:  # decided otherwise now: no longer pending
                store.unstage(self.session, decision.address)
        if self.limit_held:
            message = (
                f"creation limit reached: {self.limit_held} creation(s) held, nothing created beyond the limit; "
                f"review them with 'connector pending', then 'connector approve --run {self.report.run_id}' "
                "or raise safety.limits"
            )
            self.top_warnings.insert(0, message)
            self.report.errors.append({"stage": "limits", "error": message})
            self.report.guards.append({"guard": "limits", "held": self.limit_held})
        self.report.warnings[0:0] = self.top_warnings


def _skip(address: str, rule: DomainRule, reason: Reason, detail: str) -> Decision:
    return Decision(address, Outcome.SKIP, reason, detail, org=rule.org, method=rule.method)
