"""Pure SCIM 2.0 mapping: our values -> validated request bodies, response bodies -> our values.

No I/O here: ``scim.py`` sends what these functions build. Every body is
validated with ``scim2-models`` in the context it is sent in, except one rule:
an address in ``emails`` is checked as the mail system takes it (``MailEmail``),
not for deliverability.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, ValidationError
from scim2_models import (
    Context,
    Email,
    Group,
    PatchOp,
    User,
)

from connector.compliance.base import NewUser
from connector.domain.lifecycle import TargetUser
from connector.domain.safe_text import printable
from connector.errors import RetriableError, SkippableError
from connector.policy.addresses import normalise_address

if TYPE_CHECKING:
    from connector.compliance.scim_discovery import ServerProfile
from connector.compliance.scim_shaping import shape_user

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER_READ_ATTRIBUTES = "userName,emails,displayName,externalId,active,groups,meta.version"
"""What the lifecycle reads of a user (``groups`` only where the server fills it)."""
GROUP_READ_ATTRIBUTES = "displayName,members"


def filter_value(value: str) -> str:
    """A SCIM filter string literal (RFC 7644 3.4.2.2 uses JSON strings): ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def user_filter(address: str) -> str:
    return f"userName eq {filter_value(address)}"


def email_filter(address: str) -> str:
    return f"emails.value eq {filter_value(address)}"


def group_filter(name: str) -> str:
    return f"displayName eq {filter_value(name)}"


def mail_address(value: str) -> str:
    """``value`` unchanged if the mail system takes it as an address; ``ValueError`` if not.

    The rule is the log edge's (``normalise_address``: local part and domain, RFC 5321
    lengths, no whitespace or control characters): every address the connector read
    from the gateway is one it can send. SCIM asks no more (RFC 7643 4.1.2: ``emails``
    are just strings). ``scim2-models`` types ``emails.value`` as pydantic's ``EmailStr``,
    whose email-validator also refuses special-use domains (``.local``, ``.test``,
    ``.localhost``, ``.invalid``, ``.arpa``, ``.onion``: "cannot be used with email"),
    a deliverability rule that refused whole companies the server would have taken.
    """
    if value != value.strip() or value.startswith("<"):
        raise ValueError(f"not a bare address: {value!r}")
    normalise_address(value)  # InvalidAddress is a ValueError
    return value


def _optional_mail_address(value: str | None) -> str | None:
    return None if value is None else mail_address(value)


class MailEmail(Email):
    """``Email`` with ``value`` checked by ``mail_address`` instead of ``EmailStr``."""

    value: Annotated[str | None, AfterValidator(_optional_mail_address)] = None


class MailUser(User[Any]):
    """``User`` whose ``emails`` are ``MailEmail``: what this connector sends and re-sends (PUT)."""

    emails: list[MailEmail] | None = None  # type: ignore[assignment]


def _checked_addresses(addresses: Sequence[str], what: str) -> None:
    for address in addresses:
        try:
            mail_address(address)
        except ValueError as exc:
            raise SkippableError(f"{what}: not a valid SCIM address: {exc}") from exc


def user_payload(user: NewUser, profile: ServerProfile | None = None) -> dict[str, Any]:
    """POST /Users body: ``userName`` = primary, ``emails`` = primary (flagged) + aliases;
    shaped to ``profile`` (``shape_user``) when the server's schema is known."""
    try:
        return shape_user(_user_payload(user), profile)
    except ValidationError as exc:
        raise SkippableError(f"{user.primary_address}: not a valid SCIM user: {exc.errors()[0]['msg']}") from exc


def _user_payload(user: NewUser) -> dict[str, Any]:
    emails = [MailEmail(value=user.primary_address, primary=True, type=Email.Type.work)]
    emails += [MailEmail(value=alias) for alias in user.aliases if alias != user.primary_address]
    model = MailUser(
        user_name=user.primary_address,
        emails=emails,
        active=True,
        display_name=user.display_name,
        external_id=user.external_id,
    )
    return model.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)


def group_payload(name: str) -> dict[str, Any]:
    return Group(display_name=name).model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)


def add_members_patch(user_ids: Sequence[str]) -> dict[str, Any]:
    """PATCH /Groups/{id}: add members (adding a present member again is harmless)."""
    body = {"Operations": [{"op": "add", "path": "members", "value": [{"value": uid} for uid in user_ids]}]}
    return PatchOp[Group].model_validate(body).model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def add_emails_patch(addresses: Sequence[str]) -> dict[str, Any]:
    """PATCH /Users/{id}: add alias addresses to ``emails``."""
    _checked_addresses(addresses, "add aliases")
    return user_patch([{"op": "add", "path": "emails", "value": [{"value": a} for a in addresses]}], "add aliases")


