"""What the connector remembers about a remote target, in the state database.

- ``TargetHealth``: consecutive failures and the quarantine they lead to
  (table ``target_state``, shared by replicas: read per run, written with
  compare-and-set); the quarantine interval itself is the pure
  ``quarantine_until``.
- ``KnownStore``: the addresses the target holds, pulled on a schedule by
  ``jobs/refresh_known.py`` (table ``target_known``), so a cycle need not page
  through the whole target; and the ids of the org groups found or created
  there (table ``scim_groups``), so no process has to look a group up again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot
from connector.config.target import QuarantineSettings
from connector.domain.report_model import TargetHealthJson
from connector.errors import FatalError, RetriableError
from connector.store.models import ScimGroupRow, TargetKnownRow, TargetStateRow

log = logging.getLogger(__name__)


def quarantine_until(failures: int, now: datetime, settings: QuarantineSettings) -> datetime | None:
    """When a quarantine after ``failures`` consecutive failures ends; None below the threshold.

    The interval doubles with each failure past the threshold, up to the maximum.
    """
    if failures < settings.after_failures:
        return None
    exponent = min(failures - settings.after_failures, 30)
    minutes = min(settings.initial_minutes * 2**exponent, settings.max_minutes)
    return now + timedelta(minutes=minutes)


@dataclass(frozen=True)
class _SeenState:
    """The ``target_state`` row as this process last read or wrote it (``version`` None: no row yet)."""

    failures: int = 0
    quarantined_until: datetime | None = None
    last_error: str = ""
    known_refreshed_at: datetime | None = None
    version: int | None = None


CAS_ATTEMPTS = 20  # writers that keep colliding: each attempt re-reads, so this only ends a livelock


class TargetHealth:
    """Failures and quarantine of one target; thread-safe, one row in ``target_state``.

    The row is shared by every replica and CLI command: it is read at most once
    per run (``reload`` forgets the copy; the cycle and the refresh job call it
    when they start) and every write is a compare-and-set on its ``version``. A
    writer that lost the race re-reads the row and applies its change to what
    it finds, so one replica's quarantine is never overwritten by another's
    stale copy.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        target_key: str,
        settings: QuarantineSettings,
        clock: Callable[[], datetime],
        *,
        persist: bool = True,
    ) -> None:
        self._sessions = sessions
        self._key = target_key
        self._settings = settings
        self._clock = clock
        self._persist = persist
        self._lock = threading.Lock()
        self._seen: _SeenState | None = None
        self.retries = 0
        """Requests repeated in this process (for the report)."""
        self.quarantined_now = False

    def _read(self) -> _SeenState:
        try:
            with self._sessions() as session:
                row = session.get(TargetStateRow, self._key)
        except SQLAlchemyError as exc:
            raise FatalError(f"state database unreadable: {exc}") from exc
        if row is None:
            return _SeenState()
        return _SeenState(row.failures, row.quarantined_until, row.last_error, row.known_refreshed_at, row.version)

    def _load(self) -> _SeenState:
        if self._seen is None:
            self._seen = self._read()
        return self._seen

    def reload(self) -> None:
        """Forget the copy read earlier: the next use reads the row again (once per run)."""
        with self._lock:
            self._seen = None

    def _update(self, change: Callable[[_SeenState], dict[str, Any]]) -> _SeenState:
        """Apply ``change`` (seen state -> new values, empty: nothing to do) with compare-and-set.

        On a conflict the row is read again and ``change`` applied to what is there now.
        """
        for _attempt in range(CAS_ATTEMPTS):
            seen = self._load()
            values = change(seen)
            if not values:
                return seen
            wanted = replace(seen, **values)
            if not self._persist:
                self._seen = wanted
                return wanted
            if self._compare_and_set(seen, values):
                self._seen = replace(wanted, version=1 if seen.version is None else seen.version + 1)
                return self._seen
            log.info("target %s state changed meanwhile (another replica): read again and merge", self._key)
            self._seen = None
        raise RetriableError(f"target state of {self._key} keeps changing under concurrent writers")

    def _compare_and_set(self, seen: _SeenState, values: dict[str, Any]) -> bool:
        """One short transaction: write ``values`` if the row is still at ``seen.version``."""
        now = self._clock()
        try:
            with self._sessions.begin() as session:
                if seen.version is None:
                    row = {
                        "failures": seen.failures,
                        "quarantined_until": seen.quarantined_until,
                        "last_error": seen.last_error,
                        "known_refreshed_at": seen.known_refreshed_at,
                        **values,
                    }
                    session.execute(insert(TargetStateRow).values(target=self._key, updated_at=now, version=1, **row))
                    return True
                result = session.execute(
                    update(TargetStateRow)
                    .where(TargetStateRow.target == self._key, TargetStateRow.version == seen.version)
                    .values(**values, updated_at=now, version=seen.version + 1)
                )
                return int(result.rowcount) == 1  # type: ignore[attr-defined]
        except IntegrityError:
            return False  # another writer created the row first

    def read_only(self) -> TargetHealth:
        """A copy that starts from the stored state and never writes it (dry runs)."""
        return TargetHealth(self._sessions, self._key, self._settings, self._clock, persist=False)

    def check(self) -> None:
        """Raise ``RetriableError`` while the target is quarantined."""
        with self._lock:
            until = self._load().quarantined_until
            if until is not None and until > self._clock():
                self.quarantined_now = True
                raise RetriableError(f"target quarantined until {until.isoformat()} after repeated failures")

    def record_success(self) -> None:
        def clear(seen: _SeenState) -> dict[str, Any]:
            if seen.failures or seen.quarantined_until is not None:
                return {"failures": 0, "quarantined_until": None}
            return {}

        with self._lock:
            self._update(clear)

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_failure(self, error: str) -> None:
        """One request failed for good; enough of them in a row start a quarantine."""

        def count(seen: _SeenState) -> dict[str, Any]:
            failures, now = seen.failures + 1, self._clock()
            until = quarantine_until(failures, now, self._settings)
            running = seen.quarantined_until if seen.quarantined_until and seen.quarantined_until > now else None
            if running is not None and (until is None or running > until):
                until = running  # another replica's longer quarantine stands
            return {"failures": failures, "quarantined_until": until, "last_error": error[:2000]}

        with self._lock:
            state = self._update(count)
            until = state.quarantined_until
            if until is not None and until > self._clock():
                self.quarantined_now = True
                log.warning("target %s quarantined until %s: %s", self._key, until.isoformat(), error)

    def known_refreshed_at(self) -> datetime | None:
        with self._lock:
            return self._load().known_refreshed_at

    def record_known_refresh(self, at: datetime) -> None:
        def later(seen: _SeenState) -> dict[str, Any]:
            if seen.known_refreshed_at is not None and seen.known_refreshed_at >= at:
                return {}
            return {"known_refreshed_at": at}

        with self._lock:
            self._update(later)

    def take_summary(self) -> TargetHealthJson:
        """For the run report (``target_health``); starts the per-run counters afresh."""
        with self._lock:
            row = self._load()
            summary: TargetHealthJson = {
                "consecutive_failures": row.failures,
                "quarantined_until": row.quarantined_until.isoformat() if row.quarantined_until else None,
                "quarantined": self.quarantined_now,
                "retries": self.retries,
                "last_error": row.last_error or None,
                "known_refreshed_at": row.known_refreshed_at.isoformat() if row.known_refreshed_at else None,
            }
            self.retries, self.quarantined_now = 0, False
            return summary


