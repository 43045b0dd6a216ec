"""Trust the answer, not the request (issue 17): what a SCIM server stored, read from its answers. Pure."""

from __future__ import annotations

from connector.compliance.scim_answers import (
    ALREADY_IN_TARGET,
    DROPPED_ALIAS,
    already_in_target_finding,
    dropped_addresses,
    dropped_alias_finding,
    dropped_members,
    held_by_another,
    lost_aliases,
    owner_by_address,
)
from connector.compliance.scim_discovery import GROUP_SCHEMA, ServerProfile, shapes_from_schemas
from connector.compliance.scim_groups import members_required

# What django-scim2 answers to a POST of bob with robert@ as a second email: one email, the primary.
DJANGO_201 = {"id": "7", "userName": "bob@acme.com", "emails": [{"value": "bob@acme.com", "primary": True}]}


def test_an_alias_missing_from_the_answer_is_dropped_case_insensitively() -> None:
    assert dropped_addresses(["robert@acme.com"], DJANGO_201) == ["robert@acme.com"]
    both = {**DJANGO_201, "emails": [{"value": "BOB@acme.com"}, {"value": "Robert@ACME.com"}]}
    assert dropped_addresses(["robert@acme.com"], both) == []
    assert dropped_addresses(["r@acme.com", "r@acme.com", "s@acme.com"], DJANGO_201) == ["r@acme.com", "s@acme.com"]


def test_an_answer_that_shows_no_emails_tells_nothing() -> None:
    assert dropped_addresses(["robert@acme.com"], {"id": "7", "userName": "bob@acme.com"}) is None  # e.g. minimal
    assert dropped_addresses(["robert@acme.com"], None) is None  # 204: no body
    assert dropped_addresses(["robert@acme.com"], ["not", "a", "user"]) is None


def test_members_missing_from_a_group_answer() -> None:
    group = {"id": "g", "displayName": "Acme", "members": [{"value": "1"}, {"value": 2}]}
    assert dropped_members(["1", "2", "3"], group) == ["3"]
    assert dropped_members(["1"], {"id": "g", "displayName": "Acme"}) is None  # members not shown
    assert dropped_members(["1"], {"id": "g", "members": []}) == ["1"]


def test_the_owner_of_an_address_is_found_by_username_and_by_emails() -> None:
    hand_made = {"id": "9", "userName": "erin.estrada", "emails": [{"value": "Erin@acme.com", "primary": True}]}
    ours = {"id": "1", "userName": "frank@acme.com", "emails": [{"value": "frank@acme.com"}]}
    owners = owner_by_address([hand_made, ours])
    assert owners["erin@acme.com"] is hand_made and owners["erin.estrada"] is hand_made
    assert owners["frank@acme.com"] is ours
    assert held_by_another("erin@acme.com", hand_made)
    assert not held_by_another("FRANK@acme.com", ours)  # the user named so: ours (or reconciled), not another


def test_findings_name_their_reason_and_aliases() -> None:
    finding = dropped_alias_finding("bob@acme.com", ["robert@acme.com"], "POST /Users")
    assert (finding.reason, finding.address, finding.addresses, finding.problem) == (
        DROPPED_ALIAS,
        "bob@acme.com",
        ("robert@acme.com",),
        True,
    )
    skipped = already_in_target_finding("erin@acme.com", {"id": "9", "userName": "erin.estrada"})
    assert skipped.reason == ALREADY_IN_TARGET and not skipped.problem and "erin.estrada" in skipped.detail


def test_a_known_alias_gone_from_a_user_still_there_is_lost() -> None:
    before = {"robert@acme.com": "bob@acme.com", "a@acme.com": "alice@acme.com", "x@acme.com": "gone@acme.com"}
    after_users = ["bob@acme.com", "alice@acme.com"]
    after_aliases = {"a@acme.com": "alice@acme.com"}
    # x@ went with its user (deleted): not a lost alias; robert@ is gone from bob, who is still there.
    assert lost_aliases(before, after_users, after_aliases) == {"robert@acme.com": "bob@acme.com"}
    # An alias that became a user of its own is not lost either.
    assert lost_aliases(before, [*after_users, "robert@acme.com"], after_aliases) == {}


def test_members_are_required_only_where_the_group_schema_says_so() -> None:
    schemas = {
        "Resources": [
            {
                "id": GROUP_SCHEMA,
                "attributes": [
                    {"name": "displayName", "required": True},
                    {"name": "members", "required": True, "multiValued": True},
                ],
            }
        ]
    }
    strict = ServerProfile(group=shapes_from_schemas(schemas)[GROUP_SCHEMA.lower()])
    assert members_required(strict)
    assert not members_required(ServerProfile())  # schema unknown: nothing required
    assert not members_required(object())  # an older profile without schemas
