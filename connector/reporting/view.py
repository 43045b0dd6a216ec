"""Pure shaping of a stored report (its JSON form) for pages and mails: grouping, counting, examples."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.domain.report import LIFECYCLE_CHANGES, LISTED_PER_REASON, full_list_command
from connector.reporting.context import OrgUsers
from connector.reporting.reasons import reason_sentence

EXAMPLES_PER_REASON = 10


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """Skipped candidates sharing one reason: how many, a few of them, and where the rest are."""

    reason: str
    count: int
    examples: list[dict[str, Any]]
    more: str | None = None  # the command that shows them all, when ``examples`` are not all
    rest: list[dict[str, Any]] = field(default_factory=list)  # listed in the report after the examples

    @property
    def not_shown(self) -> int:
        """Not among the examples (the page has ``rest`` of them, collapsed)."""
        return self.count - len(self.examples)

    @property
    def not_listed(self) -> int:
        """Beyond what the stored report lists: only the decision records have them (``more``)."""
        return self.count - len(self.examples) - len(self.rest)


def omitted(report: dict[str, Any], name: str, reason: str) -> int:
    """Entries of list ``name`` with ``reason`` that the stored report counts but does not list."""
    for entry in report.get("not_listed") or []:
        if entry["list"] == name and entry["reason"] == reason:
            return int(entry["total"]) - int(entry["listed"])
    return 0


def more_command(report: dict[str, Any], name: str, reason: str) -> str | None:
    """Where a person sees every entry of list ``name`` with ``reason``.

    The decision records of the run (a dry run stores none: then its stored report,
    when it holds them all).
    """
    if not report.get("dry_run"):
        return full_list_command(int(report["run_id"]), reason)
    if omitted(report, name, reason):
        return None
    return f"connector report show {report['run_id']} --format json"


def not_listed(report: dict[str, Any], name: str) -> list[ReasonGroup]:
    """Per reason, the entries of list ``name`` the stored report counts but does not list (examples empty)."""
    return [
        ReasonGroup(e["reason"], int(e["total"]) - int(e["listed"]), [], more_command(report, name, e["reason"]))
        for e in report.get("not_listed") or []
        if e["list"] == name
    ]


def evidence_count(entry: dict[str, Any]) -> int:
    """How many pieces of evidence a created user (or added alias) rests on."""
    evidence = entry.get("evidence") or {}
    if "messages" in evidence:
        return len(evidence["messages"])
    return 1 if evidence.get("smtp_reply") else 0


def evidence_text(entry: dict[str, Any]) -> str:
    """One line about the evidence, as the text summary gives it."""
    evidence = entry.get("evidence") or {}
    if "messages" in evidence:
        return f"{len(evidence['messages'])} messages, qualified {evidence.get('qualified_at')}"
    return f"SMTP {evidence.get('smtp_reply') or '2xx'} at {evidence.get('accepted_at')}"


def created_by_org(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Created users grouped by org, orgs and addresses sorted."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in report.get("created", []):
        groups[entry.get("org") or "?"].append(entry)
    return [(org, sorted(groups[org], key=lambda e: str(e["address"]))) for org in sorted(groups)]


def skipped_by_reason(report: dict[str, Any], examples: int = EXAMPLES_PER_REASON) -> list[ReasonGroup]:
    """Skipped candidates grouped by reason, the largest group first.

    The counts are the run's (``counts.skipped_by_reason``): a stored report lists
    at most ``listed_per_reason`` of each reason. ``rest`` (shown collapsed) stops there
    too, also for a report stored before the lists were bounded, which may list them all.
    """
    shown = max(examples, int(report.get("listed_per_reason") or LISTED_PER_REASON))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
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


def pending(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Skipped candidates listed in the report that may still qualify (state ``pending``)."""
    return [e for e in report.get("skipped", []) if e.get("state") == "pending"]


def pending_count(report: dict[str, Any]) -> int:
    """Skipped candidates of the run that may still qualify, listed or not (one reason, one state)."""
    listed = pending(report)
    reasons = {e["reason"] for e in listed}
    return len(listed) + sum(omitted(report, "skipped", reason) for reason in reasons)


def alerts(report: dict[str, Any]) -> list[str]:
    """What a person must see first: failures, errors, then warnings."""
    out: list[str] = []
    if report.get("status") == "failed":
        out.append("The run failed: see the errors below.")
    for error in report.get("errors", []):
        where = error.get("stage") or (f"source {error['source']}" if error.get("source") else "run")
        subject = f" {error['address']}" if error.get("address") else ""
        out.append(f"{where}{subject}: {error.get('error')}")
    out.extend(report.get("warnings", []))
    return out


