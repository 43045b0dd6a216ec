"""What the safety layer costs a cycle: ingest with and without the event log, and the guard stage.

    .venv/bin/python bench/bench_safety.py [MESSAGES]

Prints seconds and ratios against a baseline measured in the same run (SmartCreate with the event log
switched off), and the time spent writing the event log itself.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.app import build_connector
from connector.config import load_settings
from connector.store import safety as safety_store
from jobs.cycle import run_cycle
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow

T0 = utc("2026-10-01T00:00:00")
NOW = utc("2026-11-27T00:00:00")
REPEAT = 3


def make(root: Path, messages: int, method: str) -> Path:
    rng = random.Random(1)
    flow = MailFlow()
    ad = AdDirectory()
    people = [f"u{i}@acme.test" for i in range(max(10, messages // 20))]
    for person in people[: len(people) // 2]:
        ad.user(person.partition("@")[0], person)
    for n in range(messages):
        flow.deliver(T0 + timedelta(seconds=n * 97 + rng.randrange(60)), rng.choice(people))
    flow.write(root / "mail.log")
    ad.write(root / "directory.ldif")
    config = {
        "state": {"url": f"sqlite:///{root / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"acme.test": {"org": "Acme", "method": method}},
        "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "active_directory"},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    return root / "c.yaml"


def cycle_seconds(config: Path, *, event_log: bool) -> tuple[float, float]:
    """(whole cycle, of which writing the event log) in seconds."""

    def clock() -> datetime:
        return NOW

    spent = [0.0]
    real_log_events = safety_store.log_keyed_events

    def timed_log_events(*args: Any, **kwargs: Any) -> int:
        start = time.perf_counter()
        written = real_log_events(*args, **kwargs) if event_log else 0
        spent[0] += time.perf_counter() - start
        return written

    connector = build_connector(load_settings(config), {}, clock=clock)
    start = time.perf_counter()
    with mock.patch("jobs.ingest.safety_store.log_keyed_events", timed_log_events):
        run_cycle(connector, clock=clock)
    return time.perf_counter() - start, spent[0]


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures: dict[str, tuple[float, float]] = {}
        for name, method, event_log in (
            ("baseline: smartcreate, no event log", "smartcreate", False),
            ("smartcreate + event log", "smartcreate", True),
            ("autocreate + event log + passive catch-all", "autocreate", True),
        ):
            runs = []
            for attempt in range(REPEAT):  # the best of a few: other work shares this machine
                folder = root / f"{len(figures)}-{attempt}"
                folder.mkdir()
                runs.append(cycle_seconds(make(folder, messages, method), event_log=event_log))
            figures[name] = min(runs)
        base = figures["baseline: smartcreate, no event log"][0]
        print(f"{messages} messages, {messages * 4} log lines, best of {REPEAT}")
        for name, (seconds, logging_seconds) in figures.items():
            print(
                f"  {name:<45} {seconds:6.2f} s  x{seconds / base:.2f}  ({messages / seconds:,.0f} messages/s); "
                f"event log writes {logging_seconds:.2f} s ({logging_seconds / seconds:.0%})"
            )


if __name__ == "__main__":
    main()
