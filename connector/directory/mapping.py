"""Directory object attributes -> ``DirectoryEntry``: pure code, no I/O, no logging.

Every directory adapter (LDAP, LDIF, ...) hands the raw attributes of one object
to ``entry_from_attributes`` so OpenLDAP and Active Directory answers mean the
same thing whichever transport fetched them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.policy.addresses import InvalidAddress, normalise_address

OBJECT_CLASS_ATTRIBUTE = "objectclass"
"""Standard LDAP attribute naming an object's classes (compared lower-case)."""

_PROXY_PRIMARY_TYPE = "SMTP"
"""In ``proxyAddresses`` the upper-case type marks the primary SMTP address."""


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    """Which attributes of a directory object carry which meaning.

    Attribute and object class names are compared case-insensitively, as LDAP does.
    """

    primary_attribute: str = "mail"
    """Attribute whose first value is the primary address, unless an ``SMTP:`` proxy wins."""

    alias_attributes: tuple[str, ...] = ()
    """Attributes holding further addresses of the object (e.g. ``mailAlternateAddress``)."""

    proxy_addresses_attribute: str | None = None
    """AD-style ``type:address`` values: ``SMTP:`` primary, ``smtp:`` alias, other types ignored."""

    display_name_attributes: tuple[str, ...] = ("displayName", "cn")
    """Tried in order; the first non-blank value is the display name."""

    external_id_attribute: str | None = None
    """Stable object identifier that survives renames (``entryUUID``, ``objectGUID``)."""

    user_object_classes: tuple[str, ...] = ()
    """Object classes that make an object a user (checked after contacts and groups)."""

    group_object_classes: tuple[str, ...] = ()
    """Object classes that make an object a group (checked before users)."""

    contact_object_classes: tuple[str, ...] = ()
    """Object classes that make an object an external contact (checked first after ``other``)."""

    other_object_classes: tuple[str, ...] = ()
    """Object classes that force ``OTHER`` whatever else the object carries (AD computers are
    also ``user`` objects)."""

    disabled_flag_attribute: str | None = None
    """Integer bit field saying whether the account is disabled (AD ``userAccountControl``)."""

    disabled_flag_mask: int = 0x2
    """Bit of ``disabled_flag_attribute`` that means disabled (AD ``ACCOUNTDISABLE`` = 0x2)."""

    locked_attributes: tuple[str, ...] = ()
    """Attributes whose presence locks the account (OpenLDAP ppolicy ``pwdAccountLockedTime``,
    389-DS ``nsAccountLock``); the values ``false`` and ``0`` do not."""

    shared_mailbox_attribute: str | None = None
    """Attribute marking a user object as a shared or resource mailbox (AD Exchange)."""

    shared_mailbox_values: tuple[str, ...] = ()
    """Values of ``shared_mailbox_attribute`` that turn a user into ``SHARED_MAILBOX``."""


OPENLDAP = AttributeMapping(
    primary_attribute="mail",
    alias_attributes=("mailAlternateAddress",),
    display_name_attributes=("displayName", "cn"),
    external_id_attribute="entryUUID",
    user_object_classes=("inetOrgPerson", "person", "organizationalPerson"),
    group_object_classes=("groupOfNames", "groupOfUniqueNames", "posixGroup", "mailGroup"),
    locked_attributes=("pwdAccountLockedTime", "nsAccountLock"),
)
"""OpenLDAP with the usual inetOrgPerson schema and the Sendmail/Postfix mail attributes."""

ACTIVE_DIRECTORY = AttributeMapping(
    primary_attribute="mail",
    proxy_addresses_attribute="proxyAddresses",
    display_name_attributes=("displayName", "cn"),
    external_id_attribute="objectGUID",
    user_object_classes=("user", "person"),
    group_object_classes=("group", "msExchDynamicDistributionList"),
    # AD contacts also carry ``person``/``organizationalPerson``: contacts are checked first.
    contact_object_classes=("contact",),
    # Computer and managed service accounts derive from ``user``.
    other_object_classes=("computer",),
    disabled_flag_attribute="userAccountControl",
    disabled_flag_mask=0x2,
    shared_mailbox_attribute="msExchRecipientTypeDetails",
    # Shared, room and equipment mailboxes, then their hybrid "remote" (cloud) counterparts.
    shared_mailbox_values=("4", "8", "16", "8589934592", "17179869184", "34359738368"),
)
"""Active Directory with Exchange attributes (on-premises or hybrid)."""

PRESETS: dict[str, AttributeMapping] = {
    "openldap": OPENLDAP,
    "active_directory": ACTIVE_DIRECTORY,
}
"""Presets selectable by name in the configuration."""


def entry_from_attributes(
    dn: str,
    attributes: Mapping[str, Sequence[str]],
    mapping: AttributeMapping,
) -> DirectoryEntry:
    """Build the ``DirectoryEntry`` for one object; never raises on odd data.

    Invalid addresses are skipped rather than failing the whole object, because
    one typo in an alias must not hide the user's other addresses.
    """
    attrs = _lower_keys(attributes)
    primary, aliases = _addresses(attrs, mapping)
    return DirectoryEntry(
        kind=_kind(attrs, mapping),
        dn=dn,
        primary_address=primary,
        aliases=aliases,
        display_name=_first_non_blank(attrs, mapping.display_name_attributes),
        enabled=_enabled(attrs, mapping),
        external_id=_first_non_blank(attrs, _optional(mapping.external_id_attribute)),
        attributes=attrs,
    )