class KnownStore:
    """The target's addresses as last pulled: users' primaries and alias -> primary."""

    def __init__(self, sessions: sessionmaker[Session], target_key: str, *, persist: bool = True) -> None:
        self._sessions = sessions
        self._key = target_key
        self._persist = persist

    def read_only(self) -> KnownStore:
        """A copy that reads the stored snapshot and never writes it (dry runs)."""
        return KnownStore(self._sessions, self._key, persist=False)

    def replace(self, users: Iterable[str], aliases: dict[str, str], now: datetime) -> None:
        """Swap in a complete new snapshot in one transaction."""
        if not self._persist:
            return
        with self._sessions.begin() as session:
            session.execute(delete(TargetKnownRow).where(TargetKnownRow.target == self._key))
            rows: dict[str, str | None] = dict.fromkeys(users)
            for alias, owner in aliases.items():
                rows.setdefault(alias, owner)
            session.add_all(
                TargetKnownRow(target=self._key, address=a, owner=o, refreshed_at=now) for a, o in rows.items()
            )

    def add(self, primary: str, aliases: Iterable[str], now: datetime) -> None:
        """Record a user (and aliases) the connector just created or found."""
        self.add_many([(primary, tuple(aliases))], now)

    def add_many(self, users: Iterable[tuple[str, Iterable[str]]], now: datetime) -> None:
        """Record several users (primary, aliases) in one transaction."""
        if not self._persist:
            return
        with self._sessions.begin() as session:
            for primary, aliases in users:
                for address, owner in [(primary, None), *((a, primary) for a in aliases)]:
                    if session.get(TargetKnownRow, (self._key, address)) is None:
                        session.add(TargetKnownRow(target=self._key, address=address, owner=owner, refreshed_at=now))

    def remove(self, owner: str, aliases: Iterable[str]) -> None:
        """Forget aliases the connector took off ``owner`` (those recorded for another owner stay)."""
        if not self._persist:
            return
        with self._sessions.begin() as session:
            session.execute(
                delete(TargetKnownRow).where(
                    TargetKnownRow.target == self._key,
                    TargetKnownRow.owner == owner,
                    TargetKnownRow.address.in_(list(aliases)),
                )
            )

    def forget_user(self, primary: str) -> None:
        """Forget a user the connector deleted, with its aliases."""
        if not self._persist:
            return
        with self._sessions.begin() as session:
            session.execute(
                delete(TargetKnownRow).where(
                    TargetKnownRow.target == self._key,
                    (TargetKnownRow.address == primary) | (TargetKnownRow.owner == primary),
                )
            )

    def rename(self, old: str, new: str, now: datetime) -> None:
        """A user's primary changed from ``old`` to ``new`` (``old`` is no address of it any more)."""
        if not self._persist or old == new:
            return
        with self._sessions.begin() as session:
            session.execute(
                delete(TargetKnownRow).where(TargetKnownRow.target == self._key, TargetKnownRow.address.in_([old, new]))
            )
            for row in session.scalars(
                select(TargetKnownRow).where(TargetKnownRow.target == self._key, TargetKnownRow.owner == old)
            ):
                row.owner = new
            session.add(TargetKnownRow(target=self._key, address=new, owner=None, refreshed_at=now))

    def load(self) -> KnownSnapshot:
        with self._sessions() as session:
            rows = session.execute(
                select(TargetKnownRow.address, TargetKnownRow.owner).where(TargetKnownRow.target == self._key)
            ).all()
        users = tuple(sorted(a for a, o in rows if o is None))
        return KnownSnapshot(users=users, aliases={a: o for a, o in rows if o is not None})

    def sample_address(self) -> str | None:
        """One address the target held at the last pull, an alias if there is one (to check that an
        ``emails.value`` filter finds what is there); None when the copy is empty."""
        with self._sessions() as session:
            base = select(TargetKnownRow.address).where(TargetKnownRow.target == self._key).limit(1)
            alias = session.scalar(base.where(TargetKnownRow.owner.is_not(None)))
            return alias if alias is not None else session.scalar(base)

    # -- group ids (table ``scim_groups``) -------------------------------------------------------------

    def load_groups(self) -> dict[str, str]:
        """Group name -> id, as last found, created or pulled (by any process)."""
        with self._sessions() as session:
            rows = session.execute(
                select(ScimGroupRow.name, ScimGroupRow.group_id).where(ScimGroupRow.target == self._key)
            ).all()
        return {name: group_id for name, group_id in rows}

    def remember_groups(self, ids: Mapping[str, str], now: datetime, *, complete: bool = False) -> None:
        """Store group ids; ``complete``: ``ids`` is every group the target has (a full listing).

        A cache: a write that collides with another replica's is logged and left (the next
        lookup finds the group again), never an error of the run.
        """
        if not self._persist or (not ids and not complete):
            return
        try:
            with self._sessions.begin() as session:
                rows = (ScimGroupRow(target=self._key, name=n, group_id=g, seen_at=now) for n, g in ids.items())
                if complete:  # a full listing: the table for this target is exactly it (one INSERT batch)
                    session.execute(delete(ScimGroupRow).where(ScimGroupRow.target == self._key))
                    session.add_all(rows)
                else:
                    for row in rows:
                        session.merge(row)
        except IntegrityError as exc:
            log.info("group ids of %s written by another process meanwhile: %s", self._key, exc.__class__.__name__)

    def forget_group(self, name: str) -> None:
        """The group is gone from the target (404): look it up or create it again next time."""
        if not self._persist:
            return
        with self._sessions.begin() as session:
            session.execute(delete(ScimGroupRow).where(ScimGroupRow.target == self._key, ScimGroupRow.name == name))
