"""Pure shaping of a stored report (its JSON form) for pages and mails: grouping, counting, examples."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from connector.domain.report import LIFECYCLE_CHANGES, LISTED_PER_REASON, full_list_command
from connector.domain.report_model import (
    AliasAddedJson,
    BoundedList,
    ChangeJson,
    CreatedJson,
    DeferredJson,
    HeldJson,
    LifecycleJson,
    RunReportJson,
    SkippedJson,
)
from connector.domain.status import RunStatus
from connector.reporting.context import OrgUsers
from connector.reporting.reasons import reason_sentence

EXAMPLES_PER_REASON = 10


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """Skipped candidates sharing one reason: how many, a few of them, and where the rest are."""

    reason: str
    count: int
    examples: list[SkippedJson]
    more: str | None = None  # the command that shows them all, when ``examples`` are not all
    rest: list[SkippedJson] = field(default_factory=list)  # listed in the report after the examples

    @property
    def not_shown(self) -> int:
        """Not among the examples (the page has ``rest`` of them, collapsed)."""
        return self.count - len(self.examples)

    @property
    def not_listed(self) -> int:
        """Beyond what the stored report lists: only the decision records have them (``more``)."""
        return self.count - len(self.examples) - len(self.rest)


def omitted(report: RunReportJson, name: BoundedList, reason: str) -> int:
    """Entries of list ``name`` with ``reason`` that the stored report counts but does not list."""
    for entry in report.get("not_listed") or []:
        if entry["list"] == name and entry["reason"] == reason:
            return int(entry["total"]) - int(entry["listed"])
    return 0


def more_command(report: RunReportJson, name: BoundedList, reason: str) -> str | None:
    """Where a person sees every entry of list ``name`` with ``reason``.

    The decision records of the run (a dry run stores none: then its stored report,
    when it holds them all).
    """
    if not report.get("dry_run"):
        return full_list_command(int(report["run_id"]), reason)
    if omitted(report, name, reason):
        return None
    return f"connector report show {report['run_id']} --format json"


def not_listed(report: RunReportJson, name: BoundedList) -> list[ReasonGroup]:
    """Per reason, the entries of list ``name`` the stored report counts but does not list (examples empty)."""
    return [
        ReasonGroup(e["reason"], int(e["total"]) - int(e["listed"]), [], more_command(report, name, e["reason"]))
        for e in report.get("not_listed") or []
        if e["list"] == name
    ]


def _evidence_of(entry: Mapping[str, object]) -> Mapping[str, object]:
    evidence = entry.get("evidence")
    return evidence if isinstance(evidence, Mapping) else {}


def evidence_count(entry: CreatedJson | AliasAddedJson) -> int:
    """How many pieces of evidence a created user (or added alias) rests on."""
    evidence = _evidence_of(entry)
    if isinstance(messages := evidence.get("messages"), list):
        return len(messages)
    return 1 if evidence.get("smtp_reply") else 0


def evidence_text(entry: Mapping[str, object]) -> str:
    """One line about the evidence, as the text summary gives it (a created user, or a held creation's decision)."""
    evidence = _evidence_of(entry)
    if isinstance(messages := evidence.get("messages"), list):
        return f"{len(messages)} messages, qualified {evidence.get('qualified_at')}"
    return f"SMTP {evidence.get('smtp_reply') or '2xx'} at {evidence.get('accepted_at')}"


def created_by_org(report: RunReportJson) -> list[tuple[str, list[CreatedJson]]]:
    """Created users grouped by org, orgs and addresses sorted."""
    groups: dict[str, list[CreatedJson]] = defaultdict(list)
    for entry in report.get("created", []):
        groups[entry.get("org") or "?"].append(entry)
    return [(org, sorted(groups[org], key=lambda e: str(e["address"]))) for org in sorted(groups)]


def skipped_by_reason(report: RunReportJson, examples: int = EXAMPLES_PER_REASON) -> list[ReasonGroup]:
    """Skipped candidates grouped by reason, the largest group first.

    The counts are the run's (``counts.skipped_by_reason``): a stored report lists
    at most ``listed_per_reason`` of each reason. ``rest`` (shown collapsed) stops there
    too, also for a report stored before the lists were bounded, which may list them all.
    """
    shown = max(examples, int(report.get("listed_per_reason") or LISTED_PER_REASON))
    groups: dict[str, list[SkippedJson]] = defaultdict(list)
    for entry in report.get("skipped", []):
        groups[entry["reason"]].append(entry)
    counts = {r: len(entries) + omitted(report, "skipped", r) for r, entries in groups.items()}
    ordered = sorted(groups.items(), key=lambda item: (-counts[item[0]], item[0]))
    return [
        ReasonGroup(
            reason,
            counts[reason],
            entries[:examples],
            more_command(report, "skipped", reason) if counts[reason] > examples else None,
            entries[examples:shown],
        )
        for reason, entries in ordered
    ]


def pending(report: RunReportJson) -> list[SkippedJson]:
    """Skipped candidates listed in the report that may still qualify (state ``pending``)."""
    return [e for e in report.get("skipped", []) if e.get("state") == "pending"]


def pending_count(report: RunReportJson) -> int:
    """Skipped candidates of the run that may still qualify, listed or not (one reason, one state)."""
    listed = pending(report)
    reasons = {e["reason"] for e in listed}
    return len(listed) + sum(omitted(report, "skipped", reason) for reason in reasons)


def alerts(report: RunReportJson) -> list[str]:
    """What a person must see first: failures, errors, then warnings."""
    out: list[str] = []
    if report["status"] == RunStatus.FAILED:
        out.append("The run failed: see the errors below.")
    for error in report.get("errors", []):
        where = error.get("stage") or (f"source {error['source']}" if error.get("source") else "run")
        subject = f" {error['address']}" if error.get("address") else ""
        out.append(f"{where}{subject}: {error.get('error')}")
    out.extend(report.get("warnings", []))
    return out


def headline(report: RunReportJson) -> str:
    """One line: the figures of a run."""
    counts = report["counts"]
    return (
        f"created {counts['created']}, aliases added {counts['aliases_added']}, not created {counts['skipped']}, "
        f"deferred {counts['deferred']}, held {counts['held']}, errors {counts['errors']}"
    )


# The lifecycle lists a person reads, in this order: (key in the report's ``lifecycle``, title).
LifecycleList = Literal[
    "moved",
    "updated",
    "aliases_added",
    "aliases_removed",
    "suspended",
    "reactivated",
    "deleted",
    "repaired",
    "recreated",
    "held",
    "deferred",
    "failed",
    "not_in_plan",
]
LIFECYCLE_SECTIONS: tuple[tuple[LifecycleList, str], ...] = (
    ("moved", "Moved to another org"),
    ("updated", "Updated"),
    ("aliases_added", "Aliases added"),
    ("aliases_removed", "Aliases removed"),
    ("suspended", "Suspended"),
    ("reactivated", "Reactivated"),
    ("deleted", "Deleted"),
    ("repaired", "Repaired"),
    ("recreated", "Recreated"),
    ("held", "Held for a person, limit reached"),
    ("deferred", "Deferred, planned again next run"),
    ("failed", "Failed, refused by the target"),
    ("not_in_plan", "Not in the plan applied"),
)
NOT_MADE = frozenset({"held", "deferred", "failed"})  # their entries carry ``why``
LIFECYCLE_MADE = tuple(key for key, _ in LIFECYCLE_SECTIONS if key in LIFECYCLE_CHANGES)  # the changes made


@dataclass(frozen=True, slots=True)
class LifecycleSection:
    """One non-empty list of a run's ``lifecycle`` section."""

    key: LifecycleList
    title: str
    entries: list[ChangeJson]  # in the lists ``NOT_MADE``: ``ChangeNotMadeJson`` (with ``why``)

    @property
    def not_made(self) -> bool:
        """Held, deferred or failed: each entry says why."""
        return self.key in NOT_MADE

    @property
    def with_op(self) -> bool:
        """Lists mixing kinds of change, where each entry names its own."""
        return self.not_made or self.key == "not_in_plan"


def lifecycle(report: RunReportJson) -> LifecycleJson | None:
    """The run's lifecycle section; None for runs without one (schema 1, lifecycle off, unsupported target)."""
    section = report.get("lifecycle")
    return section if isinstance(section, dict) else None


def change_list(section: LifecycleJson, key: LifecycleList) -> Sequence[ChangeJson]:
    """One list of changes of a lifecycle section (empty when the stored section lacks it)."""
    return section.get(key) or []


def lifecycle_sections(report: RunReportJson) -> list[LifecycleSection]:
    """The non-empty change lists of the run, in reading order."""
    section = lifecycle(report)
    if section is None:
        return []
    lists = [(key, title, change_list(section, key)) for key, title in LIFECYCLE_SECTIONS]
    return [LifecycleSection(key, title, list(entries)) for key, title, entries in lists if entries]


def lifecycle_figures(report: RunReportJson) -> dict[str, int]:
    """Managed, unmanaged, unchanged users; changes made; held (0 each without a lifecycle section)."""
    section = lifecycle(report)
    if section is None:
        return {"managed": 0, "unmanaged": 0, "unchanged": 0, "changes": 0, "held": 0}
    return {
        "managed": int(section.get("managed") or 0),
        "unmanaged": int(section.get("unmanaged") or 0),
        "unchanged": int(section.get("unchanged") or 0),
        "changes": sum(len(change_list(section, key)) for key in LIFECYCLE_MADE),
        "held": len(section.get("held") or []),
    }


def why_not_made(entry: Mapping[str, object]) -> str:
    """Why a held, deferred or failed change was not made (``ChangeNotMadeJson.why``); "" for one made."""
    return str(entry.get("why") or "")


def change_text(entry: ChangeJson) -> str:
    """One change as a phrase: its kind, its detail, and why it was not made (when it was not)."""
    text = f"{entry.get('op', '?')}: {entry.get('detail', '')}"
    if why := why_not_made(entry):
        text += f" ({why})"
    return text


# --- per org, and the reasons a page shows -------------------------------------------------------------

OrgList = Literal["created", "aliases_added", "held", "deferred", "skipped"]
ORG_LISTS: tuple[OrgList, ...] = ("created", "aliases_added", "held", "deferred", "skipped")


@dataclass(frozen=True, slots=True)
class OrgTotals:
    """One org's row on a run's page: this run's entries per list, and its users now when known."""

    org: str  # "" for entries without an org (``*@domain`` rows of unmanaged domains)
    counts: dict[str, int]
    known: frozenset[str] = frozenset(ORG_LISTS)  # the lists the report counts per org
    users: OrgUsers | None = None

    def count(self, name: str) -> int | None:
        """Entries of list ``name``; None when the report does not say (stored before ``counts.by_org``)."""
        return self.counts.get(name, 0) if name in self.known else None


# A report stored before ``counts.by_org`` has an org on these lists only.
_ORG_IN_ENTRIES = frozenset(("created", "aliases_added", "held"))


def org_totals(report: RunReportJson, users: Mapping[str, OrgUsers] | None = None) -> list[OrgTotals]:
    """Per org: created, aliases added, held, deferred, not created in this run, and the users now.

    From ``counts.by_org`` (exact, listed or not). A report stored before it has an org only on
    created users, added aliases and held creations: those are counted, the rest left unknown.
    """
    by_org = report["counts"].get("by_org")
    known = frozenset(ORG_LISTS) if by_org is not None else _ORG_IN_ENTRIES
    tallies: dict[str, dict[str, int]] = defaultdict(dict)
    if by_org is not None:
        for org, counts in by_org.items():
            tallies[org].update({name: int(counts.get(name) or 0) for name in ORG_LISTS if name in counts})
    else:
        for name, entries in _org_entries(report):
            for entry in entries:
                tally = tallies[str(entry.get("org") or "")]
                tally[name] = tally.get(name, 0) + 1
    users = users or {}
    orgs = sorted(set(tallies) | set(users), key=lambda org: (org == "", org))
    return [OrgTotals(org, dict(tallies.get(org, {})), known, users.get(org)) for org in orgs]


def _org_entries(report: RunReportJson) -> list[tuple[str, Sequence[CreatedJson | AliasAddedJson | HeldJson]]]:
    """The lists whose entries name their org (``_ORG_IN_ENTRIES``), for reports stored before ``counts.by_org``."""
    return [
        ("created", report.get("created") or []),
        ("aliases_added", report.get("aliases_added") or []),
        ("held", report.get("held") or []),
    ]


def reasons_shown(report: RunReportJson) -> list[tuple[str, str]]:
    """(code, sentence) of every reason the page shows (not created, deferred, held), sorted by code."""
    listed: list[SkippedJson | DeferredJson | HeldJson] = [
        *(report.get("skipped") or []),
        *(report.get("deferred") or []),
        *(report.get("held") or []),
    ]
    codes = {str(e["reason"]) for e in listed if "reason" in e}
    counts = report["counts"]
    for by_reason in (counts.get("skipped_by_reason"), counts.get("deferred_by_reason"), counts.get("held_by_reason")):
        codes.update(str(code) for code in by_reason or {})
    return [(code, reason_sentence(code)) for code in sorted(codes)]
