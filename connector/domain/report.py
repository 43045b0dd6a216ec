"""The run report: what a cycle did and why. Stored as JSON (docs/report.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, cast

from connector.domain.decisions import Decision, Outcome
from connector.domain.lifecycle import REPORT_SECTIONS
from connector.domain.report_model import (
    AliasAddedJson,
    BoundedList,
    CountsJson,
    CreatedJson,
    DeferredJson,
    ErrorJson,
    EvidenceJson,
    GuardJson,
    HeldJson,
    LifecycleCountsJson,
    LifecycleJson,
    NotListedJson,
    OrgCountsJson,
    RunReportJson,
    SkippedJson,
    SourceJson,
    TargetHealthJson,
)
from connector.domain.status import RunStatus
from connector.errors import FatalError

SCHEMA_VERSION = 2  # docs/report.schema.json; bump only for incompatible changes
READABLE_SCHEMA_VERSIONS = (1, SCHEMA_VERSION)  # version 1: stored before the lifecycle (no ``lifecycle``)
LISTED_PER_REASON = 100  # default of ``reports.listed_per_reason``
# The lists any sender can make long (an attack: one entry per never-seen address): the stored report
# keeps the first ``listed_per_reason`` entries of each reason and counts the rest; the decision
# records (table ``candidates``) have them all (``connector report show RUN --reason R --all``).
# ``created`` and ``aliases_added`` stay complete: each entry needs a real user of the directory.
BOUNDED_LISTS: tuple[BoundedList, ...] = ("skipped", "deferred", "held")


def full_list_command(run_id: int, reason: str) -> str:
    """The command that lists every decision record of ``reason`` in run ``run_id``."""
    return f"connector report show {run_id} --reason {reason} --all"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One stored run as history pages list it, without its full report."""

    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    dry_run: bool
    created: int = 0
    skipped: int = 0
    deferred: int = 0
    held: int = 0
    errors: int = 0
    warnings: int = 0
    lifecycle_changes: int = 0  # lifecycle changes made (every kind)
    lifecycle_held: int = 0  # destructive lifecycle changes held for a person


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One stored decision (a ``candidates`` row), as ``connector report show RUN --all`` lists it."""

    address: str
    state: str
    reason: str
    detail: str
    org: str | None
    method: str | None
    user_address: str | None
    decided_at: datetime
    run_id: int | None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "address",
        "state",
        "reason",
        "detail",
        "org",
        "method",
        "user_address",
        "decided_at",
        "run_id",
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "reason": self.reason,
            "detail": self.detail,
            "org": self.org,
            "method": self.method,
            "user_address": self.user_address,
            "decided_at": self.decided_at.isoformat(),
            "run_id": self.run_id,
        }


# The list of the report each outcome is filed under.
_LIST_OF = {
    Outcome.CREATE_USER: "created",
    Outcome.ADD_ALIAS: "aliases_added",
    Outcome.HOLD: "held",
    Outcome.DEFER: "deferred",
    Outcome.SKIP: "skipped",
    Outcome.WAIT: "skipped",
}


@dataclass
class RunReport:
    """Built up during one cycle; ``to_json`` gives the stored, documented form (``RunReportJson``)."""

    run_id: int
    started_at: datetime
    dry_run: bool
    directory: str = ""
    target: str = ""
    finished_at: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    # Built in their typed form by the stages that find them (jobs/ingest.py through jobs/cycle.py,
    # jobs/safety.py, jobs/reconcile.py, the target's health).
    sources: list[SourceJson] = field(default_factory=list)
    errors: list[ErrorJson] = field(default_factory=list)
    guards: list[GuardJson] = field(default_factory=list)  # catch-all status, attacks, limits (docs/safety.md)
    target_health: TargetHealthJson | None = None
    # Built here (``add_decision``, ``add_skipped``).
    created: list[CreatedJson] = field(default_factory=list)
    aliases_added: list[AliasAddedJson] = field(default_factory=list)
    skipped: list[SkippedJson] = field(default_factory=list)
    deferred: list[DeferredJson] = field(default_factory=list)
    held: list[HeldJson] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    planned_changes: list[str] = field(default_factory=list)
    lifecycle: LifecycleJson | None = None  # reconcile of managed users (jobs/reconcile.py: result_json)
    listed_per_reason: int = LISTED_PER_REASON
    # list (BOUNDED_LISTS) -> reason -> entries kept in the list / counted but not kept
    listed: dict[str, Counter[str]] = field(default_factory=dict, repr=False)
    not_listed: dict[str, Counter[str]] = field(default_factory=dict, repr=False)
    # org ("" when none) -> list name -> entries of this run, listed or not (``counts.by_org``)
    org_counts: dict[str, Counter[str]] = field(default_factory=dict, repr=False)

    def _tally(self, org: str | None, name: str) -> None:
        self.org_counts.setdefault(org or "", Counter())[name] += 1

    def _room_for(self, name: str, reason: str) -> bool:
        """Count one entry of list ``name``; whether it is kept (the first ``listed_per_reason`` per reason)."""
        listed = self.listed.setdefault(name, Counter())
        if listed[reason] < self.listed_per_reason:
            listed[reason] += 1
            return True
        self.not_listed.setdefault(name, Counter())[reason] += 1
        return False

    def add_skipped(self, entry: SkippedJson) -> None:
        """A ``skipped`` entry that is not a decision (``*@domain`` of an unmanaged domain), bounded too."""
        self._tally(None, "skipped")  # such an entry has no org (docs/report.schema.json: ``skipped``)
        if self._room_for("skipped", str(entry["reason"])):
            self.skipped.append(entry)

    def total(self, name: str) -> int:
        """Entries of list ``name`` in this run, listed or not."""
        return len(getattr(self, name)) + sum(self.not_listed.get(name, Counter()).values())

    def by_reason(self, name: BoundedList) -> dict[str, int]:
        """Reason -> entries of list ``name`` in this run (listed or not), sorted by reason."""
        counts = Counter(str(entry["reason"]) for entry in self._bounded(name))
        counts.update(self.not_listed.get(name, Counter()))
        return dict(sorted(counts.items()))

    def _bounded(self, name: BoundedList) -> list[SkippedJson] | list[DeferredJson] | list[HeldJson]:
        return self.skipped if name == "skipped" else self.deferred if name == "deferred" else self.held

    def add_lifecycle(self, section: LifecycleJson) -> None:
        """The lifecycle section of this run (one per run), as ``jobs/reconcile.py: result_json`` builds it."""
        self.lifecycle = section

    def add_decision(self, decision: Decision, *, now: datetime) -> None:
        """File one applied decision under created / aliases_added / held / deferred / skipped."""
        self._tally(decision.org, _LIST_OF[decision.outcome])
        if decision.outcome is Outcome.CREATE_USER:
            self.created.append(_created(decision, now))
        elif decision.outcome is Outcome.ADD_ALIAS:
            self.aliases_added.append(_alias_added(decision))
        elif decision.outcome is Outcome.HOLD:
            if self._room_for("held", decision.reason.value):
                self.held.append(_held(decision))
        elif decision.outcome is Outcome.DEFER:
            if self._room_for("deferred", decision.reason.value):
                self.deferred.append(
                    {"address": decision.address, "reason": decision.reason.value, "detail": decision.detail}
                )
        elif self._room_for("skipped", decision.reason.value):
            self.skipped.append(
                {
                    "address": decision.address,
                    "reason": decision.reason.value,
                    "state": decision.state.value,
                    "detail": decision.detail,
                }
            )

    def counts(self) -> CountsJson:
        by_org = {org: cast(OrgCountsJson, dict(sorted(c.items()))) for org, c in sorted(self.org_counts.items())}
        return {
            "lines_read": sum(s["lines_read"] for s in self.sources),
            "bad_lines": sum(s["bad_lines"] for s in self.sources),
            "events": sum(s["events"] for s in self.sources),
            "created": len(self.created),
            "aliases_added": len(self.aliases_added),
            "skipped": self.total("skipped"),
            "deferred": self.total("deferred"),
            "held": self.total("held"),
            "errors": len(self.errors),
            "skipped_by_reason": self.by_reason("skipped"),
            "deferred_by_reason": self.by_reason("deferred"),
            "held_by_reason": self.by_reason("held"),
            "by_org": by_org,
            "lifecycle": lifecycle_counts(self.lifecycle),
        }

    def not_listed_json(self) -> list[NotListedJson]:
        """Per list and reason with entries left out of the report: how many, and where they all are."""
        out: list[NotListedJson] = []
        for name in BOUNDED_LISTS:
            for reason, omitted in sorted(self.not_listed.get(name, Counter()).items()):
                listed = sum(1 for entry in self._bounded(name) if entry["reason"] == reason)
                out.append(
                    {
                        "list": name,
                        "reason": reason,
                        "listed": listed,
                        "total": listed + omitted,
                        # A dry run stores no decision records: nothing to page through.
                        "more": None if self.dry_run else full_list_command(self.run_id, reason),
                    }
                )
        return out

    def to_json(self) -> RunReportJson:
        """The stored form (docs/report.schema.json); ``stored_report`` reads it back."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "dry_run": self.dry_run,
            "status": self.status,
            "directory": self.directory,
            "target": self.target,
            "simulated": self.dry_run,
            "warnings": list(self.warnings),
            "guards": list(self.guards),
            "counts": self.counts(),
            "sources": self.sources,
            "created": self.created,
            "aliases_added": self.aliases_added,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "held": self.held,
            "errors": self.errors,
            "planned_changes": self.planned_changes,
            "target_health": self.target_health,
            "lifecycle": self.lifecycle,
            "listed_per_reason": self.listed_per_reason,
            "not_listed": self.not_listed_json(),
        }


