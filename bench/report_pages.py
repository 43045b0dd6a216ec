"""What the stories and users per org of a run's page cost, on a real state (``jobs/report_context.py``).

    .venv/bin/python bench/attack.py --addresses 20000 --workdir /tmp/attack   # a state with an attack run
    .venv/bin/python -m bench.report_pages -c /tmp/attack/bench.yaml [RUN_ID]

Times ``page_context`` (every listed address told by ``connector explain``'s function,
the users per org) for the latest run (or RUN_ID), best of 3, and the size of its page
with and without them. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from pathlib import Path

from connector.app import build_connector
from connector.config import load_settings
from connector.reporting.html import render_run_html
from connector.store import repository
from jobs.report_context import page_context


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("run_id", type=int, nargs="?")
    args = parser.parse_args()
    connector = build_connector(load_settings(args.config), os.environ, read_only=True)
    with connector.sessions() as session:
        row = repository.get_run(session, args.run_id)  # None: the latest
        if row is None or not row.report:
            raise SystemExit(f"no finished run {args.run_id or ''}")
        run_id, report = row.id, dict(row.report)
    now = datetime.fromisoformat(report["finished_at"])
    best, context = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        context = page_context(connector, report, now=now)
        best = min(best, time.perf_counter() - started)
    if context is None:
        raise SystemExit("no page context was built")
    stories = len(context.stories)
    print(f"run {run_id}: {stories} stories and the users of {len(context.users)} org(s) in {best:.2f} s")
    print(f"  {best / max(stories, 1) * 1000:.1f} ms per address")
    with_context, alone = render_run_html(report, context), render_run_html(report)
    print(f"  page: {len(with_context) / 1e6:.2f} MB, {len(alone) / 1e6:.2f} MB without")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
