"""Ingest and decide throughput on SQLite and on PostgreSQL, for sizing (docs/deploy.md).

    .venv/bin/python -m bench.state_store [--copies 300]

Builds a log of COPIES x the demo log (603 lines, 75 delivery events each),
then times one ingest job and one decide job through ``run_job`` (locks and
job status included) on each backend. SQLite is the baseline; PostgreSQL is
printed as a ratio against it. PostgreSQL runs locally with fsync off, as in
the tests: a networked server with durable commits is slower per batch.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from connector.app import build_connector, utc_now
from connector.config import load_settings
from jobs.registry import run_job
from tests.postgres import postgres_server

ROOT = Path(__file__).resolve().parent.parent


def prepare(base: Path, url: str, copies: int) -> Path:
    shutil.copytree(ROOT / "config" / "demo", base / "demo")
    log = base / "demo" / "logs" / "mail.log"
    log.write_text(log.read_text() * copies)
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["state"] = {"url": url}
    path = base / "connector.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(config: Path) -> dict[str, float]:
    connector = build_connector(load_settings(config), {})
    lines = sum(1 for _ in (config.parent / "demo" / "logs" / "mail.log").open())
    started = time.perf_counter()
    if run_job(connector, "ingest", utc_now).status != "ok":
        raise SystemExit("the ingest job failed")
    ingest = time.perf_counter() - started
    started = time.perf_counter()
    if run_job(connector, "decide", utc_now).status != "ok":
        raise SystemExit("the decide job failed")
    decide = time.perf_counter() - started
    connector.engine.dispose()
    return {"lines": lines, "ingest_s": ingest, "lines_per_s": lines / ingest, "decide_s": decide}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = measure(prepare(Path(tmp) / "sqlite", f"sqlite:///{tmp}/sqlite/state.sqlite", args.copies))
        with postgres_server() as server:
            postgres = measure(prepare(Path(tmp) / "pg", server.create_database(), args.copies))
    for name, figures in (("sqlite (baseline)", sqlite), ("postgresql", postgres)):
        print(
            f"{name:<18} {figures['lines']:>9,.0f} lines  ingest {figures['ingest_s']:6.2f} s "
            f"({figures['lines_per_s']:>9,.0f} lines/s)  decide {figures['decide_s']:5.2f} s"
        )
    print(f"postgresql / sqlite ingest time ratio: {postgres['ingest_s'] / sqlite['ingest_s']:.2f}")


if __name__ == "__main__":
    main()
