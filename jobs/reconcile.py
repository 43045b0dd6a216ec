"""Reconcile: keep every managed user in line with the mail directory, each decide cycle.

This module only gathers the planner's inputs (managed records, the directory's
answers, the target's actual state, the latest valid mail) and carries out the
change set that ``policy/reconcile.py: plan_reconcile`` returns. Nothing is
recorded as done before the target confirmed it; a change that failed is
planned again next run, because the planner compares with what the target
really holds.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import BatchMemberships, ComplianceDirectory, LifecycleTarget, WrappedLifecycle
from connector.directory.base import Directory
from connector.domain.directory import DirectoryAnswer
from connector.domain.lifecycle import (
    REPORT_SECTIONS,
    Change,
    ChangeKind,
    ChangeSet,
    DirectoryState,
    DirectoryVerdict,
    ManagedStatus,
    ManagedUser,
    SuspendReason,
    TargetUser,
)
from connector.domain.report import RunReport
from connector.domain.report_model import ChangeJson, ChangeNotMadeJson, LifecycleJson
from connector.errors import ConflictError, InvariantError, RetriableError, SkippableError
from connector.policy.addresses import AddressMap, InvalidAddress
from connector.policy.plans import change_key
from connector.policy.reconcile import LifecyclePolicy, canonical_or, directory_state, plan_reconcile
from connector.store import lifecycle as store
from connector.store import repository

log = logging.getLogger(__name__)
LOOKUP_BATCH = 500
FULL_COLLECTION_PAUSED = 1_000_000  # young collections before a full one: none during a reconcile


def lifecycle_policy(connector: Connector) -> LifecyclePolicy:
    """The planner's view of the ``lifecycle`` settings."""
    settings = connector.settings.lifecycle
    orgs = {d.org for d in connector.settings.domains.values()} | {rule.org for rule in connector.org_rules}
    return LifecyclePolicy(
        suspend_leavers=settings.suspend_leavers,
        delete_after=timedelta(days=settings.delete_after_days) if settings.delete_after_days else None,
        inactivity=timedelta(days=settings.inactivity_days) if settings.inactivity_days else None,
        remove_aliases=settings.remove_aliases,
        max_suspend_per_run=settings.max_suspend_per_run,
        max_delete_per_run=settings.max_delete_per_run,
        max_share_of_org=settings.max_share_of_org,
        share_floor=settings.share_floor,
        org_names=frozenset(orgs),
    )


def reconciles(target: ComplianceDirectory) -> bool:
    """Whether ``target`` can read its users back and change them (a dry run: whether the target it wraps can)."""
    if isinstance(target, WrappedLifecycle):
        return target.reconciles
    return isinstance(target, LifecycleTarget)


class RememberingAddressMap(AddressMap):
    """The address map with ``canonical`` remembered for one reconcile.

    A reconcile canonicalises each managed user's addresses up to four times (the directory's
    primary and aliases, the target's primary and aliases, mostly the same strings); with
    10,000 managed users that was a fifth of its time. Same answers, same ``InvalidAddress``.
    """

    def __init__(self, inner: AddressMap) -> None:
        self.__dict__.update(inner.__dict__)
        self._remembered: dict[str, str | InvalidAddress] = {}

    @classmethod
    def of(cls, address_map: AddressMap) -> AddressMap:
        """``address_map`` remembering; a subclass (a test's, say) is left as it is."""
        return cls(address_map) if type(address_map) is AddressMap else address_map

    def canonical(self, address: str) -> str:
        known = self._remembered.get(address)
        if known is None:
            try:
                known = super().canonical(address)
            except InvalidAddress as exc:
                known = exc
            self._remembered[address] = known
        if isinstance(known, InvalidAddress):
            raise InvalidAddress(str(known))
        return known


