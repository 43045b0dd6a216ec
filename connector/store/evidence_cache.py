"""The evidence of one ingest run, held in memory and written behind.

Ingest folds each batch of events into the evidence of the addresses it names.
Writing every changed row after every batch rewrote a busy address once per batch
(74,297 writes for 35,379 addresses on the 1M-line reference log). Here a row is
read from the database once per run, kept while the run goes on, and written
when ingest commits (``flush``): once per commit, whatever the number of batches
in between. The checkpoint is written in the same transaction, so a crash loses
the uncommitted evidence and the checkpoint together, and the lines are read again.

Bounded by address count: past ``limit`` addresses, the dirty rows are written
(inside the open transaction: still committed with the next checkpoint) and the
older half is evicted; an evicted address is read back, with this transaction's
own writes, when it shows up again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from connector.domain.evidence import AddressEvidence
from connector.store.evidence_rows import load_evidence, save_evidence_many
from connector.store.evidence_tallies import Flags, flags_of

# Addresses: about 7 MB (~700 bytes each on the 1M-line reference log). Full before 1M lines, so peak memory
# stays flat however long the log; 50,000 cost 27 MB more for ~5 % less CPU (bench/ingest.py, issue 13).
EVIDENCE_CACHE_LIMIT = 10_000


@dataclass
class EvidenceCache:
    """Evidence by address as this run last folded it; ``dirty``: address -> domain, not written yet."""

    limit: int = EVIDENCE_CACHE_LIMIT
    entries: dict[str, AddressEvidence] = field(default_factory=dict)
    dirty: dict[str, str] = field(default_factory=dict)
    # What each held address's row holds in the database for the catch-all tallies (None: no row yet), so
    # that a write need not read it again (``evidence_tallies.count_writes``).
    stored: dict[str, Flags | None] = field(default_factory=dict)
    rows_written: int = 0  # rows written by this cache since it was made (tests, the debug log)

    def load(self, session: Session, addresses: Iterable[str]) -> dict[str, AddressEvidence]:
        """The stored or cached evidence of ``addresses`` (an address never seen is absent)."""
        entries = self.entries
        found = {address: entries[address] for address in addresses if address in entries}
        missing = [address for address in addresses if address not in found]
        if missing:
            loaded = load_evidence(session, missing)
            entries.update(loaded)
            found.update(loaded)
            stored = self.stored
            for address in missing:
                evidence = loaded.get(address)
                stored[address] = flags_of(evidence) if evidence is not None else None
        return found

    def put(self, evidence: AddressEvidence, domain: str) -> None:
        """``evidence`` changed: keep it (as the most recently used), and write it with the next ``flush``."""
        self.entries.pop(evidence.address, None)
        self.entries[evidence.address] = evidence
        self.dirty[evidence.address] = domain

    def flush(self, session: Session) -> int:
        """Write every changed row in the session's transaction (the caller commits); how many."""
        if not self.dirty:
            return 0
        entries, stored = self.entries, self.stored
        items = ((entries[address], domain) for address, domain in self.dirty.items())
        written = save_evidence_many(session, items, stored=stored)
        for address in self.dirty:
            stored[address] = flags_of(entries[address])
        self.dirty.clear()
        self.rows_written += written
        return written

    def trim(self, session: Session) -> None:
        """Past ``limit`` addresses: forget the least recently changed half, writing those of them that
        changed. The rows kept stay unwritten until the commit's ``flush``: a busy address is written once
        per commit, not once per trim."""
        if len(self.entries) <= self.limit:
            return
        entries, dirty, stored = self.entries, self.dirty, self.stored
        evicted = list(entries)[: len(entries) - self.limit // 2]
        changed = [(entries[address], dirty.pop(address)) for address in evicted if address in dirty]
        if changed:
            self.rows_written += save_evidence_many(session, changed, stored=stored)
        for address in evicted:
            del entries[address]
            stored.pop(address, None)

    def forget(self) -> None:
        """The transaction was rolled back: what is held may be what was undone."""
        self.entries.clear()
        self.dirty.clear()
        self.stored.clear()
