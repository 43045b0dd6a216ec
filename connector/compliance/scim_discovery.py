"""What a SCIM server says about itself: ``ServiceProviderConfig``, ``ResourceTypes``, ``Schemas``.

Read once per refresh into a frozen ``ServerProfile`` that the rest of the SCIM
target adapts to (filters or listing, PATCH or PUT, Bulk sizes, which attributes
to send). Servers omit these endpoints, answer HTML, or send half of RFC 7643:
each document is parsed with ``scim2-models`` where it validates and read field
by field where it does not, and whatever is missing takes the documented default
(``DEFAULT_PROFILE``) with a note saying so. ``discover`` raises only when the
server cannot be reached at all (``RetriableError``) or refuses the credentials
(``FatalError``): a strange answer is never a reason not to provision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from pydantic import ValidationError
from scim2_models import Context, ServiceProviderConfig

from connector.compliance.scim_http import NOT_JSON, error_text, json_body
from connector.errors import RetriableError

log = logging.getLogger(__name__)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
COMMON_ATTRIBUTES = frozenset({"schemas", "id", "externalid", "meta"})
"""RFC 7643 3.1: on every resource, never declared in a schema; never dropped, never "required of us"."""


class _Requester(Protocol):
    """What ``discover`` needs of ``ScimHttp``: one GET with its retries and error classes."""

    base_url: str

    def request(self, method: str, path: str, *, optional: bool = False) -> requests.Response: ...


@dataclass(frozen=True, slots=True)
class AttributeShape:
    """One declared attribute of a resource schema (names as the server spells them)."""

    name: str
    required: bool = False
    multi_valued: bool = False
    mutability: str = "readWrite"
    sub_attributes: tuple[str, ...] = ()
    required_sub_attributes: tuple[str, ...] = ()

    def declares_sub(self, name: str) -> bool:
        return name.lower() in (s.lower() for s in self.sub_attributes)

    @property
    def writable(self) -> bool:
        return self.mutability.lower() not in ("readonly", "immutable")


@dataclass(frozen=True, slots=True)
class ResourceShape:
    """The attributes a server declares for one resource type (core schema only; names case-insensitive)."""

    schema: str
    attributes: Mapping[str, AttributeShape] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Lower-cased name -> shape (read-only; left out of the hash, so profiles stay hashable)."""

    def get(self, name: str) -> AttributeShape | None:
        return self.attributes.get(name.lower())

    def declares(self, name: str) -> bool:
        return name.lower() in COMMON_ATTRIBUTES or name.lower() in self.attributes

    def required(self) -> tuple[str, ...]:
        """Attributes a create must carry (the server marks them ``required``), common ones aside."""
        return tuple(a.name for a in self.attributes.values() if a.required and a.name.lower() not in COMMON_ATTRIBUTES)


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """What one SCIM server supports and declares, as read by ``discover`` (frozen: one per refresh).

    ``user``/``group`` are None when the server's ``/Schemas`` could not be read: then nothing
    is left out and nothing is filled (the RFC 7643 core schema is assumed). ``notes`` say,
    in one line each, what was missing or unreadable, for ``target check``.
    """

    patch_supported: bool = True
    filter_supported: bool = True
    filter_max_results: int | None = None
    bulk_supported: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    etag_supported: bool = False
    sort_supported: bool = False
    user_endpoint: str = "/Users"
    group_endpoint: str = "/Groups"
    user: ResourceShape | None = None
    group: ResourceShape | None = None
    user_required_extensions: tuple[str, ...] = ()
    """Schema extensions ``ResourceTypes`` marks required on users (we send none: creates fail)."""
    read_service_provider_config: bool = False
    notes: tuple[str, ...] = ()

    # Short names, as the adapter's ``features()`` callers read them.
    @property
    def patch(self) -> bool:
        return self.patch_supported

    @property
    def filter(self) -> bool:
        return self.filter_supported

    @property
    def etag(self) -> bool:
        return self.etag_supported

    @property
    def bulk(self) -> bool:
        return self.bulk_supported and self.bulk_max_operations > 0

    def declares(self, resource: str, attribute: str, sub: str | None = None) -> bool:
        """Whether the server declares ``attribute`` (or ``attribute.sub``) of ``"User"``/``"Group"``.

        True when the schema is unknown: then everything is sent, as before discovery existed.
        """
        shape = self.user if resource == "User" else self.group
        if shape is None:
            return True
        if sub is None:
            return shape.declares(attribute)
        attr = shape.get(attribute)
        return attr is not None and (not attr.sub_attributes or attr.declares_sub(sub))

    def required_attributes(self, resource: str) -> tuple[str, ...]:
        shape = self.user if resource == "User" else self.group
        return shape.required() if shape is not None else ()

    def describe(self) -> dict[str, Any]:
        """Plain values for ``target check --format json`` and logs."""
        return {
            "patch": self.patch_supported,
            "filter": self.filter_supported,
            "filter_max_results": self.filter_max_results,
            "etag": self.etag_supported,
            "bulk": self.bulk,
            "bulk_max_operations": self.bulk_max_operations,
            "bulk_max_payload": self.bulk_max_payload,
            "sort": self.sort_supported,
            "user_endpoint": self.user_endpoint,
            "group_endpoint": self.group_endpoint,
            "user_attributes": _attribute_names(self.user),
            "group_attributes": _attribute_names(self.group),
            "user_required": list(self.required_attributes("User")),
            "group_required": list(self.required_attributes("Group")),
            "notes": list(self.notes),
        }


