"""Pure SCIM 2.0 mapping: our values -> validated request bodies, response bodies -> our values.

No I/O here: ``scim.py`` sends what these functions build. Every body is
validated with ``scim2-models`` in the context it is sent in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Email,
    Group,
    PatchOp,
    ServiceProviderConfig,
    User,
)

from connector.compliance.base import NewUser
from connector.errors import SkippableError

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def filter_value(value: str) -> str:
    """A SCIM filter string literal (RFC 7644 3.4.2.2 uses JSON strings): ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def user_filter(address: str) -> str:
    return f"userName eq {filter_value(address)}"


def email_filter(address: str) -> str:
    return f"emails.value eq {filter_value(address)}"


def group_filter(name: str) -> str:
    return f"displayName eq {filter_value(name)}"


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """What the service provider says it supports (``/ServiceProviderConfig``)."""

    patch: bool = False
    filter: bool = False
    filter_max_results: int | None = None
    etag: bool = False
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "patch": self.patch,
            "filter": self.filter,
            "filter_max_results": self.filter_max_results,
            "etag": self.etag,
            "bulk": self.bulk,
            "bulk_max_operations": self.bulk_max_operations,
            "bulk_max_payload": self.bulk_max_payload,
        }


def parse_features(body: Any) -> ServerFeatures:
    """Read a ServiceProviderConfig; what it leaves out counts as unsupported."""
    try:
        config = ServiceProviderConfig.model_validate(body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    except ValidationError as exc:
        raise SkippableError(f"unreadable ServiceProviderConfig: {exc}") from exc
    bulk = config.bulk
    return ServerFeatures(
        patch=bool(config.patch and config.patch.supported),
        filter=bool(config.filter and config.filter.supported),
        filter_max_results=config.filter.max_results if config.filter else None,
        etag=bool(config.etag and config.etag.supported),
        bulk=bool(bulk and bulk.supported and (bulk.max_operations or 0) > 0),
        bulk_max_operations=(bulk.max_operations or 0) if bulk else 0,
        bulk_max_payload=(bulk.max_payload_size or 0) if bulk else 0,
    )


def user_payload(user: NewUser) -> dict[str, Any]:
    """POST /Users body: ``userName`` = primary, ``emails`` = primary (flagged) + aliases."""
    try:
        return _user_payload(user)
    except ValidationError as exc:
        raise SkippableError(f"{user.primary_address}: not a valid SCIM user: {exc.errors()[0]['msg']}") from exc


def _user_payload(user: NewUser) -> dict[str, Any]:
    emails = [Email(value=user.primary_address, primary=True, type=Email.Type.work)]
    emails += [Email(value=alias) for alias in user.aliases if alias != user.primary_address]
    model: User[Any] = User(
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
    body = {"Operations": [{"op": "add", "path": "emails", "value": [{"value": a} for a in addresses]}]}
    return PatchOp[User[Any]].model_validate(body).model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def replace_emails(resource: dict[str, Any], addresses: Sequence[str]) -> dict[str, Any]:
    """PUT /Users/{id} body for servers without PATCH: the user as read, plus ``addresses``."""
    body = {k: v for k, v in resource.items() if k not in ("meta", "groups")}
    body["emails"] = [*resource.get("emails", []), *({"value": a} for a in addresses)]
    User.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
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


def bulk_create_request(users: Sequence[NewUser]) -> dict[str, Any]:
    """One Bulk request that creates ``users``; ``bulkId`` is the position in ``users``."""
    return {
        "schemas": [BULK_REQUEST],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": user_payload(user)}
            for i, user in enumerate(users)
        ],
    }


def emails_of(resource: dict[str, Any]) -> list[str]:
    """Every address of a user resource, ``userName`` first, lower-cased, without repeats."""
    found: list[str] = []
    for value in [resource.get("userName"), *(e.get("value") for e in resource.get("emails") or [])]:
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
            flagged = [e.get("value") for e in resource.get("emails") or [] if e.get("primary")]
            if flagged and isinstance(flagged[0], str):
                primary = flagged[0].lower()
        users.append(primary)
        for address in addresses:
            if address != primary:
                aliases.setdefault(address, primary)
    return users, aliases


def error_detail(body: Any) -> str:
    """A SCIM error body in one line."""
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("status", "scimType", "detail") if body.get(k)]
        if parts:
            return " ".join(parts)
    return str(body)[:300]
