"""Ingest: read new log lines, fold their events into per-address evidence.

Evidence is held in memory for the whole run and written behind
(``connector/store/evidence_cache.py``): each batch's events are folded in
memory and logged, its checkpoint recorded, and every ``sources[].commit_seconds`` (or
``COMMIT_ROWS`` rows, or at the end of a source) the changed evidence rows are
written and committed together with the latest checkpoint, in one transaction.
A crash loses the uncommitted batches' evidence, events and checkpoint together,
so their lines are read again: never lost, never counted twice.

A batch whose lines the source's format (almost) does not recognise
(``connector.sources.recognition``) is not stored at all: the source is in
error, the run partial, and its checkpoint stays before those lines, so they
are read once the format is fixed. A source whose patterns match no file is a
warning, then, after ``missing_after``, an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from connector.domain.events import DeliveryEvent
from connector.domain.evidence import AddressEvidence
from connector.monitoring.health import missing_files_problem
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress, normalise_address
from connector.policy.evidence import fold_events
from connector.sources.base import LogSource, SourceBatch, SourceCheckpoint, SourceStats
from connector.sources.recognition import Recognition, recognition_of
from connector.store import repository
from connector.store import safety as safety_store
from connector.store.bounds import storable_event
from connector.store.evidence_cache import EVIDENCE_CACHE_LIMIT, EvidenceCache
from connector.store.reread import not_yet_counted

if TYPE_CHECKING:  # the composition root (and every adapter) loads only for the scheduler's job
    from connector.app import Connector

log = logging.getLogger(__name__)
EXAMPLES = 3
MAPPED_CACHE_LIMIT = 10_000  # recipients as logged (``RecipientCache``, ~250 bytes each: 2.5 MB, full before 1M lines)
COMMIT_ROWS = 200_000  # ... or once this many events and evidence rows wait (bounds the transaction)


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
    already_counted: int = 0
    """Events a re-read (``connector source reset``) left out: the event log already had them."""


def _merge_notes(total: SourceStats, batch: SourceStats) -> None:
    """What a batch says about the files (kept even when its lines are not)."""
    total.error = total.error or batch.error
    if batch.restarted:
        total.note(batch.restarted)
    total.unmatched_patterns.extend(p for p in batch.unmatched_patterns if p not in total.unmatched_patterns)
    total.nothing_matched = total.nothing_matched or batch.nothing_matched


def _merge(total: SourceStats, batch: SourceStats) -> None:
    total.lines_read += batch.lines_read
    total.foreign_lines += batch.foreign_lines
    total.events += batch.events
    total.before_read_from += batch.before_read_from
    for bad in batch.bad_line_examples:
        if len(total.bad_line_examples) < 5:
            total.bad_line_examples.append(bad)
    total.bad_lines += batch.bad_lines
    _merge_notes(total, batch)
    total.files_read.extend(f for f in batch.files_read if f not in total.files_read)


def recognition_of_batch(source: LogSource, batch: SourceBatch, now: datetime) -> Recognition:
    """How much of ``batch`` the source's format recognised (the rule is in ``sources.recognition``)."""
    stats = batch.stats
    return recognition_of(
        source.format_name,
        lines=stats.lines_read,
        foreign=stats.foreign_lines,
        malformed=stats.bad_lines,
        foreign_sample=batch.foreign_sample,
        at=now,
    )


def _seen_as(recipient: str, address: str) -> str | None:
    lowered = recipient.lower()
    return lowered if lowered != address else None


Route = tuple[str, DomainRule | None, str, str | None]
"""What a recipient as logged maps to: ``(canonical address, its domain's rule (None: unmanaged),
the mapped domain, the spelling when it is not the address (seen_as))``."""
_UNKNOWN: Any = object()


