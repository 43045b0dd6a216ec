"""The run report: what a cycle did and why. Stored as JSON (docs/report.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.domain.decisions import Decision, Outcome
from connector.domain.lifecycle import REPORT_SECTIONS

SCHEMA_VERSION = 2  # docs/report.schema.json; bump only for incompatible changes


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One stored run as history pages list it, without its full report."""

    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    dry_run: bool
    created: int = 0
    skipped: int = 0
    deferred: int = 0
    held: int = 0
    errors: int = 0
    warnings: int = 0
    lifecycle_changes: int = 0  # lifecycle changes made (every kind)
    lifecycle_held: int = 0  # destructive lifecycle changes held for a person


@dataclass
class RunReport:
    """Built up during one cycle; ``to_json`` gives the stored, documented form."""

    run_id: int
    started_at: datetime
    dry_run: bool
    directory: str = ""
    target: str = ""
    finished_at: datetime | None = None
    status: str = "running"
    sources: list[dict[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    aliases_added: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    guards: list[dict[str, Any]] = field(default_factory=list)  # catch-all status, attacks, limits (docs/safety.md)
    planned_changes: list[str] = field(default_factory=list)
    target_health: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None  # reconcile of managed users (jobs/reconcile.py: result_json)

    def add_lifecycle(self, section: dict[str, Any]) -> None:
        """The lifecycle section of this run (one per run)."""
        self.lifecycle = section

    def add_decision(self, decision: Decision, *, now: datetime) -> None:
        """File one applied decision under created / aliases_added / skipped / deferred."""
        if decision.outcome is Outcome.CREATE_USER:
            self.created.append(
                {
                    "address": decision.user_address,
                    "via": decision.address if decision.address != decision.user_address else None,
                    "org": decision.org,
                    "method": decision.method.value if decision.method else None,
                    "aliases": list(decision.aliases),
                    "display_name": decision.display_name,
                    "created_at": now.isoformat(),
                    "evidence": decision.evidence,
                    "detail": decision.detail,
                }
            )
        elif decision.outcome is Outcome.ADD_ALIAS:
            self.aliases_added.append(
                {
                    "address": decision.address,
                    "user": decision.user_address,
                    "org": decision.org,
                    "method": decision.method.value if decision.method else None,
                    "evidence": decision.evidence,
                }
            )
        elif decision.outcome is Outcome.HOLD:
            self.held.append(
                {
                    "address": decision.address,
                    "user": decision.user_address,
                    "org": decision.org,
                    "reason": decision.reason.value,
                    "detail": decision.detail,
                    "evidence": decision.evidence,
                }
            )
        elif decision.outcome is Outcome.DEFER:
            self.deferred.append(
                {"address": decision.address, "reason": decision.reason.value, "detail": decision.detail}
            )
        else:
            self.skipped.append(
                {
                    "address": decision.address,
                    "reason": decision.reason.value,
                    "state": decision.state.value,
                    "detail": decision.detail,
                }
            )

    def counts(self) -> dict[str, Any]:
        return {
            "lines_read": sum(s["lines_read"] for s in self.sources),
            "bad_lines": sum(s["bad_lines"] for s in self.sources),
            "events": sum(s["events"] for s in self.sources),
            "created": len(self.created),
            "aliases_added": len(self.aliases_added),
            "skipped": len(self.skipped),
            "deferred": len(self.deferred),
            "held": len(self.held),
            "errors": len(self.errors),
            "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in self.skipped).items())),
            "lifecycle": lifecycle_counts(self.lifecycle),
        }

    def to_json(self) -> dict[str, Any]:
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
        }


LIFECYCLE_CHANGES = tuple(REPORT_SECTIONS.values())  # the lists of changes made, one per change kind
LIFECYCLE_LISTS = (*LIFECYCLE_CHANGES, "held", "deferred", "failed")


def lifecycle_counts(section: dict[str, Any] | None) -> dict[str, int]:
    """Per change kind, how many a run made (or held, deferred, failed); empty without a lifecycle section."""
    if not section:
        return {}
    counts = {name: len(section.get(name) or []) for name in LIFECYCLE_LISTS}
    counts["managed"] = int(section.get("managed") or 0)
    counts["unmanaged"] = int(section.get("unmanaged") or 0)
    return counts
