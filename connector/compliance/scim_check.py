"""``connector target check`` for a SCIM server: what it says, what it actually does, what will not work.

A server's ``ServiceProviderConfig`` is a claim: deployments switch ``filter`` on for other
clients while the filter we send is not mapped (it then answers an empty list, not 400). So
the check tries what the connector relies on, with reads only: it lists a few users and
groups and filters for them (``userName eq``, ``emails.value eq``, ``displayName eq``), asks
for a name that cannot exist, and pages with ``startIndex``. Nothing is written, on the
server or in the state database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.compliance.scim_discovery import ServerProfile, discover
from connector.compliance.scim_http import ScimHttp, error_text, json_body, read_list_page
from connector.compliance.scim_mapping import email_filter, group_filter, resource_id, user_filter
from connector.compliance.scim_shaping import shape_report
from connector.config.target import ScimTargetSettings
from connector.errors import RetriableError

NO_SUCH_USER = "no-such-user.connector-check@example.invalid"
SAMPLE = 20
"""Users and groups read to test filters on (one of each is enough; a few let us skip odd ones)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One read that tests a claim: ``outcome`` is works, empty, ignored, refused, untested or not used."""

    name: str
    outcome: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("empty", "ignored", "refused")


@dataclass(frozen=True, slots=True)
class ServerCheck:
    """What ``target check`` learned about one SCIM server."""

    profile: ServerProfile
    users: int | None
    groups: int | None
    probes: tuple[Probe, ...]
    warnings: tuple[str, ...] = field(default=())
    limits: tuple[str, ...] = field(default=())
    """Limits of the server the connector honours (informational)."""

    @property
    def filters_work(self) -> bool | None:
        """True when every filter probe found what it looked for; None when none could be tried."""
        tried = [p for p in self.probes if p.name.startswith("filter") and p.outcome not in ("untested", "not used")]
        return None if not tried else not any(p.failed for p in tried)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.profile.describe(),
            "users": self.users,
            "groups": self.groups,
            "filters_work": self.filters_work,
            "probes": [{"name": p.name, "outcome": p.outcome, "detail": p.detail} for p in self.probes],
            "warnings": list(self.warnings),
            "limits": list(self.limits),
        }


def _page(http: ScimHttp, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None] | str:
    """One list answer (resources, ``totalResults``), or the refusal in words."""
    response = http.request("GET", path, params=params)
    if response.status_code != 200:
        return error_text(response)
    try:
        page = read_list_page(json_body(response), f"GET {path}")
    except RetriableError as exc:
        return str(exc)
    return page.resources, page.total


def _count_params(settings: ScimTargetSettings, count: int) -> dict[str, Any]:
    return {"startIndex": 1} if settings.omit_count else {"startIndex": 1, "count": count}


def probe_filter(http: ScimHttp, path: str, name: str, filter_text: str, expected_id: str | None) -> Probe:
    """Filter for ``expected_id``'s resource (or, with None, for one that cannot exist) and judge the answer."""
    answer = _page(http, path, {"filter": filter_text, "startIndex": 1})
    if isinstance(answer, str):
        return Probe(name, "refused", answer)
    ids = {resource_id(r) for r in answer[0]}
    if expected_id is None:
        if ids:
            return Probe(name, "ignored", f"{len(ids)} resources for a value no resource has")
        return Probe(name, "works", "nothing for a value no resource has")
    if expected_id not in ids:
        return Probe(name, "empty", "an existing resource was not found by its own value")
    if len(ids) > 1:
        return Probe(name, "ignored", f"{len(ids)} resources for a value one resource has")
    return Probe(name, "works")


