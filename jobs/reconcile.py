"""Reconcile: keep every managed user in line with the mail directory, each decide cycle.

This module only gathers the planner's inputs (managed records, the directory's
answers, the target's actual state, the latest valid mail) and has the change set
that ``policy/reconcile.py: plan_reconcile`` returns carried out (``reconcile_apply.py``).
Only the users that may have changed are planned (``reconcile_marks.py``). Nothing is
recorded as done before the target confirmed it; a change that failed is
planned again next run, because the planner compares with what the target
really holds.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import ComplianceDirectory, LifecycleTarget, WrappedLifecycle
from connector.directory.base import Directory
from connector.domain.directory import DirectoryAnswer
from connector.domain.lifecycle import (
    Change,
    ChangeSet,
    DirectoryState,
    DirectoryVerdict,
    ManagedStatus,
    ManagedUser,
    SuspendReason,
    TargetUser,
)
from connector.domain.report import RunReport
from connector.errors import InvariantError, RetriableError
from connector.policy.addresses import AddressMap, InvalidAddress
from connector.policy.reconcile import LifecyclePolicy, directory_state, plan_reconcile
from connector.store import lifecycle as store
from connector.store import repository
from jobs import reconcile_marks as marks
from jobs.reconcile_apply import apply_changes as apply_changes
from jobs.reconcile_apply import canonical_target_user
from jobs.reconcile_report import SECTIONS as SECTIONS
from jobs.reconcile_report import report_problems, result_json

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
    selection: store.PlanSelection | None = None,
) -> Inputs:
    """Read the planner's inputs: records, directory answers, the target's copy, the latest mail.

    ``selection``: the records already read (``reconcile_marks.select``), else every managed user.
    """
    address_map = RememberingAddressMap.of(address_map)
    if selection is None:
        every_user, every_alias = store.managed_users_and_aliases(session)
    else:
        every_user, every_alias = selection.users, selection.aliases
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
        u.address: canonical_target_user(actual[u.address], address_map) if u.address in actual else None for u in users
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
            inputs.actual[old] = canonical_target_user(found[new_primary], address_map)


def plan(
    inputs: Inputs, policy: LifecyclePolicy, now: datetime, *, org_sizes: Mapping[str | None, int] | None = None
) -> ChangeSet:
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
        org_sizes=org_sizes,
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
    full: bool = False,
) -> ReconcileResult | None:
    """Gather, plan, apply, record, report. None when the lifecycle is off or the target cannot do it.

    Only the users that may have changed are planned (``jobs/reconcile_marks.py``); ``full``: every one.
    """
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
    planning = _Planning(session, connector, target, policy, address_map, frozenset(skip), now)
    inputs, change_set, basis = planning.run(full=full)
    result = ReconcileResult(change_set)
    _record_what_the_target_shows(session, change_set, inputs, now=now)
    if commit and basis is not None:
        settled = marks.in_line(inputs.users, inputs.directory, change_set, policy)
        full_check = timedelta(hours=connector.settings.lifecycle.full_check_hours)
        marks.settle(session, settled, planning.revisions, basis=basis, policy=policy, now=now, full_check=full_check)
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
    _report(report, result, inputs, planning, known=known, adopted=adopted)
    return result


def _report(
    report: RunReport,
    result: ReconcileResult,
    inputs: Inputs,
    planning: _Planning,
    *,
    known: set[str],
    adopted: Sequence[str],
) -> None:
    """The lifecycle section and problems; the users not planned count as unchanged (they were in line)."""
    managed = planning.live | planning.skip  # users created in this run are managed too
    in_line = 0 if inputs.target_error else len(planning.live - planning.skip - {u.address for u in inputs.users})
    lifecycle = result_json(
        result, managed=len(managed), unmanaged=len(known - managed), adopted=adopted, in_line=in_line
    )
    report.add_lifecycle(lifecycle)
    report_problems(report, result, inputs)


@dataclass
class _Planning:
    """One reconcile's gather and plan: of the users that may have changed, or of every one."""

    session: Session
    connector: Connector
    target: ComplianceDirectory
    policy: LifecyclePolicy
    address_map: AddressMap
    skip: frozenset[str]
    now: datetime
    live: set[str] = field(default_factory=set)  # every managed address not deleted, as read
    revisions: dict[str, int] = field(default_factory=dict)

    def run(self, *, full: bool) -> tuple[Inputs, ChangeSet, str | None]:
        """Inputs, change set and the basis the users were planned under (None: none to mark them with).

        When the directory or the target could not answer, every user is planned, as a full plan would.
        """
        basis = marks.plan_basis(self.connector)
        inputs, change_set = self._gather_and_plan(basis=None if full else basis)
        if basis is not None and not full and (inputs.target_error is not None or change_set.unknown):
            inputs, change_set = self._gather_and_plan(basis=None)
        return inputs, change_set, basis

    def _gather_and_plan(self, *, basis: str | None) -> tuple[Inputs, ChangeSet]:
        """The planner's inputs and its change set, with no full garbage collection in between."""
        with _full_collections_paused():
            selection, self.live = marks.select(self.session, basis=basis, now=self.now, skip=self.skip)
            self.revisions = selection.revisions
            inputs = gather(
                self.session, self.connector, self.target, address_map=self.address_map, selection=selection
            )
            sizes = None if basis is None else store.org_sizes(self.session, without=self.skip)
            return inputs, plan(inputs, self.policy, self.now, org_sizes=sizes)


def _record_held_and_applied(
    session: Session, result: ReconcileResult, *, run_id: int, now: datetime, commit: bool
) -> None:
    """The destructive changes made leave the held list; this run's held changes replace the last run's."""
    applied_destructive = [(c.address, c.kind.value) for c in result.applied if c.destructive]
    store.drop_applied(session, applied_destructive)
    store.replace_held(session, run_id, [(h.change, h.why) for h in result.plan.held], now=now)
    if commit:
        session.commit()
