"""Directory settings: the type union, secrets by reference, the documented examples parse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.app import build_directory
from connector.config import parse_settings
from connector.config.directory import GraphDirectorySettings, LdapDirectorySettings
from connector.directory.graph import GraphDirectory
from connector.directory.ldap import LdapDirectory
from connector.errors import ConfigError
from tests.conftest import ROOT

BASE: dict[str, Any] = {"sources": [{"name": "gw", "path": "mail.log"}], "domains": {"acme.com": {"org": "Acme"}}}
LDAP: dict[str, Any] = {
    "type": "ldap",
    "servers": ["ldaps://dc1.acme.com"],
    "base_dn": "dc=acme,dc=com",
    "bind_dn": "cn=svc,dc=acme,dc=com",
    "bind_password": {"env": "LDAP_PW"},
}


def parse(directory: dict[str, Any], **extra: Any) -> Any:
    return parse_settings({**BASE, "directory": directory, **extra}, Path("/etc/connector"))


def problems(directory: dict[str, Any], **extra: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(directory, **extra)
    return info.value.problems


def commented_block(start: str) -> dict[str, Any]:
    """The commented example in config/example.yaml that begins with ``# start``, uncommented."""
    lines = (ROOT / "config" / "example.yaml").read_text().splitlines()
    first = lines.index(f"# {start}")
    block = [start]
    for line in lines[first + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    return yaml.safe_load("\n".join(block))  # type: ignore[no-any-return]


def test_ldap_defaults_verify_certificates_and_pick_the_change_attribute() -> None:
    settings = parse(LDAP)
    directory = settings.directory
    assert isinstance(directory, LdapDirectorySettings)
    assert directory.tls_verify and directory.mirror.enabled is False and directory.batch_size == 100
    assert directory.effective_change_attribute() == "modifyTimestamp"
    ad = parse({**LDAP, "schema_preset": "active_directory"}).directory
    assert ad.effective_change_attribute() == "uSNChanged"


def test_errors_name_the_key_without_the_union_tag() -> None:
    found = dict(problems({"type": "ldap", "servers": ["http://x"]}))
    assert "directory.base_dn" in found and found["directory.base_dn"] == "Field required"
    assert "not an ldap:// or ldaps:// URL" in found["directory.servers"]
    found = dict(problems({"type": "graph", "tenant_id": "t", "client_id": "c"}))
    assert "exactly one of client_secret or certificate" in found["directory"]
    found = dict(problems({"type": "x500"}))
    assert "directory" in found


def test_user_filter_must_be_a_balanced_filter() -> None:
    for bad in ("objectClass=user", "(objectClass=user", "(a=b))(", "(&(a=b)"):
        assert "balanced parentheses" in dict(problems({**LDAP, "user_filter": bad}))["directory.user_filter"]
    assert parse({**LDAP, "user_filter": "(&(objectClass=user)(!(cn=x\\29)))"}).directory.user_filter


def test_inline_passwords_are_refused() -> None:
    found = dict(problems({**LDAP, "bind_password": "hunter2"}))
    assert "directory.bind_password" in found


def test_custom_mapping_only_with_the_custom_preset() -> None:
    assert "custom_mapping is required" in dict(problems({**LDAP, "schema_preset": "custom"}))["directory"]
    settings = parse({**LDAP, "schema_preset": "custom", "custom_mapping": {"alias_attributes": ["otherMailbox"]}})
    directory = build_directory(settings, {"LDAP_PW": "pw"})
    assert isinstance(directory, LdapDirectory) and directory.mapping.alias_attributes == ("otherMailbox",)


def test_ldap_password_comes_from_the_environment_and_is_never_shown() -> None:
    settings = parse(LDAP)
    with pytest.raises(ConfigError, match="LDAP_PW is not set"):
        build_directory(settings, {})
    directory = build_directory(settings, {"LDAP_PW": "pw-value"})
    assert isinstance(directory, LdapDirectory)
    assert "pw-value" not in repr(directory.options) and "pw-value" not in directory.describe()
    assert "pw-value" not in str(settings.redacted())


def test_org_rules_need_exactly_one_condition_and_managed_domains() -> None:
    found = dict(problems(LDAP, org_rules=[{"org": "X", "attribute": "department"}]))
    assert "exactly one of equals, matches or dn_within" in found["org_rules[0]"]
    found = dict(problems(LDAP, org_rules=[{"org": "X", "attribute": "d", "matches": "("}]))
    assert "not a valid regular expression" in found["org_rules[0]"]
    found = dict(problems(LDAP, org_rules=[{"org": "X", "dn_within": "ou=x", "domains": ["other.com"]}]))
    assert "[0].domains: other.com is not a managed domain" in found["org_rules"]
    settings = parse(LDAP, org_rules=[{"org": "Sales", "attribute": "Department", "equals": ["Sales"]}])
    (rule,) = settings.org_rule_list()
    assert rule.attribute == "department" and rule.equals == frozenset({"sales"})


def test_the_documented_ldap_and_graph_examples_are_valid() -> None:
    ldap = commented_block("directory:")
    assert ldap["directory"]["type"] == "ldap"
    settings = parse(ldap["directory"])
    assert isinstance(settings.directory, LdapDirectorySettings) and len(settings.directory.servers) == 2

    lines = (ROOT / "config" / "example.yaml").read_text()
    graph_text = lines[lines.index("#   type: graph") :].split("\n\n")[0]
    graph = yaml.safe_load("\n".join(line[4:] for line in graph_text.splitlines()))
    settings = parse(graph)
    assert isinstance(settings.directory, GraphDirectorySettings)
    directory = build_directory(settings, {"CONNECTOR_GRAPH_SECRET": "s"})
    assert isinstance(directory, GraphDirectory)

    rules_text = lines[lines.index("org_rules: []") :].split("\n\n")[0]
    rules = yaml.safe_load("\n".join(re.sub(r"^#", "", line) for line in rules_text.splitlines()[1:]))
    settings = parse(ldap["directory"], org_rules=rules)
    assert [r.org for r in settings.org_rule_list()] == ["Acme Sales", "Acme Europe", "Acme Contractors"]


def test_config_check_reports_a_missing_directory_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli import main

    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump({**BASE, "directory": {**LDAP, "ca_file": "missing-ca.pem"}}))
    assert main(["config", "check", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert "directory.bind_password: environment variable LDAP_PW is not set" in captured.err
