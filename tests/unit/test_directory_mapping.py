"""Directory attributes -> DirectoryEntry for the OpenLDAP and Active Directory presets."""

from __future__ import annotations

import pytest

from connector.directory.mapping import (
    ACTIVE_DIRECTORY,
    OPENLDAP,
    PRESETS,
    AttributeMapping,
    addresses_of,
    entry_from_attributes,
    mapping_attributes,
)
from connector.domain.directory import DirectoryObjectKind

AD_USER_CLASSES = ["top", "person", "organizationalPerson", "user"]


def test_presets_are_selectable_by_name() -> None:
    assert PRESETS == {"openldap": OPENLDAP, "active_directory": ACTIVE_DIRECTORY}


def test_openldap_user_with_alternate_addresses() -> None:
    entry = entry_from_attributes(
        "uid=jdoe,ou=people,dc=acme,dc=com",
        {
            "objectClass": ["top", "inetOrgPerson"],
            "mail": ["John.Doe@Acme.com"],
            "mailAlternateAddress": ["jdoe@acme.com", "john@acme.net", "JOHN.DOE@acme.com"],
            "cn": ["John Doe (cn)"],
            "displayName": ["John Doe"],
            "entryUUID": ["5a3c1b7e-0000-4000-8000-000000000001"],
        },
        OPENLDAP,
    )

    assert entry.kind is DirectoryObjectKind.USER
    assert entry.is_user
    assert entry.primary_address == "john.doe@acme.com"
    # The alias equal to the primary (after normalisation) is dropped.
    assert entry.aliases == ("jdoe@acme.com", "john@acme.net")
    assert entry.display_name == "John Doe"
    assert entry.external_id == "5a3c1b7e-0000-4000-8000-000000000001"
    assert entry.enabled
    assert addresses_of(entry) == ("john.doe@acme.com", "jdoe@acme.com", "john@acme.net")


def test_openldap_display_name_falls_back_to_cn() -> None:
    entry = entry_from_attributes(
        "uid=a,dc=x",
        {"objectClass": ["person"], "mail": ["a@x.example"], "displayName": ["  "], "cn": ["A"]},
        OPENLDAP,
    )
    assert entry.display_name == "A"


def test_openldap_extra_mail_values_become_aliases_after_alternates() -> None:
    entry = entry_from_attributes(
        "uid=a,dc=x",
        {
            "objectClass": ["inetOrgPerson"],
            "mail": ["a@x.example", "second@x.example"],
            "mailAlternateAddress": ["alt@x.example"],
        },
        OPENLDAP,
    )
    assert entry.primary_address == "a@x.example"
    assert entry.aliases == ("alt@x.example", "second@x.example")


@pytest.mark.parametrize(
    ("object_class", "kind"),
    [
        ("groupOfNames", DirectoryObjectKind.GROUP),
        ("groupOfUniqueNames", DirectoryObjectKind.GROUP),
        ("posixGroup", DirectoryObjectKind.GROUP),
        ("mailGroup", DirectoryObjectKind.GROUP),
        ("organizationalRole", DirectoryObjectKind.OTHER),
    ],
)
def test_openldap_object_classes(object_class: str, kind: DirectoryObjectKind) -> None:
    entry = entry_from_attributes(
        "cn=list,dc=x", {"objectClass": ["top", object_class], "mail": ["list@x.example"]}, OPENLDAP
    )
    assert entry.kind is kind
    assert entry.primary_address == "list@x.example"


def test_ad_proxy_addresses_primary_aliases_and_ignored_types() -> None:
    entry = entry_from_attributes(
        "CN=Jane Roe,OU=Staff,DC=corp,DC=acme,DC=com",
        {
            "objectClass": AD_USER_CLASSES,
            # ``mail`` is stale here; the upper-case SMTP: proxy is authoritative.
            "mail": ["jane.old@acme.com"],
            "proxyAddresses": [
                "smtp:jroe@acme.com",
                "X500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=jroe",
                "SMTP:Jane.Roe@Acme.com",
                "SIP:jane.voice@acme.com",
                "smtp:jane@acme.net",
                "smtp:Jane.Roe@acme.com",
            ],
            "objectGUID": ["Ge7TI7rbUE2KhqfwzHUgVQ=="],
            "userAccountControl": ["512"],
        },
        ACTIVE_DIRECTORY,
    )

    assert entry.kind is DirectoryObjectKind.USER
    assert entry.primary_address == "jane.roe@acme.com"
    assert entry.aliases == ("jroe@acme.com", "jane@acme.net", "jane.old@acme.com")
    assert entry.external_id == "Ge7TI7rbUE2KhqfwzHUgVQ=="
    assert entry.enabled


