"""Prometheus metrics, on a registry of their own (no process-wide default registry)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from connector.domain.decisions import CandidateState
from connector.domain.lifecycle import ChangeKind
from connector.domain.report import LIFECYCLE_CHANGES


class Metrics:
    """What ``connector run`` exposes; the job runner feeds it from each job's outcome."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines_ingested = Counter(
            "connector_log_lines_ingested", "Log lines read, per source", ["source"], registry=r
        )
        self.events = Counter("connector_delivery_events", "Delivery events parsed, per source", ["source"], registry=r)
        self.candidates = Gauge("connector_candidates", "Candidate addresses by state", ["state"], registry=r)
        self.users_created = Counter("connector_users_created", "Users created in the compliance directory", registry=r)
        self.errors = Counter("connector_errors", "Errors by kind (stage or exception class)", ["kind"], registry=r)
        self.job_runs = Counter("connector_job_runs", "Job runs by job and status", ["job", "status"], registry=r)
        self.job_duration = Histogram(
            "connector_job_duration_seconds",
            "Job (and cycle) duration",
            ["job"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=r,
        )
        self.last_success = Gauge(
            "connector_last_success_timestamp_seconds",
            "Unix time of the last successful run, per job",
            ["job"],
            registry=r,
        )
        self.lifecycle_changes = Counter(
            "connector_lifecycle_changes", "Lifecycle changes made to managed users, per kind", ["kind"], registry=r
        )
        self.lifecycle_held = Counter(
            "connector_lifecycle_held",
            "Destructive lifecycle changes held for a person (counted again each run they stay held), per kind",
            ["kind"],
            registry=r,
        )
        self.lifecycle_failed = Counter(
            "connector_lifecycle_failed", "Lifecycle changes the target refused, per kind", ["kind"], registry=r
        )
        self.managed_users = Gauge(
            "connector_managed_users", "Target users the connector manages (last cycle)", registry=r
        )
        self.unmanaged_users = Gauge(
            "connector_unmanaged_users", "Target users the connector does not manage (last cycle)", registry=r
        )
        for state in CandidateState:
            self.candidates.labels(state.value).set(0)
        for kind in ChangeKind:  # every series exists from the start, so rate() and alerts see zeros
            self.lifecycle_changes.labels(kind.value)
            self.lifecycle_failed.labels(kind.value)
            if kind.destructive:
                self.lifecycle_held.labels(kind.value)

    def observe_sources(self, sources: Iterable[Mapping[str, Any]]) -> None:
        for source in sources:
            self.lines_ingested.labels(source["name"]).inc(source["lines_read"])
            self.events.labels(source["name"]).inc(source["events"])

    def observe_errors(self, errors: Iterable[Mapping[str, Any]]) -> None:
        for error in errors:
            self.errors.labels(str(error.get("stage") or ("source" if "source" in error else "other"))).inc()

    def set_candidates(self, counts: Mapping[str, int]) -> None:
        for state in CandidateState:
            self.candidates.labels(state.value).set(counts.get(state.value, 0))

    def observe_lifecycle(self, section: Mapping[str, Any] | None) -> None:
        """A cycle's ``lifecycle`` report section (a real run's; nothing without one)."""
        if not section:
            return
        for name in LIFECYCLE_CHANGES:
            for change in section.get(name) or []:
                self.lifecycle_changes.labels(str(change["op"])).inc()
        for change in section.get("held") or []:
            self.lifecycle_held.labels(str(change["op"])).inc()
        for change in section.get("failed") or []:
            self.lifecycle_failed.labels(str(change["op"])).inc()
        self.managed_users.set(int(section.get("managed") or 0))
        self.unmanaged_users.set(int(section.get("unmanaged") or 0))

    def exposition(self) -> bytes:
        """The text format a scrape returns."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
        """Start the ``/metrics`` endpoint in a daemon thread; ``server.shutdown()`` stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return server, thread
