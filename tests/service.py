"""Helpers for the service tests: a demo config on any state database, a big log, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from connector.store.database import make_engine, make_sessionmaker
from connector.store.models import CheckpointRow, JobStatusRow, RunRow

CONNECTOR = str(Path(sys.executable).parent / "connector")


def service_config(demo_config: Path, state_url: str, **overrides: Any) -> Path:
    """The demo config on ``state_url`` with ``overrides`` merged in at the top level."""
    data = yaml.safe_load(demo_config.read_text())
    data["state"] = {"url": state_url}
    data.update(overrides)
    demo_config.write_text(yaml.safe_dump(data))
    return demo_config


def grow_log(config: Path, copies: int) -> int:
    """Repeat the demo log ``copies`` times (ingest then takes a while); returns the line count."""
    log = config.parent / "demo" / "logs" / "mail.log"
    text = log.read_text()
    log.write_text(text * copies)
    return text.count("\n") * copies


def start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_CONFIG"}
    return subprocess.Popen(
        [CONNECTOR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )


def stop(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class State:
    """Read the state database the processes write."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    # Polling may start before the process has migrated the schema: no table yet reads as nothing.
    def runs(self) -> list[RunRow]:
        try:
            with self.sessions() as session:
                return list(session.scalars(select(RunRow).order_by(RunRow.id)))
        except (OperationalError, ProgrammingError):
            return []

    def checkpoint(self) -> dict[str, Any] | None:
        try:
            with self.sessions() as session:
                row = session.scalars(select(CheckpointRow)).first()
                return dict(row.data) if row else None
        except (OperationalError, ProgrammingError):
            return None

    def job(self, name: str) -> JobStatusRow | None:
        try:
            with self.sessions() as session:
                return session.scalars(select(JobStatusRow).where(JobStatusRow.job == name)).first()
        except (OperationalError, ProgrammingError):
            return None

    def close(self) -> None:
        self.engine.dispose()
