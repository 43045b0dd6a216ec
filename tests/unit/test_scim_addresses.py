"""What the SCIM target sends: every address the mail system takes (special-use domains too),
Bulk answers read per operation, and the fingerprint a target's refusal is stored under.

Before, ``scim2-models`` checked ``emails`` with email-validator, which refuses
``.test``, ``.local``, ``.localhost``, ``.invalid``, ``.arpa`` and ``.onion``
("special-use or reserved name"): such users were refused before any request.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.compliance.base import NewUser
from connector.compliance.refusals import refusal_fingerprint, refusal_fingerprints, target_fingerprint
from connector.compliance.scim_mapping import (
    add_emails_patch,
    bulk_create_request,
    bulk_position,
    mail_address,
    operation_error,
    replace_emails,
    replace_user,
    user_payload,
)
from connector.config.target import ScimTargetSettings
from connector.errors import SkippableError
from connector.policy.addresses import normalise_address

SPECIAL_USE = ("test", "local", "localhost", "invalid", "arpa", "onion")
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.mark.parametrize("tld", SPECIAL_USE)
def test_a_user_at_a_special_use_domain_is_a_valid_scim_user(tld: str) -> None:
    user = NewUser(f"bob@acme.{tld}", "Acme", (f"robert@acme.{tld}", f"bob@mail.acme.{tld}"), "Bob Baker")
    payload = user_payload(user)
    assert payload["userName"] == f"bob@acme.{tld}"
    assert payload["emails"] == [
        {"value": f"bob@acme.{tld}", "primary": True, "type": "work"},
        {"value": f"robert@acme.{tld}"},
        {"value": f"bob@mail.acme.{tld}"},
    ]


@pytest.mark.parametrize(
    "address",
    [
        "bob@localhost",  # one label: a local mail system's own domain
        '"john.doe"@acme.local',  # quoted local part, as Postfix logs it
        "o'brien+tag@acme.test",
        "bob@[192.0.2.1]",  # an address literal
        "jöhn@bücher.example",  # SMTPUTF8 (RFC 6531)
        "x" * 64 + "@acme.local",  # the longest local part RFC 5321 allows
    ],
)
def test_every_address_the_log_edge_takes_is_sent(address: str) -> None:
    normalise_address(address)  # the edge takes it ...
    assert mail_address(address) == address  # ... and so does the target, unchanged
    assert user_payload(NewUser(address, "Acme"))["emails"][0]["value"] == address


@pytest.mark.parametrize(
    "address",
    [
        *("o brien@acme.com", "no-at-sign", "bob@", "@acme.com", " bob@acme.com", "<bob@acme.com>"),
        *("a\x1bb@acme.com", "x" * 65 + "@acme.com"),
    ],
)
def test_what_the_log_edge_refuses_is_not_sent(address: str) -> None:
    with pytest.raises(ValueError):
        mail_address(address)
    with pytest.raises(SkippableError, match="not a valid SCIM user"):
        user_payload(NewUser("bob@acme.com", "Acme", (address,)))
    with pytest.raises(SkippableError, match="not a valid SCIM address"):
        add_emails_patch(["ok@acme.local", address])


def test_bodies_re_sent_by_put_take_special_use_addresses() -> None:
    """Servers without PATCH: the user as read, plus the alias (``replace_emails``) or a change (``replace_user``)."""
    read = {"schemas": [USER_SCHEMA], "id": "1", "userName": "bob@acme.local", "emails": [{"value": "bob@acme.local"}]}
    assert replace_emails(read, ["robert@acme.local"])["emails"] == [
        {"value": "bob@acme.local"},
        {"value": "robert@acme.local"},
    ]
    assert replace_user(read, {"displayName": "Bob"})["displayName"] == "Bob"
    with pytest.raises(SkippableError, match="not a valid SCIM user"):
        replace_emails(read, ["robert smith@acme.local"])
    assert add_emails_patch(["robert@acme.onion"])["Operations"] == [
        {"op": "add", "path": "emails", "value": [{"value": "robert@acme.onion"}]}
    ]


def test_a_bulk_request_names_each_user_by_its_position_in_the_batch() -> None:
    payloads = {0: user_payload(NewUser("a@acme.local", "Acme")), 2: user_payload(NewUser("c@acme.local", "Acme"))}
    request = bulk_create_request(payloads)
    assert [op["bulkId"] for op in request["Operations"]] == ["u0", "u2"]
    assert "failOnErrors" not in request  # the server goes on after a refused operation
    assert [bulk_position({"bulkId": b}, 3) for b in ("u0", "u2", "u3", "u-1", "x", "u²", "u" + "9" * 20)] == [
        0,
        2,
        None,
        None,
        None,
        None,
        None,
    ]


def test_a_refused_operation_says_why_in_one_escaped_line() -> None:
    operation: dict[str, Any] = {
        "status": "400",
        "response": {"status": "400", "scimType": "invalidValue", "detail": "displayName\x1b]0;owned\x07 missing\n"},
    }
    assert operation_error(operation) == "400 invalidValue displayName\\x1b]0;owned\\x07 missing\\x0a"
    assert operation_error({"status": 403}) == "status 403 None"
    assert len(operation_error({"status": "400", "response": {"detail": "x" * 5000}})) == 300


def _target(**overrides: Any) -> ScimTargetSettings:
    data = {"type": "scim", "url": "https://scim.example/v2", "bearer_token": {"env": "SCIM_TOKEN"}, **overrides}
    return ScimTargetSettings.model_validate(data)


def test_the_refusal_fingerprint_follows_the_target_settings_and_the_connector_version() -> None:
    base = target_fingerprint(_target(), "1.0.0")
    assert target_fingerprint(_target(), "1.0.0") == base  # stable
    assert target_fingerprint(_target(timeout_seconds=10), "1.0.0") != base  # another setting
    assert target_fingerprint(_target(url="https://other.example/v2"), "1.0.0") != base  # another server
    assert target_fingerprint(_target(), "1.0.1") != base  # another connector
    assert target_fingerprint(_target(bearer_token={"env": "OTHER"}), "1.0.0") != base  # another secret's name
    refusals = refusal_fingerprints({"acme.local": "a" * 16, "acme.test": "b" * 16}, _target())
    assert refusals["acme.local"] == refusal_fingerprint("a" * 16, target_fingerprint(_target()))
    assert refusals["acme.local"] != refusals["acme.test"]  # the domain's rule is in it too
    assert all(len(value) <= 64 for value in refusals.values())  # fits candidates.rule_fingerprint
