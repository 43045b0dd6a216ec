"""Trust the answer, not the request: what a SCIM server really stored, from its 200/201 bodies. Pure.

Servers take a write and keep part of it: django-scim2 stores one email per
user (the primary) and answers 201 all the same; some ignore ``members`` in a
group PUT. Every body that carries a representation is compared with what was
sent, and only what it holds counts as done. A body without the attribute (a
PATCH answered 204, a Bulk operation without ``response``) tells nothing: the
next read of the user (reconcile, ``target refresh``) does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.compliance.base import TargetFinding
from connector.compliance.scim_mapping import emails_of, group_refs

DROPPED_ALIAS = "target_dropped_alias"
DROPPED_MEMBERSHIP = "target_dropped_membership"
ALREADY_IN_TARGET = "already_in_target"
LOST_ALIAS = "target_lost_alias"
ALIAS_HELD = "alias_held_by_other"
DISPLAY_NAME_NOT_STORED = "display_name_not_stored"


def dropped_addresses(sent: Sequence[str], answer: Any) -> list[str] | None:
    """The addresses of ``sent`` that the answered user does not hold (case-insensitive), in order;
    None when the answer shows no ``emails`` (nothing can be told from it)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("emails"), list):
        return None
    stored = set(emails_of(answer))
    return [a for a in dict.fromkeys(sent) if a.lower() not in stored]


def held_aliases(primary: str, aliases: Sequence[str], holders: Mapping[str, str]) -> dict[str, str]:
    """Alias -> the other user holding it (``holders``: lower-cased address -> that user's primary or
    userName, from the last pull or a listing); aliases of ``primary`` itself or held by nobody are free."""
    own = primary.lower()
    return {
        alias: holder
        for alias in dict.fromkeys(aliases)
        if (holder := holders.get(alias.lower())) is not None and holder.lower() != own
    }


def alias_held_finding(primary: str, held: Mapping[str, str]) -> TargetFinding:
    """Aliases of a user to create that other users hold: left out of the create (never two owners)."""
    described = ", ".join(f"{alias} (held by {holder})" for alias, holder in held.items())
    return TargetFinding(
        primary,
        ALIAS_HELD,
        f"alias(es) of {primary} already held by another user in the target: {described}; left out of the "
        "create, not recorded as known",
        problem=False,
        addresses=tuple(held),
    )


def dropped_members(sent: Iterable[str], answer: Any) -> list[str] | None:
    """The user ids of ``sent`` missing from the answered group's ``members``; None when it shows none."""
    if not isinstance(answer, dict) or "members" not in answer:
        return None
    present = {value for value, _ in group_refs(answer, "members") or []}
    return [uid for uid in dict.fromkeys(sent) if uid not in present]


def dropped_alias_finding(primary: str, aliases: Sequence[str], how: str) -> TargetFinding:
    """The server answered ``how`` (e.g. "201 to POST /Users") without these aliases of ``primary``."""
    return TargetFinding(
        primary,
        DROPPED_ALIAS,
        f"the server did not store alias(es) {', '.join(aliases)} of {primary} (its answer to {how} lacks them); "
        "not recorded as known, tried again when the user is reconciled",
        addresses=tuple(aliases),
    )


def dropped_members_finding(org: str, user_ids: Sequence[str], how: str) -> TargetFinding:
    return TargetFinding(
        org,
        DROPPED_MEMBERSHIP,
        f"the server did not add user id(s) {', '.join(user_ids[:10])}{' ...' if len(user_ids) > 10 else ''} "
        f"to group {org!r} (its answer to {how} lacks them); restored by the reconcile step",
    )


def owner_by_address(resources: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Lower-cased address -> the listed user holding it as ``userName`` or in ``emails`` (first wins)."""
    owners: dict[str, dict[str, Any]] = {}
    for resource in resources:
        for address in emails_of(resource):
            owners.setdefault(address, resource)
        name = resource.get("userName")
        if isinstance(name, str):
            owners.setdefault(name.lower(), resource)
    return owners


def held_by_another(address: str, owner: dict[str, Any]) -> bool:
    """``owner`` holds ``address`` in ``emails`` but is not the user named ``address`` (made by hand)."""
    name = owner.get("userName")
    return not (isinstance(name, str) and name.lower() == address.lower())


def already_in_target_finding(address: str, owner: dict[str, Any]) -> TargetFinding:
    return TargetFinding(
        address,
        ALREADY_IN_TARGET,
        f"{address} is an address of user {owner.get('userName')!r} (id {owner.get('id')}), not made by the "
        "connector: not created again, not managed, left untouched",
        problem=False,
    )


def lost_aliases(before: dict[str, str], users: Iterable[str], after: dict[str, str]) -> dict[str, str]:
    """Aliases (alias -> primary) the previous copy held for a user the new pull still has, without them."""
    still_there = set(users)
    return {
        alias: owner
        for alias, owner in before.items()
        if owner in still_there and alias not in after and alias not in still_there
    }
