"""The demo end to end with the directory in a real slapd: same users as with LDIF; fail closed when it is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from connector.app import build_connector
from connector.cli import main
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from tests.directory.slapd import READER_DN, SUFFIX, Slapd, TlsFiles, free_port
from tests.integration.test_demo_cycle import EXPECTED_USERS

ENV = "CONNECTOR_TEST_LDAP_PASSWORD"


def ldap_config(demo_config: Path, url: str, ca: Path, **extra: object) -> Path:
    data = yaml.safe_load(demo_config.read_text())
    data["directory"] = {
        "type": "ldap",
        "servers": [url],
        "ca_file": str(ca),
        "bind_dn": READER_DN,
        "bind_password": {"env": ENV},
        "base_dn": SUFFIX,
        "connect_timeout_seconds": 2,
        "timeout_seconds": 5,
        **extra,
    }
    demo_config.write_text(yaml.safe_dump(data))
    return demo_config


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["sync", "-c", str(config), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def users(config: Path) -> dict[str, list[tuple[str, list[str]]]]:
    target = build_connector(load_settings(config), {ENV: "x"}).target
    assert isinstance(target, EmbeddedComplianceDirectory)
    return target.users_by_org()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "reader-secret")


@pytest.mark.parametrize("mirror", [False, True], ids=["live", "mirror"])
def test_demo_with_slapd_creates_the_same_users_as_with_ldif(
    demo_config: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str], mirror: bool
) -> None:
    config = ldap_config(demo_config, openldap_slapd.ldaps_url, tls_files.ca, mirror={"enabled": mirror})
    code, report = sync(config, capsys)
    assert code == 0 and report["status"] == "ok"
    assert users(config) == EXPECTED_USERS
    prefix = "mirror of LDAP ldaps://127.0.0.1:" if mirror else "LDAP ldaps://127.0.0.1:"
    assert report["directory"].startswith(prefix)


def test_directory_down_defers_everything_then_the_next_run_creates(
    demo_config: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"ldaps://127.0.0.1:{free_port()}"
    config = ldap_config(demo_config, dead, tls_files.ca)
    code, report = sync(config, capsys)
    assert code == 1 and report["status"] == "partial"
    assert users(config) == {}  # nothing created without the directory's word
    deferred = {d["address"] for d in report["deferred"] if d["reason"] == "directory_unavailable"}
    assert {"alice@acme.com", "robert@acme.com", "gina@globex.com"} <= deferred
    assert not {s["address"] for s in report["skipped"] if s["reason"] == "not_in_directory"}

    config = ldap_config(demo_config, openldap_slapd.ldaps_url, tls_files.ca)
    code, report = sync(config, capsys)
    assert code == 0 and users(config) == EXPECTED_USERS


def test_refused_bind_stops_the_run_and_the_next_run_creates(
    demo_config: Path,
    openldap_slapd: Slapd,
    tls_files: TlsFiles,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one rule for refused credentials (docs/reliability.md): the run fails loudly, creates nobody on a
    guess and decides nothing; the candidates stay due, so the run after the fix creates them."""
    monkeypatch.setenv(ENV, "not-the-password")
    config = ldap_config(demo_config, openldap_slapd.ldaps_url, tls_files.ca)
    code, report = sync(config, capsys)
    assert code == 3 and report["status"] == "failed" and users(config) == {}
    assert any("refused the bind" in e["error"] and "invalidCredentials" in e["error"] for e in report["errors"])
    assert not report["created"] and not [s for s in report["skipped"] if s["reason"] == "not_in_directory"]

    monkeypatch.setenv(ENV, "reader-secret")
    code, report = sync(config, capsys)
    assert code == 0 and users(config) == EXPECTED_USERS


def test_refused_bind_during_a_mirror_refresh_stops_the_run_before_it_starts(
    demo_config: Path,
    openldap_slapd: Slapd,
    tls_files: TlsFiles,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "not-the-password")
    config = ldap_config(demo_config, openldap_slapd.ldaps_url, tls_files.ca, mirror={"enabled": True})
    assert main(["sync", "-c", str(config), "--format", "json"]) == 3
    err = capsys.readouterr().err
    assert "sync failed: CredentialsRefused: LDAP server" in err and "invalidCredentials" in err
    assert users(config) == {}

    monkeypatch.setenv(ENV, "reader-secret")
    code, _ = sync(config, capsys)
    assert code == 0 and users(config) == EXPECTED_USERS


def test_org_rules_place_users_by_directory_attributes(
    demo_config: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ldap_config(demo_config, openldap_slapd.ldaps_url, tls_files.ca, extra_attributes=["departmentNumber"])
    data = yaml.safe_load(config.read_text())
    data["org_rules"] = [
        {"org": "Acme Sales", "attribute": "departmentNumber", "equals": ["sales"]},
        {"org": "Acme Engineering", "dn_within": "uid=alice,ou=people,dc=acme,dc=com"},
    ]
    config.write_text(yaml.safe_dump(data))
    code, report = sync(config, capsys)
    assert code == 0
    got = users(config)
    assert got["Acme Sales"] == [("bob@acme.com", ["robert@acme.com"])]
    assert got["Acme Engineering"] == [("alice@acme.com", ["alice.archer@acme.com"])]
    assert [u for u, _ in got["Acme Corp"]] == ["erin@acme.com", "frank@acme.com"]
    created = {c["address"]: c for c in report["created"]}
    assert "org rule 1" in created["bob@acme.com"]["detail"]
