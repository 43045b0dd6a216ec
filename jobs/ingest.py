"""Ingest: read new log lines, fold their events into per-address evidence.

Each batch's evidence and the source checkpoint after it are committed in one
transaction, so a crash never loses or double-counts a line.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.domain.events import DeliveryEvent
from connector.domain.evidence import AddressEvidence
from connector.policy.addresses import AddressMap, InvalidAddress, MappedAddress
from connector.policy.evidence import record_events
from connector.sources.base import LogSource, SourceBatch, SourceStats
from connector.store import repository
from connector.store import safety as safety_store
from connector.store.bounds import storable_event

log = logging.getLogger(__name__)
EXAMPLES = 3
MAPPED_CACHE_LIMIT = 20_000
EVIDENCE_CACHE_LIMIT = 50_000  # addresses (about 0.3 KB each): bounded memory


@dataclass
class UnmanagedDomain:
    """Deliveries to a domain nobody manages (mostly outbound mail): counted, not stored."""

    deliveries: int = 0
    addresses: set[str] = field(default_factory=set)


@dataclass
class IngestResult:
    sources: list[dict[str, Any]] = field(default_factory=list)
    unmanaged: dict[str, UnmanagedDomain] = field(default_factory=lambda: defaultdict(UnmanagedDomain))
    invalid_recipients: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    """A shutdown stopped reading after a committed batch; the rest is read next time."""


def _merge(total: SourceStats, batch: SourceStats) -> None:
    total.lines_read += batch.lines_read
    total.foreign_lines += batch.foreign_lines
    total.events += batch.events
    for bad in batch.bad_line_examples:
        if len(total.bad_line_examples) < 5:
            total.bad_line_examples.append(bad)
    total.bad_lines += batch.bad_lines
    total.error = total.error or batch.error
    if batch.restarted:
        total.note(batch.restarted)
    total.files_read.extend(f for f in batch.files_read if f not in total.files_read)


def _seen_as(recipient: str, address: str) -> str | None:
    lowered = recipient.lower()
    return lowered if lowered != address else None


def apply_events(
    session: Session,
    events: Sequence[DeliveryEvent],
    address_map: AddressMap,
    result: IngestResult,
    mapped_cache: dict[str, MappedAddress | None] | None = None,
    evidence_cache: dict[str, AddressEvidence] | None = None,
) -> int:
    """Fold ``events`` into stored evidence; returns how many addresses changed.

    ``mapped_cache`` (recipient as logged -> mapped address) may be shared between batches.
    ``evidence_cache`` holds the evidence as this session last wrote it, so busy addresses
    are not read back every batch; the caller must clear it when it rolls back.
    """
    if mapped_cache is None:
        mapped_cache = {}
    elif len(mapped_cache) > MAPPED_CACHE_LIMIT:
        mapped_cache.clear()
    per_address: dict[str, list[tuple[DeliveryEvent, MappedAddress]]] = defaultdict(list)
    for event in events:
        recipient = event.recipient
        if recipient not in mapped_cache:
            try:
                mapped_cache[recipient] = address_map.map(recipient)
            except InvalidAddress:
                mapped_cache[recipient] = None
        mapped = mapped_cache[recipient]
        if mapped is None:
            result.invalid_recipients += 1
            if len(result.invalid_examples) < EXAMPLES:
                result.invalid_examples.append(recipient[:200])
            continue
        if mapped.rule is None:
            tally = result.unmanaged[mapped.domain]
            tally.deliveries += 1
            if len(tally.addresses) < 1000:
                tally.addresses.add(mapped.address)
            continue
        per_address[mapped.address].append((storable_event(event), mapped))  # no NUL, fits the columns

    cache = evidence_cache if evidence_cache is not None else {}
    if len(cache) > EVIDENCE_CACHE_LIMIT:
        cache.clear()
    stored = {address: cache[address] for address in per_address if address in cache}
    stored.update(repository.load_evidence(session, [a for a in per_address if a not in stored]))
    safety_store.log_events(session, [(address, event) for address, items in per_address.items() for event, _ in items])
    changed = []
    for address, items in per_address.items():
        rule = items[0][1].rule
        assert rule is not None
        evidence = stored.get(address) or AddressEvidence(address=address)
        seen = [(event, _seen_as(event.recipient, address)) for event, _ in items]
        evidence = record_events(evidence, seen, threshold=rule.threshold, window=rule.window)
        changed.append((evidence, items[0][1].domain))
        cache[address] = evidence
    repository.save_evidence_many(session, changed, existing=set(stored))
    return len(per_address)


def ingest(
    session: Session,
    sources: Sequence[LogSource],
    address_map: AddressMap,
    *,
    now: datetime,
    commit: bool = True,
    stop: threading.Event | None = None,
    on_batch: Callable[[str, SourceBatch], None] | None = None,
) -> IngestResult:
    """Read every source from its checkpoint. With ``commit=False`` (dry run) only flush.

    When ``stop`` is set, reading ends after the batch in progress is committed.
    ``on_batch(source_name, batch)`` is called after each batch is committed (progress display).
    """
    result = IngestResult()
    mapped_cache: dict[str, MappedAddress | None] = {}
    evidence_cache: dict[str, AddressEvidence] = {}
    for source in sources:
        if stop is not None and stop.is_set():
            result.interrupted = True
            break
        total = SourceStats()
        checkpoint = repository.load_checkpoint(session, source.name)
        try:
            for batch in source.read(checkpoint):
                total.path = batch.stats.path
                apply_events(session, batch.events, address_map, result, mapped_cache, evidence_cache)
                repository.save_checkpoint(session, source.name, batch.checkpoint, now)
                if commit:
                    session.commit()
                else:
                    session.flush()
                log.debug("source %s: batch committed, %d lines", source.name, batch.stats.lines_read)
                _merge(total, batch.stats)
                if on_batch is not None:
                    on_batch(source.name, batch)
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
        except OSError as exc:
            if commit:
                session.rollback()  # the failed batch only; earlier batches are committed
                evidence_cache.clear()  # it may hold the rolled-back batch
            log.error("source %s: read failed: %s", source.name, exc)
            result.errors.append({"stage": "source", "source": source.name, "error": f"read failed: {exc}"})
        if total.error:
            log.error("source %s: %s", source.name, total.error)
            result.errors.append({"stage": "source", "source": source.name, "error": total.error})
        log.info(
            "source %s: %d lines, %d events, %d malformed, %d foreign",
            source.name,
            total.lines_read,
            total.events,
            total.bad_lines,
            total.foreign_lines,
        )
        result.sources.append(
            {
                "name": source.name,
                "file": total.path,
                "lines_read": total.lines_read,
                "foreign_lines": total.foreign_lines,
                "ignored_lines": total.foreign_lines,  # the former name, kept for readers of stored reports
                "bad_lines": total.bad_lines,
                "bad_line_examples": [b.to_json() for b in total.bad_line_examples],
                "events": total.events,
                "restarted": total.restarted,
                "files_read": total.files_read,
            }
        )
    return result


def ingest_logs(connector: Connector, clock: Callable[[], datetime]) -> IngestResult:
    """The ``ingest`` job: read every configured source, commit evidence batch by batch."""
    with connector.sessions() as session:
        return ingest(session, connector.sources, connector.address_map, now=clock(), stop=connector.stop)
