"""The run report's stored (JSON) form, typed: one ``TypedDict`` per object of docs/report.schema.json.

A report is stored as JSON (table ``runs``), printed as JSON and read back as JSON, so its
parts stay dicts: readers keep key access and mypy checks every key. ``RunReport.to_json``
(``connector/domain/report.py``) writes this form; ``stored_report`` there is the one reader.
``tests/unit/test_report_model.py`` keeps these types and the schema in step (every property,
required or not, nested parts).

Versions: the schema says readers accept reports of ``schema_version`` 1, which have no
``lifecycle`` and no ``counts.lifecycle``. Those two keys are therefore ``NotRequired`` here
(``VERSION_1_ABSENT``) although version 2 requires them: every reader must handle their absence.
"""

# No ``from __future__ import annotations``: TypedDict reads ``NotRequired`` from evaluated annotations
# (``__required_keys__``), which the schema test compares with the schema's ``required``.
from typing import Literal, NotRequired, TypedDict

from connector.domain.status import RunStatus

# Keys (as paths) required by schema version 2 and absent from version 1 reports, which readers accept.
VERSION_1_ABSENT = frozenset({("lifecycle",), ("counts", "lifecycle")})

BoundedList = Literal["skipped", "deferred", "held"]


# --- sources ----------------------------------------------------------------------------------------------


class BadLineExampleJson(TypedDict):
    line_no: int
    text: str  # untrusted log text
    error: str


class SourceJson(TypedDict):
    """One log source read by the run."""

    name: str
    file: str
    lines_read: int
    foreign_lines: NotRequired[int]  # absent from reports stored before it was added
    ignored_lines: int  # deprecated former name of ``foreign_lines``, same count
    bad_lines: int
    bad_line_examples: list[BadLineExampleJson]
    events: int
    restarted: str | None
    files_read: NotRequired[list[str]]


# --- evidence and the lists of decisions ------------------------------------------------------------------


class MessageJson(TypedDict):
    message_id: str
    at: str


class SmartcreateEvidenceJson(TypedDict):
    messages: list[MessageJson]
    qualified_at: str | None


class AutocreateEvidenceJson(TypedDict):
    smtp_reply: str | None
    accepted_at: str | None
    message_id: str | None


EvidenceJson = SmartcreateEvidenceJson | AutocreateEvidenceJson


class CreatedJson(TypedDict):
    """A user created (or, in a dry run, that would be)."""

    address: str
    via: str | None  # the address that qualified, when it is an alias of the user
    org: str
    method: str | None
    aliases: list[str]
    display_name: str | None
    created_at: str
    evidence: EvidenceJson
    detail: str


class AliasAddedJson(TypedDict):
    address: str
    user: str
    org: str | None
    method: str | None
    evidence: EvidenceJson


class SkippedJson(TypedDict):
    address: str  # a canonical address, or ``*@domain`` for a whole unmanaged domain
    reason: str
    state: str
    detail: str


class DeferredJson(TypedDict):
    address: str
    reason: str
    detail: str


class HeldJson(TypedDict):
    address: str
    reason: str
    detail: str
    user: NotRequired[str | None]
    org: NotRequired[str | None]
    evidence: NotRequired[EvidenceJson]


class ErrorJson(TypedDict):
    stage: str  # source, directory, target, cycle, attack_guard, limits, lifecycle, lifecycle_limits
    error: str
    source: NotRequired[str]
    address: NotRequired[str]
    domain: NotRequired[str]
    reason: NotRequired[str]  # a target's finding (jobs/cycle.py)


class NotListedJson(TypedDict):
    """A list and reason with entries left out of the stored report."""

    list: BoundedList
    reason: str
    listed: int
    total: int
    more: str | None


# --- guards and the target ---------------------------------------------------------------------------------


class CatchAllGuardJson(TypedDict):
    guard: Literal["catch_all"]
    domain: str
    method: str
    status: str
    source: NotRequired[str]
    detail: NotRequired[str]
    checked_at: NotRequired[str]
    expires_at: NotRequired[str]
    effect: str


class AttackGuardJson(TypedDict):
    guard: Literal["dictionary_attack"]
    domain: str
    attack: bool
    addresses: list[str]
    first_at: str
    last_at: str
    unknown_share: float
    address_count: NotRequired[int]