def directory_states(
    directory: Directory,
    users: Sequence[ManagedUser],
    address_map: AddressMap,
    connector: Connector,
) -> dict[str, DirectoryState]:
    """Each managed user's directory verdict; from the first batch the directory could not answer on, UNKNOWN."""
    forms = {u.address: [u.address] + ([u.directory_address] if u.directory_address else []) for u in users}
    queries = list(dict.fromkeys(form for group in forms.values() for form in group))
    found: dict[str, DirectoryAnswer] = {}
    failed: dict[str, str] = {}
    failure: str | None = None
    for start in range(0, len(queries), LOOKUP_BATCH):
        chunk = queries[start : start + LOOKUP_BATCH]
        if failure is None:
            try:
                answers = directory.lookup(chunk)
            except RetriableError as exc:
                # Not asked again this run: each batch would wait out the timeouts (or retry a mirror refresh).
                log.warning("directory unavailable for the lifecycle check: %s", exc)
                failure = str(exc)
            else:
                found.update({query: answers.get(query) for query in chunk})
                continue
        failed.update({query: failure for query in chunk})
    result: dict[str, DirectoryState] = {}
    for address, group in forms.items():
        failure = next((failed[f] for f in group if f in failed), None)
        answer = next((found[f] for f in group if found.get(f) is not None), None)
        result[address] = directory_state(answer, address_map, connector.org_rules, failure=failure)
    return result


def _canonical_target_user(user: TargetUser, address_map: AddressMap) -> TargetUser:
    """The target's addresses in the form the planner compares (canonical)."""
    aliases = tuple(sorted({canonical_or(address_map, a, a.lower()) for a in user.aliases}))
    primary = canonical_or(address_map, user.primary_address, user.primary_address.lower())
    if aliases == user.aliases and primary == user.primary_address:
        return user
    return TargetUser(
        primary,
        user.target_id,
        user.orgs,
        aliases,
        user.display_name,
        user.external_id,
        user.active,
        user.version,
    )


def _last_mail(
    session: Session, users: Sequence[ManagedUser], aliases: Mapping[str, Collection[str]]
) -> dict[str, datetime]:
    """Latest valid message to any of each user's addresses (for the inactivity rule)."""
    addresses = {u.address: [u.address, *aliases.get(u.address, ())] for u in users}
    evidence = repository.load_evidence(session, [a for group in addresses.values() for a in group])
    result: dict[str, datetime] = {}
    for address, group in addresses.items():
        times = [e.recent[-1].at for a in group if (e := evidence.get(a)) is not None and e.recent]
        if times:
            result[address] = max(times)
    return result


@dataclass
class ReconcileResult:
    """What ``reconcile`` did, for the report and for ``explain``."""

    plan: ChangeSet
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    deferred: list[tuple[Change, str]] = field(default_factory=list)
    not_in_plan: list[Change] = field(default_factory=list)


@dataclass
class Inputs:
    """Everything the planner is given, gathered once."""

    users: list[ManagedUser]
    directory: dict[str, DirectoryState]
    actual: dict[str, TargetUser | None]
    recorded_aliases: dict[str, tuple[str, ...]]
    approved: set[tuple[str, str]]
    target_error: str | None = None


def gather(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    *,
    address_map: AddressMap,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
) -> Inputs:
    """Read the planner's inputs: records, directory answers, the target's copy, the latest mail."""
    address_map = RememberingAddressMap.of(address_map)
    every_user, every_alias = store.managed_users_and_aliases(session)
    users = [u for u in every_user if u.address not in skip and (only is None or u.address in only)]
    aliases = {u.address: every_alias[u.address] for u in users}  # the planner reads those of its users only
    if connector.settings.lifecycle.inactivity_days:
        last_mail = _last_mail(session, users, aliases)
        users = [replace(u, last_mail_at=last_mail[u.address]) if u.address in last_mail else u for u in users]
    approved = store.approved_changes(session)
    inputs = Inputs(users, {}, {}, aliases, approved)
    if not users:
        return inputs
    if not isinstance(target, LifecycleTarget):  # the caller asked ``reconciles`` first
        raise InvariantError(f"{target.describe()} cannot read users back")
    try:
        actual = target.read_users([u.address for u in users])
    except RetriableError as exc:
        inputs.target_error = str(exc)
        return inputs
    inputs.actual = {
        u.address: _canonical_target_user(actual[u.address], address_map) if u.address in actual else None
        for u in users
    }
    inputs.directory = directory_states(connector.directory, users, address_map, connector)
    _find_renamed(target, inputs, address_map)
    return inputs


