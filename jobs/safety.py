"""The safety stage of a cycle: catch-all status, exclusions, attack guard, limits, review.

``decide_and_sync`` (jobs/cycle.py) calls it at each step:
``SafetyStage.prepare`` before deciding, ``screen`` for every due candidate
before the usual rules, ``gate`` before a creation is applied,
``recheck_blocks`` before the target is written to, and ``finish`` once every
decision is made. The rules are pure (connector/policy/catch_all,
guards, exclusions, limits); this module does the I/O around them.

No transaction is open while the network is asked: ``prepare`` reads, ends
its transaction, asks the SMTP probe and the directory, then records the
findings in one short transaction with compare-and-set (``catch_all.version``),
merging with whatever another writer stored meanwhile. ``recheck_blocks``
reads the blocked addresses again before the target is written to.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from itertools import repeat

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.config.safety import Mode
from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.directory import DirectoryAnswer
from connector.domain.evidence import AddressEvidence
from connector.domain.report import RunReport
from connector.domain.report_model import CatchAllGuardJson
from connector.domain.safety import Burst, CatchAllFinding, CatchAllStatus
from connector.domain.times import to_the_second
from connector.errors import InvariantError, RetriableError
from connector.policy import catch_all, guards
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.decide import assess
from connector.policy.exclusions import Exclusions
from connector.policy.known import KnownAddresses
from connector.policy.limits import CreationBudget
from connector.policy.plans import change_key, change_of
from connector.store import repository
from connector.store import safety as store
from connector.store.repository import DueQuery
from jobs.burst_look_back import bursts_around
from jobs.housekeeping import event_log_cutoff

log = logging.getLogger(__name__)


CAS_ATTEMPTS = 20  # compare-and-set retries of one catch-all row; each re-reads, so this only ends a livelock


@dataclass(frozen=True)
class CatchAllRead:
    """What the state database said about a domain before the probe was asked.

    ``passive`` is None when a fresh cached accept-all makes the logs irrelevant.
    """

    domain: str
    cached: CatchAllFinding | None
    version: int | None
    passive: CatchAllFinding | None

    def cached_accept_all(self, now: datetime) -> CatchAllFinding | None:
        """A fresh cached accept-all: the server stays suspect until it expires."""
        cached = self.cached
        fresh = cached is not None and cached.fresh(now) and cached.status is CatchAllStatus.ACCEPT_ALL
        return cached if fresh else None

    def cached_probe(self, now: datetime) -> CatchAllFinding | None:
        """A fresh cached probe answer (the server is not asked again within its lifetime)."""
        cached = self.cached
        return cached if cached is not None and cached.source == "probe" and cached.fresh(now) else None


def read_catch_all(
    session: Session,
    connector: Connector,
    domain: str,
    now: datetime,
    *,
    passive: CatchAllFinding | None = None,
    tally: catch_all.DomainTally | None = None,
) -> CatchAllRead:
    """Read the cached finding (with its row version) and judge the passive evidence; no network.

    ``tally``: the domain's counts when the caller has them (``read_catch_alls``); else they are counted.
    """
    cached, version = store.load_catch_all_versioned(session, domain)
    read = CatchAllRead(domain, cached, version, passive)
    if passive is None and read.cached_accept_all(now) is None:
        thresholds = connector.catch_all_thresholds
        counts = tally if tally is not None else repository.catch_all_tallies(session, [domain])[domain]
        read = replace(read, passive=catch_all.passive_finding(domain, counts, thresholds, now))
    return read


def read_catch_alls(
    session: Session, connector: Connector, domains: Sequence[str], now: datetime
) -> dict[str, CatchAllRead]:
    """``read_catch_all`` of every domain, with the passive counts of all of them from one query of the kept
    tallies (store/evidence_tallies.py: a cycle's cost does not grow with the evidence rows kept), for the
    domains without a fresh cached accept-all (the logs are not judged for those)."""
    reads = {domain: CatchAllRead(domain, *store.load_catch_all_versioned(session, domain), None) for domain in domains}
    judged = [domain for domain, read in reads.items() if read.cached_accept_all(now) is None]
    thresholds = connector.catch_all_thresholds
    tallies = repository.catch_all_tallies(session, judged, examples_from=thresholds.async_bounces)
    for domain in judged:
        passive = catch_all.passive_finding(domain, tallies[domain], thresholds, now)
        reads[domain] = replace(reads[domain], passive=passive)
    return reads


def needs_probe(read: CatchAllRead, connector: Connector, now: datetime) -> bool:
    probe = connector.probe
    configured = probe is not None and probe.configured(read.domain)
    return configured and read.cached_accept_all(now) is None and read.cached_probe(now) is None


def run_probe(connector: Connector, read: CatchAllRead, now: datetime) -> CatchAllFinding:
    """Ask the domain's server (network: called with no transaction open); a failure expires at once."""
    probe, passive = connector.probe, _passive_of(read)
    if probe is None:  # ``needs_probe`` said yes, so one is configured
        raise InvariantError(f"no catch-all probe configured to ask about {read.domain}")
    try:
        return catch_all.probe_finding(probe.probe(read.domain), connector.catch_all_thresholds, now)
    except RetriableError as exc:
        log.warning("catch-all probe of %s failed: %s", read.domain, exc)
        return CatchAllFinding(read.domain, passive.status, "probe", f"probe failed: {exc}", now, now)


def _passive_of(read: CatchAllRead) -> CatchAllFinding:
    """The passive finding ``read_catch_all`` judged: it is there whenever no cached accept-all made it moot."""
    if read.passive is None:
        raise InvariantError(f"catch-all of {read.domain}: no passive finding was judged before it was needed")
    return read.passive


def merge_finding(read: CatchAllRead, probed: CatchAllFinding | None, now: datetime) -> CatchAllFinding:
    """The domain's finding from what was read and what this run's probe said (pure).

    The same rule on the first try and after a conflict, when ``read`` holds what
    another writer stored meanwhile: a newer probe answer than ours wins.
    """
    if (accept_all := read.cached_accept_all(now)) is not None:
        return accept_all
    passive = _passive_of(read)
    cached_probe = read.cached_probe(now)
    if cached_probe is not None and (probed is None or cached_probe.checked_at > probed.checked_at):
        probed = cached_probe
    return catch_all.combine(passive, probed)


def record_findings(
    session: Session,
    connector: Connector,
    reads: dict[str, CatchAllRead],
    probed: dict[str, CatchAllFinding],
    now: datetime,
) -> dict[str, CatchAllFinding]:
    """Store each domain's finding with compare-and-set; on a conflict read the row again and merge."""
    findings: dict[str, CatchAllFinding] = {}
    for domain, read in reads.items():
        for _attempt in range(CAS_ATTEMPTS):
            finding = merge_finding(read, probed.get(domain), now)
            if finding == read.cached or store.save_catch_all_if_unchanged(session, finding, read.version):
                break
            log.info("catch-all finding of %s changed meanwhile: read again and merge", domain)
            read = read_catch_all(session, connector, domain, now, passive=read.passive)
        else:
            raise RetriableError(f"catch-all finding of {domain} keeps changing under concurrent writers")
        findings[domain] = finding
    return findings


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
    findings: dict[str, CatchAllFinding] = field(default_factory=dict)  # domain -> this run's catch-all finding
    blocked: set[str] = field(default_factory=set)  # blocked addresses as read at the start
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
        due: DueQuery,
        known: KnownAddresses,
        *,
        now: datetime,
        plan: frozenset[str] | None = None,
        commit: bool = True,
    ) -> SafetyStage:
        """Read what the guards need, ask the network with no transaction open, then record in a short one.

        With ``commit`` the read transaction is ended before the SMTP probe and the
        directory are asked, and the findings are written afterwards with
        compare-and-set (another writer may have changed them meanwhile). Without it
        (dry runs, ``explain``) nothing is written at all.
        """
        rules = connector.address_map.rules
        read = _read_guard_state(session, connector, due, now)
        if commit:
            session.commit()  # no transaction open while the network is asked
        probed = {d: run_probe(connector, r, now) for d, r in read.catch_alls.items() if needs_probe(r, connector, now)}
        answers = _ask_about_bursts(connector, read.bursts)
        findings = _record_or_merge(session, connector, read.catch_alls, probed, now, commit=commit)
        effective, top = _effective_rules(connector, report, findings)  # what the findings mean (pure)
        address_map = AddressMap({d: e.rule for d, e in effective.items()}, connector.settings.domain_aliases)
        exclusions = Exclusions(connector.settings.safety.exclusions.local_parts, read.blocked)
        budget = CreationBudget(connector.creation_limits, read.created, _org_users(rules, known))
        stage = cls(session, connector, report, now, address_map, effective, exclusions, budget, plan)
        stage.findings, stage.blocked = findings, read.blocked
        stage.top_warnings.extend(top)
        for burst, answer in zip(read.bursts, answers, strict=True):
            stage._judge_burst(burst, answer)
        return stage

    def _judge_burst(self, burst: Burst, answers: Mapping[str, DirectoryAnswer] | RetriableError) -> None:
        """A burst of never-seen addresses is an attack when enough of them are unknown to the directory."""
        settings = self.connector.settings.safety.attack_guard
        domain = burst.domain
        if isinstance(answers, RetriableError):
            self.deferred.update(zip(burst.addresses, repeat(str(answers))))  # one shared text, no copy of the lot
            self.report.errors.append({"stage": "attack_guard", "error": str(answers), "domain": domain})
            return
        share = guards.unknown_share_of_asked(burst, answers)  # ``answers`` holds the known ones only
        attack = share >= settings.unknown_share
        description = (
            f"{len(burst.addresses)} never-seen addresses of {domain} first seen between "
            f"{to_the_second(burst.first_at)} and {to_the_second(burst.last_at)}, "
            f"{share:.0%} unknown to the directory"
        )
        self.report.guards.append(
            {
                "guard": "dictionary_attack",
                "domain": domain,
                "attack": attack,
                # The first ones: the rest are in the decision records (dictionary_attack), any number.
                "addresses": list(burst.addresses[: self.report.listed_per_reason]),
                "address_count": len(burst.addresses),
                "first_at": burst.first_at.isoformat(),
                "last_at": burst.last_at.isoformat(),
                "unknown_share": round(share, 3),
            }
        )
        if attack:
            self.top_warnings.insert(0, f"dictionary attack: {description}; nothing from it is created")
            self.attacked.update(zip(burst.addresses, repeat(description)))

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
            finding = self.findings.get(rule.domain)
            recheck = finding.expires_at if finding is not None else None
            detail = f"{rule.domain} {effective.note}"
            return Decision(address, Outcome.SKIP, reason, detail, org=rule.org, method=rule.method, recheck_at=recheck)
        return None

    def recheck_blocks(
        self, planned: Sequence[tuple[Decision, AddressEvidence]]
    ) -> list[tuple[Decision, AddressEvidence]]:
        """Read the blocked addresses again before anything is written to the target.

        The directory was asked with no transaction open, so a person may have run
        ``connector block`` meanwhile: a creation, alias or held creation of an
        address blocked since the start of the run becomes a ``blocked`` skip.
        """
        newly = store.blocked_addresses(self.session) - self.blocked
        if not newly:
            return list(planned)
        self.blocked |= newly
        result = []
        for decision, evidence in planned:
            changes = decision.outcome in (Outcome.CREATE_USER, Outcome.ADD_ALIAS, Outcome.HOLD)
            if decision.address in newly and changes:
                self.creations.pop(decision.address, None)
                decision = decision.instead(
                    Outcome.SKIP, Reason.BLOCKED, "blocked by a person (connector block) during this run"
                )
            result.append((decision, evidence))
        return result

    def gate(self, decision: Decision) -> Decision:
        """A creation passes, or is held: not in the plan, review mode, or a limit reached."""
        if decision.outcome not in (Outcome.CREATE_USER, Outcome.ADD_ALIAS):
            return decision
        if (blocked := self._blocked_person(decision)) is not None:
            return decision.instead(
                Outcome.SKIP, Reason.BLOCKED, f"its person {blocked} is blocked (connector block or deny)"
            )
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

    def _blocked_person(self, decision: Decision) -> str | None:
        """A blocked address of the person the directory resolved this one to, if any.

        ``deny`` and ``block`` block a person's user and aliases as they were then; an alias
        the directory gives that person later must not bring them back to the queue.
        """
        person = {decision.user_address, *decision.aliases} - {None, decision.address}
        return next((a for a in sorted(a for a in person if a) if a in self.blocked), None)

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


