"""What the connector remembers about a remote target, in the state database.

- ``TargetHealth``: consecutive failures and the quarantine they lead to
  (table ``target_state``); the quarantine interval itself is the pure
  ``quarantine_until``.
- ``KnownStore``: the addresses the target holds, pulled on a schedule by
  ``jobs/refresh_known.py`` (table ``target_known``), so a cycle need not page
  through the whole target.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import KnownSnapshot
from connector.config.target import QuarantineSettings
from connector.errors import FatalError, RetriableError
from connector.store.models import TargetKnownRow, TargetStateRow

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


class TargetHealth:
    """Failures and quarantine of one target; thread-safe, one row in ``target_state``."""

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
        self._row: TargetStateRow | None = None
        self.retries = 0
        """Requests repeated in this process (for the report)."""
        self.quarantined_now = False

    def _load(self) -> TargetStateRow:
        if self._row is None:
            try:
                with self._sessions() as session:
                    row = session.get(TargetStateRow, self._key)
            except SQLAlchemyError as exc:
                raise FatalError(f"state database unreadable: {exc}") from exc
            self._row = row or TargetStateRow(
                target=self._key, failures=0, quarantined_until=None, last_error="", updated_at=self._clock()
            )
        return self._row

    def _save(self, **changes: Any) -> None:
        row = self._load()
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = self._clock()
        if self._persist:
            with self._sessions.begin() as session:
                session.merge(row)

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
        with self._lock:
            row = self._load()
            if row.failures or row.quarantined_until is not None:
                self._save(failures=0, quarantined_until=None)

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_failure(self, error: str) -> None:
        """One request failed for good; enough of them in a row start a quarantine."""
        with self._lock:
            failures = self._load().failures + 1
            until = quarantine_until(failures, self._clock(), self._settings)
            if until is not None:
                self.quarantined_now = True
                log.warning("target %s quarantined until %s: %s", self._key, until.isoformat(), error)
            self._save(failures=failures, quarantined_until=until, last_error=error[:2000])

    def known_refreshed_at(self) -> datetime | None:
        with self._lock:
            return self._load().known_refreshed_at

    def record_known_refresh(self, at: datetime) -> None:
        with self._lock:
            self._save(known_refreshed_at=at)

    def take_summary(self) -> dict[str, Any]:
        """For the run report (``target_health``); starts the per-run counters afresh."""
        with self._lock:
            row = self._load()
            summary = {
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