class RecipientCache:
    """Recipient as logged -> its ``Route`` (None: not a valid address), shared by a run's batches.

    Bounded: past ``limit`` recipients the older half is evicted, in the order they were first
    mapped (clearing the whole cache made every busy address be mapped again: 6 % of ingest). A
    route is a small tuple, not the ``MappedAddress`` with its ``explain`` steps: ~300 bytes each.
    """

    def __init__(self, address_map: AddressMap, limit: int = MAPPED_CACHE_LIMIT) -> None:
        self.address_map = address_map
        self.limit = limit
        self.known: dict[str, Route | None] = {}
        self._domains: dict[str, str] = {}  # one string per mapped domain, shared by its routes

    def add(self, recipient: str) -> Route | None:
        """Map ``recipient`` (not known yet) and keep the answer: ``AddressMap.map``'s address, rule
        and domain, without the ``explain`` steps it also writes (a third of its cost)."""
        address_map = self.address_map
        try:
            local, _, domain = normalise_address(recipient).rpartition("@")
        except InvalidAddress:
            route: Route | None = None
        else:
            mapped_domain = address_map.map_domain(domain)[0]
            domain = self._domains.setdefault(mapped_domain, mapped_domain)
            address = f"{local}@{domain}"
            route = (address, address_map.rule_for(domain), domain, _seen_as(recipient, address))
        known = self.known
        if len(known) >= self.limit:
            for old in list(itertools.islice(known, len(known) - self.limit // 2)):
                del known[old]
        known[recipient] = route
        return route


Folded = list[tuple[DeliveryEvent, str | None, str]]
"""One address's events of a batch, in order: ``(event, seen_as, message key)``."""


def _route(
    events: Sequence[DeliveryEvent], recipients: RecipientCache, result: IngestResult
) -> tuple[dict[str, Folded], dict[str, tuple[DomainRule, str]]]:
    """The events of managed addresses by canonical address, each made storable and keyed once;
    invalid and unmanaged recipients are counted in ``result``. Also each address's rule and domain."""
    per_address: dict[str, Folded] = {}
    rules: dict[str, tuple[DomainRule, str]] = {}
    known, unknown = recipients.known, _UNKNOWN
    for event in events:
        recipient = event.recipient
        route = known.get(recipient, unknown)
        if route is unknown:
            route = recipients.add(recipient)
        if route is None:
            result.invalid_recipients += 1
            if len(result.invalid_examples) < EXAMPLES:
                result.invalid_examples.append(recipient[:200])
            continue
        address, rule, domain, seen_as = route
        items = per_address.get(address)
        if items is None:
            if rule is None:
                tally = result.unmanaged[domain]
                tally.deliveries += 1
                if len(tally.addresses) < 1000:
                    tally.addresses.add(address)
                continue
            per_address[address] = items = []
            rules[address] = (rule, domain)
        stored = storable_event(event)  # no NUL, fits the columns
        if stored is not event:
            seen_as = _seen_as(stored.recipient, address)
        items.append((stored, seen_as, stored.message_key))
    return per_address, rules


def apply_events(
    session: Session,
    events: Sequence[DeliveryEvent],
    address_map: AddressMap,
    result: IngestResult,
    cache: EvidenceCache,
    recipients: RecipientCache | None = None,
    *,
    rereading: bool = False,
    log_since: datetime | None = None,
) -> int:
    """Fold ``events`` into the evidence held by ``cache`` and log them; returns how many addresses changed.

    The evidence is written when the caller flushes ``cache`` (with its checkpoint); the caller must
    ``cache.forget()`` when it rolls back. ``recipients`` (recipient as logged -> mapped address)
    may be shared between batches. ``rereading``: the source was reset; events already in the event
    log are left out. Each event is made storable and its message key computed once, for the
    event log and the fold alike; each address is folded once per batch. Events before ``log_since``
    are folded, not logged (``safety_store.event_log_since``: housekeeping would prune them).
    """
    per_address, rules = _route(events, recipients or RecipientCache(address_map), result)
    if rereading and per_address:
        fresh, dropped = not_yet_counted(
            session, {a: [(item[0], item) for item in items] for a, items in per_address.items()}
        )
        per_address = {address: [item for _, item in pairs] for address, pairs in fresh.items()}
        result.already_counted += dropped

    stored = cache.load(session, per_address)
    safety_store.log_keyed_events(
        session,
        ((address, event, key) for address, items in per_address.items() for event, _, key in items),
        log_since,
    )
    for address, items in per_address.items():
        rule, domain = rules[address]
        evidence = stored.get(address) or AddressEvidence(address=address)
        cache.put(fold_events(evidence, items, rule.threshold, rule.window), domain)
    cache.trim(session)
    return len(per_address)


# Allocations (net of frees) between young collections while ingest runs (Python's default: 700);
# 50,000 still spent 0.3-0.4 s of CPU in young collections on the 1M-line log, 200,000 0.01 s.
GC_FIRST_THRESHOLD = 200_000
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while ingest runs; the thresholds are restored after.

    Ingest allocates millions of short-lived objects (events, rows) that reference counting frees,
    and holds tens of thousands of long-lived ones (the run's evidence): with the default thresholds
    the collector ran ~1,400 times on the 1M-line reference log, ten of them full collections walking
    all the held evidence, 16 % of the run's CPU. Cycles are still collected, only less often. The
    thresholds are process-wide: overlapping runs (threads) share one setting, restored by the last.
    """
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            if _gc_saved[0]:  # 0: the collector is off; leave it so
                gc.set_threshold(max(_gc_saved[0], GC_FIRST_THRESHOLD), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)


@dataclass
class _WriteBehind:
    """When ingest commits, and what the batches since the last commit said.

    A commit writes the changed evidence rows (``EvidenceCache.flush``) and ends the
    transaction that already holds those batches' event-log rows and their latest
    checkpoint. ``commit=False`` (dry run) only flushes.
    """

    session: Session
    cache: EvidenceCache
    commit: bool
    commit_seconds: float  # ``sources[].commit_seconds``: at most this long after the previous commit ...
    last_commit: float = field(default_factory=time.monotonic)
    rows: int = 0  # events logged and addresses changed since the last commit
    pending: list[SourceStats] = field(default_factory=list)  # stats of the batches not committed yet

    def add(self, stats: SourceStats, rows: int) -> None:
        self.pending.append(stats)
        self.rows += rows

    def due(self) -> bool:
        return self.rows >= COMMIT_ROWS or time.monotonic() - self.last_commit >= self.commit_seconds

    def write(self, source: str, total: SourceStats) -> None:
        """Write and commit what is pending; its batches now count in ``total``."""
        if not self.pending:
            return
        written = self.cache.flush(self.session)
        if self.commit:
            self.session.commit()
        else:
            self.session.flush()
        lines = sum(stats.lines_read for stats in self.pending)
        for stats in self.pending:
            _merge(total, stats)
        log.debug(
            "source %s: batch committed: %d batch(es), %d lines, %d evidence rows",
            source,
            len(self.pending),
            lines,
            written,
        )
        self.pending.clear()
        self.rows = 0
        self.last_commit = time.monotonic()

    def roll_back(self, total: SourceStats) -> None:
        """The uncommitted batches are undone (their lines are read again next run); their notes are kept."""
        if self.commit:
            self.session.rollback()
            self.cache.forget()  # it may hold the rolled-back evidence
        for stats in self.pending:
            _merge_notes(total, stats)
        self.pending.clear()
        self.rows = 0


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

    When ``stop`` is set, reading ends after the batch in progress, which is committed.
    ``on_batch(source_name, batch)`` is called after each batch is folded in (progress display;
    its commit may come a little later, ``source.commit_seconds``).
    """
    with fewer_collections():
        return _ingest(session, sources, address_map, now=now, commit=commit, stop=stop, on_batch=on_batch)


def _ingest(
    session: Session,
    sources: Sequence[LogSource],
    address_map: AddressMap,
    *,
    now: datetime,
    commit: bool,
    stop: threading.Event | None,
    on_batch: Callable[[str, SourceBatch], None] | None,
) -> IngestResult:
    result = IngestResult()
    recipients = RecipientCache(address_map)
    cache = EvidenceCache(limit=EVIDENCE_CACHE_LIMIT)
    since = safety_store.event_log_since(session, now)  # older events are folded, not logged
    for source in sources:
        if stop is not None and stop.is_set():
            result.interrupted = True
            break
        total = SourceStats()
        checkpoint = repository.load_checkpoint(session, source.name)
        rereading = checkpoint is not None and checkpoint.rereading
        counted_before = result.already_counted
        unrecognised: Recognition | None = None
        writer = _WriteBehind(session, cache, commit, source.commit_seconds)
        batches = source.read(checkpoint)
        try:
            for batch in batches:
                total.path = batch.stats.path
                recognition = recognition_of_batch(source, batch, now)
                if recognition.failed:
                    # Nothing of this batch is stored, its checkpoint neither: the lines are read
                    # again next run, once the format is right.
                    unrecognised = recognition
                    _merge_notes(total, batch.stats)
                    break
                changed = apply_events(
                    session, batch.events, address_map, result, cache, recipients, rereading=rereading, log_since=since
                )
                # Recorded with every batch, committed with the evidence when the writer commits.
                repository.save_checkpoint(session, source.name, _missing_mark(batch, checkpoint, now), now)
                writer.add(batch.stats, len(batch.events) + changed)
                log.debug("source %s: batch read, %d lines", source.name, batch.stats.lines_read)
                interrupted = stop is not None and stop.is_set()
                if interrupted or writer.due():
                    writer.write(source.name, total)
                if on_batch is not None:
                    on_batch(source.name, batch)
                if interrupted:
                    result.interrupted = True
                    break
            writer.write(source.name, total)  # the source's last batches (or those before an unrecognised one)
        except OSError as exc:
            writer.roll_back(total)  # the batches since the last commit; earlier ones are committed
            log.error("source %s: read failed: %s", source.name, exc)
            result.errors.append({"stage": "source", "source": source.name, "error": f"read failed: {exc}"})
        finally:
            batches.close()  # a generator left early: close its file now
        if total.error:
            log.error("source %s: %s", source.name, total.error)
            result.errors.append({"stage": "source", "source": source.name, "error": total.error})
        if unrecognised is not None:
            log.error(
                "source %s: %s; nothing stored, the checkpoint stays before these lines",
                source.name,
                unrecognised.one_line(),
            )
            result.errors.append({"stage": "source", "source": source.name, "error": unrecognised.one_line()})
        if total.nothing_matched and not total.error:
            _report_missing(source, total, checkpoint, now, result)
        log.info(
            "source %s: %d lines, %d events, %d malformed, %d foreign",
            source.name,
            total.lines_read,
            total.events,
            total.bad_lines,
            total.foreign_lines,
        )
        if rereading or total.before_read_from:
            log.info(
                "source %s: re-read after a reset: %d event(s) already counted left out, %d dated before %s dropped",
                source.name,
                result.already_counted - counted_before,
                total.before_read_from,
                checkpoint.read_from.isoformat() if checkpoint and checkpoint.read_from else "-",
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


def _missing_mark(batch: SourceBatch, previous: SourceCheckpoint | None, now: datetime) -> SourceCheckpoint:
    """The batch's checkpoint, remembering since when the source's patterns match no file."""
    if not batch.stats.nothing_matched:
        return batch.checkpoint  # files again: the mark is gone
    since = (previous.missing_since if previous is not None else None) or now
    return dataclasses.replace(batch.checkpoint, missing_since=since)


def _report_missing(
    source: LogSource, total: SourceStats, previous: SourceCheckpoint | None, now: datetime, result: IngestResult
) -> None:
    """No pattern matched a file: a warning at once, an error after ``source.missing_after``."""
    since = (previous.missing_since if previous is not None else None) or now
    problem = missing_files_problem(total.unmatched_patterns, since, now, source.missing_after)
    if problem is None:
        log.warning(
            "source %s: no file matches %s (an error after %g min)",
            source.name,
            ", ".join(total.unmatched_patterns),
            source.missing_after.total_seconds() / 60,
        )
        return
    log.error("source %s: %s", source.name, problem)
    result.errors.append({"stage": "source", "source": source.name, "error": problem})


def ingest_logs(connector: Connector, clock: Callable[[], datetime]) -> IngestResult:
    """The ``ingest`` job: read every configured source, commit evidence batch by batch."""
    with connector.sessions() as session:
        return ingest(session, connector.sources, connector.address_map, now=clock(), stop=connector.stop)
