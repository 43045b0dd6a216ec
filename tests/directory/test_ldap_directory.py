"""LdapDirectory against real slapd servers: both flavours, TLS, failover, fail-closed, escaping."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr

from connector.directory.ldap import LdapDirectory, or_filter
from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import ACTIVE_DIRECTORY, OPENLDAP, addresses_of
from connector.domain.directory import DirectoryObjectKind
from connector.errors import CredentialsRefused, RetriableError
from tests.conftest import ROOT
from tests.directory.conftest import AD_LDIF, GUID_ALICE, reader_options
from tests.directory.slapd import LIMITED_DN, LIMITED_PASSWORD, Slapd, TlsFiles, free_port, run_slapd, start_slapd

DEMO_LDIF = ROOT / "config" / "demo" / "directory.ldif"


def _summary(entry: object) -> object:
    if entry is None:
        return None
    return (
        entry.kind,  # type: ignore[attr-defined]
        entry.dn.lower(),  # type: ignore[attr-defined]
        entry.primary_address,  # type: ignore[attr-defined]
        set(entry.aliases),  # type: ignore[attr-defined]
        entry.display_name,  # type: ignore[attr-defined]
        entry.enabled,  # type: ignore[attr-defined]
        entry.external_id,  # type: ignore[attr-defined]
    )


def test_openldap_answers_like_the_ldif_export_of_the_same_directory(openldap: LdapDirectory) -> None:
    ldif = LdifDirectory(DEMO_LDIF, OPENLDAP)
    addresses = sorted({a for entry in ldif.iter_entries() for a in addresses_of(entry)})
    addresses += ["nobody@acme.com", "ghost@acme.com"]
    assert len(addresses) > 12
    expected = ldif.lookup(addresses)
    got = openldap.lookup(addresses)
    assert {a: _summary(e) for a, e in got.items()} == {a: _summary(e) for a, e in expected.items()}
    # The points the cross-check relies on, spelled out.
    robert = got["robert@acme.com"]
    assert robert is not None and robert.is_user and robert.primary_address == "bob@acme.com"
    sales = got["sales@acme.com"]
    assert sales is not None and sales.kind is DirectoryObjectKind.GROUP
    assert got["nobody@acme.com"] is None


def test_active_directory_users_aliases_and_non_users(active_directory: LdapDirectory) -> None:
    got = active_directory.lookup(
        [
            "a.adams@acme.com",
            "alice@acme.net",
            "bob.old@acme.com",
            "dora@acme.com",
            "info@acme.com",
            "staff@acme.com",
            "carl@acme.com",
            "printer@acme.com",
            "x500@acme.com",
        ]
    )
    alice = got["a.adams@acme.com"]
    assert alice is not None and alice.kind is DirectoryObjectKind.USER and alice.enabled
    assert alice.primary_address == "alice@acme.com"
    assert set(alice.aliases) == {"a.adams@acme.com", "alice@acme.net"}  # X500: and SIP: ignored
    assert alice.dn == "cn=Alice Adams,ou=sales,ou=users,dc=acme,dc=com"
    assert alice.attributes["department"] == ("Sales",)
    # Binary objectGUID comes back in the base64 form an LDIF export gives.
    assert alice.external_id == base64.b64encode(GUID_ALICE).decode()
    assert got["alice@acme.net"] == alice

    bob = got["bob.old@acme.com"]
    assert bob is not None and bob.primary_address == "bob@acme.com" and bob.enabled  # SMTP: wins over mail
    dora = got["dora@acme.com"]
    assert dora is not None and dora.kind is DirectoryObjectKind.USER and not dora.enabled
    kinds = {a: (e.kind if e else None) for a, e in got.items()}
    assert kinds["info@acme.com"] is DirectoryObjectKind.SHARED_MAILBOX
    assert kinds["staff@acme.com"] is DirectoryObjectKind.GROUP
    assert kinds["carl@acme.com"] is DirectoryObjectKind.CONTACT
    assert kinds["printer@acme.com"] is DirectoryObjectKind.OTHER
    assert kinds["x500@acme.com"] is None


def test_an_address_two_objects_claim_is_never_a_user(openldap: LdapDirectory) -> None:
    twin = openldap.lookup(["twin@acme.com"])["twin@acme.com"]
    assert twin is not None and twin.kind is DirectoryObjectKind.OTHER and twin.primary_address is None
    assert "uid=twin1" in twin.dn and "uid=twin2" in twin.dn


def test_ad_ldap_and_ldif_export_give_the_same_external_id(active_directory: LdapDirectory, tmp_path: Path) -> None:
    export = tmp_path / "ad.ldif"
    export.write_text(AD_LDIF)
    from_ldif = LdifDirectory(export, ACTIVE_DIRECTORY).lookup(["alice@acme.com"])["alice@acme.com"]
    from_ldap = active_directory.lookup(["alice@acme.com"])["alice@acme.com"]
    assert from_ldif is not None and from_ldap is not None
    assert from_ldap.external_id == from_ldif.external_id


@pytest.mark.parametrize(
    "crafted",
    ["*)(mail=*", "*", "a\\2a@acme.com", "*@acme.com", "alice@acme.com)(objectClass=*", "\\", "a)(|(mail=*"],
)
def test_crafted_addresses_never_widen_the_filter(openldap: LdapDirectory, crafted: str) -> None:
    assert openldap.lookup([crafted]) == {crafted: None}


def test_a_literal_star_matches_only_itself(openldap: LdapDirectory) -> None:
    got = openldap.lookup(["a*@acme.com", "ab@acme.com"])
    star, ab = got["a*@acme.com"], got["ab@acme.com"]
    assert star is not None and star.dn.startswith("uid=star,") and ab is not None and ab.dn.startswith("uid=ab,")


def test_or_filter_escapes_every_value() -> None:
    text = or_filter(["mail", "proxyAddresses"], ["*)(x=*", "a\\b"], proxy_attribute="proxyAddresses")
    assert text == (
        "(|(mail=\\2a\\29\\28x=\\2a)(proxyAddresses=smtp:\\2a\\29\\28x=\\2a)(mail=a\\5cb)(proxyAddresses=smtp:a\\5cb))"
    )


def test_batches_and_pages_cover_everything(openldap_slapd: Slapd, tls_files: TlsFiles) -> None:
    small = LdapDirectory(
        reader_options(openldap_slapd.ldaps_url, ca_file=tls_files.ca, page_size=2, batch_size=3), OPENLDAP
    )
    ldif = LdifDirectory(DEMO_LDIF, OPENLDAP)
    addresses = sorted({a for entry in ldif.iter_entries() for a in addresses_of(entry)})
    got = small.lookup(addresses)
    assert all(got[a] is not None for a in addresses)
    # Demo records + 4 crafted ones + 2 base entries of the test server, read 2 per page.
    assert small.count_entries() == ldif.count_entries() + 4 + 2
    small.close()


def test_starttls_with_the_right_ca(openldap_slapd: Slapd, tls_files: TlsFiles) -> None:
    directory = LdapDirectory(reader_options(openldap_slapd.ldap_url, ca_file=tls_files.ca, start_tls=True), OPENLDAP)
    answer = directory.lookup(["alice@acme.com"])["alice@acme.com"]
    assert answer is not None and answer.is_user
    directory.close()


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_certificate_from_another_ca_is_refused_by_default(
    openldap_slapd: Slapd, other_ca: Path, start_tls: bool
) -> None:
    url = openldap_slapd.ldap_url if start_tls else openldap_slapd.ldaps_url
    directory = LdapDirectory(reader_options(url, ca_file=other_ca, start_tls=start_tls), OPENLDAP)
    with pytest.raises(RetriableError, match="unavailable"):
        directory.lookup(["alice@acme.com"])


def test_wrong_password_stops_the_run_without_failover(openldap_slapd: Slapd, tls_files: TlsFiles) -> None:
    """The one rule for refused credentials (docs/reliability.md): ``CredentialsRefused``, and the next
    server is not asked (every replica would refuse the same account, and each try counts towards a lockout)."""
    with socket.socket() as replica:  # a second server that would notice being asked
        replica.bind(("127.0.0.1", 0))
        replica.listen(8)
        second = f"ldap://127.0.0.1:{replica.getsockname()[1]}"
        options = reader_options(openldap_slapd.ldaps_url, second, ca_file=tls_files.ca, bind_password=SecretStr("x"))
        with pytest.raises(CredentialsRefused, match=r"refused the bind of .*invalidCredentials"):
            LdapDirectory(options, OPENLDAP).lookup(["alice@acme.com"])
        replica.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody connected to it
            replica.accept()


def test_size_limit_hit_is_retriable_not_a_partial_answer(openldap_slapd: Slapd, tls_files: TlsFiles) -> None:
    directory = LdapDirectory(
        reader_options(
            openldap_slapd.ldaps_url,
            ca_file=tls_files.ca,
            bind_dn=LIMITED_DN,
            bind_password=SecretStr(LIMITED_PASSWORD),
        ),
        OPENLDAP,
    )
    with pytest.raises(RetriableError, match="size or time limit"):
        directory.lookup(["alice@acme.com", "bob@acme.com", "carol@acme.com", "dave@acme.com"])


def test_failover_to_the_next_server(openldap_slapd: Slapd, tls_files: TlsFiles) -> None:
    dead = f"ldaps://127.0.0.1:{free_port()}"
    directory = LdapDirectory(reader_options(dead, openldap_slapd.ldaps_url, ca_file=tls_files.ca), OPENLDAP)
    answer = directory.lookup(["bob@acme.com"])["bob@acme.com"]
    assert answer is not None and answer.is_user
    directory.close()


def test_no_server_reachable_is_retriable_and_quick() -> None:
    directory = LdapDirectory(
        reader_options(f"ldap://127.0.0.1:{free_port()}", f"ldap://127.0.0.1:{free_port()}"), OPENLDAP
    )
    started = time.monotonic()
    with pytest.raises(RetriableError):
        directory.lookup(["alice@acme.com"])
    assert time.monotonic() - started < 10


def test_server_going_away_mid_run_and_coming_back(tmp_path: Path, tls_files: TlsFiles) -> None:
    slapd = start_slapd(tmp_path / "slapd", AD_LDIF, tls_files)
    port = int(slapd.ldap_url.rpartition(":")[2])
    directory = LdapDirectory(reader_options(slapd.ldap_url), ACTIVE_DIRECTORY)
    try:
        assert directory.lookup(["alice@acme.com"])["alice@acme.com"] is not None
        slapd.stop()
        with pytest.raises(RetriableError):
            directory.lookup(["bob@acme.com"])
        slapd = run_slapd(slapd.workdir, port=port)
        answer = directory.lookup(["bob@acme.com"])["bob@acme.com"]
        assert answer is not None and answer.primary_address == "bob@acme.com"
    finally:
        directory.close()
        slapd.stop()


def test_a_server_that_never_answers_times_out_as_retriable() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        directory = LdapDirectory(reader_options(url, timeout_seconds=1), OPENLDAP)
        started = time.monotonic()
        with pytest.raises(RetriableError, match="unavailable"):
            directory.lookup(["alice@acme.com"])
        assert time.monotonic() - started < 8


def test_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("ldap.elsewhere.example")  # signed by the trusted CA, but not for 127.0.0.1
    files = TlsFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    slapd = start_slapd(tmp_path / "slapd", AD_LDIF, files)
    try:
        directory = LdapDirectory(reader_options(slapd.ldaps_url, ca_file=files.ca), ACTIVE_DIRECTORY)
        with pytest.raises(RetriableError, match=r"doesn't match|hostname"):
            directory.lookup(["alice@acme.com"])
        lab = LdapDirectory(reader_options(slapd.ldaps_url, ca_file=files.ca, tls_verify=False), ACTIVE_DIRECTORY)
        assert lab.lookup(["alice@acme.com"])["alice@acme.com"] is not None  # only with verification off
        lab.close()
    finally:
        slapd.stop()
