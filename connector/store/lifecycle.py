"""Managed users and held lifecycle changes: rows <-> domain values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from connector.domain.decisions import Decision
from connector.domain.lifecycle import (
    Change,
    ChangeKind,
    ManagedStatus,
    ManagedUser,
    Ownership,
    SuspendReason,
)
from connector.errors import InvariantError
from connector.store.models import HeldChangeRow, ManagedUserRow

# Enum members by value: a dictionary look-up instead of an enum call, 10,000 times a cycle.
_OWNERSHIP = {o.value: o for o in Ownership}
_STATUS = {s.value: s for s in ManagedStatus}
_REASON = {r.value: r for r in SuspendReason}


def _user(row: Any) -> ManagedUser:
    """A ``ManagedUserRow``, or a plain row of its columns, as the domain value."""
    return ManagedUser(
        address=row.address,
        ownership=_OWNERSHIP.get(row.ownership) or Ownership(row.ownership),
        status=_STATUS.get(row.status) or ManagedStatus(row.status),
        org=row.org,
        target_id=row.target_id,
        directory_address=row.directory_address,
        managed_at=row.managed_at,
        suspended_at=row.suspended_at,
        suspend_reason=(_REASON.get(row.suspend_reason) or SuspendReason(row.suspend_reason))
        if row.suspend_reason
        else None,
        denied=row.denied,
    )


def recorded_aliases(row: ManagedUserRow) -> tuple[str, ...]:
    return tuple((row.aliases or {}).get("aliases") or ())


_USER_COLUMNS = (
    ManagedUserRow.address,
    ManagedUserRow.ownership,
    ManagedUserRow.status,
    ManagedUserRow.org,
    ManagedUserRow.target_id,
    ManagedUserRow.directory_address,
    ManagedUserRow.managed_at,
    ManagedUserRow.suspended_at,
    ManagedUserRow.suspend_reason,
    ManagedUserRow.denied,
)


def managed_users(session: Session, *, include_deleted: bool = False) -> list[ManagedUser]:
    """Every managed user, by address.

    Plain rows, not ORM instances: with 100,000 managed users the session's identity
    map stays empty, so the commit before each target write stays cheap.
    """
    query = select(*_USER_COLUMNS).order_by(ManagedUserRow.address)
    if not include_deleted:
        query = query.where(ManagedUserRow.status != ManagedStatus.DELETED.value)
    return [_user(row) for row in session.execute(query)]


def managed_users_and_aliases(session: Session) -> tuple[list[ManagedUser], dict[str, tuple[str, ...]]]:
    """Every managed user not deleted, and the aliases last applied to each, in one read (plain rows).

    The reconcile's inputs: one pass over the table instead of two (``managed_users`` and
    ``all_recorded_aliases``), which matters with 10,000 managed users every cycle.
    """
    query = (
        select(*_USER_COLUMNS, ManagedUserRow.aliases)
        .where(ManagedUserRow.status != ManagedStatus.DELETED.value)
        .order_by(ManagedUserRow.address)
    )
    users: list[ManagedUser] = []
    aliases: dict[str, tuple[str, ...]] = {}
    for row in session.execute(query):
        users.append(_user(row))
        aliases[row.address] = tuple((row.aliases or {}).get("aliases") or ())
    return users, aliases


@dataclass(frozen=True, slots=True)
class PlanSelection:
    """The managed users a reconcile plans, their recorded aliases, and the ``plan_revision`` each was read at."""

    users: list[ManagedUser]
    aliases: dict[str, tuple[str, ...]]
    revisions: dict[str, int]


def users_to_plan(session: Session, *, basis: str | None, now: datetime) -> PlanSelection:
    """The managed users (not deleted) a reconcile must plan: every one without ``basis``, else those not
    found in line under ``basis`` or whose ``recheck_at`` came (jobs/reconcile_marks.py). Plain rows."""
    query = (
        select(*_USER_COLUMNS, ManagedUserRow.aliases, ManagedUserRow.plan_revision)
        .where(ManagedUserRow.status != ManagedStatus.DELETED.value)
        .order_by(ManagedUserRow.address)
    )
    if basis is not None:
        query = query.where(
            or_(
                ManagedUserRow.in_line_basis.is_(None),
                ManagedUserRow.in_line_basis != basis,
                ManagedUserRow.recheck_at.is_(None),
                ManagedUserRow.recheck_at <= now,
            )
        )
    selection = PlanSelection([], {}, {})
    for row in session.execute(query):
        selection.users.append(_user(row))
        selection.aliases[row.address] = tuple((row.aliases or {}).get("aliases") or ())
        selection.revisions[row.address] = row.plan_revision
    return selection


def live_addresses(session: Session) -> set[str]:
    """Every managed address not deleted (the report's ``managed`` and ``unmanaged`` counts)."""
    live = ManagedUserRow.status != ManagedStatus.DELETED.value
    return set(session.connection().execute(select(ManagedUserRow.address).where(live)).scalars())


def org_sizes(session: Session, *, without: Iterable[str] = ()) -> dict[str | None, int]:
    """Active and suspended managed users per org, ``without`` some (the base of ``max_share_of_org``)."""
    counted = (ManagedStatus.ACTIVE.value, ManagedStatus.SUSPENDED.value)
    query = (
        select(ManagedUserRow.org, func.count()).where(ManagedUserRow.status.in_(counted)).group_by(ManagedUserRow.org)
    )
    sizes = {org: int(n) for org, n in session.execute(query)}
    left_out = list(without)
    for start in range(0, len(left_out), 500):
        chunk = select(ManagedUserRow.org).where(
            ManagedUserRow.address.in_(left_out[start : start + 500]), ManagedUserRow.status.in_(counted)
        )
        for org in session.scalars(chunk):
            sizes[org] -= 1
    return sizes


def _mark(row: ManagedUserRow) -> None:
    """This write may change the user's plan: the next reconcile plans it (and a reconcile that read the
    row before cannot mark it in line: ``settle_in_line`` compares the revision)."""
    row.plan_revision = (row.plan_revision or 0) + 1
    row.in_line_basis = None


def mark_addresses(session: Session, addresses: Iterable[str]) -> None:
    """The users whose primary or directory spelling is one of ``addresses`` are planned by the next reconcile."""
    wanted = sorted(set(addresses))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        session.execute(
            update(ManagedUserRow)
            .where(or_(ManagedUserRow.address.in_(chunk), ManagedUserRow.directory_address.in_(chunk)))
            .values(plan_revision=ManagedUserRow.plan_revision + 1, in_line_basis=None)
            .execution_options(synchronize_session=False)
        )


def settle_in_line(session: Session, settled: Sequence[tuple[str, int, datetime]], *, basis: str) -> int:
    """Mark users found in line under ``basis`` (address, revision read, next recheck); a row written since it
    was read (another revision) stays to be planned. One executemany; how many rows were settled."""
    if not settled:
        return 0
    session.flush()
    statement = (
        update(ManagedUserRow)
        .where(
            ManagedUserRow.address == bindparam("key"),
            ManagedUserRow.plan_revision == bindparam("rev"),
            # A row dropped and written again since (a new intent starts at revision 0 too) is never settled.
            ManagedUserRow.status != ManagedStatus.CREATING.value,
            ManagedUserRow.status != ManagedStatus.DELETED.value,
        )
        .values(in_line_basis=basis, recheck_at=bindparam("at"))
        .execution_options(synchronize_session=False)
    )
    result = session.connection().execute(
        statement, [{"key": address, "rev": revision, "at": at} for address, revision, at in settled]
    )
    return int(result.rowcount or 0)


def all_recorded_aliases(session: Session) -> dict[str, tuple[str, ...]]:
    """Address -> the aliases last applied, for every managed user (plain rows)."""
    query = select(ManagedUserRow.address, ManagedUserRow.aliases)
    return {address: tuple((data or {}).get("aliases") or ()) for address, data in session.execute(query)}


def managed_owner_of(session: Session, address: str) -> str | None:
    """The managed user whose recorded aliases or directory spelling include ``address`` (plain rows)."""
    spelled = select(ManagedUserRow.address).where(ManagedUserRow.directory_address == address)
    if (primary := session.scalars(spelled).first()) is not None:
        return primary
    return next((p for p, aliases in all_recorded_aliases(session).items() if address in aliases), None)


def managed_counts_by_org(session: Session) -> dict[tuple[str | None, str], int]:
    """(org, status) -> managed users not deleted: the users per org a run's page shows."""
    query = (
        select(ManagedUserRow.org, ManagedUserRow.status, func.count())
        .where(ManagedUserRow.status != ManagedStatus.DELETED.value)
        .group_by(ManagedUserRow.org, ManagedUserRow.status)
    )
    return {(org, status): int(n) for org, status, n in session.execute(query)}


def managed_addresses(session: Session) -> set[str]:
    """Every address with a managed record (deleted ones included)."""
    return set(session.scalars(select(ManagedUserRow.address)))


def managed_rows(session: Session, addresses: Iterable[str] | None = None) -> dict[str, ManagedUserRow]:
    query = select(ManagedUserRow)
    if addresses is not None:
        wanted = list(addresses)
        rows: dict[str, ManagedUserRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = query.where(ManagedUserRow.address.in_(wanted[start : start + 500]))
            rows.update({row.address: row for row in session.scalars(chunk)})
        return rows
    return {row.address: row for row in session.scalars(query)}


def get_managed(session: Session, address: str) -> ManagedUser | None:
    row = session.get(ManagedUserRow, address)
    return _user(row) if row is not None else None


def record_creation_intent(session: Session, decision: Decision, *, now: datetime, run_id: int | None) -> bool:
    """``record_intent`` for a ``CREATE_USER`` decision (the cycle and ``approve``). True if new."""
    if decision.user_address is None:
        raise InvariantError(f"a {decision.outcome} decision for {decision.address} without the user's address")
    return record_intent(
        session,
        decision.user_address,
        org=decision.org,
        aliases=decision.aliases,
        directory_address=decision.directory_address,
        now=now,
        run_id=run_id,
    )


def record_intent(
    session: Session,
    address: str,
    *,
    org: str | None,
    aliases: Sequence[str],
    directory_address: str | None,
    now: datetime,
    run_id: int | None,
) -> bool:
    """Write (not commit) the intent to create ``address`` before the target is asked. True if new.

    An existing record (a creation of an earlier run that crashed, or a user we
    already manage) is left as it is.
    """
    if (existing := session.get(ManagedUserRow, address)) is not None:
        _mark(existing)  # created again in the target (it did not know the user): planned next time
        return False
    session.add(
        ManagedUserRow(
            address=address,
            ownership=Ownership.CREATED.value,
            status=ManagedStatus.CREATING.value,
            org=org,
            directory_address=directory_address,
            aliases={"aliases": sorted(aliases)},
            managed_at=now,
            updated_at=now,
            run_id=run_id,
        )
    )
    return True


def confirm(session: Session, address: str, *, now: datetime, target_id: str | None = None) -> None:
    """The target confirmed the user: it is managed and active."""
    row = session.get(ManagedUserRow, address)
    if row is None:
        return
    if row.status == ManagedStatus.CREATING.value:
        row.status = ManagedStatus.ACTIVE.value
    if target_id is not None:
        row.target_id = target_id
    row.updated_at = now
    _mark(row)


def record_target_ids(session: Session, ids: dict[str, str]) -> None:
    """Remember the target ids read back for records that had none (one executemany)."""
    if ids:
        statement = (
            update(ManagedUserRow)
            .where(ManagedUserRow.address == bindparam("key"))
            .values(target_id=bindparam("tid"))
            .execution_options(synchronize_session=False)
        )
        session.connection().execute(statement, [{"key": a, "tid": t} for a, t in sorted(ids.items())])


def forget(session: Session, address: str) -> None:
    """Drop a record (a creation that never happened, or a user that turned out not to be ours)."""
    session.execute(delete(ManagedUserRow).where(ManagedUserRow.address == address))


def adopt(session: Session, address: str, *, org: str | None, target_id: str | None, now: datetime) -> bool:
    """Take over an existing target user on purpose. False if it is managed already."""
    row = session.get(ManagedUserRow, address)
    if row is not None and row.status != ManagedStatus.DELETED.value:
        return False
    if row is not None:
        session.delete(row)
        session.flush()
    session.add(
        ManagedUserRow(
            address=address,
            ownership=Ownership.ADOPTED.value,
            status=ManagedStatus.ACTIVE.value,
            org=org,
            target_id=target_id,
            aliases={"aliases": []},
            managed_at=now,
            updated_at=now,
        )
    )
    return True


def record_applied(session: Session, change: Change, *, now: datetime, run_id: int | None) -> None:
    """Note in the managed record what a change the target confirmed did."""
    row = session.get(ManagedUserRow, change.address)
    if row is None and change.target_id:
        # A rename earlier in this run moved the record; the user's later changes still name the old address.
        live = ManagedUserRow.status != ManagedStatus.DELETED.value
        row = session.scalars(select(ManagedUserRow).where(ManagedUserRow.target_id == change.target_id, live)).first()
    if row is None:
        return
    _mark(row)
    row.updated_at = now
    row.run_id = run_id
    if change.target_id:
        row.target_id = change.target_id
    aliases = set(recorded_aliases(row))
    if change.kind in (ChangeKind.MOVE, ChangeKind.RECREATE) or (change.kind is ChangeKind.REPAIR and change.org):
        row.org = change.org
    if change.kind in (ChangeKind.ADD_ALIASES, ChangeKind.REPAIR, ChangeKind.RECREATE):
        aliases |= set(change.aliases)
    elif change.kind is ChangeKind.REMOVE_ALIASES:
        aliases -= set(change.aliases)
    if change.kind is ChangeKind.SUSPEND:
        row.status = ManagedStatus.SUSPENDED.value
        row.suspended_at = now
        row.suspend_reason = change.reason or None
    elif change.kind in (ChangeKind.REACTIVATE, ChangeKind.RECREATE):
        row.status = ManagedStatus.ACTIVE.value
        row.suspended_at = None
        row.suspend_reason = None
        row.denied = None
    elif change.kind is ChangeKind.DELETE:
        row.status = ManagedStatus.DELETED.value
    row.aliases = {"aliases": sorted(aliases)}
    new_primary = change.fields.get("primary_address") if change.kind is ChangeKind.UPDATE else None
    if isinstance(new_primary, str) and new_primary != row.address:
        _rename(session, row, new_primary)


def _rename(session: Session, row: ManagedUserRow, new_primary: str) -> None:
    _mark(row)
    values = {c.name: getattr(row, c.name) for c in ManagedUserRow.__table__.columns}
    session.delete(row)
    session.flush()
    old = session.get(ManagedUserRow, new_primary)
    if old is not None:
        session.delete(old)
        session.flush()
    values["address"] = new_primary
    session.add(ManagedUserRow(**values))


def record_renamed(session: Session, old: str, new: str, *, now: datetime) -> None:
    """The target shows a rename we made but never recorded (a crash): the record follows it."""
    row = session.get(ManagedUserRow, old)
    if row is not None:
        row.updated_at = now
        _rename(session, row, new)


def record_suspended_seen(session: Session, address: str, reason: str, *, now: datetime) -> None:
    """The target shows a suspension we asked for but never recorded (a crash): record it now."""
    row = session.get(ManagedUserRow, address)
    if row is not None and row.status == ManagedStatus.ACTIVE.value:
        row.status = ManagedStatus.SUSPENDED.value
        row.suspended_at = now
        row.suspend_reason = reason
        row.updated_at = now
        _mark(row)


def record_org_seen(session: Session, address: str, org: str, *, now: datetime) -> None:
    """The target shows the user in ``org`` already (a move whose record a crash lost): record it now."""
    row = session.get(ManagedUserRow, address)
    if row is not None and row.org != org:
        row.org = org
        row.updated_at = now
        _mark(row)


def deny(session: Session, address: str, kind: str, reason: str, *, now: datetime) -> None:
    row = session.get(ManagedUserRow, address)
    if row is not None:
        row.denied = f"{kind}:{reason}"
        row.updated_at = now
        _mark(row)


def clear_denied(session: Session, address: str, *, now: datetime) -> None:
    """The directory state a denial was about changed: the change may be proposed again."""
    row = session.get(ManagedUserRow, address)
    if row is not None and row.denied is not None:
        row.denied = None
        row.updated_at = now
        _mark(row)


# -- held changes -------------------------------------------------------------------------------------


def change_to_json(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind.value,
        "address": change.address,
        "detail": change.detail,
        "target_id": change.target_id,
        "org": change.org,
        "from_org": list(change.from_org),
        "aliases": list(change.aliases),
        "fields": dict(change.fields),
        "reason": change.reason,
        "version": change.version,
    }


def change_from_json(data: dict[str, Any]) -> Change:
    return Change(
        ChangeKind(data["kind"]),
        data["address"],
        data.get("detail", ""),
        target_id=data.get("target_id"),
        org=data.get("org"),
        from_org=tuple(data.get("from_org") or ()),
        aliases=tuple(data.get("aliases") or ()),
        fields=dict(data.get("fields") or {}),
        reason=data.get("reason", ""),
        version=data.get("version"),
    )


def replace_held(session: Session, run_id: int, held: Sequence[tuple[Change, str]], *, now: datetime) -> None:
    """The held changes are those of the latest run: earlier unapproved ones are dropped."""
    session.execute(delete(HeldChangeRow).where(HeldChangeRow.approved_at.is_(None)))
    for change, why in held:
        session.add(
            HeldChangeRow(
                run_id=run_id,
                address=change.address,
                kind=change.kind.value,
                change=change_to_json(change),
                why=why,
                held_at=now,
            )
        )


def held_changes(session: Session, *, run_id: int | None = None, address: str | None = None) -> list[HeldChangeRow]:
    query = select(HeldChangeRow).order_by(HeldChangeRow.run_id, HeldChangeRow.address, HeldChangeRow.id)
    if run_id is not None:
        query = query.where(HeldChangeRow.run_id == run_id)
    if address is not None:
        query = query.where(HeldChangeRow.address == address)
    return list(session.scalars(query))


def approved_changes(session: Session) -> set[tuple[str, str]]:
    """(address, kind) of held changes a person approved and no run has applied yet."""
    query = select(HeldChangeRow.address, HeldChangeRow.kind).where(HeldChangeRow.approved_at.is_not(None))
    return {(address, kind) for address, kind in session.execute(query)}


def drop_held(session: Session, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if wanted:
        session.execute(delete(HeldChangeRow).where(HeldChangeRow.id.in_(wanted)))


def drop_applied(session: Session, applied: Iterable[tuple[str, str]]) -> None:
    for address, kind in applied:
        session.execute(delete(HeldChangeRow).where(HeldChangeRow.address == address, HeldChangeRow.kind == kind))