def probe_paging(http: ScimHttp, path: str, total: int | None, settings: ScimTargetSettings) -> Probe:
    """Ask for resource 1 and resource 2 alone: a server that ignores ``startIndex`` sends the same twice."""
    name = f"paging {path}"
    if total is None or total < 2:
        return Probe(name, "untested", "fewer than two resources")
    first = _page(http, path, _count_params(settings, 1))
    second = _page(http, path, {**_count_params(settings, 1), "startIndex": 2})
    if isinstance(first, str) or isinstance(second, str):
        hint = "" if settings.omit_count else " (try omit_count: true)"
        return Probe(name, "refused", (first if isinstance(first, str) else str(second)) + hint)
    if not first[0] or not second[0]:
        return Probe(name, "refused", "an empty page although totalResults is larger")
    if resource_id(first[0][0]) == resource_id(second[0][0]):
        return Probe(name, "ignored", "startIndex 2 starts with the same resource as startIndex 1")
    return Probe(name, "works", "" if settings.omit_count or len(first[0]) == 1 else "count is ignored (harmless)")


def _email_values(user: dict[str, Any]) -> list[str]:
    emails = user.get("emails")
    values = [e.get("value") for e in emails if isinstance(e, dict)] if isinstance(emails, list) else []
    return [v for v in values if isinstance(v, str) and "@" in v]


def _sample_probes(
    http: ScimHttp, profile: ServerProfile, users: list[dict[str, Any]], groups: list[dict[str, Any]]
) -> list[Probe]:
    if not profile.filter_supported:
        return [Probe("filter probes", "not used", "the server does not offer filtering")]
    probes: list[Probe] = []
    user = next((u for u in users if resource_id(u) and isinstance(u.get("userName"), str)), None)
    if user is None:
        probes.append(Probe("filter userName eq", "untested", "no user to look for"))
    else:
        name_filter = user_filter(user["userName"])
        probes.append(probe_filter(http, profile.user_endpoint, "filter userName eq", name_filter, resource_id(user)))
    # emails.value: a user whose emails hold an address (userName aside, which is no email)
    with_email = next(((u, a) for u in users if resource_id(u) for a in _email_values(u)), None)
    if with_email is None:
        probes.append(Probe("filter emails.value eq", "untested", "no user with an email to look for"))
    else:
        owner, address = with_email
        email = email_filter(address)
        probes.append(probe_filter(http, profile.user_endpoint, "filter emails.value eq", email, resource_id(owner)))
    probes.append(
        probe_filter(http, profile.user_endpoint, "filter userName eq (no match)", user_filter(NO_SUCH_USER), None)
    )
    group = next((g for g in groups if resource_id(g) and isinstance(g.get("displayName"), str)), None)
    if group is None:
        probes.append(Probe("filter displayName eq", "untested", "no group to look for"))
    else:
        probes.append(
            probe_filter(
                http,
                profile.group_endpoint,
                "filter displayName eq",
                group_filter(group["displayName"]),
                resource_id(group),
            )
        )
    return probes


def check_server(http: ScimHttp, settings: ScimTargetSettings) -> ServerCheck:
    """Discover, count, probe; ``RetriableError``/``FatalError`` when the server cannot be used at all."""
    profile = discover(http)
    probes: list[Probe] = []
    answer = _page(http, profile.user_endpoint, _count_params(settings, SAMPLE))
    if isinstance(answer, str):
        raise RetriableError(f"listing {profile.user_endpoint} refused: {answer}")
    users, user_total = answer
    answer = _page(http, profile.group_endpoint, _count_params(settings, SAMPLE))
    groups: list[dict[str, Any]] = []
    group_total: int | None = None
    if isinstance(answer, str):
        probes.append(Probe(f"listing {profile.group_endpoint}", "refused", answer))
    else:
        groups, group_total = answer
    probes += _sample_probes(http, profile, users, groups)
    probes.append(probe_paging(http, profile.user_endpoint, user_total, settings))
    check = ServerCheck(profile, user_total, group_total, tuple(probes))
    warnings, limits = tuple(warnings_for(check, settings)), tuple(limits_for(profile, settings))
    return ServerCheck(profile, user_total, group_total, tuple(probes), warnings, limits)


def _join(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names)


