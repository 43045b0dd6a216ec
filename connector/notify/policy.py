"""Which conditions are new, changed or due for a notification (pure: time comes in as ``now``).

The rule (docs/operations.md#notifications):

- Each kind of condition is notified at most once per run: one ``Notice`` per kind,
  listing every subject due (two attacked domains: one message).
- A condition is notified when it appears. While it lasts (seen again in the next
  run of the same scope) it is notified again only after ``repeat_after``. Once a
  run no longer sees it, it is forgotten: when it comes back it is new again.
- The directory is notified only once it failed ``directory_runs`` runs in a row.
- A notice that could not be delivered is not marked as sent: the next run that
  still sees the condition tries again.
- A catch-all status is never notified; a change of it is a warning in the log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from connector.domain.notices import NOTIFIABLE, Condition, EventKind, Notice, Seen

ACCEPT_ALL = "accept_all"


@dataclass(frozen=True)
class Scope:
    """What a job looked at: the kinds it can see, and (for log sources) whose.

    A stored condition in scope that the job did not see again has ended.
    Catch-all statuses never end by absence (a run that stopped early checked none).
    """

    kinds: frozenset[EventKind]
    instance: str = ""

    def covers(self, seen: Seen) -> bool:
        if seen.kind is EventKind.CATCH_ALL or seen.kind not in self.kinds:
            return False
        return seen.kind is not EventKind.SOURCE_ERROR or seen.scope == self.instance


@dataclass(frozen=True)
class Rules:
    """The notification settings the policy needs (``notifications`` in the config)."""

    events: frozenset[EventKind] = frozenset()
    """Kinds that are notified; empty when no channel is configured."""
    directory_runs: int = 3
    repeat_after: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class RunInfo:
    """The run the conditions come from, as a notice names it."""

    instance: str
    job: str
    run_id: int | None
    status: str
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A condition as this run saw it, with what the stored state adds."""

    condition: Condition
    runs: int
    """Runs in a row that saw it, this one included."""
    previous: str | None = None
    """The value the previous run saw (catch-all: its status); None when it is new."""

    @property
    def changed(self) -> bool:
        """A catch-all status other than the last run's (a first one counts only when it is accept-all)."""
        value = self.condition.value
        return value != self.previous if self.previous is not None else value == ACCEPT_ALL


@dataclass(frozen=True)
class Plan:
    findings: list[Finding]
    notices: list[Notice]
    state: list[Seen]
    """The stored rows to write: every condition of this run (``last_sent_at`` as it was)."""
    dropped: list[str]
    """Keys of stored conditions in scope that this run did not see: they ended."""


def _seen(condition: Condition, before: Seen | None, now: datetime) -> Seen:
    continues = before is not None and (condition.kind is not EventKind.CATCH_ALL or before.value == condition.value)
    if before is not None and continues:
        return replace(before, value=condition.value, last_seen_at=now, runs=before.runs + 1)
    return Seen(condition.kind, condition.subject, condition.scope, condition.value, now, now, 1)


def due(seen: Seen, rules: Rules, now: datetime) -> bool:
    """Whether a condition seen in this run is notified now."""
    if seen.kind not in rules.events:
        return False
    if seen.kind is EventKind.DIRECTORY_UNREACHABLE and seen.runs < rules.directory_runs:
        return False
    return seen.last_sent_at is None or now - seen.last_sent_at >= rules.repeat_after


def plan(
    conditions: Sequence[Condition],
    stored: Mapping[str, Seen],
    scope: Scope,
    rules: Rules,
    run: RunInfo,
    *,
    now: datetime,
) -> Plan:
    """What to log, what to send, what to store after a run that saw ``conditions``."""
    findings: list[Finding] = []
    state: dict[str, Seen] = {}
    for condition in conditions:
        if condition.key in state:
            continue  # one condition per key and run
        before = stored.get(condition.key)
        seen = _seen(condition, before, now)
        state[condition.key] = seen
        findings.append(Finding(condition, seen.runs, before.value if before is not None else None))
    notices = []
    for kind in NOTIFIABLE:
        chosen = [f for f in findings if f.condition.kind is kind and due(state[f.condition.key], rules, now)]
        if chosen:
            notices.append(
                Notice(
                    kind,
                    run.instance,
                    run.job,
                    run.run_id,
                    run.status,
                    now,
                    subjects=tuple(f.condition.subject for f in chosen),
                    details=tuple(f.condition.text for f in chosen),
                    counts=dict(run.counts),
                    keys=tuple(f.condition.key for f in chosen),
                )
            )
    dropped = sorted(key for key, seen in stored.items() if key not in state and scope.covers(seen))
    return Plan(findings, notices, list(state.values()), dropped)


def mark_sent(state: Iterable[Seen], keys: Collection[str], now: datetime) -> list[Seen]:
    """The rows to store once the notices reporting ``keys`` were delivered."""
    return [replace(seen, last_sent_at=now) if seen.key in keys else seen for seen in state]
