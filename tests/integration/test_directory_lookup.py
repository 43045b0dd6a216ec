"""Candidates are looked up in every form the mail was addressed to."""

from __future__ import annotations

from pathlib import Path

from connector.directory.ldif import LdifDirectory
from connector.directory.lookup import lookup_candidates
from connector.directory.mapping import OPENLDAP
from connector.domain.evidence import AddressEvidence
from connector.errors import RetriableError

LDIF = """\
dn: uid=erin,ou=people,dc=acme,dc=com
objectClass: inetOrgPerson
uid: erin
cn: Erin
sn: E
mail: erin@acme.net

dn: uid=zoe,ou=people,dc=acme,dc=com
objectClass: inetOrgPerson
uid: zoe
cn: Zoe
sn: Z
mail: zoe@acme.com
"""


def test_alias_domain_form_is_found_and_canonical_form_wins(tmp_path: Path) -> None:
    path = tmp_path / "dir.ldif"
    path.write_text(LDIF)
    directory = LdifDirectory(path, OPENLDAP)
    erin = AddressEvidence(address="erin@acme.com", seen_as=("Erin@ACME.net",))
    zoe = AddressEvidence(address="zoe@acme.com", seen_as=("zoe@mail.acme.com",))
    nobody = AddressEvidence(address="nobody@acme.com")
    answers = lookup_candidates(directory, [erin, zoe, nobody])
    erin_entry, zoe_entry = answers["erin@acme.com"], answers["zoe@acme.com"]
    assert erin_entry is not None and not isinstance(erin_entry, RetriableError)
    assert erin_entry.primary_address == "erin@acme.net"
    assert zoe_entry is not None and not isinstance(zoe_entry, RetriableError)
    assert zoe_entry.dn.startswith("uid=zoe")
    assert answers["nobody@acme.com"] is None


def test_an_unreachable_directory_answers_with_its_error(tmp_path: Path) -> None:
    directory = LdifDirectory(tmp_path / "missing.ldif", OPENLDAP)
    answers = lookup_candidates(directory, [AddressEvidence(address="a@acme.com")])
    assert isinstance(answers["a@acme.com"], RetriableError)
