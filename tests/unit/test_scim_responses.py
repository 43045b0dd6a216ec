"""SCIM answers read with scim2-models where they validate, field by field where not (issue 15): the same
values either way, and an odd part of an answer never fails the rest. Pure."""

from __future__ import annotations

import pytest
import requests
from pydantic import ValidationError
from scim2_models import BulkOperation, Context, Group, ListResponse

from connector.compliance.scim_changes import update_attributes
from connector.compliance.scim_mapping import MailUser
from connector.compliance.scim_responses import (
    BulkAnswer,
    answer_json,
    bulk_answers,
    check_addition,
    check_write,
    searched_groups,
)
from connector.errors import ConflictError, RetriableError, SkippableError

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def created(position: int, email: str = "ann@acme.local") -> dict[str, object]:
    """A 201 as scim2-server answers it; ``.local`` is refused by pydantic's EmailStr, not by us."""
    response = {"schemas": [USER], "id": f"id{position}", "userName": email, "emails": [{"value": email}]}
    location = f"http://scim.test/Users/id{position}"
    return {"method": "POST", "bulkId": f"u{position}", "status": "201", "location": location, "response": response}


def failed(position: int, status: object, scim_type: str | None = None, schemas: bool = True) -> dict[str, object]:
    response: dict[str, object] = {"status": str(status), "detail": "no"}
    if schemas:
        response["schemas"] = [ERROR]
    if scim_type:
        response["scimType"] = scim_type
    return {"method": "POST", "bulkId": f"u{position}", "status": status, "response": response}


def validates(operation: dict[str, object]) -> bool:
    try:
        BulkOperation[MailUser].model_validate(operation, scim_ctx=Context.BULK_RESPONSE)
    except ValidationError:
        return False
    return True


def answers(*operations: object, size: int = 10) -> dict[int, BulkAnswer]:
    return {a.position: a for a in bulk_answers({"Operations": list(operations)}, size)}


def test_a_created_user_gives_its_id_and_its_answer_as_sent() -> None:
    [answer] = answers(created(0)).values()
    assert answer.created_id == "id0" and not answer.refused
    assert answer.response["emails"] == [{"value": "ann@acme.local"}]  # kept as sent: compared with what was sent


def test_refusals_conflicts_and_uniqueness_read_the_same_whether_the_operation_validates_or_not() -> None:
    conforming = [failed(0, 400), failed(1, 409, "uniqueness"), failed(2, 400, "uniqueness"), failed(3, 429)]
    odd = [failed(4, 400, schemas=False), failed(5, 400, "uniqueness", schemas=False), failed(6, "409")]
    odd.append({"bulkId": "u7", "status": 400, "response": {"scimType": "uniqueness", "status": {"no": 1}}})
    assert all(validates(op) for op in conforming) and not validates(odd[-1])
    read = answers(*conforming, *odd)
    assert [read[i].refused for i in range(8)] == [True, False, False, False, True, False, False, False]
    assert [read[i].uniqueness for i in range(8)] == [False, True, True, False, False, True, False, True]
    assert all(read[i].created_id is None for i in range(8))


@pytest.mark.parametrize("status", [True, "201.0", "2_01", 201.0, None, "abc"])
def test_a_status_is_read_by_one_rule_never_by_laxer_parsing(status: object) -> None:
    """pydantic's lax int reads all of these as 201 (or 1): an unclear status sends the user the single way."""
    operation = {**created(0), "status": status}
    [answer] = answers(operation).values()
    assert answer.status is None and answer.created_id is None and not answer.refused


def test_entries_that_are_no_answer_are_left_out_and_the_rest_read() -> None:
    read = answers("junk", None, [1], created(0), {**created(0), "status": 400}, created(99), created(1), size=2)
    assert sorted(read) == [0, 1]
    assert read[0].created_id == "id0"  # the first answer about a position counts
    assert list(bulk_answers({"Operations": "none"}, 2)) == [] and list(bulk_answers(["x"], 2)) == []


