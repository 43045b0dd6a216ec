"""Pure shaping of a stored report (its JSON form) for pages and mails: grouping, counting, examples."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from connector.domain.report import LIFECYCLE_CHANGES

EXAMPLES_PER_REASON = 10


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """Skipped candidates sharing one reason: how many, and a few of them."""

    reason: str
    count: int
    examples: list[dict[str, Any]]


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
    """Skipped candidates grouped by reason, the largest group first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in report.get("skipped", []):
        groups[entry["reason"]].append(entry)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [ReasonGroup(reason, len(entries), entries[:examples]) for reason, entries in ordered]


def pending(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Skipped candidates that may still qualify (state ``pending``)."""
    return [e for e in report.get("skipped", []) if e.get("state") == "pending"]


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
