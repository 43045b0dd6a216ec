"""``connector run``: a SIGTERM that lands while the scheduler hands a job to its thread pool stops it.

The signal handler runs in the main thread between two steps of whatever that was doing. Shutting
the scheduler down right there, inside the pool's ``submit`` (which holds the lock ``shutdown``
takes), hung the process for good: seen under load in the suite's
``test_sigterm_waits_for_the_running_job_at_most_the_grace_time``. Here the signal is sent from
inside ``submit`` every time, in a child process, so that a hang fails the test instead of hanging it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.service import service_config

CHILD = """
import concurrent.futures.thread as pool
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from connector.app import build_connector
from connector.config import load_settings
from connector.config.runtime import JobSchedule, Role
from jobs.registry import Job
from jobs.scheduler import run_scheduler

adjust = pool.ThreadPoolExecutor._adjust_thread_count


def signal_inside_submit(self):
    # submit() holds the pool's shutdown lock around this call: the handler runs right here
    sys.stderr.write("SIGTERM inside submit\\n")
    os.kill(os.getpid(), signal.SIGTERM)
    adjust(self)


pool.ThreadPoolExecutor._adjust_thread_count = signal_inside_submit
connector = build_connector(load_settings(Path(sys.argv[1])), {})
jobs = {"quick": Job(lambda c, clock: None, Role.DECIDE, ("cycle",), JobSchedule(every_seconds=3600), "quick")}
now = datetime.now(UTC)
sys.exit(0 if run_scheduler(connector, lambda: now, None, jobs) else 3)
"""


def test_sigterm_while_a_job_is_submitted_stops_the_scheduler(demo_config: Path) -> None:
    config = service_config(demo_config, f"sqlite:///{demo_config.parent}/state.sqlite")
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, str(config)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"the scheduler did not stop within 60 s of the signal:\n{hung.stderr!r}") from None
    assert "SIGTERM inside submit" in result.stderr  # the signal did land inside submit
    assert result.returncode == 0, result.stderr
