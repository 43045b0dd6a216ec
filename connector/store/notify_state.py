"""Repository functions of table ``notify_state``: the conditions the latest runs found.

Written only by the job runner while it holds the job's locks (``ingest`` for the
ingest job, ``ingest`` and ``cycle`` for the decide job), so replicas never write it
at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.notices import EventKind, Seen
from connector.domain.safe_text import storable
from connector.store.models import NotifyStateRow


def _key(kind: str, scope: str, subject: str) -> tuple[str, str, str]:
    return (kind, storable(scope, 200), storable(subject, 255))


def load(session: Session) -> dict[str, Seen]:
    """Every stored condition by its key (unknown kinds, from a newer version, are left out)."""
    known = {k.value for k in EventKind}
    result = {}
    for row in session.scalars(select(NotifyStateRow)):
        if row.kind not in known:
            continue
        seen = Seen(
            EventKind(row.kind),
            row.subject,
            row.scope,
            row.value,
            row.first_seen_at,
            row.last_seen_at,
            row.runs,
            row.last_sent_at,
        )
        result[seen.key] = seen
    return result


def save(session: Session, state: Iterable[Seen], dropped: Iterable[Seen]) -> None:
    """Write ``state`` (insert or update) and delete ``dropped``; the caller commits."""
    for seen in dropped:
        row = session.get(NotifyStateRow, _key(seen.kind.value, seen.scope, seen.subject))
        if row is not None:
            session.delete(row)
    for seen in state:
        key = _key(seen.kind.value, seen.scope, seen.subject)
        row = session.get(NotifyStateRow, key)
        if row is None:
            row = NotifyStateRow(kind=key[0], scope=key[1], subject=key[2])
            session.add(row)
        row.value = storable(seen.value, 64)
        row.first_seen_at = seen.first_seen_at
        row.last_seen_at = seen.last_seen_at
        row.runs = seen.runs
        row.last_sent_at = seen.last_sent_at