def _find_renamed(target: LifecycleTarget, inputs: Inputs, address_map: AddressMap) -> None:
    """A user missing under its recorded address may have been renamed by us just before a crash.

    Look it up under the primary the directory gives now; found, it is that user (the planner
    then moves the record), so it is never created a second time.
    """
    wanted: dict[str, str] = {}
    for user in inputs.users:
        state = inputs.directory.get(user.address)
        desired = state.desired if state is not None else None
        if inputs.actual.get(user.address) is None and desired is not None and desired.primary_address != user.address:
            wanted[desired.primary_address] = user.address
    if not wanted:
        return
    try:
        found = target.read_users(sorted(wanted))
    except RetriableError as exc:
        inputs.target_error = str(exc)
        return
    for new_primary, old in wanted.items():
        if new_primary in found:
            inputs.actual[old] = _canonical_target_user(found[new_primary], address_map)


def plan(inputs: Inputs, policy: LifecyclePolicy, now: datetime) -> ChangeSet:
    """The planner, on gathered inputs (``explain`` and ``plan`` call exactly this)."""
    if inputs.target_error is not None:
        return ChangeSet(unknown=[(u.address, f"target unreadable: {inputs.target_error}") for u in inputs.users])
    return plan_reconcile(
        inputs.users,
        inputs.directory,
        inputs.actual,
        policy,
        now,
        recorded_aliases=inputs.recorded_aliases,
        approved=inputs.approved,
    )


def adopt_by_config(session: Session, connector: Connector, known_users: Iterable[str], *, now: datetime) -> list[str]:
    """Target users matching ``lifecycle.adopt`` that are not managed yet become managed (adopted)."""
    patterns = connector.settings.lifecycle.adopt
    if not patterns:
        return []
    managed = store.managed_addresses(session)
    adopted = []
    with session.no_autoflush:  # one INSERT batch at the end, not one flush per adopted user
        for address in sorted(known_users):
            wanted = address not in managed and any(fnmatch.fnmatchcase(address, p) for p in patterns)
            if wanted and store.adopt(session, address, org=None, target_id=None, now=now):
                adopted.append(address)
    return adopted


def _apply_one(
    target: LifecycleTarget, change: Change, session: Session, *, now: datetime, run_id: int | None, commit: bool
) -> None:
    target_id = target.apply_change(change)
    if target_id and not change.target_id:
        change = replace(change, target_id=target_id)
    store.record_applied(session, change, now=now, run_id=run_id)
    if change.kind is ChangeKind.DELETE:
        # A person who comes back to the directory later is created again from new mail.
        repository.forget_created(session, change.address)
    if commit:
        session.commit()


def apply_changes(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    changes: Sequence[Change],
    result: ReconcileResult,
    *,
    inputs: Inputs,
    policy: LifecyclePolicy,
    address_map: AddressMap,
    now: datetime,
    run_id: int | None,
    commit: bool,
    plan_keys: frozenset[str] | None = None,
) -> None:
    """Apply the changes: memberships in one batch per group where the target offers it, then
    user by user; a 412 re-reads the user and plans it once more."""
    if not isinstance(target, LifecycleTarget):  # the caller asked ``reconciles`` first
        raise InvariantError(f"{target.describe()} cannot change users")
    if plan_keys is not None:
        result.not_in_plan.extend(c for c in changes if change_key(c.key()) not in plan_keys)
        changes = [c for c in changes if change_key(c.key()) in plan_keys]
    batched = _apply_memberships(session, target, changes, result, now=now, run_id=run_id, commit=commit)
    by_user: dict[str, list[Change]] = {}
    for change in changes:
        if id(change) not in batched:
            by_user.setdefault(change.address, []).append(change)
    users = {u.address: u for u in inputs.users}
    for address, user_changes in by_user.items():
        if connector.stop.is_set():
            for change in user_changes:
                result.deferred.append((change, "interrupted by shutdown"))
            continue

        def replan(primary: str, kinds: Collection[ChangeKind], address: str = address) -> list[Change]:
            return _replan(target, users[address], primary, inputs, policy, address_map, now, kinds)

        _apply_user(session, target, user_changes, result, replan, now=now, run_id=run_id, commit=commit)