@dataclass(frozen=True)
class _GuardState:
    """What the guards read from the state database before the network is asked."""

    catch_alls: dict[str, CatchAllRead]  # autocreate and auto domains
    blocked: set[str]
    created: dict[str, int]  # users created per domain this UTC day
    bursts: list[Burst]


def _read_guard_state(session: Session, connector: Connector, due: DueQuery, now: datetime) -> _GuardState:
    rules = connector.address_map.rules
    checked = [d for d, rule in rules.items() if rule.method in (Method.AUTOCREATE, Method.AUTO)]
    reads = read_catch_alls(session, connector, checked, now)
    blocked = store.blocked_addresses(session)
    utc_now = now.astimezone(UTC)
    day_start = datetime.combine(utc_now.date(), time(), tzinfo=UTC)  # limits count per UTC day
    created = store.created_since(session, day_start)
    return _GuardState(reads, blocked, created, _bursts_to_check(session, connector, due))


def _ask_about_bursts(
    connector: Connector, bursts: Sequence[Burst]
) -> list[Mapping[str, DirectoryAnswer] | RetriableError]:
    """The directory's answers for each burst's addresses, or the error that kept it from answering."""
    answers: list[Mapping[str, DirectoryAnswer] | RetriableError] = []
    for burst in bursts:
        try:
            answers.append(_known_in_directory(connector, burst))
        except RetriableError as exc:
            answers.append(exc)
    return answers


