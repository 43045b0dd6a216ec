"""A copy of the mail directory in the state database, so most checks are local.

A paged full read fills it; incremental refreshes then read only the objects
whose change attribute (``modifyTimestamp``, or ``uSNChanged`` on AD) is at or
past the highest value seen. Deletions are only seen by the next full read,
which therefore runs every ``full_every``.

Fail closed: a mirror that was never filled, copies another directory, or is
older than ``max_age`` answers nothing (``RetriableError``), so candidates are
deferred rather than judged on stale data.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.directory.answers import answers_for
from connector.directory.mapping import AttributeMapping, addresses_of, entry_from_attributes
from connector.domain.directory import DirectoryAnswer, DirectoryEntry, DirectoryObjectKind
from connector.errors import FatalError, RetriableError
from connector.store import directory_mirror as store

RawEntry = tuple[str, dict[str, list[str]]]


class MirrorSource(Protocol):
    """A directory that can be read whole, or only what changed since a mark."""

    def read_entries(self, changed_since: str | None = None) -> Iterator[RawEntry]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class MirrorRefresh:
    """What one refresh did (for logs and the job's caller)."""

    full: bool
    entries_read: int
    entries_total: int
    change_mark: str | None
    refreshed_at: datetime


def _entry(dn: str, entry: Mapping[str, Any]) -> DirectoryEntry:
    """A stored answer back as a ``DirectoryEntry`` (no re-mapping: lookups stay cheap)."""
    return DirectoryEntry(
        kind=DirectoryObjectKind(entry["kind"]),
        dn=dn,
        primary_address=entry["primary_address"],
        aliases=tuple(entry["aliases"]),
        display_name=entry["display_name"],
        enabled=bool(entry["enabled"]),
        external_id=entry["external_id"],
        attributes={name: tuple(values) for name, values in entry["attributes"].items()},
    )


def newest_mark(marks: Sequence[str | None]) -> str | None:
    """The highest change mark: numbers (uSNChanged) numerically, timestamps as text."""
    present = [m for m in marks if m]
    if not present:
        return None
    if all(m.isdigit() for m in present):
        return max(present, key=int)
    return max(present)


class MirrorDirectory:
    """``Directory`` that answers from the state database copy of ``source``."""

    def __init__(
        self,
        source: MirrorSource,
        mapping: AttributeMapping | Callable[[], AttributeMapping],
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        *,
        change_attribute: str,
        max_age: timedelta,
        refresh_every: timedelta,
        full_every: timedelta,
        logger: logging.Logger | None = None,
    ) -> None:
        self._source = source
        self._mapping = mapping
        self._sessions = sessions
        self._clock = clock
        self._change_attribute = change_attribute.lower()
        self._max_age = max_age
        self._refresh_every = refresh_every
        self._full_every = full_every
        self._log = logger or logging.getLogger(__name__)
        # A copy made by another directory or another mapping is not this one: read everything again.
        # A callable is ``schema_preset: auto``: asked when the directory is read (its own connection detects it).
        named = repr(mapping) if isinstance(mapping, AttributeMapping) else "auto"
        fingerprint = hashlib.sha256(named.encode()).hexdigest()[:12]
        self._source_key = f"{source.describe()} mapping {fingerprint}"

    @property
    def source(self) -> MirrorSource:
        return self._source

    def describe(self) -> str:
        return f"mirror of {self._source.describe()}"

    def state(self) -> store.MirrorState | None:
        """The mirror's bookkeeping (``None`` before the first full read)."""
        with self._sessions() as session:
            return store.load_state(session)

    def content_version(self) -> str | None:
        """Which full read the copy comes from: reconcile plans every managed user again after a full read;
        an incremental one marks only the users of the entries it changed (``store.upsert_entries``).
        None when the copy cannot answer (none, or older than its max age): the lookups then defer, as always."""
        try:
            state = self.state()
        except SQLAlchemyError:
            return None
        if state is None or self._clock() - state.refreshed_at > self._max_age:
            return None
        return f"mirror:{state.source}:{state.full_at.isoformat()}"

    def refresh_if_due(self) -> store.MirrorState | None:
        """Refresh when due (a failed refresh is fine while the copy is fresh); the state after it.

        The cycle calls this before it opens its own transaction, so that on SQLite
        the refresh never waits for the cycle's write lock.
        """
        now = self._clock()
        state = self.state()
        if self._usable(state) and state is not None and now - state.refreshed_at >= self._refresh_every:
            try:
                self.refresh(now)
                state = self.state()
            except RetriableError as exc:
                self._log.warning("directory mirror refresh failed, answering from the copy: %s", exc)
        elif not self._usable(state):
            self.refresh(now)  # raises RetriableError when the directory is down: nothing to answer from
            state = self.state()
        return state

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        """Answer from the mirror; refresh it first when due (a failed refresh is fine while it is fresh)."""
        state = self.refresh_if_due()
        now = self._clock()
        if state is None or now - state.refreshed_at > self._max_age:
            raise RetriableError(
                "directory mirror is older than its max age and the directory cannot be read; deferring"
            )
        try:
            with self._sessions() as session:
                rows = store.owners(session, addresses)
        except SQLAlchemyError as exc:
            raise FatalError(f"cannot read the directory mirror: {exc}") from exc
        entries = {dn.lower(): _entry(dn, entry) for _, dn, entry in rows}
        return answers_for(addresses, entries.values())

    def refresh(self, now: datetime, *, full: bool | None = None) -> MirrorRefresh:
        """Read the directory into the mirror: full when due (or asked), else only changes.

        The directory is read into a temporary spool file with no transaction open
        (memory stays bounded); only then is the mirror rewritten, in one short
        transaction. An incremental read that finds the mirror refreshed by someone
        else meanwhile is dropped: that refresh is at least as recent.
        """
        with self._sessions() as session:
            state = store.load_state(session)
        marks: list[str | None] = []
        do_full = full if full is not None else not self._usable(state) or self._full_due(state, now)
        base = None if do_full else state  # what an incremental read builds on; None: a whole read
        whole = base is None
        if base is not None:
            marks.append(base.change_mark)
        since = None if base is None else base.change_mark
        mapping = self._mapping if isinstance(self._mapping, AttributeMapping) else self._mapping()
        with tempfile.TemporaryFile() as spool:
            count = _spool(self._mirrored(self._source.read_entries(since), marks, mapping), spool)
            spool.seek(0)
            with self._sessions() as session:
                current = store.load_state(session)
                if base is not None and current != base and current is not None:
                    self._log.info("directory mirror refreshed by another process meanwhile; this read is dropped")
                    return MirrorRefresh(False, count, current.entries, current.change_mark, current.refreshed_at)
                if base is None:
                    store.clear(session)
                    total = store.insert_entries(session, _unspool(spool))
                    full_at = now
                else:
                    store.upsert_entries(session, _unspool(spool))
                    total = store.count_entries(session)
                    full_at = base.full_at
                mark = newest_mark(marks)
                store.save_state(session, store.MirrorState(self._source_key, full_at, now, mark, total))
                session.commit()
        self._log.info(
            "directory mirror %s refresh: %d entries read, %d in the mirror",
            "full" if do_full else "incremental",
            count,
            total,
        )
        return MirrorRefresh(whole, count, total, mark, now)

    def _mirrored(
        self, raw_entries: Iterator[RawEntry], marks: list[str | None], mapping: AttributeMapping
    ) -> Iterator[store.MirroredEntry]:
        for dn, attributes in raw_entries:
            entry = entry_from_attributes(dn, attributes, mapping)
            values = entry.attributes.get(self._change_attribute) or ()
            mark = values[0] if values else None
            marks.append(mark)
            mapped = {
                "kind": entry.kind.value,
                "primary_address": entry.primary_address,
                "aliases": list(entry.aliases),
                "display_name": entry.display_name,
                "enabled": entry.enabled,
                "external_id": entry.external_id,
                "attributes": {name: list(values) for name, values in entry.attributes.items()},
            }
            yield store.MirroredEntry(dn, mapped, addresses_of(entry), mark)

    def _usable(self, state: store.MirrorState | None) -> bool:
        return state is not None and state.source == self._source_key

    def _full_due(self, state: store.MirrorState | None, now: datetime) -> bool:
        return state is None or now - state.full_at >= self._full_every


def _spool(entries: Iterator[store.MirroredEntry], spool: BinaryIO) -> int:
    """Write ``entries`` to ``spool`` (a private temporary file); how many."""
    count = 0
    for entry in entries:
        pickle.dump(entry, spool, protocol=pickle.HIGHEST_PROTOCOL)
        count += 1
    return count


def _unspool(spool: BinaryIO) -> Iterator[store.MirroredEntry]:
    """Read back what ``_spool`` wrote (our own file: nothing untrusted is unpickled)."""
    while True:
        try:
            yield pickle.load(spool)
        except EOFError:
            return
