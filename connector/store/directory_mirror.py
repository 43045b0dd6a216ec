"""Directory mirror tables: replace, upsert and read (owned by connector.directory.mirror)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from connector.store.lifecycle import mark_addresses
from connector.store.models import DirectoryMirrorAddressRow, DirectoryMirrorEntryRow, DirectoryMirrorStateRow

_STATE_ID = 1
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class MirroredEntry:
    """One object as the mirror keeps it."""

    dn: str
    entry: dict[str, Any]
    """The mapped answer: ``DirectoryEntry`` fields but ``dn``, attributes as lists."""
    addresses: tuple[str, ...]
    change_mark: str | None


@dataclass(frozen=True, slots=True)
class MirrorState:
    """Which directory the mirror copies, and when it was last read."""

    source: str
    full_at: datetime
    refreshed_at: datetime
    change_mark: str | None
    entries: int


def load_state(session: Session) -> MirrorState | None:
    row = session.get(DirectoryMirrorStateRow, _STATE_ID)
    if row is None:
        return None
    return MirrorState(row.source, row.full_at, row.refreshed_at, row.change_mark, row.entries)


def save_state(session: Session, state: MirrorState) -> None:
    row = session.get(DirectoryMirrorStateRow, _STATE_ID)
    if row is None:
        row = DirectoryMirrorStateRow(id=_STATE_ID)
        session.add(row)
    row.source = state.source
    row.full_at = state.full_at
    row.refreshed_at = state.refreshed_at
    row.change_mark = state.change_mark
    row.entries = state.entries


def clear(session: Session) -> None:
    """Empty the mirror (before a full read)."""
    session.execute(delete(DirectoryMirrorAddressRow))
    session.execute(delete(DirectoryMirrorEntryRow))


def insert_entries(session: Session, entries: Iterable[MirroredEntry]) -> int:
    """Bulk insert into an empty (or cleared) mirror; returns how many entries."""
    count = 0
    entry_rows: list[dict[str, object]] = []
    address_rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for entry in entries:
        key = entry.dn.lower()
        if key in seen:
            continue  # a server should not return a DN twice; keep the first
        seen.add(key)
        count += 1
        entry_rows.append(_entry_row(key, entry))
        address_rows.extend({"address": a, "dn_key": key} for a in dict.fromkeys(entry.addresses))
        if len(entry_rows) >= _CHUNK:
            _flush(session, entry_rows, address_rows)
    _flush(session, entry_rows, address_rows)
    return count


def _entry_row(key: str, entry: MirroredEntry) -> dict[str, object]:
    return {
        "dn_key": key,
        "dn": entry.dn,
        "entry": entry.entry,
        "change_mark": entry.change_mark,
    }


def _flush(session: Session, entry_rows: list[dict[str, object]], address_rows: list[dict[str, object]]) -> None:
    if entry_rows:
        session.execute(insert(DirectoryMirrorEntryRow), entry_rows)
    if address_rows:
        session.execute(insert(DirectoryMirrorAddressRow), address_rows)
    entry_rows.clear()
    address_rows.clear()


def upsert_entries(session: Session, entries: Iterable[MirroredEntry]) -> int:
    """Replace the given objects (and their addresses); returns how many.

    The managed users answered by an address an object had or has now are marked for the next reconcile.
    """
    count = 0
    touched: set[str] = set()
    for entry in entries:
        key = entry.dn.lower()
        had = session.scalars(select(DirectoryMirrorAddressRow.address).where(DirectoryMirrorAddressRow.dn_key == key))
        touched.update(had, entry.addresses)
        session.execute(delete(DirectoryMirrorAddressRow).where(DirectoryMirrorAddressRow.dn_key == key))
        session.execute(delete(DirectoryMirrorEntryRow).where(DirectoryMirrorEntryRow.dn_key == key))
        session.flush()
        _flush(
            session,
            [_entry_row(key, entry)],
            [{"address": a, "dn_key": key} for a in dict.fromkeys(entry.addresses)],
        )
        count += 1
    mark_addresses(session, touched)
    return count


def count_entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(DirectoryMirrorEntryRow)) or 0)


def owners(session: Session, addresses: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(address, dn, entry)`` for every mirrored owner of the given addresses."""
    if not addresses:
        return []
    query = (
        select(
            DirectoryMirrorAddressRow.address,
            DirectoryMirrorEntryRow.dn,
            DirectoryMirrorEntryRow.entry,
        )
        .join(DirectoryMirrorEntryRow, DirectoryMirrorEntryRow.dn_key == DirectoryMirrorAddressRow.dn_key)
        .where(DirectoryMirrorAddressRow.address.in_(list(addresses)))
    )
    # Core, not ORM, execution: these are plain rows and this is the hot path of a mirrored lookup.
    rows = session.connection().execute(query)
    return [(address, dn, entry) for address, dn, entry in rows]