class LimitsGuardJson(TypedDict):
    guard: Literal["limits"]
    held: int


GuardJson = CatchAllGuardJson | AttackGuardJson | LimitsGuardJson


class TargetHealthJson(TypedDict):
    consecutive_failures: int
    quarantined_until: str | None
    quarantined: bool
    retries: int
    last_error: str | None
    known_refreshed_at: str | None


# --- lifecycle -------------------------------------------------------------------------------------------------


class ChangeKeyJson(TypedDict):
    """What identifies one lifecycle change in a plan (``Change.key``): no detail text, no ids."""

    op: str
    address: str
    org: NotRequired[str]
    from_org: NotRequired[list[str]]
    aliases: NotRequired[list[str]]
    fields: NotRequired[dict[str, str | None]]
    reason: NotRequired[str]


class ChangeJson(ChangeKeyJson):
    """One lifecycle change in the report (``Change.to_json``): its key and its detail."""

    detail: str


class ChangeNotMadeJson(ChangeJson):
    """A lifecycle change held, deferred or failed, with why."""

    why: str


class UnknownUserJson(TypedDict):
    address: str
    why: str


class NoteJson(TypedDict):
    address: str
    note: str


class LifecycleJson(TypedDict):
    """The reconcile of managed users (``jobs/reconcile.py: result_json``)."""

    managed: int
    unmanaged: int
    unchanged: int
    adopted: list[str]
    confirmed: list[str]
    limit_reached: str | None
    moved: list[ChangeJson]
    updated: list[ChangeJson]
    aliases_added: list[ChangeJson]
    aliases_removed: list[ChangeJson]
    suspended: list[ChangeJson]
    reactivated: list[ChangeJson]
    deleted: list[ChangeJson]
    repaired: list[ChangeJson]
    recreated: list[ChangeJson]
    held: list[ChangeNotMadeJson]
    deferred: list[ChangeNotMadeJson]
    failed: list[ChangeNotMadeJson]
    not_in_plan: list[ChangeJson]
    unknown: list[UnknownUserJson]
    notes: list[NoteJson]


# --- counts --------------------------------------------------------------------------------------------------


class OrgCountsJson(TypedDict, total=False):
    """One org's entries of this run per list; lists with none are left out."""

    created: int
    aliases_added: int
    held: int
    deferred: int
    skipped: int


class LifecycleCountsJson(TypedDict, total=False):
    """The lengths of the lifecycle lists, and its managed / unmanaged counts; empty without a section."""

    moved: int
    updated: int
    aliases_added: int
    aliases_removed: int
    suspended: int
    reactivated: int
    deleted: int
    repaired: int
    recreated: int
    held: int
    deferred: int
    failed: int
    managed: int
    unmanaged: int


class CountsJson(TypedDict):
    lines_read: int
    bad_lines: int
    events: int
    created: int
    aliases_added: int
    skipped: int
    deferred: int
    held: int
    errors: int
    skipped_by_reason: dict[str, int]
    deferred_by_reason: NotRequired[dict[str, int]]
    held_by_reason: NotRequired[dict[str, int]]
    by_org: NotRequired[dict[str, OrgCountsJson]]
    lifecycle: NotRequired[LifecycleCountsJson]  # required in version 2, absent in version 1


# --- the report --------------------------------------------------------------------------------------------------


class RunReportJson(TypedDict):
    """One run's report as stored, printed (``--format json``) and read by every page, CSV and mail."""

    schema_version: int
    run_id: int
    started_at: str
    finished_at: str | None
    dry_run: bool
    status: RunStatus
    directory: str
    target: str
    target_health: NotRequired[TargetHealthJson | None]
    simulated: NotRequired[bool]
    warnings: list[str]
    guards: NotRequired[list[GuardJson]]
    counts: CountsJson
    sources: list[SourceJson]
    created: list[CreatedJson]
    aliases_added: list[AliasAddedJson]
    skipped: list[SkippedJson]
    deferred: list[DeferredJson]
    held: list[HeldJson]
    errors: list[ErrorJson]
    planned_changes: list[str]
    lifecycle: NotRequired[LifecycleJson | None]  # required in version 2, absent in version 1
    listed_per_reason: NotRequired[int]
    not_listed: NotRequired[list[NotListedJson]]
