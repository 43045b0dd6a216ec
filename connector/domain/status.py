"""How a run and a job ended: the stable strings stored in ``runs.status``, ``job_status`` and the report.

``StrEnum`` so that a stored value, a JSON report and a log line keep the plain string
(``RunStatus.OK == "ok"``, ``json.dumps`` writes ``"ok"``) while code compares members.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's status (``status`` of the report, docs/report.schema.json ``$defs/status``)."""

    RUNNING = "running"  # started, its report not final yet
    OK = "ok"  # everything done
    PARTIAL = "partial"  # finished, but something was deferred or failed (see its errors)
    FAILED = "failed"  # the run stopped
    INTERRUPTED = "interrupted"  # its process died; a later run closed it with what it had done


class JobStatus(StrEnum):
    """How one run of a scheduled job ended (``job_status``, ``connector health``, the job metrics)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"  # not run: its lock was busy, or the service is shutting down


# A job that ran to its end, fully or not: counts as a success for ``connector health`` and the metrics.
JOB_RAN = frozenset({JobStatus.OK, JobStatus.PARTIAL})


def job_status_of_run(status: RunStatus) -> JobStatus:
    """The job status of a decide run: a run's own status, which is always finished by then."""
    if status in (RunStatus.OK, RunStatus.PARTIAL):
        return JobStatus(status.value)
    return JobStatus.FAILED
