"""Which schema preset fits a directory: the detection rules of docs/directory.md, pure."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connector.directory.mapping import ACTIVE_DIRECTORY, OPENLDAP, AttributeMapping
from connector.directory.presets import (
    PresetCheck,
    PresetDetection,
    detect_from_entries,
    detect_from_root_dse,
    mapping_for,
    preset_name,
)

Entry = dict[str, Sequence[str]]
AD_USER: Entry = {
    "objectClass": ["top", "person", "organizationalPerson", "user"],
    "mail": ["ann@acme.com"],
    "proxyAddresses": ["SMTP:ann@acme.com"],
    "userAccountControl": ["512"],
}
AD_CONTACT: Entry = {"objectClass": ["person", "contact"], "mail": ["ext@acme.com"]}
OPENLDAP_USER: Entry = {"objectClass": ["inetOrgPerson"], "mail": ["bob@acme.com"], "mailAlternateAddress": ["b@x"]}
ZIMBRA_LIKE: Entry = {"objectClass": ["inetOrgPerson"], "mail": ["c@acme.com"], "proxyAddresses": ["smtp:c2@acme.com"]}
OU: Entry = {"objectClass": ["organizationalUnit"], "ou": ["people"]}
AD_OU_WITHOUT_ADDRESS: Entry = {"objectClass": ["user"], "sAMAccountName": ["svc"]}


def test_most_entries_with_an_address_carrying_ad_markers_is_active_directory() -> None:
    found = detect_from_entries([AD_USER, AD_USER, AD_CONTACT, OPENLDAP_USER, OU])
    assert found == PresetDetection(
        "active_directory",
        "3 of 4 entries with an address carry proxyAddresses, userAccountControl, objectClass: user",
    )


def test_a_few_ad_attributes_in_an_openldap_directory_are_not_enough() -> None:
    found = detect_from_entries([ZIMBRA_LIKE, OPENLDAP_USER, OPENLDAP_USER, OPENLDAP_USER])
    assert found == PresetDetection(
        "openldap", "only 1 of 4 entries with an address carry Active Directory attributes (proxyAddresses)"
    )
    assert detect_from_entries([AD_USER, OPENLDAP_USER]).preset == "openldap"  # a tie is no majority


def test_entries_without_an_address_are_no_evidence() -> None:
    found = detect_from_entries([OU, AD_OU_WITHOUT_ADDRESS])
    assert found == PresetDetection("openldap", "no entry with an address to go by", conclusive=False)
    assert PresetCheck("active_directory", found).warning() is None  # nothing to warn about


def test_attribute_and_class_names_are_compared_case_insensitively() -> None:
    entry: Entry = {"OBJECTCLASS": ["User"], "MAIL": ["x@acme.com"], "ProxyAddresses": ["SMTP:x@acme.com"]}
    assert detect_from_entries([entry]).preset == "active_directory"


@pytest.mark.parametrize(
    ("root_dse", "evidence"),
    [
        (
            {"supportedCapabilities": ["1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1670"]},
            "the server's root DSE lists capability 1.2.840.113556.1.4.800",
        ),
        ({"forestFunctionality": ["7"]}, "the server's root DSE has forestFunctionality"),
        ({"isglobalcatalogready": ["TRUE"]}, "the server's root DSE has isGlobalCatalogReady"),
    ],
)
def test_a_domain_controllers_root_dse_says_active_directory(root_dse: Entry, evidence: str) -> None:
    assert detect_from_root_dse(root_dse) == PresetDetection("active_directory", evidence)


def test_other_root_dses_leave_it_to_the_entries() -> None:
    assert detect_from_root_dse({}) is None
    assert detect_from_root_dse({"supportedCapabilities": ["1.2.840.113556.1.4.1851"]}) is None  # AD LDS
    assert detect_from_root_dse({"forestFunctionality": []}) is None


def test_a_preset_chosen_by_hand_that_does_not_fit_is_a_warning() -> None:
    ad = detect_from_entries([AD_USER])
    openldap = detect_from_entries([OPENLDAP_USER])
    warning = PresetCheck("openldap", ad).warning()
    assert warning == (
        "directory.schema_preset is openldap, but the directory looks like Active Directory "
        "(1 of 1 entries with an address carry proxyAddresses, userAccountControl, objectClass: user): "
        "aliases in proxyAddresses are never read, and disabled accounts and contacts are taken for users; "
        'set schema_preset: active_directory or "auto"'
    )
    warning = PresetCheck("active_directory", openldap).warning()
    assert warning is not None and "looks like OpenLDAP" in warning
    assert "aliases in mailAlternateAddress are never read" in warning
    for fitting in (PresetCheck("openldap", openldap), PresetCheck("active_directory", ad)):
        assert fitting.warning() is None
    for unchecked in (PresetCheck("auto", ad), PresetCheck("custom", ad)):
        assert unchecked.warning() is None


def test_auto_uses_what_was_detected() -> None:
    ad = detect_from_entries([AD_USER])
    assert PresetCheck("auto", ad).in_use == "active_directory" and mapping_for(ad) is ACTIVE_DIRECTORY
    assert PresetCheck("openldap", ad).in_use == "openldap"
    assert PresetCheck("auto", ad).describe().startswith("schema preset: active_directory (auto: 1 of 1 entries")
    assert mapping_for(detect_from_entries([])) is OPENLDAP


def test_preset_names_of_configured_mappings() -> None:
    assert [preset_name(m) for m in (None, OPENLDAP, ACTIVE_DIRECTORY)] == ["auto", "openldap", "active_directory"]
    assert preset_name(AttributeMapping(primary_attribute="mail")) == "custom"