def test_ad_without_smtp_proxy_falls_back_to_mail() -> None:
    entry = entry_from_attributes(
        "CN=x,DC=corp",
        {
            "objectClass": AD_USER_CLASSES,
            "mail": ["x@acme.com"],
            "proxyAddresses": ["smtp:x2@acme.com"],
        },
        ACTIVE_DIRECTORY,
    )
    assert entry.primary_address == "x@acme.com"
    assert entry.aliases == ("x2@acme.com",)


@pytest.mark.parametrize(
    ("flags", "enabled"),
    [
        ("512", True),  # NORMAL_ACCOUNT
        ("514", False),  # NORMAL_ACCOUNT | ACCOUNTDISABLE
        ("66050", False),  # ... | DONT_EXPIRE_PASSWORD
        ("66048", True),
        ("garbage", False),  # unreadable flags fail closed
    ],
)
def test_ad_disabled_bit(flags: str, enabled: bool) -> None:
    entry = entry_from_attributes(
        "CN=x,DC=corp",
        {"objectClass": AD_USER_CLASSES, "mail": ["x@acme.com"], "userAccountControl": [flags]},
        ACTIVE_DIRECTORY,
    )
    assert entry.enabled is enabled


def test_ad_missing_disabled_flag_means_enabled() -> None:
    entry = entry_from_attributes(
        "CN=x,DC=corp", {"objectClass": AD_USER_CLASSES, "mail": ["x@acme.com"]}, ACTIVE_DIRECTORY
    )
    assert entry.enabled


def test_ad_contact_is_not_a_user_although_it_is_a_person() -> None:
    entry = entry_from_attributes(
        "CN=Partner,OU=Contacts,DC=corp",
        {
            "objectClass": ["top", "person", "organizationalPerson", "contact"],
            "mail": ["partner@other.example"],
            "proxyAddresses": ["SMTP:partner@other.example"],
        },
        ACTIVE_DIRECTORY,
    )
    assert entry.kind is DirectoryObjectKind.CONTACT
    assert not entry.is_user


def test_ad_group() -> None:
    entry = entry_from_attributes(
        "CN=Sales,OU=Groups,DC=corp",
        {"objectClass": ["top", "group"], "proxyAddresses": ["SMTP:sales@acme.com"]},
        ACTIVE_DIRECTORY,
    )
    assert entry.kind is DirectoryObjectKind.GROUP
    assert entry.primary_address == "sales@acme.com"


def test_ad_computer_account_is_other_although_it_is_a_user() -> None:
    entry = entry_from_attributes(
        "CN=SRV01,OU=Servers,DC=corp",
        {"objectClass": [*AD_USER_CLASSES, "computer"], "mail": ["srv01@acme.com"]},
        ACTIVE_DIRECTORY,
    )
    assert entry.kind is DirectoryObjectKind.OTHER


@pytest.mark.parametrize(
    ("details", "kind"),
    [
        ("1", DirectoryObjectKind.USER),  # UserMailbox
        ("4", DirectoryObjectKind.SHARED_MAILBOX),
        ("8", DirectoryObjectKind.SHARED_MAILBOX),  # RoomMailbox
        ("16", DirectoryObjectKind.SHARED_MAILBOX),  # EquipmentMailbox
        ("34359738368", DirectoryObjectKind.SHARED_MAILBOX),  # RemoteSharedMailbox
        ("2147483648", DirectoryObjectKind.USER),  # RemoteUserMailbox
    ],
)
def test_ad_shared_mailboxes(details: str, kind: DirectoryObjectKind) -> None:
    entry = entry_from_attributes(
        "CN=Info,OU=Shared,DC=corp",
        {
            "objectClass": AD_USER_CLASSES,
            "proxyAddresses": ["SMTP:info@acme.com"],
            "msExchRecipientTypeDetails": [details],
            "userAccountControl": ["514"],
        },
        ACTIVE_DIRECTORY,
    )
    assert entry.kind is kind