def replace_emails(resource: dict[str, Any], addresses: Sequence[str]) -> dict[str, Any]:
    """PUT /Users/{id} body for servers without PATCH: the user as read, plus ``addresses``."""
    body = {k: v for k, v in resource.items() if k not in ("meta", "groups")}
    body["emails"] = [*resource.get("emails", []), *({"value": a} for a in addresses)]
    try:
        MailUser.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    except ValidationError as exc:
        raise SkippableError(f"{resource.get('userName')}: not a valid SCIM user: {exc.errors()[0]['msg']}") from exc
    return body


def replace_members(resource: dict[str, Any], user_ids: Sequence[str]) -> dict[str, Any]:
    """PUT /Groups/{id} body for servers without PATCH: the group as read, plus members."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    present = {m.get("value") for m in resource.get("members") or []}
    body["members"] = [
        *({"value": m["value"]} for m in resource.get("members") or [] if m.get("value")),
        *({"value": uid} for uid in user_ids if uid not in present),
    ]
    Group.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    return body


def bulk_create_request(payloads: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """One Bulk request that creates the users of ``payloads`` (position in the batch -> ``user_payload``);
    ``bulkId`` is ``u`` + the position. No ``failOnErrors``: the server goes on after an operation it
    refuses (RFC 7644 3.7), so that one refused user fails only itself."""
    return {
        "schemas": [BULK_REQUEST],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": payload} for i, payload in payloads.items()
        ],
    }


def bulk_batches(
    payloads: Mapping[int, dict[str, Any]], max_operations: int, max_payload: int
) -> tuple[list[dict[int, dict[str, Any]]], list[int]]:
    """``payloads`` cut into Bulk requests of at most ``max_operations`` operations and, when the
    server gives ``bulk.maxPayloadSize`` (``max_payload`` > 0), at most that many bytes as sent
    (``bulk_create_request`` as JSON, the encoding ``requests`` uses). The second list holds the
    positions whose operation alone exceeds the size: send those with POST /Users instead."""
    batches: list[dict[int, dict[str, Any]]] = []
    alone: list[int] = []
    envelope = len(json.dumps(bulk_create_request({})).encode())
    current: dict[int, dict[str, Any]] = {}
    size = envelope
    for position, payload in payloads.items():
        operation = bulk_create_request({position: payload})["Operations"][0]
        cost = len(json.dumps(operation).encode()) + (2 if current else 0)  # ", " between operations
        if max_payload and envelope + cost > max_payload:
            alone.append(position)
            continue
        if current and (len(current) >= max(1, max_operations) or (max_payload and size + cost > max_payload)):
            batches.append(current)
            current, size = {}, envelope
            cost -= 2
        current[position] = payload
        size += cost
    if current:
        batches.append(current)
    return batches, alone


def bulk_position(operation: dict[str, Any], size: int) -> int | None:
    """The position in the batch a Bulk answer's operation is about (its ``bulkId``), or None."""
    digits = str(operation.get("bulkId", ""))[1:]
    position = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else -1
    return position if 0 <= position < size else None


def operation_error(operation: dict[str, Any]) -> str:
    """What a Bulk answer's failed operation says (its ``response``: an RFC 7644 error), in one escaped line."""
    response = operation.get("response")
    if isinstance(response, dict):
        parts = [printable(response[k]) for k in ("status", "scimType", "detail") if response.get(k) not in (None, "")]
        if parts:
            return " ".join(parts)[:300]
    return f"status {printable(operation.get('status'))[:20]} {printable(repr(response))[:260]}"