def _evidence(decision: Decision) -> EvidenceJson:
    # policy/evidence.py gives one of the two documented shapes (smartcreate messages, autocreate accept).
    return cast(EvidenceJson, decision.evidence)


def _user_of(decision: Decision) -> str:
    # Policy always names the user of a creation or an alias; without one the user is the address
    # itself (the rule of jobs/review.py), so the entry keeps the schema's string.
    return decision.user_address or decision.address


def _created(decision: Decision, now: datetime) -> CreatedJson:
    return {
        "address": _user_of(decision),
        "via": decision.address if decision.address != decision.user_address else None,
        "org": decision.org or "",
        "method": decision.method.value if decision.method else None,
        "aliases": list(decision.aliases),
        "display_name": decision.display_name,
        "created_at": now.isoformat(),
        "evidence": _evidence(decision),
        "detail": decision.detail,
    }


def _alias_added(decision: Decision) -> AliasAddedJson:
    return {
        "address": decision.address,
        "user": _user_of(decision),
        "org": decision.org,
        "method": decision.method.value if decision.method else None,
        "evidence": _evidence(decision),
    }


def _held(decision: Decision) -> HeldJson:
    return {
        "address": decision.address,
        "user": decision.user_address,
        "org": decision.org,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "evidence": _evidence(decision),
    }