def _apply_user(
    session: Session,
    target: LifecycleTarget,
    changes: Sequence[Change],
    result: ReconcileResult,
    replan: Callable[[str, Collection[ChangeKind]], list[Change]],
    *,
    now: datetime,
    run_id: int | None,
    commit: bool,
) -> None:
    """One user's changes, in order; a 412 plans the user again once (``replan(where it is now, kinds)``),
    an outage defers the rest of the user's changes to the next run."""
    pending = list(changes)
    replanned = False
    primary = changes[0].address  # where the target has the user now (a rename in this run moves it)
    while pending:
        change = pending.pop(0)
        try:
            if commit:
                session.commit()  # no write lock held while the target writes
            _apply_one(target, change, session, now=now, run_id=run_id, commit=commit)
            result.applied.append(change)
            if change.kind is ChangeKind.UPDATE and isinstance(change.fields.get("primary_address"), str):
                primary = change.fields["primary_address"]
        except ConflictError as exc:
            if replanned:
                result.deferred.append((change, str(exc)))
                result.deferred.extend((c, "after a conflict") for c in pending)
                break
            replanned = True
            try:
                pending = replan(primary, {c.kind for c in [change, *pending]})
            except RetriableError as again:  # the target cannot be read now: next run
                result.deferred.append((change, f"{exc}; reading it again failed: {again}"))
                result.deferred.extend((c, "after a conflict") for c in pending)
                break
        except RetriableError as exc:
            result.deferred.append((change, str(exc)))
            result.deferred.extend((c, "after an earlier failure for this user") for c in pending)
            break
        except SkippableError as exc:
            result.failed.append((change, str(exc)))


def _membership_only(change: Change) -> bool:
    """A move or an org repair: only group membership changes, so it can go in a batch per group."""
    org_repair = change.kind is ChangeKind.REPAIR and change.org is not None and not change.aliases
    return (change.kind is ChangeKind.MOVE or org_repair) and change.target_id is not None


def _apply_memberships(
    session: Session,
    target: LifecycleTarget,
    changes: Sequence[Change],
    result: ReconcileResult,
    *,
    now: datetime,
    run_id: int | None,
    commit: bool,
) -> set[int]:
    """Moves and org repairs in one batch per group (``BatchMemberships``); ``id()`` of those it handled.

    With 50,000 members in a group, one request per member moved costs the server a rewrite of the
    group each time; one request per group writes the same changes.
    """
    batch = [c for c in changes if _membership_only(c)]
    if len(batch) < 2 or not isinstance(target, BatchMemberships):
        return set()
    if commit:
        session.commit()  # no write lock held while the target writes
    for change, outcome in zip(batch, target.apply_memberships(batch), strict=True):
        if outcome is None:
            store.record_applied(session, change, now=now, run_id=run_id)
            result.applied.append(change)
        elif isinstance(outcome, RetriableError):
            result.deferred.append((change, str(outcome)))
        else:
            result.failed.append((change, str(outcome)))
    if commit:
        session.commit()
    return {id(c) for c in batch}


def _replan(
    target: LifecycleTarget,
    user: ManagedUser,
    primary: str,
    inputs: Inputs,
    policy: LifecyclePolicy,
    address_map: AddressMap,
    now: datetime,
    kinds: Collection[ChangeKind],
) -> list[Change]:
    """The user changed in the target since it was read: read it again and plan it again.

    A destructive change is kept only if it was planned (within the limits) before.
    """
    fresh = target.read_users([primary]).get(primary)  # ``primary``: the user's address in the target now
    actual = {user.address: _canonical_target_user(fresh, address_map) if fresh else None}
    again = plan_reconcile(
        [user],
        inputs.directory,
        actual,
        policy,
        now,
        recorded_aliases=inputs.recorded_aliases,
        approved={(user.address, kind.value) for kind in kinds if kind.destructive},
    )
    return [c for c in again.changes if not c.destructive or c.kind in kinds]