def email_entries(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``emails`` entries of a user resource that are objects (a server may send anything)."""
    emails = resource.get("emails")
    return [e for e in emails if isinstance(e, dict)] if isinstance(emails, list) else []


def emails_of(resource: dict[str, Any]) -> list[str]:
    """Every address of a user resource, ``userName`` first, lower-cased, without repeats."""
    found: list[str] = []
    for value in [resource.get("userName"), *(e.get("value") for e in email_entries(resource))]:
        if isinstance(value, str) and "@" in value and value.lower() not in found:
            found.append(value.lower())
    return found


def snapshot_of(resources: Iterable[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Users' primaries and alias -> primary, from listed user resources.

    The primary is ``userName`` when it is an address, else the email flagged primary.
    """
    users: list[str] = []
    aliases: dict[str, str] = {}
    for resource in resources:
        addresses = emails_of(resource)
        if not addresses:
            continue
        primary = addresses[0]
        user_name = resource.get("userName")
        if not (isinstance(user_name, str) and "@" in user_name):
            flagged = [e.get("value") for e in email_entries(resource) if e.get("primary")]
            if flagged and isinstance(flagged[0], str):
                primary = flagged[0].lower()
        users.append(primary)
        for address in addresses:
            if address != primary:
                aliases.setdefault(address, primary)
    return users, aliases


# -- lifecycle: reading users back ----------------------------------------------------------------


def list_page(body: Any, what: str) -> tuple[list[dict[str, Any]], int]:
    """The resources and ``totalResults`` of a ListResponse; ``RetriableError`` when it is not one."""
    resources = (body.get("Resources") or []) if isinstance(body, dict) else None
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise RetriableError(f"{what}: the answer is not a SCIM list response")
    try:
        total = int(body.get("totalResults", 0))
    except (TypeError, ValueError) as exc:
        raise RetriableError(f"{what}: unreadable totalResults") from exc
    return resources, total


def _text(resource: dict[str, Any], name: str) -> str | None:
    value = resource.get(name)
    return value if isinstance(value, str) else None


def user_name_of(resource: dict[str, Any]) -> str | None:
    """The lower-cased ``userName`` of a user resource, or None."""
    name = _text(resource, "userName")
    return name.lower() if name else None


def resource_id(resource: dict[str, Any]) -> str | None:
    value = resource.get("id")
    return str(value) if isinstance(value, str | int) and str(value) else None


def version_of(resource: dict[str, Any]) -> str | None:
    """``meta.version`` (the ETag) of a resource, when the server sends one."""
    meta = resource.get("meta")
    return _text(meta, "version") if isinstance(meta, dict) else None


def target_user_of(resource: dict[str, Any], orgs: Iterable[str]) -> TargetUser | None:
    """A user resource as the lifecycle's actual state; None when it has no id or userName.

    The primary is ``userName``; the aliases are every other address in ``emails``.
    A user whose ``active`` is missing counts as active (RFC 7643 leaves it optional).
    """
    primary, user_id = user_name_of(resource), resource_id(resource)
    if primary is None or user_id is None:
        return None
    active = resource.get("active")
    return TargetUser(
        primary_address=primary,
        target_id=user_id,
        orgs=tuple(sorted(set(orgs))),
        aliases=tuple(sorted(a for a in emails_of(resource) if a != primary)),
        display_name=_text(resource, "displayName"),
        external_id=_text(resource, "externalId"),
        active=active if isinstance(active, bool) else True,
        version=version_of(resource),
    )


def group_refs(resource: dict[str, Any], name: str) -> list[tuple[str, str | None]] | None:
    """``(value, display)`` of a multi-valued reference (``groups`` of a user, ``members`` of a group).

    None when the resource does not carry the attribute at all.
    """
    if name not in resource:
        return None
    refs = resource.get(name)
    if not isinstance(refs, list):
        return []
    return [
        (str(ref["value"]), _text(ref, "display"))
        for ref in refs
        if isinstance(ref, dict) and isinstance(ref.get("value"), str | int)
    ]


def group_ids(groups: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Group name -> group id, from listed groups (the first of a name wins)."""
    ids: dict[str, str] = {}
    for group in groups:
        name, group_id = _text(group, "displayName"), resource_id(group)
        if name is not None and group_id is not None:
            ids.setdefault(name, group_id)
    return ids


def memberships(groups: Iterable[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """From listed groups with members: user id -> group names, and group name -> group id."""
    listed = list(groups)
    by_user: dict[str, list[str]] = {}
    for group in listed:
        name = _text(group, "displayName")
        if name is None or resource_id(group) is None:
            continue
        for member, _ in group_refs(group, "members") or []:
            by_user.setdefault(member, []).append(name)
    return by_user, group_ids(listed)


def replace_user(resource: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """PUT /Users/{id} body for servers without PATCH: the user as read, with ``changes`` applied."""
    body = {k: v for k, v in resource.items() if k not in ("meta", "groups")}
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    try:
        MailUser.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    except ValidationError as exc:
        raise SkippableError(f"{resource.get('userName')}: not a valid SCIM user: {exc.errors()[0]['msg']}") from exc
    return body


def user_patch(operations: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """A validated PATCH /Users/{id} body of these operations; ``SkippableError`` (naming ``what``) if invalid."""
    try:
        return (
            PatchOp[User[Any]]
            .model_validate({"Operations": operations})
            .model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        )
    except ValidationError as exc:
        raise SkippableError(f"{what}: not a valid SCIM change: {exc.errors()[0]['msg']}") from exc
