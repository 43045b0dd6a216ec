"""Pure SCIM 2.0 bodies for lifecycle changes of existing users and groups (``scim_lifecycle``, ``scim_memberships``).

PATCH bodies are validated with ``scim2-models`` (``PatchOp``); PUT bodies for servers
without PATCH are the resource as read with the change applied, validated as a
replacement. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, Group, PatchOp

from connector.compliance.scim_mapping import email_entries, filter_value, group_refs, user_name_of, user_patch
from connector.errors import SkippableError


def remove_members_patch(user_ids: Sequence[str]) -> dict[str, Any]:
    """PATCH /Groups/{id}: remove members (RFC 7644 3.5.2.2): one operation whose value filter names them all,
    so that one of them no longer being a member does not fail the others (``noTarget`` only if none is)."""
    members = " or ".join(f"value eq {filter_value(uid)}" for uid in user_ids)
    operations = [{"op": "remove", "path": f"members[{members}]"}]
    try:
        patch = PatchOp[Group].model_validate({"Operations": operations})
    except ValidationError as exc:
        raise SkippableError(f"remove members: not a valid SCIM change: {exc.errors()[0]['msg']}") from exc
    return patch.model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def remove_emails_patch(addresses: Sequence[str]) -> dict[str, Any]:
    """PATCH /Users/{id}: remove these addresses from ``emails`` (compared case-insensitively by the server)."""
    operations = [{"op": "remove", "path": f"emails[value eq {filter_value(a)}]"} for a in addresses]
    return user_patch(operations, "remove aliases")


def renamed_emails(resource: dict[str, Any], new_primary: str) -> list[dict[str, Any]]:
    """``emails`` after a rename: the new primary first (flagged), the old primary dropped, the rest kept."""
    old = user_name_of(resource)
    kept = [
        {k: v for k, v in e.items() if k != "primary"}
        for e in email_entries(resource)
        if isinstance(e.get("value"), str) and e["value"].lower() not in (old, new_primary.lower())
    ]
    return [{"value": new_primary, "primary": True, "type": "work"}, *kept]


_UPDATE_ATTRIBUTES = {"display_name": "displayName", "external_id": "externalId"}


def update_attributes(fields: Mapping[str, Any], resource: dict[str, Any] | None) -> dict[str, Any]:
    """SCIM attribute -> new value for an UPDATE change (``resource``, as read, is needed for a rename)."""
    changes = {_UPDATE_ATTRIBUTES[name]: value for name, value in fields.items() if name in _UPDATE_ATTRIBUTES}
    new_primary = fields.get("primary_address")
    if isinstance(new_primary, str) and new_primary:
        if resource is None:  # the caller reads the user before a rename: never so
            raise SkippableError(f"rename to {new_primary}: the user as read is needed")
        changes["userName"] = new_primary
        changes["emails"] = renamed_emails(resource, new_primary)
    return changes


def update_patch(changes: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH /Users/{id}: replace these attributes (a None value removes it)."""
    operations = [
        {"op": "remove", "path": name} if value is None else {"op": "replace", "path": name, "value": value}
        for name, value in changes.items()
    ]
    return user_patch(operations, "update")


def emails_with(resource: dict[str, Any], add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``emails`` with ``add`` appended (unless present) and ``remove`` taken out, case-insensitively."""
    gone = {a.lower() for a in remove}
    emails = [e for e in email_entries(resource) if str(e.get("value", "")).lower() not in gone]
    present = {str(e.get("value", "")).lower() for e in emails}
    return [*emails, *({"value": a} for a in dict.fromkeys(add) if a.lower() not in present and a.lower() not in gone)]


def group_without_members(resource: dict[str, Any], user_ids: Sequence[str]) -> dict[str, Any]:
    """PUT /Groups/{id} body for servers without PATCH: the group as read, minus members."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    body["members"] = [
        {"value": str(value)} for value, _ in group_refs(resource, "members") or [] if value not in user_ids
    ]
    try:
        Group.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    except ValidationError as exc:
        raise SkippableError(f"group {resource.get('displayName')}: not a valid SCIM group: {exc}") from exc
    return body


def no_target(body: Any) -> bool:
    """A 400 ``noTarget``: the value a PATCH ``remove`` names is not there (already removed)."""
    return isinstance(body, dict) and body.get("scimType") == "noTarget"