class UnreadableReport(FatalError):
    """A stored report this version cannot read (not a report, or a schema version it does not know)."""


def stored_report(data: object) -> RunReportJson:
    """A stored report (``runs.report``) in its typed form: the one way stored reports are read back.

    Accepts every readable schema version as it is stored: a version 1 report has no ``lifecycle``
    and no ``counts.lifecycle`` (the model marks both ``NotRequired``), and no key is added, so
    ``report show --format json`` prints what was stored. Only ``status`` becomes a ``RunStatus``
    (a ``StrEnum``: it prints and compares as the same string).
    """
    if not isinstance(data, dict) or data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        version = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
        raise UnreadableReport(f"not a run report of a known schema version: {version!r}")
    try:
        status = RunStatus(str(data.get("status")))
    except ValueError as exc:
        raise UnreadableReport(f"run report with an unknown status: {data.get('status')!r}") from exc
    return cast(RunReportJson, {**data, "status": status})


LIFECYCLE_CHANGES = tuple(REPORT_SECTIONS.values())  # the lists of changes made, one per change kind
LIFECYCLE_LISTS = (*LIFECYCLE_CHANGES, "held", "deferred", "failed")


def lifecycle_counts(section: Mapping[str, Any] | None) -> LifecycleCountsJson:
    """Per change kind, how many a run made (or held, deferred, failed); empty without a lifecycle section."""
    if not section:
        return {}
    counts = {name: len(section.get(name) or []) for name in LIFECYCLE_LISTS}
    counts["managed"] = int(section.get("managed") or 0)
    counts["unmanaged"] = int(section.get("unmanaged") or 0)
    return cast(LifecycleCountsJson, counts)