def test_attribute_names_are_case_insensitive_and_kept_lower_case() -> None:
    entry = entry_from_attributes(
        "CN=x,DC=corp",
        {
            "OBJECTCLASS": ["User"],
            "Mail": ["X@Acme.COM"],
            "PROXYADDRESSES": ["smtp:y@acme.com"],
            "proxyaddresses": ["smtp:z@acme.com"],
            "DisplayName": ["X"],
            "USERACCOUNTCONTROL": ["2"],
        },
        ACTIVE_DIRECTORY,
    )
    assert entry.kind is DirectoryObjectKind.USER
    assert entry.primary_address == "x@acme.com"
    assert entry.aliases == ("y@acme.com", "z@acme.com")
    assert entry.display_name == "X"
    assert not entry.enabled
    assert entry.attributes["proxyaddresses"] == ("smtp:y@acme.com", "smtp:z@acme.com")
    assert entry.attributes["objectclass"] == ("User",)
    assert all(name == name.lower() for name in entry.attributes)


def test_addresses_are_normalised_including_idn_domains() -> None:
    entry = entry_from_attributes(
        "uid=k,dc=x",
        {
            "objectClass": ["inetOrgPerson"],
            "mail": ["Käthe.Müller@Bücher.example"],
            "mailAlternateAddress": ["KM@BÜCHER.EXAMPLE", "km@xn--bcher-kva.example"],
        },
        OPENLDAP,
    )
    assert entry.primary_address == "käthe.müller@xn--bcher-kva.example"
    assert entry.aliases == ("km@xn--bcher-kva.example",)


def test_invalid_addresses_are_skipped_not_fatal() -> None:
    entry = entry_from_attributes(
        "uid=k,dc=x",
        {
            "objectClass": ["inetOrgPerson"],
            "mail": ["not an address", "ok@x.example"],
            "mailAlternateAddress": ["@x.example", "a b@x.example", "alt@x.example"],
        },
        OPENLDAP,
    )
    assert entry.primary_address == "ok@x.example"
    assert entry.aliases == ("alt@x.example",)


def test_object_without_addresses_has_no_primary() -> None:
    entry = entry_from_attributes("cn=admin,dc=x", {"objectClass": ["organizationalRole"]}, OPENLDAP)
    assert entry.primary_address is None
    assert entry.aliases == ()
    assert addresses_of(entry) == ()
    assert entry.kind is DirectoryObjectKind.OTHER


def test_a_bare_string_value_is_one_value_not_characters() -> None:
    entry = entry_from_attributes(
        "uid=a,dc=x",
        {"objectClass": "inetOrgPerson", "mail": "a@x.example"},
        OPENLDAP,
    )
    assert entry.kind is DirectoryObjectKind.USER
    assert entry.primary_address == "a@x.example"


def test_custom_mapping_needs_no_preset() -> None:
    mapping = AttributeMapping(
        primary_attribute="mailPrimaryAddress",
        alias_attributes=("mailAlias",),
        user_object_classes=("posixAccount",),
    )
    entry = entry_from_attributes(
        "uid=a,dc=x",
        {
            "objectClass": ["posixAccount"],
            "mailPrimaryAddress": ["a@x.example"],
            "mailAlias": ["b@x.example"],
        },
        mapping,
    )
    assert entry.kind is DirectoryObjectKind.USER
    assert addresses_of(entry) == ("a@x.example", "b@x.example")


@pytest.mark.parametrize(
    ("locks", "enabled"),
    [
        ({}, True),
        ({"pwdAccountLockedTime": ["000001010000Z"]}, False),  # ppolicy: locked for good
        ({"pwdAccountLockedTime": ["20261201120000Z"]}, False),
        ({"nsAccountLock": ["TRUE"]}, False),  # 389-DS
        ({"nsAccountLock": ["false"]}, True),
        ({"nsAccountLock": ["0"]}, True),
    ],
)
def test_openldap_locked_accounts_are_disabled(locks: dict[str, list[str]], enabled: bool) -> None:
    attributes = {"objectClass": ["inetOrgPerson"], "mail": ["a@x.example"], **locks}
    assert entry_from_attributes("uid=a,dc=x", attributes, OPENLDAP).enabled is enabled
    assert "pwdAccountLockedTime" in mapping_attributes(OPENLDAP)


def test_directory_text_values_are_cleaned_and_bounded() -> None:
    attributes = {
        "objectClass": ["inetOrgPerson"],
        "mail": ["a@x.example"],
        "displayName": ["\x1b]0;x\x07" + "A" * 400],
    }
    entry = entry_from_attributes("uid=a,dc=x", attributes, OPENLDAP)
    assert entry.display_name == "]0;x" + "A" * 251
