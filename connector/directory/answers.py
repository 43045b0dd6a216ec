"""From the entries a directory returned to one answer per requested address. Pure code."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

from connector.directory.mapping import addresses_of
from connector.domain.directory import DirectoryAnswer, DirectoryEntry, DirectoryObjectKind


def answers_for(addresses: Sequence[str], entries: Iterable[DirectoryEntry]) -> dict[str, DirectoryAnswer]:
    """Each requested address -> the one entry owning it, ``None``, or an ambiguous non-user.

    An address owned by two objects must never be provisioned: it is answered by
    an ``OTHER`` entry without a primary address, so every policy skips it.
    """
    wanted = set(addresses)
    owners: dict[str, list[DirectoryEntry]] = {}
    for entry in entries:
        for address in addresses_of(entry):
            if address not in wanted:
                continue
            found = owners.setdefault(address, [])
            if all(other.dn.lower() != entry.dn.lower() for other in found):
                found.append(entry)
    answers: dict[str, DirectoryAnswer] = {}
    for address in addresses:
        found = owners.get(address, [])
        if len(found) > 1:
            answers[address] = ambiguous(found)
        else:
            answers[address] = found[0] if found else None
    return answers


def ambiguous(entries: Sequence[DirectoryEntry]) -> DirectoryEntry:
    """The answer for an address several objects claim."""
    dns = "; ".join(entry.dn for entry in entries)
    return DirectoryEntry(kind=DirectoryObjectKind.OTHER, dn=f"ambiguous: {dns}", primary_address=None)


def text_of(raw: bytes) -> str:
    """An attribute value as text, the way ``LdifDirectory`` reads an LDIF export.

    UTF-8 values are decoded; binary ones (AD ``objectGUID``) keep their base64
    form, so an external id is the same whether it came from LDIF or LDAP.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")
