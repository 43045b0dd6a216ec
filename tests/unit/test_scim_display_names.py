"""Pure helpers of issue 17's follow-ups: display names a server derives, aliases other users hold."""

from __future__ import annotations

from connector.compliance.scim_answers import alias_held_finding, held_aliases
from connector.compliance.scim_lifecycle import display_name_sent, replaced_user

USER = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "7", "userName": "ann@acme.com"}


def test_a_display_name_derived_from_a_one_word_name_reads_as_the_word_sent() -> None:
    derived = {**USER, "displayName": "Ann Ann", "name": {"givenName": "Ann", "familyName": "Ann"}}
    assert display_name_sent(derived) == "Ann"


def test_other_display_names_read_as_shown() -> None:
    assert display_name_sent({**USER, "displayName": "Ann"}) == "Ann"  # no name: stored as is
    two = {**USER, "displayName": "Bob Baker", "name": {"givenName": "Bob", "familyName": "Baker"}}
    assert display_name_sent(two) == "Bob Baker"
    kept = {**USER, "displayName": "Ann", "name": {"givenName": "Ann", "familyName": "Ann"}}
    assert display_name_sent(kept) == "Ann"  # a server that stores it: as shown
    assert display_name_sent({**USER, "name": {"givenName": "", "familyName": ""}}) is None


def test_a_replaced_display_name_fills_the_name_a_user_has() -> None:
    current = {**USER, "displayName": "ann@acme.com", "name": {"givenName": "", "familyName": "", "formatted": "x"}}
    body = replaced_user(current, {"displayName": "Robert Baker"})
    assert body["displayName"] == "Robert Baker"
    assert body["name"] == {"givenName": "Robert", "familyName": "Baker", "formatted": "Robert Baker"}
    assert "name" not in replaced_user({**USER, "displayName": "a"}, {"displayName": "Robert Baker"})
    assert replaced_user(current, {"externalId": "e1"})["name"] == current["name"]  # only a display name does


def test_aliases_held_by_another_user_are_found_case_insensitively() -> None:
    holders = {"robert@acme.com": "rob.hand", "bob@acme.com": "bob@acme.com", "bobby@acme.com": "Bob@acme.com"}
    aliases = ("Robert@acme.com", "bobby@acme.com", "b@acme.com")
    assert held_aliases("bob@acme.com", aliases, holders) == {"Robert@acme.com": "rob.hand"}
    finding = alias_held_finding("bob@acme.com", {"Robert@acme.com": "rob.hand"})
    assert finding.reason == "alias_held_by_other" and finding.addresses == ("Robert@acme.com",)
    assert "Robert@acme.com (held by rob.hand)" in finding.detail and finding.problem is False
