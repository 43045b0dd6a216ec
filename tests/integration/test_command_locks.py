"""Commands that write state hold their job's locks: while another process holds them the command
does nothing and says so (exit 3); once they are free it runs (issue 15, Deliver 3). SQLite and PostgreSQL.

The other process is real: a Python process that takes the locks it is told to (one line on its standard
input) through ``make_job_locks`` on the same state database (an advisory lock per name on PostgreSQL,
``flock`` on SQLite), and releases them on an empty line.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.store import status
from connector.store.models import CatchAllRow, RunRow
from jobs.registry import COMMAND_LOCKS, JOBS
from tests.service import service_config
from tests.smtp_peers import smtp_peer

HOLDER = """
import sys
from contextlib import ExitStack
from connector.store.database import make_engine
from connector.store.locks import make_job_locks
locks = make_job_locks(make_engine(sys.argv[1]))
held = ExitStack()
for line in sys.stdin:
    names = line.split()
    held.close()
    if names:
        held.enter_context(locks.hold(names))
    print("held" if names else "released", flush=True)
"""
BUSY = "error: another process holds"


class OtherProcess:
    """Another process on the same state database, holding the locks it is told to (a run in progress)."""

    def __init__(self, state_url: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, state_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _say(self, line: str, answer: str) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        assert self._process.stdout.readline() == answer + "\n"

    def hold(self, locks: Sequence[str]) -> None:
        self._say(" ".join(locks), "held")

    @contextmanager
    def holding(self, locks: Sequence[str]) -> Iterator[None]:
        self.hold(locks)
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        self._say("", "released")

    def end(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(10)


@pytest.fixture
def other(state_url: str) -> Iterator[OtherProcess]:
    process = OtherProcess(state_url)
    yield process
    process.end()


def locks_of(command: str) -> tuple[str, ...]:
    return JOBS[COMMAND_LOCKS[command].job].locks


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def config(demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = service_config(demo_config, state_url)
    assert run(capsys, "db", "upgrade", "-c", str(path))[0] == 0
    return path


def counts(config: Path) -> tuple[int, int, dict[str, str | None]]:
    """Runs stored, catch-all rows stored, and each job's last status: what a command could have written."""
    connector = build_connector(load_settings(config), {}, read_only=True)
    try:
        with connector.sessions() as session:
            runs = session.scalar(select(func.count()).select_from(RunRow)) or 0
            catch_all = session.scalar(select(func.count()).select_from(CatchAllRow)) or 0
            jobs = {row.job: row.last_status for row in status.all_status(session)}
        return runs, catch_all, jobs
    finally:
        connector.engine.dispose()


def test_writing_commands_do_nothing_while_another_process_holds_their_locks(
    config: Path, other: OtherProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(config)
    plan = config.parent / "plan.json"
    with smtp_peer() as peer:
        commands = {
            "plan": ["plan", "-c", c, "-o", str(plan)],
            "probe": ["probe", "-c", c, "globex.com", "--server", f"{peer.host}:{peer.port}"],
            "directory refresh": ["directory", "refresh", "-c", c],
            "target refresh": ["target", "refresh", "-c", c],
            "report digest": ["report", "digest", "-c", c],
        }
        by_locks: dict[tuple[str, ...], list[str]] = {}
        for command in commands:
            by_locks.setdefault(locks_of(command), []).append(command)
        before = counts(config)
        for locks, group in by_locks.items():  # each command is refused by its own job's locks
            with other.holding(locks):
                for command in group:
                    code, out, err = run(capsys, *commands[command])
                    assert (code, out) == (3, ""), command
                    assert err.startswith(BUSY) and err.count("\n") == 1, (command, err)
        assert counts(config) == before and not plan.exists()  # nothing was written

        # Free again: each one runs, as before.
        assert run(capsys, *commands["plan"])[0] == 0 and plan.exists()
        assert run(capsys, *commands["probe"])[1].startswith("globex.com: accept_all")
    assert (
        run(capsys, *commands["directory refresh"])[1]
        == "no directory mirror is configured (directory.mirror.enabled)\n"
    )
    assert run(capsys, *commands["target refresh"])[1] == "nothing to pull for this target\n"
    assert run(capsys, *commands["report digest"])[:3:2] == (2, "no digest configured (reports.digest)\n")
    runs, catch_all, jobs = counts(config)
    assert (runs, catch_all) == (before[0] + 1, before[1] + 1)  # the plan's dry run; the probe's finding
    # The commands that are jobs ran as the job: their status is the job's.
    assert {name: jobs.get(name) for name in ("directory_mirror", "refresh_known", "digest")} == {
        "directory_mirror": "ok",
        "refresh_known": "ok",
        "digest": "ok",
    }


def test_a_command_given_time_waits_for_the_lock_and_then_runs(
    config: Path, other: OtherProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    other.hold(locks_of("source reset"))
    release = threading.Timer(0.5, other.release)  # the other process ends its run meanwhile
    release.start()
    started = time.monotonic()
    code, out, _ = run(capsys, "source", "reset", "-c", str(config), "demo-gateway", "--wait", "20")
    waited = time.monotonic() - started
    release.join()
    assert code == 0 and out.startswith("source demo-gateway:")
    assert 0.4 <= waited < 20
