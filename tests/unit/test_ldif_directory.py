"""LDIF parsing and the LdifDirectory adapter, against real files in tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connector.directory.ldif import LdifDirectory, LdifError, parse_ldif
from connector.directory.mapping import ACTIVE_DIRECTORY, OPENLDAP
from connector.domain.directory import DirectoryObjectKind
from connector.errors import FatalError, RetriableError

OPENLDAP_EXPORT = """\
version: 1

# people
dn: uid=jdoe,ou=people,dc=acme,dc=com
objectClass: top
objectClass: inetOrgPerson
uid: jdoe
cn: John Doe
mail: John.Doe@Acme.com
mailAlternateAddress: jdoe@acme.com
mailAlternateAddress: john@acme.net
entryUUID: 5a3c1b7e-0000-4000-8000-000000000001

dn: cn=sales,ou=groups,dc=acme,dc=com
objectClass: groupOfNames
cn: sales
mail: sales@acme.com
member: uid=jdoe,ou=people,dc=acme,dc=com

dn: cn=admin,dc=acme,dc=com
objectClass: organizationalRole
cn: admin
"""


def write(tmp_path: Path, text: str, name: str = "directory.ldif") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- parse_ldif ---------------------------------------------------------------------------


def test_parse_records_with_version_and_comments() -> None:
    records = list(parse_ldif(OPENLDAP_EXPORT))

    assert [dn for dn, _ in records] == [
        "uid=jdoe,ou=people,dc=acme,dc=com",
        "cn=sales,ou=groups,dc=acme,dc=com",
        "cn=admin,dc=acme,dc=com",
    ]
    _, attributes = records[0]
    assert attributes["objectClass"] == ["top", "inetOrgPerson"]
    assert attributes["mailAlternateAddress"] == ["jdoe@acme.com", "john@acme.net"]
    assert "version" not in attributes


def test_parse_folded_lines_and_folded_comments() -> None:
    text = (
        "# a comment that is\n"
        " folded onto a second line: with a colon\n"
        "dn: uid=long,ou=people,\n"
        " dc=acme,dc=com\n"
        "description: first part\n"
        "  second part after a kept space\n"
        "mail: lo\n"
        " ng@acme.com\n"
    )
    [(dn, attributes)] = parse_ldif(text)

    assert dn == "uid=long,ou=people,dc=acme,dc=com"
    assert attributes["description"] == ["first part second part after a kept space"]
    assert attributes["mail"] == ["long@acme.com"]


def test_parse_base64_values_including_folded_and_dn() -> None:
    text = (
        "dn:: dWlkPWvDpHRoZSxvdT1wZW9wbGUsZGM9YWNtZSxkYz1jb20=\n"
        "displayName:: S8OkdGhlIE3D\n"
        " vGxsZXI=\n"
        "cn::S8OkdGhlIE3DvGxsZXI=\n"
    )
    [(dn, attributes)] = parse_ldif(text)

    assert dn == "uid=käthe,ou=people,dc=acme,dc=com"
    assert attributes["displayName"] == ["Käthe Müller"]
    assert attributes["cn"] == ["Käthe Müller"]


def test_binary_base64_values_are_kept_as_base64_text() -> None:
    text = "dn: CN=x,DC=corp\nobjectGUID:: Ge7TI7rbUE2KhqfwzHUgVQ==\nthumbnailPhoto:: //4AAQ==\n"
    [(_, attributes)] = parse_ldif(text)

    assert attributes["objectGUID"] == ["Ge7TI7rbUE2KhqfwzHUgVQ=="]
    assert attributes["thumbnailPhoto"] == ["//4AAQ=="]


def test_parse_options_keep_base_name_and_names_merge_case_insensitively() -> None:
    text = "dn: uid=a,dc=x\ncn: Anna\ncn;lang-en: Anna E\nCN: Anna C\nmail:\n"
    [(_, attributes)] = parse_ldif(text)

    assert attributes == {"cn": ["Anna", "Anna E", "Anna C"], "mail": [""]}


def test_parse_crlf_line_endings() -> None:
    text = "version: 1\r\n\r\ndn: uid=a,dc=x\r\nmail: a@x.example\r\n\r\n"
    assert list(parse_ldif(text)) == [("uid=a,dc=x", {"mail": ["a@x.example"]})]


def test_version_line_may_be_followed_directly_by_a_record() -> None:
    text = "version: 1\ndn: uid=a,dc=x\nmail: a@x.example\n"
    assert [dn for dn, _ in parse_ldif(text)] == ["uid=a,dc=x"]


def test_ldapsearch_result_trailer_is_skipped() -> None:
    text = "dn: uid=a,dc=x\nmail: a@x.example\n\n# search result\nsearch: 2\nresult: 0 Success\n"
    assert [dn for dn, _ in parse_ldif(text)] == ["uid=a,dc=x"]


@pytest.mark.parametrize(
    ("text", "line_no", "fragment"),
    [
        (
            (
                "version: 1\n\ndn: uid=a,dc=x\nmail: a@x.example\n\n"
                "dn: uid=b,dc=x\nchangetype: modify\nreplace: mail\nmail: b@x.example\n"
            ),
            7,
            "change records",
        ),
        ("dn: uid=a,dc=x\njpegPhoto:< file:///etc/passwd\n", 2, "URL"),
        ("dn: uid=a,dc=x\nmail a@x.example\n", 2, "no colon"),
        (" leading continuation\ndn: uid=a,dc=x\n", 1, "continuation"),
        ("dn: uid=a,dc=x\n\n folded after a blank line\n", 3, "continuation"),
        ("mail: a@x.example\n", 1, "must start with 'dn:'"),
        ("dn: uid=a,dc=x\nmail:: not*base64\n", 2, "base64"),
        ("dn: uid=a,dc=x\nbad name: x\n", 2, "attribute name"),
        ("dn: uid=a,dc=x\nmail: a@x.example\ndn: uid=b,dc=x\n", 3, "second 'dn:'"),
        ("version: 2\n\ndn: uid=a,dc=x\n", 1, "version"),
    ],
)
def test_parse_errors_carry_the_line_number(text: str, line_no: int, fragment: str) -> None:
    with pytest.raises(LdifError) as info:
        list(parse_ldif(text))

    assert info.value.line_no == line_no
    assert fragment in info.value.message
    assert str(info.value).startswith(f"line {line_no}:")
    assert isinstance(info.value, ValueError)


# --- LdifDirectory ------------------------------------------------------------------------


def test_lookup_primary_alias_and_unknown(tmp_path: Path) -> None:
    directory = LdifDirectory(write(tmp_path, OPENLDAP_EXPORT), OPENLDAP)

    answers = directory.lookup(["john.doe@acme.com", "john@acme.net", "nobody@acme.com"])

    assert set(answers) == {"john.doe@acme.com", "john@acme.net", "nobody@acme.com"}
    by_primary = answers["john.doe@acme.com"]
    by_alias = answers["john@acme.net"]
    assert by_primary is not None
    assert by_primary.kind is DirectoryObjectKind.USER
    assert by_primary.dn == "uid=jdoe,ou=people,dc=acme,dc=com"
    assert by_alias == by_primary
    assert by_alias.primary_address == "john.doe@acme.com"
    assert answers["nobody@acme.com"] is None


def test_lookup_group_and_empty_request(tmp_path: Path) -> None:
    directory = LdifDirectory(write(tmp_path, OPENLDAP_EXPORT), OPENLDAP)

    group = directory.lookup(["sales@acme.com"])["sales@acme.com"]

    assert group is not None
    assert group.kind is DirectoryObjectKind.GROUP
    assert directory.lookup([]) == {}


def test_count_and_iter_entries(tmp_path: Path) -> None:
    directory = LdifDirectory(write(tmp_path, OPENLDAP_EXPORT), OPENLDAP)

    assert directory.count_entries() == 3
    assert [entry.kind for entry in directory.iter_entries()] == [
        DirectoryObjectKind.USER,
        DirectoryObjectKind.GROUP,
        DirectoryObjectKind.OTHER,
    ]


def test_describe_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, OPENLDAP_EXPORT)
    assert str(path) in LdifDirectory(path, OPENLDAP).describe()


def test_active_directory_export(tmp_path: Path) -> None:
    text = (
        "dn: CN=Jane Roe,OU=Staff,DC=corp,DC=acme,DC=com\n"
        "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
        "objectClass: user\n"
        "mail: jane.roe@acme.com\n"
        "proxyAddresses: SMTP:Jane.Roe@Acme.com\n"
        "proxyAddresses: smtp:jroe@acme.com\n"
        "proxyAddresses: X500:/o=Org/ou=Exchange/cn=Recipients/cn=jroe\n"
        "objectGUID:: Ge7TI7rbUE2KhqfwzHUgVQ==\n"
        "userAccountControl: 514\n"
        "\n"
        "dn: CN=Partner,OU=Contacts,DC=corp,DC=acme,DC=com\n"
        "objectClass: top\nobjectClass: person\nobjectClass: contact\n"
        "mail: partner@other.example\n"
    )
    directory = LdifDirectory(write(tmp_path, text), ACTIVE_DIRECTORY)

    answers = directory.lookup(["jroe@acme.com", "partner@other.example"])

    jane = answers["jroe@acme.com"]
    partner = answers["partner@other.example"]
    assert jane is not None and partner is not None
    assert jane.primary_address == "jane.roe@acme.com"
    assert jane.external_id == "Ge7TI7rbUE2KhqfwzHUgVQ=="
    assert not jane.enabled
    assert partner.kind is DirectoryObjectKind.CONTACT


def test_idn_addresses_are_indexed_in_canonical_form(tmp_path: Path) -> None:
    text = "dn: uid=k,dc=x\nobjectClass: inetOrgPerson\nmail: K@Bücher.example\n"
    directory = LdifDirectory(write(tmp_path, text), OPENLDAP)

    entry = directory.lookup(["k@xn--bcher-kva.example"])["k@xn--bcher-kva.example"]

    assert entry is not None
    assert entry.dn == "uid=k,dc=x"


def test_address_owned_by_two_objects_is_ambiguous(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "dn: uid=a,dc=x\nobjectClass: inetOrgPerson\nmail: a@x.example\n"
        "mailAlternateAddress: shared@x.example\n\n"
        "dn: uid=b,dc=x\nobjectClass: inetOrgPerson\nmail: b@x.example\n"
        "mailAlternateAddress: Shared@X.example\n"
    )
    directory = LdifDirectory(write(tmp_path, text), OPENLDAP)

    with caplog.at_level(logging.DEBUG, logger="connector.directory.ldif"):
        answers = directory.lookup(["shared@x.example", "a@x.example"])

    ambiguous = answers["shared@x.example"]
    assert ambiguous is not None
    assert ambiguous.kind is DirectoryObjectKind.OTHER
    assert ambiguous.primary_address is None
    assert ambiguous.dn == "ambiguous: uid=a,dc=x; uid=b,dc=x"
    # The objects' own primaries stay answerable.
    owner = answers["a@x.example"]
    assert owner is not None and owner.dn == "uid=a,dc=x"

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "x.example" in warnings[0].getMessage()
    assert "shared@x.example" not in warnings[0].getMessage()


def test_duplicate_record_of_one_dn_is_not_ambiguous(tmp_path: Path) -> None:
    record = "dn: uid=a,dc=x\nobjectClass: inetOrgPerson\nmail: a@x.example\n"
    directory = LdifDirectory(write(tmp_path, f"{record}\n{record}"), OPENLDAP)

    entry = directory.lookup(["a@x.example"])["a@x.example"]

    assert entry is not None
    assert entry.dn == "uid=a,dc=x"


def test_missing_file_is_retriable_and_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "later.ldif"
    directory = LdifDirectory(path, OPENLDAP)  # lazy: constructing does not read

    with pytest.raises(RetriableError) as info:
        directory.lookup(["john.doe@acme.com"])
    assert isinstance(info.value.__cause__, OSError)
    assert str(path) in str(info.value)

    write(tmp_path, OPENLDAP_EXPORT, name="later.ldif")
    assert directory.lookup(["john.doe@acme.com"])["john.doe@acme.com"] is not None


def test_unreadable_path_is_retriable(tmp_path: Path) -> None:
    # A directory where the file should be: reading fails with an OSError.
    directory = LdifDirectory(tmp_path, OPENLDAP)

    with pytest.raises(RetriableError):
        directory.count_entries()


def test_syntax_error_is_fatal_and_names_path_and_line(tmp_path: Path) -> None:
    text = "dn: uid=a,dc=x\nmail: a@x.example\n\ndn: uid=b,dc=x\nchangetype: delete\n"
    path = write(tmp_path, text)

    with pytest.raises(FatalError) as info:
        LdifDirectory(path, OPENLDAP).lookup(["a@x.example"])

    assert str(path) in str(info.value)
    assert "line 5" in str(info.value)
    assert isinstance(info.value.__cause__, LdifError)


def test_non_utf8_file_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ldif"
    path.write_bytes("dn: uid=a,dc=x\ncn: Müller\n".encode("latin-1"))

    with pytest.raises(FatalError, match="not UTF-8"):
        LdifDirectory(path, OPENLDAP).count_entries()


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.ldif"
    path.write_bytes(b"\xef\xbb\xbf" + OPENLDAP_EXPORT.encode("utf-8"))

    assert LdifDirectory(path, OPENLDAP).count_entries() == 3


def test_file_is_loaded_once(tmp_path: Path) -> None:
    path = write(tmp_path, OPENLDAP_EXPORT)
    directory = LdifDirectory(path, OPENLDAP)
    assert directory.lookup(["sales@acme.com"])["sales@acme.com"] is not None

    path.write_text("", encoding="utf-8")

    # One run sees one snapshot, even if the export is rewritten meanwhile.
    assert directory.lookup(["sales@acme.com"])["sales@acme.com"] is not None
    assert directory.count_entries() == 3