def _record_or_merge(
    session: Session,
    connector: Connector,
    reads: dict[str, CatchAllRead],
    probed: dict[str, CatchAllFinding],
    now: datetime,
    *,
    commit: bool,
) -> dict[str, CatchAllFinding]:
    """Each domain's finding: recorded in one short transaction, or (nothing written) merged only."""
    if not commit:
        return {d: merge_finding(read, probed.get(d), now) for d, read in reads.items()}
    # The event log serves explain and re-reads; it keeps what evidence keeps (jobs/housekeeping.py).
    store.prune_event_log(session, event_log_cutoff(connector.settings, now))
    findings = record_findings(session, connector, reads, probed, now)
    session.commit()
    return findings


def _effective_rules(
    connector: Connector, report: RunReport, findings: Mapping[str, CatchAllFinding]
) -> tuple[dict[str, catch_all.EffectiveRule], list[str]]:
    """Each domain's rule after its catch-all finding (in the report's guards), and the findings that
    change what a domain does (shown first among the warnings)."""
    effective: dict[str, catch_all.EffectiveRule] = {}
    top: list[str] = []
    for domain, rule in connector.address_map.rules.items():
        if domain in findings:
            finding = findings[domain]
            probe_configured = connector.probe is not None and connector.probe.configured(domain)
            effective[domain] = catch_all.effective_rule(rule, finding, probe_configured)
            report.guards.append(_catch_all_guard(rule, finding, effective[domain]))
            if effective[domain].suspended or effective[domain].waiting or rule.method is Method.AUTO:
                top.append(f"{domain}: {effective[domain].note} ({finding.detail})")
        else:
            effective[domain] = catch_all.EffectiveRule(rule)
    return effective, top