def addresses_of(entry: DirectoryEntry) -> tuple[str, ...]:
    """Every address the entry owns: its primary first, then its aliases."""
    if entry.primary_address is None:
        return entry.aliases
    return (entry.primary_address, *entry.aliases)


def _lower_keys(attributes: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Merge attributes whose names differ only by case, keyed by the lower-case name."""
    merged: dict[str, list[str]] = {}
    for name, values in attributes.items():
        # A bare ``str`` is a ``Sequence[str]`` too; do not split it into characters.
        items = [values] if isinstance(values, str) else [str(v) for v in values]
        merged.setdefault(name.lower(), []).extend(items)
    return {name: tuple(values) for name, values in merged.items()}


def _optional(name: str | None) -> tuple[str, ...]:
    return () if name is None else (name,)


def _values(attrs: Mapping[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    return attrs.get(name.lower(), ())


def _first_non_blank(attrs: Mapping[str, tuple[str, ...]], names: Iterable[str]) -> str | None:
    for name in names:
        for value in _values(attrs, name):
            if value.strip():
                return value.strip()
    return None


def _normalised(value: str) -> str | None:
    try:
        return normalise_address(value)
    except InvalidAddress:
        return None


def _addresses(attrs: Mapping[str, tuple[str, ...]], mapping: AttributeMapping) -> tuple[str | None, tuple[str, ...]]:
    """Primary address and de-duplicated aliases, in a stable order."""
    proxy_primary: list[str] = []
    proxy_secondary: list[str] = []
    if mapping.proxy_addresses_attribute is not None:
        for value in _values(attrs, mapping.proxy_addresses_attribute):
            kind, sep, address = value.strip().partition(":")
            if not sep or kind.lower() != "smtp":
                continue  # X500:, SIP:, X400:, EUM: ... are not mail addresses
            target = proxy_primary if kind == _PROXY_PRIMARY_TYPE else proxy_secondary
            normalised = _normalised(address)
            if normalised is not None:
                target.append(normalised)

    mail_values = [a for a in map(_normalised, _values(attrs, mapping.primary_attribute)) if a is not None]
    alias_values = [
        a for name in mapping.alias_attributes for a in map(_normalised, _values(attrs, name)) if a is not None
    ]

    candidates = proxy_primary[:1] or mail_values[:1]
    primary = candidates[0] if candidates else None
    # A second ``SMTP:`` value is a data error; keep it reachable as an alias.
    others = [*proxy_primary[1:], *proxy_secondary, *alias_values, *mail_values]
    aliases = tuple(dict.fromkeys(a for a in others if a != primary))
    return primary, aliases


def _kind(attrs: Mapping[str, tuple[str, ...]], mapping: AttributeMapping) -> DirectoryObjectKind:
    classes = {value.strip().lower() for value in _values(attrs, OBJECT_CLASS_ATTRIBUTE)}

    def has_any(wanted: tuple[str, ...]) -> bool:
        return any(name.lower() in classes for name in wanted)

    # Order matters: AD contacts and groups share classes (person, top) with users.
    if has_any(mapping.other_object_classes):
        return DirectoryObjectKind.OTHER
    if has_any(mapping.contact_object_classes):
        return DirectoryObjectKind.CONTACT
    if has_any(mapping.group_object_classes):
        return DirectoryObjectKind.GROUP
    if has_any(mapping.user_object_classes):
        if _is_shared_mailbox(attrs, mapping):
            return DirectoryObjectKind.SHARED_MAILBOX
        return DirectoryObjectKind.USER
    return DirectoryObjectKind.OTHER


def _is_shared_mailbox(attrs: Mapping[str, tuple[str, ...]], mapping: AttributeMapping) -> bool:
    if mapping.shared_mailbox_attribute is None:
        return False
    wanted = set(mapping.shared_mailbox_values)
    return any(v.strip() in wanted for v in _values(attrs, mapping.shared_mailbox_attribute))


def _enabled(attrs: Mapping[str, tuple[str, ...]], mapping: AttributeMapping) -> bool:
    for name in mapping.locked_attributes:
        if any(v.strip().lower() not in ("", "false", "0") for v in _values(attrs, name)):
            return False
    if mapping.disabled_flag_attribute is None:
        return True
    values = _values(attrs, mapping.disabled_flag_attribute)
    if not values:
        return True
    try:
        flags = int(values[0].strip())
    except ValueError:
        # Fail closed: an unreadable flag must not let a disabled account be provisioned.
        return False
    return not flags & mapping.disabled_flag_mask


def mapping_attributes(mapping: AttributeMapping) -> tuple[str, ...]:
    """Every attribute ``entry_from_attributes`` reads with ``mapping``: what to fetch."""
    names = [
        OBJECT_CLASS_ATTRIBUTE,
        mapping.primary_attribute,
        *mapping.alias_attributes,
        *_optional(mapping.proxy_addresses_attribute),
        *mapping.display_name_attributes,
        *_optional(mapping.external_id_attribute),
        *_optional(mapping.disabled_flag_attribute),
        *mapping.locked_attributes,
        *_optional(mapping.shared_mailbox_attribute),
    ]
    return tuple(dict.fromkeys(names))


def address_attributes(mapping: AttributeMapping) -> tuple[str, ...]:
    """Attributes that hold addresses (what a lookup filter compares)."""
    names = [mapping.primary_attribute, *mapping.alias_attributes, *_optional(mapping.proxy_addresses_attribute)]
    return tuple(dict.fromkeys(names))
