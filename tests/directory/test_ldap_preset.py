"""``schema_preset: auto`` over LDAP against real slapd servers: detected from the root DSE when the
server publishes Active Directory's markers there (a slapd given an AD root DSE), else from a
sample of entries (the AD-like slapd, the OpenLDAP one); through the mirror too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from connector.app import build_directory
from connector.cli import main
from connector.config import load_settings
from connector.directory.ldap import LdapDirectory
from connector.directory.mapping import OPENLDAP
from connector.directory.mirror import MirrorDirectory
from connector.directory.presets import preset_check_of
from connector.domain.directory import DirectoryObjectKind
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.directory.conftest import AD_LDIF, reader_options
from tests.directory.slapd import HERE, READER_DN, READER_PASSWORD, SUFFIX, Slapd, run_slapd, start_slapd

ROOT_DSE = """dn:
forestFunctionality: 7
isGlobalCatalogReady: TRUE
supportedCapabilities: 1.2.840.113556.1.4.800
supportedCapabilities: 1.2.840.113556.1.4.1670
"""
ENV = "CONNECTOR_TEST_LDAP_PASSWORD"


@pytest.fixture(scope="module")
def dc_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """slapd with the AD-like data whose root DSE answers like a domain controller's."""
    workdir = tmp_path_factory.mktemp("slapd-dc")
    start_slapd(workdir, AD_LDIF).stop()  # loads the data; the config gets the root DSE below
    (workdir / "root-dse.ldif").write_text(ROOT_DSE)
    config = workdir / "slapd.conf"
    extra = f"include {HERE / 'ad_root_dse.schema'}\nrootDSE {workdir / 'root-dse.ldif'}\n"
    config.write_text(config.read_text().replace("database mdb\n", extra + "database mdb\n", 1))
    slapd = run_slapd(workdir, tls=False)
    yield slapd
    slapd.stop()


def auto(url: str) -> LdapDirectory:
    return LdapDirectory(reader_options(url), None)


def test_auto_detects_active_directory_from_the_entries(ad_slapd: Slapd) -> None:
    directory = auto(ad_slapd.ldap_url)
    assert directory.preset_check() is None  # nothing asked yet: building never connects
    answers = directory.lookup(["carl@acme.com", "a.adams@acme.com", "dora@acme.com"])
    check = directory.preset_check()
    assert check is not None and check.in_use == "active_directory" and check.warning() is None
    assert "root DSE" not in check.detection.evidence  # slapd's own root DSE says nothing about AD
    assert check.detection.evidence.startswith("7 of 7 entries with an address carry proxyAddresses")
    carl, alice, dora = (answers[a] for a in ("carl@acme.com", "a.adams@acme.com", "dora@acme.com"))
    assert carl is not None and carl.kind is DirectoryObjectKind.CONTACT
    assert alice is not None and alice.primary_address == "alice@acme.com"
    assert dora is not None and dora.kind is DirectoryObjectKind.USER and not dora.enabled
    directory.close()


def test_auto_keeps_openldap_for_an_openldap_server(openldap_slapd: Slapd) -> None:
    directory = auto(openldap_slapd.ldap_url)
    bob = directory.lookup(["robert@acme.com"])["robert@acme.com"]  # a mailAlternateAddress alias
    assert bob is not None and bob.primary_address == "bob@acme.com"
    check = directory.preset_check()
    assert check is not None and check.in_use == "openldap"
    assert check.detection.evidence.startswith("none of ")
    directory.close()


def test_the_root_dse_of_a_domain_controller_decides(dc_slapd: Slapd) -> None:
    directory = auto(dc_slapd.ldap_url)
    carl = directory.lookup(["carl@acme.com"])["carl@acme.com"]
    assert carl is not None and carl.kind is DirectoryObjectKind.CONTACT
    check = directory.preset_check()
    assert check is not None and check.in_use == "active_directory"
    assert check.detection.evidence == "the server's root DSE lists capability 1.2.840.113556.1.4.800"
    directory.close()

    chosen = LdapDirectory(reader_options(dc_slapd.ldap_url), OPENLDAP)
    assert chosen.count_entries() > 0
    check = chosen.preset_check()
    assert check is not None and check.in_use == "openldap"
    warning = check.warning()
    assert warning is not None and warning.startswith(
        "directory.schema_preset is openldap, but the directory looks like Active Directory "
        "(the server's root DSE lists capability 1.2.840.113556.1.4.800)"
    )
    chosen.close()


def write_config(tmp_path: Path, url: str, **directory: object) -> Path:
    config = {
        "state": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"acme.com": {"org": "Acme"}},
        "directory": {
            "type": "ldap",
            "servers": [url],
            "bind_dn": READER_DN,
            "bind_password": {"env": ENV},
            "base_dn": SUFFIX,
            "connect_timeout_seconds": 2,
            **directory,
        },
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_directory_check_names_the_preset_and_warns_on_a_mismatch(
    tmp_path: Path, dc_slapd: Slapd, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, READER_PASSWORD)
    config = write_config(tmp_path, dc_slapd.ldap_url)
    assert main(["directory", "check", "-c", str(config), "carl@acme.com"]) == 0
    out = capsys.readouterr().out
    assert "schema preset: active_directory (auto: the server's root DSE lists capability" in out
    assert "carl@acme.com: contact: cn=Carl Contact,ou=users,dc=acme,dc=com" in out and "warning:" not in out

    config = write_config(tmp_path, dc_slapd.ldap_url, schema_preset="openldap")
    assert main(["directory", "check", "-c", str(config), "carl@acme.com", "dora@acme.com"]) == 4
    out = capsys.readouterr().out
    assert "warning: directory.schema_preset is openldap, but the directory looks like Active Directory" in out
    assert "carl@acme.com: not found" in out  # his proxyAddresses alias is never read
    assert "dora@acme.com: user: cn=Dora Disabled,ou=users,dc=acme,dc=com\n" in out and "  enabled: yes" in out


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def test_the_mirror_reads_with_the_detected_preset(
    tmp_path: Path, ad_slapd: Slapd, sessions: sessionmaker[Session]
) -> None:
    settings = load_settings(write_config(tmp_path, ad_slapd.ldap_url, mirror={"enabled": True}))
    mirror = build_directory(settings, {ENV: READER_PASSWORD}, sessions=sessions)
    assert isinstance(mirror, MirrorDirectory) and preset_check_of(mirror) is None  # wiring connects to nothing
    answers = mirror.lookup(["carl@acme.com", "a.adams@acme.com"])  # the first lookup fills the mirror
    carl, alice = answers["carl@acme.com"], answers["a.adams@acme.com"]
    assert carl is not None and carl.kind is DirectoryObjectKind.CONTACT
    assert alice is not None and alice.primary_address == "alice@acme.com"
    check = preset_check_of(mirror)
    assert check is not None and check.in_use == "active_directory"

    chosen = load_settings(
        write_config(tmp_path, ad_slapd.ldap_url, schema_preset="openldap", mirror={"enabled": True})
    )
    mirror = build_directory(chosen, {ENV: READER_PASSWORD}, sessions=sessions)
    assert isinstance(mirror, MirrorDirectory)
    mirror.lookup(["carl@acme.com"])  # another mapping: the copy is read again
    check = preset_check_of(mirror)
    assert check is not None and check.warning() is not None
