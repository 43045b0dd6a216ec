"""What a run's pages show beyond its stored report, read when the pages are written: each
listed address's story (``connector explain``'s own text), the users per org now, and the
review queue.

``publish_reports`` calls these right after the run, with the wired connector. The
target's known addresses are read once and the directory is asked once, in batches,
for all the stories: explain asks them per address, which is right for one address
and wrong for a page of hundreds. Nothing here writes: explain never does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from connector.app import Connector
from connector.compliance.known import load_known
from connector.directory.base import Directory
from connector.directory.lookup import LOOKUP_BATCH
from connector.domain.directory import DirectoryAnswer
from connector.domain.report import LISTED_PER_REASON
from connector.domain.report_model import RunReportJson
from connector.errors import ConnectorError, RetriableError
from connector.explain import explain
from connector.policy.addresses import InvalidAddress, normalise_address
from connector.policy.known import KnownAddresses
from connector.reporting.context import OrgUsers, PageContext
from connector.reporting.review import REVIEW_ROWS, ReviewItem
from connector.reporting.view import evidence_text
from connector.store import audit, repository
from connector.store import lifecycle as lifecycle_store
from connector.store import safety as safety_store
from jobs.review import person_of

log = logging.getLogger(__name__)


class _KnownOnce:
    """The target's known addresses, read and canonicalised once for every story (or the error that kept them)."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._known: KnownAddresses | RetriableError | None = None

    def __call__(self) -> KnownAddresses:
        if self._known is None:
            try:
                self._known = load_known(self._connector.target, self._connector.address_map)
            except RetriableError as exc:
                self._known = exc
        if isinstance(self._known, RetriableError):
            raise self._known
        return self._known


class _AskedOnce:
    """The directory's answers for every form of the listed addresses, asked in batches up front.

    A directory that is down answers with its error once, not once per address (each
    would wait for its own timeout).
    """

    def __init__(self, inner: Directory, queries: Iterable[str]) -> None:
        self._inner = inner
        self._answers: dict[str, DirectoryAnswer | RetriableError] = {}
        self.error: RetriableError | None = None  # the directory could not be asked
        wanted = list(dict.fromkeys(queries))
        for start in range(0, len(wanted), LOOKUP_BATCH):
            self._ask(wanted[start : start + LOOKUP_BATCH])

    def _ask(self, chunk: Sequence[str]) -> None:
        try:
            answers = self._inner.lookup(chunk)
        except RetriableError as exc:
            self.error = exc
            self._answers.update(dict.fromkeys(chunk, exc))
            return
        self._answers.update({query: answers.get(query) for query in chunk})

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        missing = [a for a in addresses if a not in self._answers]
        if missing:
            self._ask(missing)
        found: dict[str, DirectoryAnswer] = {}
        for address in addresses:
            answer = self._answers[address]
            if isinstance(answer, RetriableError):
                raise answer
            found[address] = answer
        return found

    def describe(self) -> str:
        return self._inner.describe()


def story_addresses(report: RunReportJson, per_group: int | None = None) -> list[str]:
    """The addresses of a report's lists whose story the page carries, in page order.

    At most ``per_group`` (the report's ``listed_per_reason``) per org of the created users
    and per reason of the other lists, which the stored report already bounds: a page of a
    first run with 5,000 new users tells the first 100 of each org. ``*@domain`` rows are not
    addresses. A created user found through an alias is told from that alias (its evidence).
    """
    limit = per_group or int(report.get("listed_per_reason") or LISTED_PER_REASON)
    seen: dict[tuple[str, str], int] = {}
    out: dict[str, None] = {}

    def take(entries: Iterable[Mapping[str, object]], list_name: str, group_key: str) -> None:
        for entry in entries:
            address = str(entry.get("via") or entry.get("address") or "")
            group = (list_name, str(entry.get(group_key) or ""))
            if not address or address.startswith("*@") or seen.get(group, 0) >= limit:
                continue
            seen[group] = seen.get(group, 0) + 1
            out.setdefault(address)

    take(report.get("created") or [], "created", "org")
    take(report.get("aliases_added") or [], "aliases_added", "org")
    take(report.get("held") or [], "held", "reason")
    take(report.get("deferred") or [], "deferred", "reason")
    take(report.get("skipped") or [], "skipped", "reason")
    return list(out)


