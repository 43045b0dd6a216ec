"""The target's known addresses, canonicalised like candidates are."""

from __future__ import annotations

from connector.compliance.base import ComplianceDirectory
from connector.policy.addresses import AddressMap, InvalidAddress
from connector.policy.known import KnownAddresses


def load_known(target: ComplianceDirectory, address_map: AddressMap) -> KnownAddresses:
    """The target's users and aliases, canonicalised like candidates are."""
    snapshot = target.known_addresses()
    known = KnownAddresses()

    def canonical(address: str) -> str | None:
        try:
            return address_map.canonical(address)
        except InvalidAddress:
            return None

    for user in snapshot.users:
        if (primary := canonical(user)) is not None:
            known.add_user(primary)
    for alias, owner in snapshot.aliases.items():
        alias_c, owner_c = canonical(alias), canonical(owner)
        if alias_c and owner_c:
            known.add_alias(alias_c, owner_c)
    return known