MISSED = {
    "filter userName eq": "users are not found by their userName: a user made by hand may be created again",
    "filter emails.value eq": "an address another user holds in emails is not found by search",
    "filter displayName eq": "org groups are not found by name (a create then answers 409)",
}
"""What an empty answer to each filter probe means for provisioning."""


def _probe_warning(probe: Probe) -> str:
    """One warning line for a probe that failed."""
    if probe.name.startswith("listing"):
        what = "is refused: org groups can be neither found nor created"
    elif probe.name.startswith("paging"):
        what = "ignores startIndex: listings cannot go past the first page" if probe.outcome == "ignored" else "fails"
    elif probe.outcome == "empty":
        what = "finds nothing for a resource that exists: " + MISSED.get(probe.name, "lookups by it miss resources")
    elif probe.outcome == "ignored":
        what = (
            "is ignored by the server (answers resources that do not match); results are checked one by one, "
            "so nothing is duplicated, but each lookup costs a page"
        )
    else:
        what = "is refused"
    return f"{probe.name} {what} ({probe.detail})" if probe.detail else f"{probe.name} {what}"


def warnings_for(check: ServerCheck, settings: ScimTargetSettings) -> list[str]:
    """What will not work, or work slowly, with this server (pure: from the check's findings)."""
    profile = check.profile
    found: list[str] = [f"discovery: {note}" for note in profile.notes]
    failed = [p for p in check.probes if p.failed]
    if not profile.filter_supported:
        found.append("no filter: every lookup and every pull lists all users, page by page (slow on large servers)")
    for probe in failed:
        found.append(_probe_warning(probe))
    if not profile.patch_supported:
        found.append("no PATCH: every change is a GET of the whole resource, then a PUT of it")
    if not profile.etag_supported:
        found.append("no ETag: PUTs go without If-Match; an edit made between our read and our write is overwritten")
    if settings.use_bulk and not profile.bulk:
        found.append(f"no Bulk: users are created one request each ({settings.concurrency} at a time)")
    shaping = shape_report(profile)
    if shaping.dropped:
        found.append(f"not declared by the server, left out of every user: {_join(shaping.dropped)}")
    if "active" in shaping.dropped:
        found.append("the server declares no 'active': suspending and reactivating users will be refused")
    if shaping.filled:
        found.append(f"required by the server, filled from the display name: {_join(shaping.filled)}")
    if shaping.unfillable:
        found.append(f"required by the server and not sent by the connector: {_join(shaping.unfillable)}: creates fail")
    if profile.user_required_extensions:
        extensions = _join(profile.user_required_extensions)
        found.append(f"the server requires schema extensions the connector does not send: {extensions}: creates fail")
    if profile.group is not None and not profile.group.declares("members"):
        found.append("the Group schema declares no 'members': org memberships cannot be written")
    return found


def limits_for(profile: ServerProfile, settings: ScimTargetSettings) -> list[str]:
    """The server's limits the connector honours (not problems: said so the numbers are explained)."""
    found: list[str] = []
    if profile.filter_supported and profile.filter_max_results:
        size = min(settings.page_size, profile.filter_max_results)
        found.append(f"filter results are paged {size} at a time (filter.maxResults {profile.filter_max_results})")
    if settings.use_bulk and profile.bulk:
        found.append(
            f"Bulk requests carry at most {min(settings.bulk_max_operations, profile.bulk_max_operations)} users"
            + (f" and {profile.bulk_max_payload} bytes (bulk.maxPayloadSize)" if profile.bulk_max_payload else "")
        )
    if settings.omit_count:
        found.append("count is left out of list requests (omit_count): the server picks the page size")
    return found


def check_from_settings(
    settings: ScimTargetSettings, environ: Mapping[str, str], connect: Callable[..., ScimHttp] = ScimHttp.from_settings
) -> ServerCheck:
    """``check_server`` over a connection that keeps no health record (the state database is not touched)."""
    http = connect(settings, environ)
    try:
        return check_server(http, settings)
    finally:
        http.close()
