"""The health rule on recent decide runs (pure): a row of runs that ended with errors is unhealthy.

The age rule (``monitoring.health_max_age_seconds``) alone misses an outage that
every run survives: with the directory down, each cycle defers its candidates,
ends ``partial`` and counts as a success. This rule looks at the latest runs
themselves: when the latest ``limit`` decide runs all ended ``partial`` or
``failed`` with an error, something needs a person.

A run whose only errors are deliberate holds (a creation limit, a lifecycle
limit: work waiting for ``connector approve``) did its work, as did a run only
cut short by a shutdown (a warning, not an error): such a run ends the row.

A log source whose patterns have matched no file for longer than its
``missing_after_minutes`` is unhealthy at once (``missing_files_problem``): a typo
in a glob reads nothing, and every run would otherwise look fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.domain.status import RunStatus

HELD_STAGES = frozenset({"limits", "lifecycle_limits"})
"""Report error stages that mean "held for a person", not "something is broken"."""
FAILING_STATUSES = (RunStatus.PARTIAL, RunStatus.FAILED)
DETAIL_CHARS = 300


@dataclass(frozen=True)
class FinishedRun:
    """A decide run that ended on its own: its id, status and report errors."""

    run_id: int
    status: RunStatus
    errors: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    def faults(self) -> list[Mapping[str, Any]]:
        """The errors that say something is broken (not a deliberate hold)."""
        return [e for e in self.errors if isinstance(e, Mapping) and e.get("stage") not in HELD_STAGES]

    @property
    def failing(self) -> bool:
        return self.status in FAILING_STATUSES and bool(self.faults())


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """``text`` on one line, control characters escaped, at most ``limit`` characters."""
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _describe(error: Mapping[str, Any]) -> str:
    stage, message = error.get("stage"), str(error.get("error", ""))
    return f"{stage}: {message}" if stage else message


def failing_runs_problem(latest: Sequence[FinishedRun], limit: int) -> str | None:
    """Why the decide role is unhealthy, or None. ``latest``: the latest finished decide runs, newest first."""
    if limit <= 0 or len(latest) < limit:
        return None
    row = latest[:limit]
    if not all(run.failing for run in row):
        return None
    statuses = sorted({run.status for run in row}, key=FAILING_STATUSES.index)
    runs = f"the last {limit} decide runs" if limit > 1 else "the last decide run"
    ids = f"runs {row[-1].run_id}-{row[0].run_id}" if limit > 1 else f"run {row[0].run_id}"
    cause = _describe(row[0].faults()[0])
    return one_line(f"{runs} ended {' or '.join(statuses)} with errors ({ids}): {cause}")


def missing_files_problem(patterns: Sequence[str], since: datetime, now: datetime, limit: timedelta) -> str | None:
    """Why a source whose patterns have matched no file since ``since`` is in error, or None while
    that is shorter than ``limit`` (``sources[].missing_after_minutes``: e.g. a log not written yet)."""
    if now - since < limit:
        return None
    minutes = int((now - since).total_seconds() // 60)
    return one_line(
        f"no file matches {', '.join(patterns)} since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
        f"({minutes} min, allowed {limit.total_seconds() / 60:g}): is `paths` right?"
    )
