"""User bodies shaped to what one SCIM server declares (its ``/Schemas``, read by ``scim_discovery``).

Pure: takes a body and a ``ServerProfile``, returns a body. Servers refuse attributes they do
not declare (``emails.type``, ``emails.primary`` with 400) and require others we do not send
(``name``): both are settled here, once, for every create and replace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.compliance.scim_discovery import ServerProfile


SENT_USER_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "userName": (),
    "displayName": (),
    "active": (),
    "emails": ("value", "type", "primary"),
}
"""What the connector sends of a user (``externalId`` is common to every resource, never declared)."""
_NEVER_SHAPED = frozenset({"schemas", "id", "externalid", "meta"})


def split_display_name(display_name: str) -> tuple[str, str]:
    """``(givenName, familyName)`` for a server that requires them: the first word, and the rest
    (one word serves as both). Only to satisfy a required attribute: names do not split reliably."""
    words = display_name.split()
    if not words:
        return display_name, display_name
    return words[0], " ".join(words[1:]) or words[0]


def _keep_declared(value: Any, declared: Sequence[str]) -> Any:
    """A complex value (or a list of them) without the sub-attributes the server does not declare."""
    if not declared:
        return value
    names = {d.lower() for d in declared}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in names}
    if isinstance(value, list):
        return [_keep_declared(v, declared) for v in value]
    return value


def _filled_name(current: Any, display: str, declared: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    """``name`` with ``formatted``, ``givenName`` and ``familyName`` filled from the display name, where
    the server declares them (or, declaring none, all three), never overwriting what is there."""
    given, family = split_display_name(display)
    name = dict(current) if isinstance(current, dict) else {}
    wanted = {"formatted": display, "givenName": given, "familyName": family}
    lowered = {d.lower() for d in declared}
    for key, value in wanted.items():
        if (not declared or key.lower() in lowered or key in required) and not name.get(key):
            name[key] = value
    return name


def shape_user(body: dict[str, Any], profile: ServerProfile | None) -> dict[str, Any]:
    """A user body (create or replace) as this server takes it.

    Left out: attributes and sub-attributes its ``/Schemas`` does not declare (some servers refuse
    ``emails.type``/``emails.primary`` with 400); extension schemas (``urn:...`` keys) are kept
    whole. Filled: required attributes we can derive, ``name`` (``formatted``, ``givenName``,
    ``familyName`` as declared) and ``displayName`` from the display name, else the address's local
    part. A server whose schema is unknown gets the body as is.
    """
    shape = profile.user if profile is not None else None
    if shape is None:
        return body
    shaped: dict[str, Any] = {}
    for key, value in body.items():
        attribute = shape.get(key)
        if key.lower() in _NEVER_SHAPED or key.lower().startswith("urn:"):  # extensions are kept whole
            shaped[key] = value
        elif attribute is not None:
            shaped[key] = _keep_declared(value, attribute.sub_attributes)
    user_name = str(body.get("userName") or "")
    display = str(body.get("displayName") or user_name.partition("@")[0] or user_name)
    for attribute in shape.attributes.values():
        key = attribute.name
        if attribute.name.lower() == "name" and (attribute.required or attribute.required_sub_attributes):
            shaped[key] = _filled_name(
                shaped.get(key), display, attribute.sub_attributes, attribute.required_sub_attributes
            )
        elif attribute.name.lower() == "displayname" and attribute.required and not shaped.get(key):
            shaped[key] = display
    return shaped


@dataclass(frozen=True, slots=True)
class ShapeReport:
    """What shaping does to the users of this server, for ``target check``."""

    dropped: tuple[str, ...]
    """Attributes we send that the server does not declare (``emails.type``): left out."""
    filled: tuple[str, ...]
    """Required attributes we fill (``name.givenName``)."""
    unfillable: tuple[str, ...]
    """Required attributes we cannot fill: every create will be refused."""


def shape_report(profile: ServerProfile) -> ShapeReport:
    """Which of our user attributes this server drops, fills, or requires of us in vain."""
    shape = profile.user
    if shape is None:
        return ShapeReport((), (), ())
    dropped: list[str] = []
    for name, subs in SENT_USER_ATTRIBUTES.items():
        attribute = shape.get(name)
        if attribute is None:
            dropped.append(name)
            continue
        dropped += [f"{name}.{sub}" for sub in subs if attribute.sub_attributes and not attribute.declares_sub(sub)]
    filled: list[str] = []
    unfillable: list[str] = []
    for attribute in shape.attributes.values():
        lowered = attribute.name.lower()
        if lowered == "name" and (attribute.required or attribute.required_sub_attributes):
            fill = [
                s
                for s in ("formatted", "givenName", "familyName")
                if not attribute.sub_attributes or attribute.declares_sub(s)
            ]
            filled += [f"name.{s}" for s in fill]
            unfillable += [f"name.{s}" for s in attribute.required_sub_attributes if s not in fill]
        elif lowered == "displayname" and attribute.required:
            filled.append(attribute.name)
        elif (
            attribute.required
            and attribute.writable  # a required read-only attribute is the server's to set
            and lowered not in _NEVER_SHAPED
            and attribute.name not in SENT_USER_ATTRIBUTES
        ):
            unfillable.append(attribute.name)
        for sub in attribute.required_sub_attributes:
            if attribute.name in SENT_USER_ATTRIBUTES and sub not in SENT_USER_ATTRIBUTES[attribute.name]:
                unfillable.append(f"{attribute.name}.{sub}")
    return ShapeReport(tuple(dropped), tuple(filled), tuple(unfillable))