def _catch_all_guard(
    rule: DomainRule, finding: CatchAllFinding, effective: catch_all.EffectiveRule
) -> CatchAllGuardJson:
    """A domain's catch-all finding in the report's guards, with what it does to the domain's rule."""
    return {
        "guard": "catch_all",
        "domain": finding.domain,
        "method": rule.method.value,
        "status": finding.status.value,
        "source": finding.source,
        "detail": finding.detail,
        "checked_at": finding.checked_at.isoformat(),
        "expires_at": finding.expires_at.isoformat(),
        "effect": effective.note or "Autocreate",
    }


def _org_users(rules: Mapping[str, DomainRule], known: KnownAddresses) -> dict[str, int]:
    """Per managed domain: the users its org has in the target (the share limit counts them)."""
    org_users: dict[str, int] = defaultdict(int)
    users_by_org: dict[str, int] = defaultdict(int)
    for user in known.users():
        if (user_rule := rules.get(user.rpartition("@")[2])) is not None:
            users_by_org[user_rule.org] += 1
    for domain, rule in rules.items():
        org_users[domain] = users_by_org[rule.org]
    return org_users


def _skip(address: str, rule: DomainRule, reason: Reason, detail: str) -> Decision:
    return Decision(address, Outcome.SKIP, reason, detail, org=rule.org, method=rule.method)


def _bursts_to_check(session: Session, connector: Connector, due: DueQuery) -> list[Burst]:
    """Bursts of never-seen addresses with a member due now (reads only; the directory is asked later).

    Per domain, the look back from one window before its earliest due address, read around the due
    addresses only (``jobs/burst_look_back.py``), holding ``(first seen, address, due)`` of what it reads:
    500,000 new addresses in a day cost tens of MB here, not gigabytes.
    """
    settings = connector.settings.safety.attack_guard
    window, least = settings.window, settings.min_addresses
    bursts = []
    spells_by_domain = repository.due_first_seen_spells(session, due, 4 * window)
    for domain in sorted(connector.address_map.rules):
        spells = spells_by_domain.get(domain)
        if spells:
            # Addresses decided in earlier runs but first seen close by belong to the same burst.
            bursts += bursts_around(session, due, domain, spells, min_addresses=least, window=window)
    return bursts


LOOKUP_CHUNK = 1000  # addresses of a burst asked of the directory at once


def _known_in_directory(connector: Connector, burst: Burst) -> dict[str, DirectoryAnswer]:
    """The directory's answers for the burst's addresses it knows, asked a chunk at a time.

    The unknown ones are left out (``answers.get(a)`` is None for them, as for an
    unknown address): an attack's 500,000 answers are never held at once.
    """
    known: dict[str, DirectoryAnswer] = {}
    for start in range(0, len(burst.addresses), LOOKUP_CHUNK):
        answers = connector.directory.lookup(list(burst.addresses[start : start + LOOKUP_CHUNK]))
        known.update((address, answer) for address, answer in answers.items() if answer is not None)
    return known