def _catch_up(session: Session, inputs: Inputs, *, now: datetime) -> None:
    """A user the target already shows in the org the directory asks for is recorded in that org.

    A crash between a move's write and its record would otherwise leave the record in the old org
    (the planner sees nothing to do), and the per-org limits would count the user there.
    """
    for user in inputs.users:
        actual, state = inputs.actual.get(user.address), inputs.directory.get(user.address)
        if actual is None or state is None or state.desired is None or user.status is ManagedStatus.CREATING:
            continue
        if user.org != state.desired.org and state.desired.org in actual.orgs:
            store.record_org_seen(session, user.address, state.desired.org, now=now)


def _record_what_the_target_shows(session: Session, change_set: ChangeSet, inputs: Inputs, *, now: datetime) -> None:
    """Bring the records in line with what the target already shows, before anything is written.

    Creations confirmed or abandoned, target ids learnt, and what a crash between a
    write and its record left behind (a suspension, a rename, a move).
    """
    for address in change_set.confirmed:
        actual = inputs.actual.get(address)
        store.confirm(session, address, now=now, target_id=actual.target_id if actual else None)
    store.record_target_ids(
        session,
        {
            u.address: actual.target_id
            for u in inputs.users
            if u.target_id is None and (actual := inputs.actual.get(u.address)) is not None and actual.target_id
        },
    )
    for address in change_set.abandoned:
        store.forget(session, address)
    for address, reason in change_set.suspended_seen:
        store.record_suspended_seen(session, address, reason, now=now)
    for old, new in change_set.renamed_seen:
        store.record_renamed(session, old, new, now=now)
    for user in inputs.users:  # a leaver's denied suspension lasts until the directory has the user again
        state = inputs.directory.get(user.address)
        back = state is not None and state.verdict is DirectoryVerdict.PRESENT
        if back and user.denied and not user.denied.endswith(f":{SuspendReason.INACTIVE.value}"):
            store.clear_denied(session, user.address, now=now)
    _catch_up(session, inputs, now=now)


@contextmanager
def _full_collections_paused() -> Iterator[None]:
    """No full garbage collection while the inputs are read and planned.

    Reading 10,000 managed users allocates hundreds of thousands of objects, which set off full
    collections over the whole heap (a parsed 42,000-entry LDIF directory included), about 0.1 s
    each on the 2-core machine. Young collections go on (short-lived cycles, from a SCIM read for
    example, are still freed); the full one waits until the planner is done.
    """
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_PAUSED)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)


def reconcile(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    report: RunReport,
    *,
    now: datetime,
    commit: bool,
    address_map: AddressMap,
    known_users: Iterable[str] = (),
    skip: Collection[str] = (),
    plan_keys: frozenset[str] | None = None,
) -> ReconcileResult | None:
    """Gather, plan, apply, record, report. None when the lifecycle is off or the target cannot do it."""
    if not connector.settings.lifecycle.enabled:
        return None
    if not reconciles(target):
        report.warnings.append(f"{target.describe()} cannot read users back: managed users are not reconciled")
        return None
    policy = lifecycle_policy(connector)
    known = set(known_users)
    adopted = adopt_by_config(session, connector, known, now=now)
    if commit:
        session.commit()
    inputs, change_set = _gather_and_plan(
        session, connector, target, policy, address_map=address_map, skip=skip, now=now
    )
    result = ReconcileResult(change_set)
    _record_what_the_target_shows(session, change_set, inputs, now=now)
    if commit:
        session.commit()
    apply_changes(
        session,
        connector,
        target,
        change_set.changes,
        result,
        inputs=inputs,
        policy=policy,
        address_map=address_map,
        now=now,
        run_id=report.run_id,
        commit=commit,
        plan_keys=plan_keys,
    )
    _record_held_and_applied(session, result, run_id=report.run_id, now=now, commit=commit)
    managed = {u.address for u in inputs.users} | set(skip)  # users created in this run are managed too
    report.add_lifecycle(result_json(result, managed=len(managed), unmanaged=len(known - managed), adopted=adopted))
    _report_problems(report, result, inputs)
    return result


