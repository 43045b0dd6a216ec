"""SCIM answers read into typed values: ``scim2-models`` where an answer validates, else field by field.

Real servers send half of RFC 7644: a ``status`` as a number or a string, an operation
without ``location``, an ``emails`` value pydantic's ``EmailStr`` refuses (``.local``), a
member id as a number, a stray entry that is not an object. Each part of an answer is
read on its own, and one that does not validate is read field by field into the same
value: an odd part is never a reason to fail the rest, and both readings give the same
result for a conforming answer. Pure.

- Bulk answers: each operation becomes a ``BulkAnswer``. One that did not create its user
  is validated as ``BulkOperation`` (its ``response`` an ``Error``: ``scimType``
  ``uniqueness`` is a 409 sent as 400). A 201 is read by field (``location``, ``bulkId``):
  validating every created user's operation costs 0.4-1.6 ms each on our 2-core machine,
  a large part of the in-memory server's own 2 ms per user (``bench/scim``).
- Group searches: ``ListResponse[Group]``.

Numbers are read by one rule whichever way: statuses by ``status_of`` (a number, or a
string of three digits), counts by ``list_page``; never by pydantic's lax ``int``, which
also takes ``true``, ``"201.0"`` and ``"2_01"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import ValidationError
from scim2_models import BulkOperation, Context, Error, Group, ListResponse

from connector.compliance.scim_http import NOT_JSON, error_text, json_body, status_of
from connector.compliance.scim_mapping import MailUser, bulk_position, group_ids, list_page
from connector.errors import ConflictError, RetriableError, SkippableError

RETRIED_OPERATION_STATUSES = frozenset({408, 409, 429})
"""4xx answers to a Bulk operation that are not a refusal of the user: a timeout, "already
there" (looked up and reconciled) and "too many requests" go the single way."""


@dataclass(frozen=True, slots=True)
class BulkAnswer:
    """One operation of a Bulk answer, about the user at ``position`` in the batch."""

    position: int
    status: int | None
    location: str | None
    """Where the server put the user it created (its id is the last segment); None when absent."""
    response: Any
    """The operation's ``response`` as sent (``scim_answers`` compares it with what was sent)."""
    uniqueness: bool
    """The response is an RFC 7644 error with ``scimType`` ``uniqueness`` (a 409 sent as 400)."""
    operation: dict[str, Any]
    """The operation as sent, for ``operation_error``."""

    @property
    def created_id(self) -> str | None:
        """The id of the user a 201 created (from ``location``), else None."""
        if self.status != 201 or not self.location:
            return None
        return self.location.rstrip("/").rpartition("/")[2]

    @property
    def refused(self) -> bool:
        """The server refused the user: a 4xx other than a timeout, a conflict or a rate limit."""
        status = self.status
        return (
            status is not None
            and 400 <= status < 500
            and status not in RETRIED_OPERATION_STATUSES
            and not self.uniqueness
        )


def _uniqueness(operation: dict[str, Any]) -> bool:
    """Whether the operation's ``response`` is an error with ``scimType`` ``uniqueness``: from ``scim2-models``'
    ``BulkOperation`` (``response`` an ``Error``) where the operation validates, else read by field."""
    try:
        parsed = BulkOperation[MailUser].model_validate(operation, scim_ctx=Context.BULK_RESPONSE)
    except (ValidationError, TypeError, ValueError):
        response = operation.get("response")
        return isinstance(response, dict) and response.get("scimType") == "uniqueness"
    return isinstance(parsed.response, Error) and parsed.response.scim_type == "uniqueness"


def bulk_answers(body: Any, size: int) -> Iterator[BulkAnswer]:
    """The operations of a Bulk answer (``Operations``) about a batch of ``size`` users, in order.

    Left out: an entry that is not an object, one whose ``bulkId`` names no position of the batch,
    and a second answer about the same position (the caller sends those users the single way).
    """
    operations = body.get("Operations") if isinstance(body, dict) else None
    answered: set[int] = set()
    for operation in operations if isinstance(operations, list) else []:
        if not isinstance(operation, dict):
            continue
        position = bulk_position(operation, size)
        if position is None or position in answered:
            continue
        answered.add(position)
        status = status_of(operation.get("status"))
        location = str(operation["location"]) if operation.get("location") else None
        created = status == 201 and location is not None
        uniqueness = not created and _uniqueness(operation)
        yield BulkAnswer(position, status, location, operation.get("response"), uniqueness, operation)


# -- answers to lifecycle writes ----------------------------------------------------------------


def answer_json(response: requests.Response) -> Any:
    """The answer's JSON, or None (an error page may be HTML, empty, or absurdly nested)."""
    body = json_body(response)
    return None if body is NOT_JSON else body


def check_write(response: requests.Response, what: str, *, absent_ok: bool = False) -> None:
    """2xx passes; 412 (and 404: deleted since it was read) is a conflict; other refusals skip."""
    status = response.status_code
    if 200 <= status < 300 or (status == 404 and absent_ok):
        return
    if status == 412:
        raise ConflictError(f"{what}: changed in the target since it was read (412)")
    if status == 404:
        raise ConflictError(f"{what}: no longer in the target (404)")
    raise SkippableError(f"{what}: {error_text(response)}")


def check_addition(response: requests.Response, subject: str, refused: str) -> None:
    """An answer to adding aliases to a user or members to a group: 200 and 204 pass; a 412 (the
    user or group changed since it was read) is retried next run; any other answer is a refusal.

    ``subject`` names what changed (``user x``, ``group 'y'``), ``refused`` what could not be done.
    """
    if response.status_code == 412:
        raise RetriableError(f"{subject} changed meanwhile (412); retried next run")
    if response.status_code not in (200, 204):
        raise SkippableError(f"{refused}: {error_text(response)}")


# -- group searches ---------------------------------------------------------------------------------


def searched_groups(body: Any, what: str) -> tuple[dict[str, str], bool]:
    """Group name -> id of one page of a search of /Groups, and whether ``totalResults`` says there are
    more than it lists; ``RetriableError`` when the answer is not a list response.

    The groups come from ``scim2-models``' ``ListResponse[Group]`` where the answer validates, else from
    each listed object that has a ``displayName`` and an ``id`` (``group_ids``: a member id sent as a
    number does not validate as ``Group``, but the group is still read).
    """
    listed, total = list_page(body, what)
    more = total > len(listed)
    try:
        page = ListResponse[Group].model_validate(body, scim_ctx=Context.SEARCH_RESPONSE)
    except (ValidationError, TypeError, ValueError):
        return group_ids(listed), more
    ids: dict[str, str] = {}
    for group in page.resources or []:
        if isinstance(group, Group) and group.display_name is not None and group.id:
            ids.setdefault(group.display_name, group.id)
    return ids, more
