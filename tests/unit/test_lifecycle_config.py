"""The ``lifecycle`` section: defaults, and hostile values named by their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import parse_settings
from connector.errors import ConfigError
from tests.unit.test_reports_config import BASE


def test_defaults_suspend_only_and_hold_beyond_the_limits(tmp_path: Path) -> None:
    lifecycle = parse_settings(BASE, tmp_path).lifecycle
    assert lifecycle.enabled and lifecycle.suspend_leavers
    assert lifecycle.delete_after_days is None and lifecycle.inactivity_days is None
    assert (lifecycle.max_suspend_per_run, lifecycle.max_delete_per_run) == (100, 100)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("delete_after_days", 1e12),  # would overflow a timedelta in the cycle
        ("inactivity_days", 0),
        ("max_share_of_org", 1.5),
        ("max_suspend_per_run", -1),
        ("deletes_after_days", 30),  # misspelt
    ],
)
def test_bad_values_are_named_by_their_key(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings({**BASE, "lifecycle": {key: value}}, tmp_path)
    assert any(path == f"lifecycle.{key}" for path, _ in raised.value.problems), raised.value.problems


def test_adopt_patterns_are_lower_cased(tmp_path: Path) -> None:
    settings = parse_settings({**BASE, "lifecycle": {"adopt": ["*@ACME.com", "  "]}}, tmp_path)
    assert settings.lifecycle.adopt == ["*@acme.com"]
