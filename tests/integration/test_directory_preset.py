"""The issue's case: an Active Directory export read with the wrong schema preset, and with ``auto``.

With ``schema_preset: openldap`` (the old default) the AD export gives three bogus users
(two disabled accounts and a contact) and misses three real ones whose mail came to
their ``proxyAddresses`` aliases; ``config check``, ``directory check`` and the run
report now say so. With ``auto`` (the default) the same export gives the three real
users and none of the bogus ones.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time

from connector.app import build_connector
from connector.cli import main
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow

T0 = utc("2026-11-02T09:00:00")
NOW = "2026-11-27T12:00:00Z"
REAL = {"alice@acme.com": "a.adams@acme.com", "bob@acme.com": "robert@acme.com", "carol@acme.com": "c.chen@acme.com"}
"""Real users -> the alias their mail came to (only in proxyAddresses)."""
BOGUS = {"dora@acme.com", "ed@acme.com", "frank@acme.com"}
"""Two disabled accounts and a mail contact: never users."""
MISMATCH = (
    "directory.schema_preset is openldap, but the directory looks like Active Directory "
    "(6 of 6 entries with an address carry"
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The AD export and a month of mail: three messages to each real alias and each bogus address."""
    ad = AdDirectory(base="dc=acme,dc=com")
    ad.user("Alice Adams", "alice@acme.com", ("a.adams@acme.com",))
    ad.user("Bob Brown", "bob@acme.com", ("robert@acme.com",))
    ad.user("Carol Chen", "carol@acme.com", ("c.chen@acme.com",))
    ad.user("Dora Left", "dora@acme.com", disabled=True)
    ad.user("Ed Left", "ed@acme.com", disabled=True)
    ad.contact("Frank Partner", "frank@acme.com")
    ad.write(tmp_path / "directory.ldif")
    flow = MailFlow()
    for rcpt in [*REAL.values(), *sorted(BOGUS)]:
        for day in range(3):
            flow.deliver(T0 + timedelta(days=day, hours=day), rcpt)
    flow.write(tmp_path / "mail.log")
    return tmp_path


def configure(site: Path, **directory: Any) -> Path:
    config = {
        "state": {"url": f"sqlite:///{site / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"acme.com": {"org": "Acme"}},
        "directory": {"type": "ldif", "path": "directory.ldif", **directory},
    }
    path = site / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with freeze_time(NOW):
        assert main(["sync", "-c", str(config), "--format", "json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def users(config: Path) -> set[str]:
    target = build_connector(load_settings(config), {}).target
    assert isinstance(target, EmbeddedComplianceDirectory)
    return {primary for members in target.users_by_org().values() for primary, _ in members}


def test_openldap_on_an_ad_export_makes_bogus_users_and_every_check_warns(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(site, schema_preset="openldap")

    assert main(["config", "check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"warning: {MISMATCH} proxyAddresses, userAccountControl, objectClass: user)" in out
    assert 'set schema_preset: active_directory or "auto"' in out

    assert main(["directory", "check", "-c", str(config), "frank@acme.com"]) == 0
    out = capsys.readouterr().out
    assert "schema preset: openldap (configured;" in out
    assert f"warning: {MISMATCH}" in out
    assert "frank@acme.com: user: CN=Frank Partner,OU=Contacts,dc=acme,dc=com" in out  # what the warning is about
    assert "  enabled: yes" in out

    report = sync(config, capsys)
    assert users(config) == BOGUS  # what the old default did, and still does when chosen by hand
    assert [w for w in report["warnings"] if w.startswith(MISMATCH)], report["warnings"]
    skipped = {s["address"]: s["reason"] for s in report["skipped"]}
    assert {skipped.get(alias) for alias in REAL.values()} == {"not_in_directory"}


def test_auto_reads_the_ad_export_as_active_directory(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = configure(site)  # schema_preset left out: auto

    assert main(["config", "check", "-c", str(config)]) == 0
    assert "warning: directory.schema_preset" not in capsys.readouterr().out

    assert main(["directory", "check", "-c", str(config), "frank@acme.com", "a.adams@acme.com"]) == 0
    out = capsys.readouterr().out
    assert "schema preset: active_directory (auto: 6 of 6 entries with an address carry" in out
    assert "warning:" not in out
    assert "frank@acme.com: contact: CN=Frank Partner,OU=Contacts,dc=acme,dc=com" in out
    assert "a.adams@acme.com: user: CN=Alice Adams,OU=People,dc=acme,dc=com" in out

    report = sync(config, capsys)
    assert users(config) == set(REAL)
    assert not [w for w in report["warnings"] if "schema_preset" in w]
    skipped = {s["address"]: s["reason"] for s in report["skipped"]}
    assert skipped["dora@acme.com"] == skipped["ed@acme.com"] == "disabled_in_directory"
    assert skipped["frank@acme.com"] == "not_a_user"


def test_auto_on_an_openldap_export_stays_openldap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "directory.ldif").write_text(
        "dn: uid=ann,ou=people,dc=acme,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\n"
        "uid: ann\ncn: Ann\nsn: Ann\nmail: ann@acme.com\nmailAlternateAddress: a.nn@acme.com\n"
    )
    config = configure(tmp_path)
    assert main(["directory", "check", "-c", str(config), "a.nn@acme.com"]) == 0
    out = capsys.readouterr().out
    assert "schema preset: openldap (auto: none of 1 entries with an address carries Active Directory" in out
    assert "a.nn@acme.com: user: uid=ann,ou=people,dc=acme,dc=com" in out