def _gather_and_plan(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    policy: LifecyclePolicy,
    *,
    address_map: AddressMap,
    skip: Collection[str],
    now: datetime,
) -> tuple[Inputs, ChangeSet]:
    """The planner's inputs and its change set, with no full garbage collection in between."""
    with _full_collections_paused():
        inputs = gather(session, connector, target, address_map=address_map, skip=skip)
        return inputs, plan(inputs, policy, now)


def _record_held_and_applied(
    session: Session, result: ReconcileResult, *, run_id: int, now: datetime, commit: bool
) -> None:
    """The destructive changes made leave the held list; this run's held changes replace the last run's."""
    applied_destructive = [(c.address, c.kind.value) for c in result.applied if c.destructive]
    store.drop_applied(session, applied_destructive)
    store.replace_held(session, run_id, [(h.change, h.why) for h in result.plan.held], now=now)
    if commit:
        session.commit()


def _report_problems(report: RunReport, result: ReconcileResult, inputs: Inputs) -> None:
    change_set = result.plan
    if inputs.target_error is not None:
        report.errors.append(
            {"stage": "lifecycle", "error": f"cannot read managed users from the target: {inputs.target_error}"}
        )
    elif change_set.unknown:
        reasons = sorted({why for _, why in change_set.unknown})
        report.errors.append(
            {
                "stage": "lifecycle",
                "error": f"{len(change_set.unknown)} managed user(s) not checked, nothing changed for them: "
                + "; ".join(reasons[:3]),
            }
        )
    if change_set.limit_reached:
        message = (
            f"lifecycle limit reached: {len(change_set.held)} destructive change(s) held, none made "
            f"({change_set.limit_reached}); review with `connector pending`, then "
            f"`connector approve --run {report.run_id}` or `connector deny --run {report.run_id}`"
        )
        report.warnings.insert(0, message)
        report.errors.append({"stage": "lifecycle_limits", "error": message})
    for change, why in result.failed:
        report.errors.append({"stage": "lifecycle", "address": change.address, "error": f"{change.kind.value}: {why}"})
    for change, why in result.deferred:
        report.errors.append(
            {"stage": "lifecycle", "address": change.address, "error": f"{change.kind.value} deferred: {why}"}
        )


SECTIONS = REPORT_SECTIONS  # change kind -> the report's list of them


def result_json(result: ReconcileResult, *, managed: int, unmanaged: int, adopted: Sequence[str]) -> LifecycleJson:
    """The report's ``lifecycle`` section (docs/report.md)."""
    change_set = result.plan
    made = _made_by_section(result.applied)
    return {
        "managed": managed,
        "unmanaged": unmanaged,
        "unchanged": change_set.unchanged,
        "adopted": list(adopted),
        "confirmed": list(change_set.confirmed),
        "limit_reached": change_set.limit_reached,
        "moved": made["moved"],
        "updated": made["updated"],
        "aliases_added": made["aliases_added"],
        "aliases_removed": made["aliases_removed"],
        "suspended": made["suspended"],
        "reactivated": made["reactivated"],
        "deleted": made["deleted"],
        "repaired": made["repaired"],
        "recreated": made["recreated"],
        "held": [_not_made(h.change, h.why) for h in change_set.held],
        "deferred": [_not_made(c, why) for c, why in result.deferred],
        "failed": [_not_made(c, why) for c, why in result.failed],
        "not_in_plan": [c.to_json() for c in result.not_in_plan],
        "unknown": [{"address": a, "why": why} for a, why in change_set.unknown],
        "notes": [{"address": a, "note": note} for a, note in change_set.notes],
    }


def _made_by_section(applied: Iterable[Change]) -> dict[str, list[ChangeJson]]:
    """The changes made, under the report's list of their kind (``SECTIONS``), each list in the order made."""
    sections: dict[str, list[ChangeJson]] = {name: [] for name in SECTIONS.values()}
    for change in applied:
        sections[SECTIONS[change.kind]].append(change.to_json())
    return sections


def _not_made(change: Change, why: str) -> ChangeNotMadeJson:
    return {**change.to_json(), "why": why}