def headline(report: dict[str, Any]) -> str:
    """One line: the figures of a run."""
    counts = report["counts"]
    return (
        f"created {counts['created']}, aliases added {counts['aliases_added']}, not created {counts['skipped']}, "
        f"deferred {counts['deferred']}, held {counts['held']}, errors {counts['errors']}"
    )


# The lifecycle lists a person reads, in this order: (key in the report's ``lifecycle``, title).
LIFECYCLE_SECTIONS = (
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


@dataclass(frozen=True, slots=True)
class LifecycleSection:
    """One non-empty list of a run's ``lifecycle`` section."""

    key: str
    title: str
    entries: list[dict[str, Any]]

    @property
    def not_made(self) -> bool:
        """Held, deferred or failed: each entry says why."""
        return self.key in NOT_MADE

    @property
    def with_op(self) -> bool:
        """Lists mixing kinds of change, where each entry names its own."""
        return self.not_made or self.key == "not_in_plan"


def lifecycle(report: dict[str, Any]) -> dict[str, Any] | None:
    """The run's lifecycle section; None for runs without one (schema 1, lifecycle off, unsupported target)."""
    section = report.get("lifecycle")
    return section if isinstance(section, dict) else None


def lifecycle_sections(report: dict[str, Any]) -> list[LifecycleSection]:
    """The non-empty change lists of the run, in reading order."""
    section = lifecycle(report) or {}
    return [LifecycleSection(key, title, list(section[key])) for key, title in LIFECYCLE_SECTIONS if section.get(key)]


def lifecycle_figures(report: dict[str, Any]) -> dict[str, int]:
    """Managed, unmanaged, unchanged users; changes made; held (0 each without a lifecycle section)."""
    section = lifecycle(report) or {}
    return {
        "managed": int(section.get("managed") or 0),
        "unmanaged": int(section.get("unmanaged") or 0),
        "unchanged": int(section.get("unchanged") or 0),
        "changes": sum(len(section.get(key) or []) for key in LIFECYCLE_CHANGES),
        "held": len(section.get("held") or []),
    }


def change_text(entry: dict[str, Any]) -> str:
    """One change as a phrase: its kind, its detail, and why it was not made (when it was not)."""
    text = f"{entry.get('op', '?')}: {entry.get('detail', '')}"
    if entry.get("why"):
        text += f" ({entry['why']})"
    return text


# --- per org, and the reasons a page shows -------------------------------------------------------------

ORG_LISTS = ("created", "aliases_added", "held", "deferred", "skipped")


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


def org_totals(report: dict[str, Any], users: Mapping[str, OrgUsers] | None = None) -> list[OrgTotals]:
    """Per org: created, aliases added, held, deferred, not created in this run, and the users now.

    From ``counts.by_org`` (exact, listed or not). A report stored before it has an org only on
    created users, added aliases and held creations: those are counted, the rest left unknown.
    """
    by_org = (report.get("counts") or {}).get("by_org")
    known = frozenset(ORG_LISTS) if isinstance(by_org, dict) else _ORG_IN_ENTRIES
    tallies: dict[str, dict[str, int]] = defaultdict(dict)
    if isinstance(by_org, dict):
        for org, counts in by_org.items():
            tallies[org].update({name: int(n) for name, n in counts.items()})
    else:
        for name in _ORG_IN_ENTRIES:
            for entry in report.get(name) or []:
                tally = tallies[str(entry.get("org") or "")]
                tally[name] = tally.get(name, 0) + 1
    users = users or {}
    orgs = sorted(set(tallies) | set(users), key=lambda org: (org == "", org))
    return [OrgTotals(org, dict(tallies.get(org, {})), known, users.get(org)) for org in orgs]


def reasons_shown(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(code, sentence) of every reason the page shows (not created, deferred, held), sorted by code."""
    codes = {
        str(e["reason"]) for name in ("skipped", "deferred", "held") for e in report.get(name) or [] if "reason" in e
    }
    counts = report.get("counts") or {}
    for key in ("skipped_by_reason", "deferred_by_reason", "held_by_reason"):
        codes.update(str(code) for code in counts.get(key) or {})
    return [(code, reason_sentence(code)) for code in sorted(codes)]
