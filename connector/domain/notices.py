"""What a finished run says to the people running it: conditions worth a warning, notices worth a message.

A ``Condition`` is one thing a run found that a person should hear about (an attack at
one domain, one source in error, the target quarantined). A ``Notice`` is one message
about one kind of condition in one run, sent by webhook and/or mail
(docs/operations.md#notifications). Pure values: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    """The kinds of condition a run reports; all but ``catch_all`` can be notified."""

    DICTIONARY_ATTACK = "dictionary_attack"
    LIMIT_REACHED = "limit_reached"
    TARGET_QUARANTINED = "target_quarantined"
    DIRECTORY_UNREACHABLE = "directory_unreachable"
    SOURCE_ERROR = "source_error"
    CATCH_ALL = "catch_all"  # a domain's catch-all status: logged when it changes, never notified


NOTIFIABLE: tuple[EventKind, ...] = tuple(k for k in EventKind if k is not EventKind.CATCH_ALL)

TITLES: dict[EventKind, str] = {
    EventKind.DICTIONARY_ATTACK: "Dictionary attack",
    EventKind.LIMIT_REACHED: "Limit reached, changes held",
    EventKind.TARGET_QUARANTINED: "Target quarantined",
    EventKind.DIRECTORY_UNREACHABLE: "Directory unreachable",
    EventKind.SOURCE_ERROR: "Log source in error",
    EventKind.CATCH_ALL: "Catch-all status",
}


def condition_key(kind: EventKind, scope: str, subject: str) -> str:
    """What ties a condition found by a run to what the latest runs saw (``notify_state``)."""
    return f"{kind.value}:{scope}:{subject}"


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition found by a run: ``kind`` at ``subject`` (a domain, a source, ``target`` ...).

    ``text`` is one line without full addresses (it goes to INFO/WARNING logs and to
    chat rooms). ``scope`` separates conditions that several instances see apart
    (a source name is per instance). ``value`` is the state that matters for a
    change (a catch-all status).
    """

    kind: EventKind
    subject: str
    text: str
    value: str = ""
    scope: str = ""

    @property
    def key(self) -> str:
        return condition_key(self.kind, self.scope, self.subject)


@dataclass(frozen=True, slots=True)
class Seen:
    """A condition as the latest runs saw it (table ``notify_state``): since when, how often, last notified."""

    kind: EventKind
    subject: str
    scope: str
    value: str
    first_seen_at: datetime
    last_seen_at: datetime
    runs: int
    last_sent_at: datetime | None = None

    @property
    def key(self) -> str:
        return condition_key(self.kind, self.scope, self.subject)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification: one kind of condition in one run (several subjects at most one message)."""

    kind: EventKind
    instance: str
    job: str
    run_id: int | None
    run_status: str
    at: datetime
    subjects: tuple[str, ...]
    details: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # the conditions it reports (marked as sent once delivered)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def text(self) -> str:
        """The one-line summary: instance, what, which run, the details."""
        run = f" in run {self.run_id}" if self.run_id is not None else f" ({self.job} job)"
        return f"{self.instance}: {self.title}{run}: {' | '.join(self.details)}"
