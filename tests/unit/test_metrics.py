"""Prometheus metrics fed from a cycle's report: the lifecycle counters and gauges."""

from __future__ import annotations

from connector.monitoring.metrics import Metrics
from tests.sample_report import busy_lifecycle, quiet_lifecycle


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_lifecycle_series_exists_at_zero_before_any_cycle() -> None:
    metrics = Metrics()
    body = metrics.exposition().decode()
    assert 'connector_lifecycle_changes_total{kind="recreate"} 0.0' in body
    assert 'connector_lifecycle_failed_total{kind="move"} 0.0' in body
    assert 'connector_lifecycle_held_total{kind="delete"} 0.0' in body
    assert 'connector_lifecycle_held_total{kind="move"}' not in body  # only destructive changes are held
    assert "connector_managed_users 0.0" in body


def test_lifecycle_counters_add_up_per_kind_and_gauges_follow_the_last_cycle() -> None:
    metrics = Metrics()
    busy = busy_lifecycle()
    metrics.observe_lifecycle(busy)
    metrics.observe_lifecycle(busy)
    metrics.observe_lifecycle(None)  # lifecycle off, or a schema-1 report: nothing changes
    for kind in ("move", "update", "add_aliases", "remove_aliases", "suspend", "reactivate", "delete", "repair"):
        assert sample(metrics, "connector_lifecycle_changes_total", kind=kind) == 2.0, kind
    assert sample(metrics, "connector_lifecycle_changes_total", kind="recreate") == 2.0
    assert sample(metrics, "connector_lifecycle_held_total", kind="suspend") == 2.0
    assert sample(metrics, "connector_lifecycle_failed_total", kind="update") == 2.0
    assert sample(metrics, "connector_lifecycle_failed_total", kind="move") == 0.0  # deferred is not failed
    assert (sample(metrics, "connector_managed_users"), sample(metrics, "connector_unmanaged_users")) == (24.0, 3.0)

    metrics.observe_lifecycle(quiet_lifecycle())
    assert (sample(metrics, "connector_managed_users"), sample(metrics, "connector_unmanaged_users")) == (2.0, 0.0)
    assert sample(metrics, "connector_lifecycle_changes_total", kind="move") == 2.0