def test_a_created_operation_without_location_is_not_taken_as_created() -> None:
    operation = {**created(0)}
    del operation["location"]
    [answer] = answers(operation).values()
    assert answer.status == 201 and answer.created_id is None and not answer.refused


def group(group_id: str, name: str | None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": group_id, **extra}
    if name is not None:
        body["displayName"] = name
    return body


def test_group_searches_read_the_same_groups_with_or_without_the_model() -> None:
    conforming = {"schemas": [LIST], "totalResults": 2, "Resources": [group("g1", "Acme"), group("g2", "Beta")]}
    odd = {**conforming, "Resources": [group("g1", "Acme", members=[{"value": 5}]), group("g2", "Beta")]}
    ListResponse[Group].model_validate(conforming, scim_ctx=Context.SEARCH_RESPONSE)
    with pytest.raises(ValidationError):
        ListResponse[Group].model_validate(odd, scim_ctx=Context.SEARCH_RESPONSE)
    assert (
        searched_groups(conforming, "search") == searched_groups(odd, "search") == ({"Acme": "g1", "Beta": "g2"}, False)
    )


def test_a_group_search_counts_every_listed_resource_and_refuses_what_is_no_list() -> None:
    unnamed = {"schemas": [LIST], "totalResults": 2, "Resources": [group("g1", "Acme"), group("g2", None)]}
    assert searched_groups(unnamed, "search") == ({"Acme": "g1"}, False)  # two listed, two in total
    assert searched_groups({**unnamed, "totalResults": 3}, "search")[1] is True
    with pytest.raises(RetriableError, match="not a SCIM list response"):
        searched_groups({"Resources": ["g1"]}, "search")
    with pytest.raises(RetriableError, match="not a SCIM list response"):
        searched_groups("<html>", "search")


def response(status: int, body: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body
    return answer


def test_an_unreadable_answer_is_none_even_when_absurdly_nested() -> None:
    assert answer_json(response(200, b"<html>busy</html>")) is None
    assert answer_json(response(200, b"[" * 100_000 + b"]" * 100_000)) is None
    assert answer_json(response(200, b'{"id": "7"}')) == {"id": "7"}


def test_write_answers_are_sorted_by_status() -> None:
    check_write(response(204, b""), "x")
    check_write(response(404, b""), "x", absent_ok=True)
    with pytest.raises(ConflictError, match="412"):
        check_write(response(412, b""), "x")
    with pytest.raises(ConflictError, match="404"):
        check_write(response(404, b""), "x")
    with pytest.raises(SkippableError, match=r"x: .*mutability"):
        check_write(response(400, b'{"status": "400", "scimType": "mutability"}'), "x")


def test_answers_to_additions_pass_on_200_and_204_retry_on_412_and_skip_refusals() -> None:
    check_addition(response(200, b"{}"), "user ann", "cannot add aliases to ann")
    check_addition(response(204, b""), "user ann", "cannot add aliases to ann")
    with pytest.raises(RetriableError, match=r"^group 'Sales' changed meanwhile \(412\); retried next run$"):
        check_addition(response(412, b""), "group 'Sales'", "cannot add members to group 'Sales'")
    with pytest.raises(SkippableError, match=r"^cannot add members to group 'Sales': .*mutability"):
        check_addition(
            response(400, b'{"status": "400", "scimType": "mutability"}'),
            "group 'Sales'",
            "cannot add members to group 'Sales'",
        )
    with pytest.raises(SkippableError, match="cannot add aliases to ann"):
        check_addition(response(404, b""), "user ann", "cannot add aliases to ann")


def test_a_rename_without_the_user_as_read_is_a_named_error_not_an_assert() -> None:
    assert update_attributes({"display_name": "Ann"}, None) == {"displayName": "Ann"}
    with pytest.raises(SkippableError, match=r"rename to ann@acme\.com"):
        update_attributes({"primary_address": "ann@acme.com"}, None)
