"""Discovery, shaping and error reading, as pure functions (issue 17, items 3, 5 and 7).

The real servers (scim2-server, stock django-scim2) and HTTP stand-ins for the shapes they
cannot produce are in ``tests/integration/test_scim_discovery.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from connector.compliance.base import NewUser
from connector.compliance.scim_check import Probe, ServerCheck, warnings_for
from connector.compliance.scim_discovery import (
    DEFAULT_PROFILE,
    GROUP_SCHEMA,
    USER_SCHEMA,
    merge_documents,
    profile_from_config,
    relative_endpoint,
    shapes_from_schemas,
)
from connector.compliance.scim_http import (
    AmbiguousWriteError,
    error_for,
    page_size_for,
    read_error,
    read_list_page,
)
from connector.compliance.scim_mapping import bulk_batches, bulk_create_request, user_payload
from connector.compliance.scim_shaping import shape_report, shape_user, split_display_name
from connector.config.target import ScimTargetSettings
from connector.errors import ConflictError, CredentialsRefused, RetriableError, SkippableError

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def attribute(name: str, *subs: str, required: bool = False, required_subs: tuple[str, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": "complex" if subs else "string", "required": required}
    if subs:
        body["subAttributes"] = [{"name": s, "type": "string", "required": s in required_subs} for s in subs]
    return body


def schemas(user_attributes: list[dict[str, Any]], group_attributes: list[dict[str, Any]] | None = None) -> Any:
    resources = [{"id": USER_SCHEMA, "name": "User", "attributes": user_attributes}]
    if group_attributes is not None:
        resources.append({"id": GROUP_SCHEMA, "name": "Group", "attributes": group_attributes})
    return {"Resources": resources}


STRICT_USER = [
    attribute("userName", required=True),
    attribute("displayName"),
    attribute("active"),
    attribute("emails", "value"),  # no type, no primary: such servers answer 400 to them
    attribute("name", "givenName", "familyName", required=True, required_subs=("familyName",)),
]
ALICE = NewUser(
    primary_address="alice@acme.com", aliases=("alice.archer@acme.com",), org="Acme Corp", display_name="Alice Archer"
)


def new_user(address: str, aliases: tuple[str, ...] = ()) -> NewUser:
    return NewUser(primary_address=address, aliases=aliases, org="Acme Corp", display_name=None)


# -- ServiceProviderConfig --------------------------------------------------------------------------


def test_a_full_service_provider_config_is_read() -> None:
    profile = profile_from_config(
        {
            "schemas": [SPC],
            "patch": {"supported": True},
            "bulk": {"supported": True, "maxOperations": 10, "maxPayloadSize": 4096},
            "filter": {"supported": True, "maxResults": 50},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": True},
            "authenticationSchemes": [],
        }
    )
    assert (profile.patch, profile.filter, profile.etag, profile.bulk, profile.sort_supported) == (True,) * 5
    assert (profile.filter_max_results, profile.bulk_max_operations, profile.bulk_max_payload) == (50, 10, 4096)
    assert profile.read_service_provider_config and profile.notes == ()


def test_what_a_config_leaves_out_is_unsupported() -> None:
    profile = profile_from_config({"schemas": [SPC], "patch": {"supported": True}})
    assert profile.patch and not profile.filter and not profile.etag and not profile.bulk
    assert profile.filter_max_results is None and profile.bulk_max_payload == 0


@pytest.mark.parametrize(
    "body",
    [
        {"patch": {"supported": "yes please"}, "filter": "on", "bulk": [1], "etag": None},  # no schemas, wrong types
        {"schemas": [SPC], "patch": {"supported": True}, "filter": {"supported": True, "maxResults": -3}},
    ],
)
def test_a_mangled_config_is_read_field_by_field(body: dict[str, Any]) -> None:
    profile = profile_from_config(body)
    assert not profile.bulk and not profile.etag
    assert profile.filter_max_results is None


def test_bulk_with_no_operations_is_no_bulk() -> None:
    profile = profile_from_config({"schemas": [SPC], "bulk": {"supported": True, "maxOperations": 0}})
    assert not profile.bulk and profile.describe()["bulk"] is False


def test_a_config_that_is_not_an_object_gives_the_default_with_a_note() -> None:
    profile = profile_from_config(["nope"])
    assert (profile.patch, profile.filter, profile.bulk, profile.etag) == (True, True, False, False)
    assert "not a JSON object" in profile.notes[-1]


def test_a_server_that_answers_nothing_gets_the_documented_default() -> None:
    profile = merge_documents(None, None, None)
    assert profile == DEFAULT_PROFILE
    assert profile.patch and profile.filter and not profile.bulk and not profile.etag and not profile.sort_supported
    assert (profile.user_endpoint, profile.group_endpoint, profile.user, profile.group) == (
        "/Users",
        "/Groups",
        None,
        None,
    )
    assert profile.declares("User", "emails", "type")  # schema unknown: everything is sent


# -- ResourceTypes and Schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "base", "relative"),
    [
        ("/Users", "/v2", "/Users"),
        ("/v2/Users", "/v2", "/Users"),  # django-scim2 sends the full path
        ("/scim/v2/Users/", "/scim/v2", "/Users"),
        ("https://idp.example/scim/v2/Users", "/scim/v2", "/Users"),
        ("Users", "/v2", None),
        ("/other/Users", "/v2", None),
        ("/", "", None),
    ],
)
def test_resource_type_endpoints_are_made_relative(endpoint: str, base: str, relative: str | None) -> None:
    assert relative_endpoint(endpoint, base) == relative


def test_resource_types_set_the_endpoints_and_a_bad_one_is_ignored() -> None:
    types = {
        "Resources": [
            {"schema": USER_SCHEMA, "endpoint": "/scim/v2/People"},
            {"schema": GROUP_SCHEMA, "endpoint": "/a/b/c"},
            "garbage",
        ]
    }
    profile = merge_documents({"schemas": [SPC]}, types, None, base_path="/scim/v2")
    assert (profile.user_endpoint, profile.group_endpoint) == ("/People", "/Groups")


@pytest.mark.parametrize("shape", ["list response", "bare list", "one schema"])
def test_schemas_are_read_in_any_of_three_shapes(shape: str) -> None:
    user = {"id": USER_SCHEMA, "attributes": [attribute("userName", required=True), attribute("emails", "value")]}
    body = {"list response": {"Resources": [user]}, "bare list": [user, 3], "one schema": user}[shape]
    profile = merge_documents(None, None, body)
    assert profile.user is not None and profile.required_attributes("User") == ("userName",)
    assert profile.declares("User", "EMAILS", "Value") and not profile.declares("User", "emails", "type")
    assert not profile.declares("User", "phoneNumbers") and profile.declares("User", "externalId")
    assert profile.group is None and profile.declares("Group", "members")


def test_unreadable_attributes_are_skipped() -> None:
    shapes = shapes_from_schemas(
        {"Resources": [{"id": USER_SCHEMA, "attributes": [{"name": 3}, "x", {"name": "userName"}]}]}
    )
    assert list(shapes[USER_SCHEMA.lower()].attributes) == ["username"]


def test_schemas_without_a_user_schema_are_noted() -> None:
    profile = merge_documents(None, None, {"Resources": []})
    assert profile.user is None and any("no User schema" in n for n in profile.notes)


# -- shaping user bodies ----------------------------------------------------------------------------


def test_undeclared_sub_attributes_are_left_out_and_required_name_is_filled() -> None:
    profile = merge_documents(None, None, schemas(STRICT_USER))
    body = user_payload(ALICE, profile)
    assert body["emails"] == [{"value": "alice@acme.com"}, {"value": "alice.archer@acme.com"}]
    assert body["name"] == {"givenName": "Alice", "familyName": "Archer"}  # formatted is not declared
    assert body["userName"] == "alice@acme.com" and body["displayName"] == "Alice Archer" and body["active"] is True


def test_the_unshaped_body_carries_what_such_a_server_refuses() -> None:
    body = user_payload(ALICE)
    assert body["emails"][0] == {"value": "alice@acme.com", "primary": True, "type": "work"} and "name" not in body


def test_a_required_name_without_declared_sub_attributes_gets_all_three() -> None:
    profile = merge_documents(None, None, schemas([attribute("userName"), attribute("name", required=True)]))
    user = new_user("bob@acme.com")
    body = user_payload(user, profile)
    assert body["name"] == {"formatted": "bob", "givenName": "bob", "familyName": "bob"}
    assert "displayName" not in body and "active" not in body and "emails" not in body  # not declared


def test_a_required_display_name_is_filled_from_the_address() -> None:
    profile = merge_documents(None, None, schemas([attribute("userName"), attribute("displayName", required=True)]))
    user = new_user("bob@acme.com")
    assert user_payload(user, profile)["displayName"] == "bob"


def test_what_is_there_is_never_overwritten_and_common_attributes_are_kept() -> None:
    profile = merge_documents(None, None, schemas(STRICT_USER))
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = {
        "schemas": ["x"],
        "id": "7",
        "externalId": "e",
        "userName": "a@b.c",
        "name": {"familyName": "Kept"},
        enterprise: {"employeeNumber": "42"},
        "nickName": "dropped",
    }
    shaped = shape_user(body, profile)
    assert shaped["name"] == {"familyName": "Kept", "givenName": "a"} and shaped["externalId"] == "e"
    assert shaped[enterprise] == {"employeeNumber": "42"} and "nickName" not in shaped
    assert shape_user(body, None) is body and shape_user(body, DEFAULT_PROFILE) is body


@pytest.mark.parametrize(
    ("display", "split"),
    [
        ("Alice Archer", ("Alice", "Archer")),
        ("Cher", ("Cher", "Cher")),
        ("Mary Ann van Dyke", ("Mary", "Ann van Dyke")),
    ],
)
def test_display_names_split_into_given_and_family(display: str, split: tuple[str, str]) -> None:
    assert split_display_name(display) == split


def test_the_shape_report_names_dropped_filled_and_unfillable_attributes() -> None:
    read_only_id = {"name": "accountId", "required": True, "mutability": "readOnly"}
    user = [
        *STRICT_USER[:1],
        attribute("emails", "value"),
        STRICT_USER[4],
        attribute("password", required=True),
        read_only_id,
    ]
    report = shape_report(merge_documents(None, None, schemas(user)))
    assert report.dropped == ("displayName", "active", "emails.type", "emails.primary")
    assert report.filled == ("name.givenName", "name.familyName")
    assert report.unfillable == ("password",)
    assert shape_report(DEFAULT_PROFILE) == type(report)((), (), ())


# -- Bulk size ----------------------------------------------------------------------------------------


def _size(batch: dict[int, dict[str, Any]]) -> int:
    return len(json.dumps(bulk_create_request(batch)).encode())


def test_bulk_batches_honour_max_operations() -> None:
    payloads = {i: user_payload(new_user(f"u{i}@acme.com")) for i in range(7)}
    batches, alone = bulk_batches(payloads, 3, 0)
    assert [list(b) for b in batches] == [[0, 1, 2], [3, 4, 5], [6]] and alone == []


def test_bulk_batches_honour_max_payload_size_to_the_byte() -> None:
    # Positions 10 to 39: bulkIds of one length, so every operation has the same size.
    payloads = {i: user_payload(new_user(f"user{i}@acme.com")) for i in range(10, 40)}
    limit = _size({i: payloads[i] for i in (10, 11, 12)})  # exactly three fit
    batches, alone = bulk_batches(payloads, 100, limit)
    assert alone == [] and [len(b) for b in batches] == [3] * 10
    assert all(_size(b) <= limit for b in batches)
    assert _size({i: payloads[i] for i in (10, 11, 12, 13)}) > limit
    assert [len(b) for b in bulk_batches(payloads, 100, limit - 1)[0]] == [2] * 15


def test_an_operation_too_big_for_any_bulk_request_goes_alone() -> None:
    small = user_payload(new_user("a@acme.com"))
    big = user_payload(new_user("b@acme.com", tuple(f"alias{i}@acme.com" for i in range(50))))
    batches, alone = bulk_batches({0: small, 1: big, 2: small}, 10, _size({0: small, 1: small}))
    assert alone == [1] and [list(b) for b in batches] == [[0, 2]]


# -- pages and errors ---------------------------------------------------------------------------------


def test_page_size_is_lowered_to_the_servers_max_results() -> None:
    assert (page_size_for(200, None), page_size_for(200, 50), page_size_for(20, 50), page_size_for(5, 0)) == (
        200,
        50,
        20,
        5,
    )


@pytest.mark.parametrize(
    ("body", "total"),
    [({"Resources": [{"id": "1"}], "totalResults": "7"}, 7), ({"Resources": []}, None), ({"totalResults": 0}, 0)],
)
def test_list_pages_of_any_total(body: dict[str, Any], total: int | None) -> None:
    assert read_list_page(body, "x").total == total


@pytest.mark.parametrize(
    "body", [[], {"Resources": "x"}, {"Resources": [1]}, {"Resources": [], "totalResults": "many"}]
)
def test_a_list_answer_that_is_not_one_is_retriable(body: Any) -> None:
    with pytest.raises(RetriableError):
        read_list_page(body, "x")


def answer(status: int, body: str, content_type: str = "application/scim+json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers["Content-Type"] = content_type
    return response


DJANGO_500 = (
    "<!DOCTYPE html><html><head><title>IntegrityError at /scim/v2/Users</title></head><body>"
    "<h1>IntegrityError at /scim/v2/Users</h1><pre>UNIQUE constraint failed: auth_user.username</pre>"
    + "<p>x</p>" * 3000
    + "</body></html>"
)


@pytest.mark.parametrize(
    ("status", "body", "read", "text"),
    [
        (
            400,
            '{"status": "400", "scimType": "invalidValue", "detail": "bad"}',
            (400, "invalidValue", "bad"),
            "400 invalidValue bad",
        ),
        (400, '{"status": 400, "detail": ""}', (400, None, None), "400"),
        (409, '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": 409}', (409, None, None), "409"),
        (409, '{"status": "conflict", "detail": "taken"}', (None, None, "taken"), "conflict taken"),
        (500, DJANGO_500, (None, None, None), "HTTP 500 IntegrityError at /scim/v2/Users"),
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", (None, None, None), "HTTP 502 502 Bad Gateway"),
        (500, "", (None, None, None), "HTTP 500 (no body)"),
    ],
)
def test_error_answers_of_any_shape_are_read(status: int, body: str, read: tuple[Any, ...], text: str) -> None:
    error = read_error(answer(status, body))
    assert (error.status, error.scim_type, error.detail) == read
    assert error.text == text and error.http_status == status


@pytest.mark.parametrize(
    ("status", "body", "duplicate"),
    [
        (409, '{"status": 409}', True),  # 409 without scimType
        (400, '{"status": "400", "scimType": "uniqueness"}', True),
        (500, DJANGO_500, True),  # a duplicate answered with the database's fault page
        (500, "<html><title>Server Error (500)</title></html>", False),
        (500, "<html><title>Error</title><pre>ERROR: duplicate key value violates</pre></html>", True),
        (503, "{\"detail\": \"Duplicate entry 'x' for key 'uniq'\"}", True),
        (400, '{"status": "400", "detail": "already exists"}', False),  # a 4xx says what it means
    ],
)
def test_duplicates_are_recognised_whatever_the_answer(status: int, body: str, duplicate: bool) -> None:
    assert read_error(answer(status, body)).looks_like_duplicate is duplicate


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, SkippableError),
        (404, SkippableError),
        (409, SkippableError),
        (501, SkippableError),  # not implemented: waiting does not help
        (500, RetriableError),
        (429, RetriableError),
        (408, RetriableError),
        (412, ConflictError),
        (401, CredentialsRefused),  # the one rule for refused credentials (docs/reliability.md)
        (403, CredentialsRefused),
    ],
)
def test_the_status_decides_the_error_class_never_the_body(status: int, error_class: type[Exception]) -> None:
    error = error_for(answer(status, '{"status": "200", "detail": "fine"}'), "POST /Users")
    assert type(error) is error_class and "fine" in str(error)


def test_an_ambiguous_write_keeps_its_answer() -> None:
    error = AmbiguousWriteError("lost", read_error(answer(500, DJANGO_500)))
    assert error.answer is not None and error.answer.looks_like_duplicate
    assert AmbiguousWriteError("lost").answer is None


# -- target check warnings -----------------------------------------------------------------------------


def settings(**overrides: Any) -> ScimTargetSettings:
    return ScimTargetSettings.model_validate(
        {"type": "scim", "url": "https://x.example/v2", "bearer_token": {"env": "T"}, **overrides}
    )


def test_warnings_name_what_will_not_work() -> None:
    profile = merge_documents(
        {"schemas": [SPC], "filter": {"supported": True}},
        None,
        schemas(
            [*STRICT_USER[:1], attribute("emails", "value"), attribute("password", required=True)],
            [attribute("displayName")],
        ),
    )
    probes = (Probe("filter displayName eq", "empty", "x"), Probe("paging /Users", "ignored", "same"))
    warnings = warnings_for(ServerCheck(profile, 3, 1, probes), settings())
    text = "\n".join(warnings)
    assert "filter displayName eq finds nothing for a resource that exists" in text
    assert "paging /Users ignores startIndex" in text
    assert "no PATCH" in text and "no ETag" in text and "no Bulk" in text
    assert "left out of every user: displayName, active, emails.type, emails.primary" in text
    assert "suspending and reactivating users will be refused" in text
    assert "not sent by the connector: password" in text
    assert "Group schema declares no 'members'" in text
    assert ServerCheck(profile, 3, 1, probes).filters_work is False


def test_a_capable_server_gets_no_warning_but_its_limits() -> None:
    profile = profile_from_config(
        {
            "schemas": [SPC],
            "patch": {"supported": True},
            "filter": {"supported": True},
            "etag": {"supported": True},
            "bulk": {"supported": True, "maxOperations": 100},
        }
    )
    check = ServerCheck(
        profile, 3, 1, (Probe("filter userName eq", "works"), Probe("filter displayName eq", "untested"))
    )
    assert warnings_for(check, settings()) == [] and check.filters_work is True
    assert (
        "no filter"
        in warnings_for(ServerCheck(DEFAULT_PROFILE.__class__(filter_supported=False), 0, 0, ()), settings())[0]
    )


def test_booleans_sent_as_strings_are_read_and_profiles_stay_hashable() -> None:
    profile = profile_from_config({"patch": {"supported": "TRUE"}, "etag": {"supported": "false"}, "filter": 3})
    assert profile.patch and not profile.etag and not profile.filter
    shaped = merge_documents({"patch": {"supported": True}}, None, schemas(STRICT_USER))
    assert len({shaped, DEFAULT_PROFILE}) == 2


def test_required_schema_extensions_are_read_and_warned_about() -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    types = [
        {
            "schema": USER_SCHEMA,
            "endpoint": "/Users",
            "schemaExtensions": [{"schema": enterprise, "required": True}, {"schema": "urn:x", "required": False}],
        },
        {"schema": GROUP_SCHEMA, "endpoint": "/Groups", "schemaExtensions": [{"schema": "urn:g", "required": True}]},
    ]
    profile = merge_documents({"schemas": [SPC], "patch": {"supported": True}}, types, None)
    assert profile.user_required_extensions == (enterprise,)
    warnings = warnings_for(ServerCheck(profile, 0, 0, ()), settings())
    assert f"requires schema extensions the connector does not send: {enterprise}: creates fail" in "\n".join(warnings)
