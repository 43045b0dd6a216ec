"""``connector directory check`` and ``directory refresh`` against a real slapd."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.cli import main
from tests.directory.slapd import READER_DN, SUFFIX, Slapd, TlsFiles, free_port

ENV = "CONNECTOR_TEST_LDAP_PASSWORD"


def write_config(tmp_path: Path, url: str, ca: Path, **extra: object) -> Path:
    config = {
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"acme.com": {"org": "Acme Corp"}, "globex.com": {"org": "Globex", "method": "autocreate"}},
        "domain_aliases": {"acme.net": "acme.com"},
        "directory": {
            "type": "ldap",
            "servers": [url],
            "ca_file": str(ca),
            "bind_dn": READER_DN,
            "bind_password": {"env": ENV},
            "base_dn": SUFFIX,
            "connect_timeout_seconds": 2,
            "extra_attributes": ["departmentNumber"],
            **extra,
        },
        "org_rules": [{"org": "Acme Sales", "attribute": "departmentNumber", "equals": ["Sales"]}],
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "reader-secret")


def test_check_counts_entries_and_resolves_addresses(
    tmp_path: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, openldap_slapd.ldaps_url, tls_files.ca)
    code = main(["directory", "check", "-c", str(config), "Robert@ACME.net", "sales@acme.com", "alice@acme.com"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"directory: LDAP {openldap_slapd.ldaps_url} base {SUFFIX}" in out
    assert "connected and bound: 22 entries visible" in out
    assert "robert@acme.com: user: uid=bob,ou=people,dc=acme,dc=com" in out
    assert "  primary: bob@acme.com" in out and "  org: Acme Sales (from org rule 1)" in out
    assert "sales@acme.com: group: cn=sales,ou=groups,dc=acme,dc=com" in out and "never created: not a user" in out
    assert "  org: Acme Corp (from domain acme.com)" in out
    assert "reader-secret" not in out


def test_check_reports_unknown_addresses_with_exit_4(
    tmp_path: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, openldap_slapd.ldaps_url, tls_files.ca)
    assert main(["directory", "check", "-c", str(config), "nobody@acme.com"]) == 4
    assert "nobody@acme.com: not found" in capsys.readouterr().out


def test_check_fails_with_exit_3_when_unreachable(
    tmp_path: Path, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, f"ldaps://127.0.0.1:{free_port()}", tls_files.ca)
    assert main(["directory", "check", "-c", str(config)]) == 3
    assert "directory unavailable" in capsys.readouterr().err


def test_refresh_fills_the_mirror(
    tmp_path: Path, openldap_slapd: Slapd, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, openldap_slapd.ldaps_url, tls_files.ca, mirror={"enabled": True})
    assert main(["directory", "refresh", "-c", str(config)]) == 0
    # Objects with an address attribute: the demo's 12 people and 1 group, and 4 crafted entries.
    assert "mirror refreshed (full): 17 entries read, 17 in the mirror" in capsys.readouterr().out
    assert main(["directory", "refresh", "-c", str(config)]) == 0
    assert "mirror refreshed (incremental)" in capsys.readouterr().out
