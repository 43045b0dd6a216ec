"""Pure parts of the targets: filter escaping, payloads, back-off, Retry-After, quarantine, config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.compliance.base import NewUser
from connector.compliance.scim_mapping import filter_value, snapshot_of, user_filter, user_payload
from connector.compliance.target_state import quarantine_until
from connector.config import parse_settings
from connector.config.target import QuarantineSettings, RetrySettings
from connector.errors import ConfigError
from connector.http_policy import backoff_delay, retry_after_seconds
from tests.conftest import utc

T0 = utc("2026-11-27T10:00:00")


def test_filter_values_escape_quotes_and_backslashes() -> None:
    assert filter_value('a"b\\c') == '"a\\"b\\\\c"'
    assert user_filter('x" or userName pr or "') == 'userName eq "x\\" or userName pr or \\""'


def test_user_payload() -> None:
    payload = user_payload(NewUser("bob@acme.com", "Acme", ("robert@acme.com",), "Bob", "id-1"))
    assert payload["userName"] == "bob@acme.com" and payload["externalId"] == "id-1"
    assert payload["emails"] == [
        {"value": "bob@acme.com", "primary": True, "type": "work"},
        {"value": "robert@acme.com"},
    ]
    assert payload["active"] is True and payload["displayName"] == "Bob"


def test_snapshot_of_listed_users() -> None:
    users, aliases = snapshot_of(
        [
            {"userName": "Bob@acme.com", "emails": [{"value": "bob@acme.com"}, {"value": "Robert@acme.com"}]},
            {"userName": "jdoe", "emails": [{"value": "j@x.com"}, {"value": "john@acme.com", "primary": True}]},
            {"userName": "no-address"},
        ]
    )
    assert users == ["bob@acme.com", "john@acme.com"]
    assert aliases == {"robert@acme.com": "bob@acme.com", "j@x.com": "john@acme.com"}


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    settings = RetrySettings(attempts=5, backoff_seconds=1, max_backoff_seconds=3)
    assert [backoff_delay(n, settings, lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    assert backoff_delay(3, settings, lambda: 0.5) == 1.5


def test_retry_after_seconds_or_http_date() -> None:
    assert retry_after_seconds("7", T0, 60) == 7
    assert retry_after_seconds("7000", T0, 60) == 60
    assert retry_after_seconds("Fri, 27 Nov 2026 10:00:30 GMT", T0, 60) == 30
    assert retry_after_seconds("Fri, 27 Nov 2026 09:00:00 GMT", T0, 60) == 0
    assert retry_after_seconds("soon", T0, 60) is None and retry_after_seconds(None, T0, 60) is None


def test_quarantine_grows_from_the_threshold_and_is_capped() -> None:
    settings = QuarantineSettings(after_failures=3, initial_minutes=5, max_minutes=30)
    assert quarantine_until(2, T0, settings) is None
    assert quarantine_until(3, T0, settings) == T0 + timedelta(minutes=5)
    assert quarantine_until(4, T0, settings) == T0 + timedelta(minutes=10)
    assert quarantine_until(5, T0, settings) == T0 + timedelta(minutes=20)
    assert quarantine_until(6, T0, settings) == T0 + timedelta(minutes=30)
    assert quarantine_until(600, T0, settings) == T0 + timedelta(minutes=30)


BASE = {
    "sources": [{"name": "mx1", "format": "postfix", "path": "/var/log/mail.log"}],
    "domains": {"acme.com": {"org": "Acme", "method": "smartcreate"}},
    "directory": {"type": "ldif", "path": "d.ldif"},
}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"type": "scim", "url": "https://x.example/scim/v2"}, "exactly one of 'bearer_token' or 'oauth'"),
        ({"type": "scim", "url": "https://x.example/scim/v2", "bearer_token": "inline"}, "bearer_token"),
        ({"type": "ftp"}, "does not match any of the expected tags"),
        ({"type": "batch_file"}, "directory"),
    ],
)
def test_target_config_errors(target: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, "target": target}, Path("/etc/connector"))
    assert message in str(info.value)


def test_target_config_defaults_and_paths() -> None:
    settings = parse_settings(
        {
            **BASE,
            "target": {
                "type": "scim",
                "url": "https://x.example/scim/v2",
                "bearer_token": {"file": "token"},
                "ca_file": "ca.pem",
            },
        },
        Path("/etc/connector"),
    )
    target = settings.target
    assert target.type == "scim" and target.ca_file == Path("/etc/connector/ca.pem")
    assert target.retry.attempts == 4 and target.quarantine.after_failures == 3
    assert parse_settings(BASE, Path("/etc/connector")).target.type == "embedded"
    assert "token" not in str(settings.redacted()["target"]["bearer_token"].get("env"))


def test_the_commented_target_examples_in_example_yaml_are_valid() -> None:
    import re

    import yaml

    from connector.config.target import BatchFileTargetSettings, ScimTargetSettings

    text = (Path(__file__).resolve().parents[2] / "config" / "example.yaml").read_text()
    blocks = re.findall(r"^# target:\n((?:#.*\n)+)", text, re.M)
    kinds = []
    for block in blocks:
        data = yaml.safe_load("target:\n" + "\n".join(line[1:] for line in block.splitlines()))["target"]
        model = ScimTargetSettings if data["type"] == "scim" else BatchFileTargetSettings
        kinds.append(model.model_validate(data).type)
    assert kinds == ["scim", "batch_file"]


def test_config_check_resolves_the_target_secret() -> None:
    from connector.config.target import ScimTargetSettings, check_target_secrets

    target = ScimTargetSettings.model_validate(
        {"type": "scim", "url": "https://x.example/v2", "bearer_token": {"env": "SCIM_TOKEN"}}
    )
    with pytest.raises(ConfigError, match=r"target\.bearer_token: environment variable SCIM_TOKEN is not set"):
        check_target_secrets(target, {})
    check_target_secrets(target, {"SCIM_TOKEN": "t"})
