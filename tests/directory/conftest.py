"""Real slapd servers for the directory tests: OpenLDAP-style (the demo data) and AD-like, with TLS."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr

from connector.directory.ldap import LdapDirectory, LdapOptions
from connector.directory.mapping import ACTIVE_DIRECTORY, OPENLDAP
from tests.conftest import ROOT
from tests.directory.slapd import (
    READER_DN,
    READER_PASSWORD,
    SUFFIX,
    Slapd,
    TlsFiles,
    demo_ldif_for_slapd,
    start_slapd,
)

GUID_ALICE = bytes.fromhex("8f1e2d3c4b5a69788796a5b4c3d2e1f0")
"""A binary objectGUID (not UTF-8), as AD stores it."""

# Entries added next to the demo data: crafted addresses that an unescaped filter would widen.
CRAFTED_LDIF = f"""dn: uid=star,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: star
cn: Star Literal
sn: Literal
mail: a*@acme.com

dn: uid=twin1,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: twin1
cn: Twin One
sn: One
mail: twin@acme.com

dn: uid=twin2,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: twin2
cn: Twin Two
sn: Two
mail: twin2@acme.com
mailAlternateAddress: twin@acme.com

dn: uid=ab,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: ab
cn: Ab
sn: Ab
mail: ab@acme.com

"""

AD_LDIF = f"""dn: ou=users,{SUFFIX}
objectClass: organizationalUnit
ou: users

dn: ou=sales,ou=users,{SUFFIX}
objectClass: organizationalUnit
ou: sales

dn: cn=Alice Adams,ou=sales,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Alice Adams
sn: Adams
displayName: Alice Adams
sAMAccountName: alice
mail: alice@acme.com
proxyAddresses: SMTP:alice@acme.com
proxyAddresses: smtp:a.adams@acme.com
proxyAddresses: smtp:alice@acme.net
proxyAddresses: X500:/o=ACME/ou=Exchange/cn=Recipients/cn=alice
proxyAddresses: SIP:alice@acme.com
userAccountControl: 512
department: Sales
company: Acme Europe
objectGUID:: {base64.b64encode(GUID_ALICE).decode()}

dn: cn=Bob Brown,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Bob Brown
sn: Brown
displayName: Bob Brown
mail: bob.old@acme.com
proxyAddresses: smtp:bob.old@acme.com
proxyAddresses: SMTP:bob@acme.com
userAccountControl: 66048
department: Engineering

dn: cn=Dora Disabled,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Dora Disabled
sn: Disabled
mail: dora@acme.com
proxyAddresses: SMTP:dora@acme.com
userAccountControl: 514

dn: cn=Shared Info,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Shared Info
sn: Info
mail: info@acme.com
proxyAddresses: SMTP:info@acme.com
userAccountControl: 512
msExchRecipientTypeDetails: 4

dn: cn=All Staff,ou=users,{SUFFIX}
objectClass: group
cn: All Staff
mail: staff@acme.com
proxyAddresses: SMTP:staff@acme.com

dn: cn=Carl Contact,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: contact
cn: Carl Contact
sn: Contact
mail: carl@partner.example
proxyAddresses: SMTP:carl@partner.example
proxyAddresses: smtp:carl@acme.com

dn: cn=PRINTER01,ou=users,{SUFFIX}
objectClass: person
objectClass: organizationalPerson
objectClass: user
objectClass: computer
cn: PRINTER01
sn: PRINTER01
mail: printer@acme.com
userAccountControl: 4096

"""


def reader_options(*urls: str, **overrides: object) -> LdapOptions:
    """Options for the test reader account."""
    values: dict[str, object] = {
        "servers": tuple(urls),
        "base_dn": SUFFIX,
        "bind_dn": READER_DN,
        "bind_password": SecretStr(READER_PASSWORD),
        "connect_timeout_seconds": 2,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return LdapOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA made for this test run and a server certificate for 127.0.0.1 signed by it."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the servers use."""
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def openldap_slapd(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Slapd]:
    """slapd serving the demo directory (plus crafted entries) with the OpenLDAP schema."""
    ldif = demo_ldif_for_slapd((ROOT / "config" / "demo" / "directory.ldif").read_text()) + CRAFTED_LDIF
    slapd = start_slapd(tmp_path_factory.mktemp("slapd-openldap"), ldif, tls_files)
    yield slapd
    slapd.stop()


@pytest.fixture(scope="session")
def ad_slapd(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Slapd]:
    """slapd with an AD-like schema (proxyAddresses, userAccountControl, binary objectGUID)."""
    slapd = start_slapd(tmp_path_factory.mktemp("slapd-ad"), AD_LDIF, tls_files)
    yield slapd
    slapd.stop()


@pytest.fixture
def openldap(openldap_slapd: Slapd, tls_files: TlsFiles) -> Iterator[LdapDirectory]:
    """An ``LdapDirectory`` on the OpenLDAP server over ldaps with the test CA."""
    directory = LdapDirectory(reader_options(openldap_slapd.ldaps_url, ca_file=tls_files.ca), OPENLDAP)
    yield directory
    directory.close()


@pytest.fixture
def active_directory(ad_slapd: Slapd, tls_files: TlsFiles) -> Iterator[LdapDirectory]:
    """An ``LdapDirectory`` with the AD preset over StartTLS with the test CA."""
    directory = LdapDirectory(
        reader_options(ad_slapd.ldap_url, ca_file=tls_files.ca, start_tls=True, extra_attributes=("department",)),
        ACTIVE_DIRECTORY,
    )
    yield directory
    directory.close()