def address_stories(connector: Connector, report: RunReportJson, *, now: datetime) -> dict[str, str]:
    """Address -> what ``connector explain ADDRESS`` says of it now (the run just ended).

    The decision of a run now is not simulated here (``not computed``): the run's own
    decision is the story's ``Last recorded decision``. When the directory cannot be
    asked, the page goes without stories (one warning), rather than each saying so.
    """
    addresses = story_addresses(report)
    if not addresses:
        return {}
    with connector.sessions() as session:
        evidence = repository.load_evidence(session, addresses)
    queries: list[str] = []
    for address in addresses:
        queries.append(address)
        for seen in evidence[address].seen_as if address in evidence else ():
            try:
                queries.append(normalise_address(seen))
            except InvalidAddress:
                continue
    directory = _AskedOnce(connector.directory, queries)
    if directory.error is not None:  # every story would say so, and each would log it again
        log.warning(
            "report page without the stories of its addresses: the directory is unavailable: %s", directory.error
        )
        return {}
    asked = dataclasses.replace(connector, directory=directory)
    known = _KnownOnce(connector)
    stories: dict[str, str] = {}
    for address in addresses:
        try:
            stories[address] = explain(asked, address, now=now, known_addresses=known)
        except InvalidAddress:
            continue  # text the log called an address: the page shows it, there is no story to tell
        except ConnectorError as exc:  # the page goes without this one story
            log.warning("report page: an address without its story: %s", exc)
            log.debug("report page: no story for %s", address)
    return stories


def org_users(connector: Connector) -> dict[str, OrgUsers]:
    """Org -> the users the connector manages there now (active, suspended), from ``managed_users``."""
    with connector.sessions() as session:
        counts = lifecycle_store.managed_counts_by_org(session)
    out: dict[str, OrgUsers] = {}
    for (org, status), n in counts.items():
        current = out.get(org or "", OrgUsers())
        if status == "suspended":
            current = dataclasses.replace(current, suspended=current.suspended + n)
        else:  # active, or creating (asked for, not yet confirmed by the target)
            current = dataclasses.replace(current, active=current.active + n)
        out[org or ""] = current
    return out


def page_context(connector: Connector, report: RunReportJson, *, now: datetime) -> PageContext:
    """The stories, user counts and console decisions of a run's page, as of ``now`` (the end of the run)."""
    with connector.sessions() as session:  # decisions made in the console on this run's held items
        decisions = audit.latest(session, run_id=report["run_id"])
    return PageContext(
        written_at=now,
        stories=address_stories(connector, report, now=now),
        users=org_users(connector),
        audit=decisions,
    )


def review_items(connector: Connector) -> tuple[list[ReviewItem], int]:
    """The review queue (held creations, then held lifecycle changes), at most ``REVIEW_ROWS``; and how many in all."""
    with connector.sessions() as session:
        staged = safety_store.staged(session)
        held = lifecycle_store.held_changes(session)
        items: list[ReviewItem] = []
        for row in staged[:REVIEW_ROWS]:
            decision = row.decision or {}
            person = person_of(row)
            items.append(
                ReviewItem(
                    kind="creation",
                    address=person.user,
                    change="create user",
                    held=row.reason,
                    run_id=row.run_id,
                    since=row.staged_at,
                    org=decision.get("org"),
                    via=row.address if row.address != person.user else None,
                    aliases=tuple(a for a in decision.get("aliases", []) if a not in (person.user, row.address)),
                    detail=str(decision.get("detail") or ""),
                    evidence=evidence_text(decision) if decision.get("evidence") else "",
                )
            )
        for held_row in held[: max(0, REVIEW_ROWS - len(items))]:
            change = held_row.change or {}
            approved = None
            if held_row.approved_at is not None:
                approved = f"approved by {held_row.approved_by} at {held_row.approved_at:%Y-%m-%d %H:%M:%S} UTC: "
                approved += "the next run makes it"
            items.append(
                ReviewItem(
                    kind="lifecycle",
                    address=held_row.address,
                    change=held_row.kind,
                    held=held_row.why,
                    run_id=held_row.run_id,
                    since=held_row.held_at,
                    org=change.get("org"),
                    detail=str(change.get("detail") or ""),
                    approved=approved,
                )
            )
    return items, len(staged) + len(held)
