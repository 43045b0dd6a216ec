"""One mail directory, written out for every ``Directory`` implementation of the contract suite.

The objects are described once (``OBJECTS``) and rendered as an Active Directory LDIF
(the file ``LdifDirectory`` reads and the data slapd serves, which ``LdapDirectory`` and
the mirror read) and as the Graph collections the Graph stand-in answers from. So every
implementation is asked about the same people, aliases, groups and contacts.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tests.directory.slapd import BASE_LDIF, SUFFIX


@dataclass(frozen=True)
class DirectoryObject:
    """One object of the directory, as an administrator would describe it."""

    name: str
    kind: str  # user | shared_mailbox | group | contact | computer
    mail: str
    proxy_addresses: tuple[str, ...]  # as stored: ``SMTP:`` primary, ``smtp:`` aliases, other types
    enabled: bool = True
    department: str | None = None
    guid: bytes | None = None

    @property
    def dn(self) -> str:
        return f"cn={self.name},ou=users,{SUFFIX}"

    @property
    def external_id(self) -> str | None:
        """The base64 objectGUID: what LDIF and LDAP give, and Graph's ``onPremisesImmutableId``."""
        return base64.b64encode(self.guid).decode() if self.guid else None


GUID_ALICE = bytes.fromhex("8f1e2d3c4b5a69788796a5b4c3d2e1f0")  # not UTF-8, as AD stores it
GUID_ERIN = bytes.fromhex("0a1b2c3d4e5f60718293a4b5c6d7e8f9")

OBJECTS = (
    DirectoryObject(
        "Alice Adams",
        "user",
        "alice@acme.com",
        ("SMTP:alice@acme.com", "smtp:a.adams@acme.com", "X500:/o=ACME/cn=alice", "SIP:alice@acme.com"),
        department="Sales",
        guid=GUID_ALICE,
    ),
    # The ``SMTP:`` proxy is the primary even when ``mail`` still holds the old address.
    DirectoryObject("Bob Brown", "user", "bob.old@acme.com", ("smtp:bob.old@acme.com", "SMTP:bob@acme.com")),
    # Stored in mixed case: every implementation must find it by the normalised address.
    DirectoryObject(
        "Erin Estrada",
        "user",
        "Erin.Estrada@ACME.com",
        ("SMTP:Erin.Estrada@ACME.com", "smtp:EE@Acme.COM"),
        guid=GUID_ERIN,
    ),
    # An alias in an internationalised domain, stored in Unicode: asked for in its IDNA form.
    DirectoryObject(
        "Juergen Jaeger", "user", "juergen@acme.com", ("SMTP:juergen@acme.com", "smtp:juergen@bücher.example")
    ),
    DirectoryObject("Dora Disabled", "user", "dora@acme.com", ("SMTP:dora@acme.com",), enabled=False),
    DirectoryObject("Shared Info", "shared_mailbox", "info@acme.com", ("SMTP:info@acme.com",), enabled=False),
    DirectoryObject("All Staff", "group", "staff@acme.com", ("SMTP:staff@acme.com",)),
    DirectoryObject(
        "Carl Contact", "contact", "carl@partner.example", ("SMTP:carl@partner.example", "smtp:carl@acme.com")
    ),
    DirectoryObject("PRINTER01", "computer", "printer@acme.com", ("SMTP:printer@acme.com",)),
    # Two people claim twin@acme.com: nobody may be provisioned for it.
    DirectoryObject("Tom Twin", "user", "tom@acme.com", ("SMTP:tom@acme.com", "smtp:twin@acme.com")),
    DirectoryObject("Tim Twin", "user", "tim@acme.com", ("SMTP:tim@acme.com", "smtp:twin@acme.com")),
)

_CLASSES = {
    "user": ("person", "organizationalPerson", "user"),
    "shared_mailbox": ("person", "organizationalPerson", "user"),
    "group": ("group",),
    "contact": ("person", "organizationalPerson", "contact"),
    "computer": ("person", "organizationalPerson", "user", "computer"),
}


def _attribute(name: str, value: str) -> str:
    """One LDIF line; a value that is not ASCII is base64 (RFC 2849 SAFE-STRING)."""
    if value.isascii():
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _ldif_record(item: DirectoryObject) -> str:
    lines = [f"dn: {item.dn}", *(f"objectClass: {name}" for name in _CLASSES[item.kind]), f"cn: {item.name}"]
    if item.kind != "group":
        lines.append(f"sn: {item.name.split()[-1]}")
    lines += [f"displayName: {item.name}", f"mail: {item.mail}"]
    lines += [_attribute("proxyAddresses", value) for value in item.proxy_addresses]
    if item.kind in ("user", "shared_mailbox"):
        lines.append(f"userAccountControl: {512 if item.enabled else 514}")
    if item.kind == "computer":
        lines.append("userAccountControl: 4096")
    if item.kind == "shared_mailbox":
        lines.append("msExchRecipientTypeDetails: 4")
    if item.department:
        lines.append(f"department: {item.department}")
    if item.guid:
        lines.append(f"objectGUID:: {item.external_id}")
    return "\n".join(lines) + "\n\n"


def directory_ldif() -> str:
    """The objects as slapd loads them (after ``BASE_LDIF``, which the server adds itself)."""
    return f"dn: ou=users,{SUFFIX}\nobjectClass: organizationalUnit\nou: users\n\n" + "".join(
        map(_ldif_record, OBJECTS)
    )


def export_ldif() -> str:
    """The same directory as an ``ldapsearch -LLL`` export of the whole server: what ``LdifDirectory`` reads."""
    return BASE_LDIF + directory_ldif()


def _graph_user(item: DirectoryObject) -> dict[str, Any]:
    return {
        "id": f"id-{item.name.split()[0].lower()}",
        "userPrincipalName": item.mail.lower(),
        "displayName": item.name,
        "mail": item.mail,
        "proxyAddresses": list(item.proxy_addresses),
        # Graph has no shared-mailbox kind: such mailboxes are users whose sign-in is disabled.
        "accountEnabled": item.enabled,
        "onPremisesImmutableId": item.external_id,
        "department": item.department,
        "companyName": None,
        "officeLocation": None,
    }


def graph_collections() -> dict[str, list[dict[str, Any]]]:
    """The objects as Entra ID holds them. Entra has no computer objects with mail: they are absent."""
    users = [_graph_user(o) for o in OBJECTS if o.kind in ("user", "shared_mailbox")]
    others = {
        kind: [
            {
                "id": f"id-{o.name.split()[0].lower()}",
                "displayName": o.name,
                "mail": o.mail,
                "proxyAddresses": list(o.proxy_addresses),
            }
            for o in OBJECTS
            if o.kind == kind
        ]
        for kind in ("group", "contact")
    }
    return {"users": users, "groups": others["group"], "contacts": others["contact"]}