def _attribute_names(shape: ResourceShape | None) -> list[str] | None:
    if shape is None:
        return None
    return [a.name + (f"({','.join(a.sub_attributes)})" if a.sub_attributes else "") for a in shape.attributes.values()]


DEFAULT_PROFILE = ServerProfile(notes=("no ServiceProviderConfig: assuming PATCH and filter, no Bulk, no ETag",))
"""A server that answers none of the three documents: PATCH and filtering assumed (the common
subset, what the connector did before discovery), no Bulk, no ETag, no sort, endpoints
``/Users`` and ``/Groups``, schemas unknown (send every attribute, fill none)."""


# -- parsing (pure) ---------------------------------------------------------------------------------


def _flag(section: Any, name: str = "supported") -> bool | None:
    """A boolean, also as the strings ``"true"``/``"false"`` some servers send; else None."""
    value = section.get(name) if isinstance(section, dict) else None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value if isinstance(value, bool) else None


def _count(section: Any, name: str) -> int | None:
    value = section.get(name) if isinstance(section, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) < 10:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 <= value < 10**9 else None


def profile_from_config(body: Any, base: ServerProfile = DEFAULT_PROFILE) -> ServerProfile:
    """Features from a ServiceProviderConfig body; a feature it leaves out counts as unsupported.

    Validated with ``scim2-models`` first; a body it refuses (a string ``"true"``, a missing
    ``schemas``, a wrong type in one section) is read field by field, with a note.
    """
    if not isinstance(body, dict):
        return replace(base, notes=(*base.notes, "ServiceProviderConfig is not a JSON object"))
    notes: list[str] = []
    try:
        config = ServiceProviderConfig.model_validate(body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        raw = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    except ValidationError as exc:
        notes.append(f"ServiceProviderConfig does not validate ({exc.errors()[0]['loc']}): read field by field")
        raw = {k: v for k, v in body.items() if isinstance(k, str)}
    sections = {k.lower(): v for k, v in raw.items()}
    patch, filt, bulk = sections.get("patch"), sections.get("filter"), sections.get("bulk")
    etag, sort = sections.get("etag"), sections.get("sort")
    bulk_ops = _count(bulk, "maxOperations") or 0
    return ServerProfile(
        patch_supported=bool(_flag(patch)),
        filter_supported=bool(_flag(filt)),
        filter_max_results=_count(filt, "maxResults") or None,
        bulk_supported=bool(_flag(bulk)) and bulk_ops > 0,
        bulk_max_operations=bulk_ops,
        bulk_max_payload=_count(bulk, "maxPayloadSize") or 0,
        etag_supported=bool(_flag(etag)),
        sort_supported=bool(_flag(sort)),
        user_endpoint=base.user_endpoint,
        group_endpoint=base.group_endpoint,
        user=base.user,
        group=base.group,
        read_service_provider_config=True,
        notes=tuple(notes),
    )


def _resources(body: Any) -> list[dict[str, Any]]:
    """The objects of a ListResponse, a bare list, or one object (servers send all three)."""
    if isinstance(body, dict):
        listed = body.get("Resources", body.get("resources"))
        if isinstance(listed, list):
            return [r for r in listed if isinstance(r, dict)]
        return [body]
    if isinstance(body, list):
        return [r for r in body if isinstance(r, dict)]
    return []


def relative_endpoint(endpoint: str, base_path: str) -> str | None:
    """A ResourceType ``endpoint`` relative to the base URL (``/Users``), or None when it is not one.

    RFC 7643 6 wants it relative; django-scim2 sends the full path (``/scim/v2/Users``), others a
    whole URL: the base URL's path is taken off. Anything but one path segment is not trusted.
    """
    path = urlsplit(endpoint).path if "://" in endpoint else endpoint
    base = base_path.rstrip("/")
    if base and path.lower().startswith(base.lower() + "/"):
        path = path[len(base) :]
    path = path.rstrip("/")
    segment = path[1:]
    if not path.startswith("/") or not segment or "/" in segment or "?" in segment or not segment.isprintable():
        return None
    return path


def endpoints_from_resource_types(body: Any, base_path: str = "") -> dict[str, str]:
    """Schema URN (lower-cased) -> endpoint path (``/Users``), from a ResourceTypes answer; unreadable
    entries skipped."""
    found: dict[str, str] = {}
    for resource in _resources(body):
        schema, endpoint = resource.get("schema"), resource.get("endpoint")
        if isinstance(schema, str) and isinstance(endpoint, str):
            relative = relative_endpoint(endpoint, base_path)
            if relative is not None:
                found.setdefault(schema.lower(), relative)
    return found


def required_extensions(body: Any, schema: str = USER_SCHEMA) -> tuple[str, ...]:
    """The schema extensions a ResourceTypes answer marks ``required`` for the resource of ``schema``."""
    found: list[str] = []
    for resource in _resources(body):
        if str(resource.get("schema", "")).lower() != schema.lower():
            continue
        extensions = resource.get("schemaExtensions")
        for extension in extensions if isinstance(extensions, list) else []:
            if isinstance(extension, dict) and extension.get("required") is True:
                name = extension.get("schema")
                if isinstance(name, str) and name not in found:
                    found.append(name)
    return tuple(found)


def _attribute(raw: Any) -> AttributeShape | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        return None
    subs = [s for s in raw.get("subAttributes") or [] if isinstance(s, dict) and isinstance(s.get("name"), str)]
    mutability = raw.get("mutability")
    return AttributeShape(
        name=raw["name"],
        required=raw.get("required") is True,
        multi_valued=raw.get("multiValued") is True,
        mutability=mutability if isinstance(mutability, str) else "readWrite",
        sub_attributes=tuple(s["name"] for s in subs),
        required_sub_attributes=tuple(s["name"] for s in subs if s.get("required") is True),
    )


def shapes_from_schemas(body: Any) -> dict[str, ResourceShape]:
    """Schema URN (lower-cased) -> declared attributes, from a Schemas answer (list or single)."""
    shapes: dict[str, ResourceShape] = {}
    for schema in _resources(body):
        urn, attributes = schema.get("id"), schema.get("attributes")
        if not isinstance(urn, str) or not isinstance(attributes, list):
            continue
        parsed = [a for a in map(_attribute, attributes) if a is not None]
        shapes[urn.lower()] = ResourceShape(urn, MappingProxyType({a.name.lower(): a for a in parsed}))
    return shapes


def merge_documents(
    config: Any, resource_types: Any, schemas: Any, notes: Iterable[str] = (), base_path: str = ""
) -> ServerProfile:
    """The profile from the three answers (each the decoded body, or None when the server gave none);
    ``base_path`` is the path of the SCIM base URL (``/scim/v2``)."""
    profile = DEFAULT_PROFILE if config is None else profile_from_config(config)
    all_notes = [*profile.notes, *notes]
    endpoints = endpoints_from_resource_types(resource_types, base_path) if resource_types is not None else {}
    user_endpoint = endpoints.get(USER_SCHEMA.lower(), profile.user_endpoint)
    group_endpoint = endpoints.get(GROUP_SCHEMA.lower(), profile.group_endpoint)
    if resource_types is not None and USER_SCHEMA.lower() not in endpoints:
        all_notes.append("ResourceTypes names no User endpoint: /Users assumed")
    shapes = shapes_from_schemas(schemas) if schemas is not None else {}
    user, group = shapes.get(USER_SCHEMA.lower()), shapes.get(GROUP_SCHEMA.lower())
    if schemas is not None and user is None:
        all_notes.append("Schemas declares no User schema: every attribute is sent")
    return replace(
        profile,
        user_endpoint=user_endpoint,
        group_endpoint=group_endpoint,
        user=user,
        group=group,
        user_required_extensions=required_extensions(resource_types) if resource_types is not None else (),
        notes=tuple(all_notes),
    )


# -- reading (I/O) ----------------------------------------------------------------------------------


def _read(http: _Requester, path: str, notes: list[str], *, optional: bool) -> Any:
    """One document's decoded body, or None (with a note) when the server gives none that is JSON.

    An ``optional`` one is asked once (a 5xx for an endpoint a server lacks is not retried and
    does not count towards the quarantine), and even a failed connection only leaves a note.
    """
    try:
        response = http.request("GET", path, optional=optional)
    except RetriableError as exc:
        if not optional:
            raise
        notes.append(f"{path} failed ({exc}): defaults used")
        return None
    if response.status_code != 200:
        notes.append(f"{path} answered {error_text(response)}: defaults used")
        return None
    body = json_body(response)
    if body is NOT_JSON:
        notes.append(f"{path} is not JSON: defaults used")
        return None
    return body


def discover(http: _Requester) -> ServerProfile:
    """Read the three discovery documents and build the profile (three GETs; two more, to
    ``/Schemas/{urn}``, when ``/Schemas`` gives no User schema).

    ``/ServiceProviderConfig`` failing for good (``RetriableError``: the server is down) propagates;
    a missing or unreadable document falls back to ``DEFAULT_PROFILE``'s values for it. The other two
    are optional extras, asked once: a server that fails on them (some answer 500 for an endpoint they
    lack) is provisioned with the core schema.
    """
    notes: list[str] = []
    config = _read(http, "/ServiceProviderConfig", notes, optional=False)
    resource_types = _read(http, "/ResourceTypes", notes, optional=True)
    schemas = _read(http, "/Schemas", notes, optional=True)
    if USER_SCHEMA.lower() not in shapes_from_schemas(schemas):
        # Some servers serve only /Schemas/{urn}: ask for the two we use, once each.
        single = [_read(http, f"/Schemas/{urn}", [], optional=True) for urn in (USER_SCHEMA, GROUP_SCHEMA)]
        found = [body for body in single if body is not None]
        if any(USER_SCHEMA.lower() in shapes_from_schemas(body) for body in found):
            notes.append("/Schemas lists no User schema; read from /Schemas/{urn}")
            schemas = {"Resources": [*_resources(schemas), *(r for body in found for r in _resources(body))]}
    base_path = urlsplit(str(getattr(http, "base_url", ""))).path
    profile = merge_documents(config, resource_types, schemas, notes, base_path)
    for note in profile.notes:
        log.info("SCIM discovery: %s", note)
    return profile
