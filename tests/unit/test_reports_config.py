"""Report settings: relative directory, retention bounds, a digest login only over STARTTLS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import parse_settings
from connector.errors import ConfigError
from tests.conftest import ROOT

BASE: dict[str, Any] = {
    "sources": [{"name": "gw", "path": "mail.log"}],
    "domains": {"acme.com": {"org": "Acme"}},
    "directory": {"type": "ldif", "path": "dir.ldif"},
}
DIGEST = {"smtp_host": "relay.acme.com", "sender": "c@acme.com", "recipients": ["a@acme.com"]}


def problems(reports: dict[str, Any], tmp_path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "reports": reports}, tmp_path)
    return caught.value.problems


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    assert parse_settings(BASE, tmp_path).reports.directory is None
    settings = parse_settings(
        {**BASE, "reports": {"directory": "out", "digest": {**DIGEST, "ca_file": "ca.pem"}}}, tmp_path
    )
    assert settings.reports.directory == tmp_path / "out"
    assert settings.reports.retention_days == 90
    digest = settings.reports.digest
    assert digest is not None and digest.ca_file == tmp_path / "ca.pem"
    assert (digest.smtp_port, digest.starttls, digest.covers_hours) == (587, True, 24)


def test_a_password_needs_a_username_and_starttls(tmp_path: Path) -> None:
    [(key, message)] = problems({"digest": {**DIGEST, "password": {"env": "P"}}}, tmp_path)
    assert key == "reports.digest" and "both 'username' and 'password'" in message
    [(key, message)] = problems(
        {"digest": {**DIGEST, "username": "u", "password": {"env": "P"}, "starttls": False}}, tmp_path
    )
    assert "only sent over STARTTLS" in message


def test_bad_values_are_named(tmp_path: Path) -> None:
    found = dict(problems({"retention_days": 0, "colour": 1, "digest": {**DIGEST, "recipients": []}}, tmp_path))
    assert set(found) == {"reports.retention_days", "reports.colour", "reports.digest.recipients"}


def test_the_commented_digest_example_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "config" / "example.yaml").read_text()
    text = re.sub(r"(?m)^  #   ", "    ", text.replace("  # digest:", "  digest:"))
    settings = parse_settings(yaml.safe_load(text), tmp_path)
    digest = settings.reports.digest
    assert digest is not None and digest.password is not None and digest.password.env == "CONNECTOR_SMTP_PASSWORD"
