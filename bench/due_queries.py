#!/usr/bin/env python3
"""Benchmark: the queries a cycle finds its due addresses with, against the full scans they replace.

    .venv/bin/python bench/cycle.py --workdir /tmp/bench-cycle          # builds the states
    .venv/bin/python bench/due_queries.py /tmp/bench-cycle/long-small /tmp/bench-cycle/short-small

For each state folder of ``bench/cycle.py`` (copied to a temp dir first), the new traffic is ingested, then
``repository.iter_due``, ``earliest_due_first_seen_by_domain`` and ``catch_all_tallies`` are timed (median
of 5) next to the full scans of every evidence row they replaced (kept here), with a check that both give
the same answer; and the attack guard's look back (``jobs/safety.py: _bursts_to_check``): its time and
the addresses it read. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import case, func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from connector.app import build_connector  # noqa: E402
from connector.config import load_settings  # noqa: E402
from connector.domain.decisions import Method  # noqa: E402
from connector.store import repository  # noqa: E402
from connector.store.evidence_tallies import bounced_after_accept_condition  # noqa: E402
from connector.store.models import CandidateRow, EvidenceRow  # noqa: E402
from jobs import safety  # noqa: E402
from jobs.cycle import _due_query  # noqa: E402
from jobs.ingest import ingest_logs  # noqa: E402


def timed(connector: Any, work: Callable[[Session], Any], runs: int = 5) -> tuple[float, Any]:
    seconds, answer = [], None
    for _ in range(runs):
        with connector.sessions() as session:
            started = time.perf_counter()
            answer = work(session)
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer


def measure(folder: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-due-")) / folder.name
    shutil.copytree(folder, work)
    shutil.copyfile(work / "state.snapshot", work / "state.sqlite")
    config = work / "connector.yaml"
    config.write_text(config.read_text().replace(str(folder), str(work)))
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        now = session.scalar(select(func.max(EvidenceRow.last_seen_at))) + timedelta(minutes=5)
    ingest_logs(connector, lambda: now)
    due = _due_query(connector, now, False, ())
    joined = select(EvidenceRow.domain).outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
    checked = [d for d, rule in connector.address_map.rules.items() if rule.method in (Method.AUTOCREATE, Method.AUTO)]

    def full_scan(session: Session) -> list[str]:
        stmt = joined.with_only_columns(EvidenceRow.address).where(due.condition_all())
        return list(session.scalars(stmt.order_by(EvidenceRow.domain, EvidenceRow.address)))

    def full_earliest(session: Session) -> dict[str, Any]:
        stmt = joined.add_columns(func.min(EvidenceRow.first_seen_at)).where(due.condition_all())
        stmt = stmt.where(EvidenceRow.first_seen_at.is_not(None)).group_by(EvidenceRow.domain)
        return dict(session.execute(stmt).all())

    def full_tallies(session: Session) -> dict[str, tuple[int, int, int]]:
        bounced = func.sum(case((bounced_after_accept_condition(), 1), else_=0))
        stmt = select(EvidenceRow.domain, func.count(), func.count(EvidenceRow.rejected_at), bounced)
        rows = session.execute(stmt.where(EvidenceRow.domain.in_(checked)).group_by(EvidenceRow.domain))
        return {domain: (n, refused, int(b or 0)) for domain, n, refused, b in rows}

    def kept_tallies(session: Session) -> dict[str, tuple[int, int, int]]:
        tallies = repository.catch_all_tallies(session, checked)
        return {d: (t.recipients, t.refused_at_rcpt, t.async_bounces) for d, t in tallies.items() if t.recipients}

    with connector.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(EvidenceRow))
        marked = session.scalar(select(func.count()).where(EvidenceRow.due_at <= now))
    print(f"{folder.name}: {rows:,} evidence rows, {marked:,} marked due at or before now")
    pairs = (
        ("iter_due", lambda s: [e.address for e in repository.iter_due(s, due)], full_scan),
        ("earliest due per domain", lambda s: repository.earliest_due_first_seen_by_domain(s, due), full_earliest),
        ("catch-all tallies", kept_tallies, full_tallies),
    )
    for name, new, old in pairs:
        new_seconds, new_answer = timed(connector, new)
        old_seconds, old_answer = timed(connector, old)
        same = "same answer" if new_answer == old_answer else "DIFFERENT ANSWERS"
        print(f"  {name:<24} {new_seconds * 1000:8.1f} ms   full scan {old_seconds * 1000:8.1f} ms   {same}")
    read = 0
    look_back = repository.first_seen_since

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal read
        for row in look_back(*args, **kwargs):
            read += 1
            yield row

    repository.first_seen_since = counted  # type: ignore[assignment]
    seconds, bursts = timed(connector, lambda s: safety._bursts_to_check(s, connector, due), runs=1)
    repository.first_seen_since = look_back  # type: ignore[assignment]
    print(f"  attack guard look back   {seconds * 1000:8.1f} ms   {read:,} addresses read, {len(bursts)} burst(s)")
    connector.engine.dispose()
    shutil.rmtree(work.parent)


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for folder in sys.argv[1:]:
        measure(Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
