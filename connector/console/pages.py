"""The console's pages: runs (index with the chart, each run's report), the review queue and its
decisions, one address's story, users per org, health and the audit log; ``/healthz``.

Each page reads through the code the CLI and the report pages use (``jobs/report_context.py``,
``connector.explain``, ``connector users``, ``connector health``) in a worker thread, and
renders the report templates the reports directory has, extended with the console's bar and
buttons. Nothing here decides: a POST goes to ``connector/console/actions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from connector.app import Connector
from connector.console import actions
from connector.console.render import page, root, story_link
from connector.console.state import ConnectorHolder
from connector.domain.decisions import Decision
from connector.domain.report import RunSummary, stored_report
from connector.domain.report_model import RunReportJson
from connector.errors import ConnectorError
from connector.policy.addresses import InvalidAddress
from connector.reporting.chart import CHART_DAYS
from connector.reporting.context import PageContext
from connector.reporting.html import ReviewLink, index_page_values, review_page_values, run_page_values
from connector.store import audit, repository, status
from connector.store import lifecycle as lifecycle_store
from connector.store import safety as safety_store
from jobs import report_context
from jobs.decisions import DecisionStatus

RUN_STATUSES = ("ok", "partial", "failed", "interrupted", "running")
ORG_ROWS = 1000  # users listed for one org; ``connector users --format csv`` has every one
_UNKNOWN_ORG = "(org not known)"


def holder(request: Request) -> ConnectorHolder:
    return request.app.state.holder  # type: ignore[no-any-return]


async def connector_of(request: Request) -> Connector:
    """The wired connector (built on first use; "no state yet" until the service made the state)."""
    return await run_in_threadpool(holder(request).get)


def _run_href(request: Request) -> Any:
    base = root(request)
    return lambda run_id: f"{base}/runs/{run_id}"


# --- runs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """The index's filters: a status, and a first and last day (UTC, both included)."""

    status: str = ""
    first_day: date | None = None
    last_day: date | None = None
    problem: str = ""

    @classmethod
    def from_query(cls, query: Any) -> RunFilter:
        status = str(query.get("status") or "")
        problems = []
        if status and status not in RUN_STATUSES:
            problems.append(f"no such status (one of {', '.join(RUN_STATUSES)})")
            status = ""
        days: list[date | None] = []
        for key in ("from", "to"):
            value = str(query.get(key) or "")
            try:
                days.append(date.fromisoformat(value) if value else None)
            except ValueError:
                problems.append(f"'{key}' is not a date (YYYY-MM-DD)")
                days.append(None)
        return cls(status, days[0], days[1], "; ".join(problems))

    def keeps(self, run: RunSummary) -> bool:
        day = run.started_at.date()
        return (
            (not self.status or run.status == self.status)
            and (self.first_day is None or day >= self.first_day)
            and (self.last_day is None or day <= self.last_day)
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.first_day or self.last_day)


def _waiting(connector: Connector) -> int:
    """Items of the review queue waiting for a person (held creations, held changes not yet approved)."""
    with connector.sessions() as session:
        staged = safety_store.staged(session)
        held = lifecycle_store.held_changes(session)
    return len(staged) + sum(1 for row in held if row.approved_at is None)


async def runs_index(request: Request) -> Response:
    """Every stored run, newest first, with the chart of the last 30 days; filtered by status and date."""
    connector = await connector_of(request)
    wanted = RunFilter.from_query(request.query_params)
    now = holder(request).clock()

    def read() -> tuple[list[RunSummary], list[RunSummary], int]:
        since = datetime.combine(wanted.first_day, time(), UTC) if wanted.first_day else None
        with connector.sessions() as session:
            every = repository.list_runs(session, since=since, unfinished=True)
            charted = repository.list_runs(session, since=now - timedelta(days=CHART_DAYS + 1))
        return [run for run in every if wanted.keeps(run)], charted, _waiting(connector)

    listed, charted, waiting = await run_in_threadpool(read)
    values = index_page_values(
        listed,
        now=now,
        retention_days=connector.settings.reports.retention_days,
        review=ReviewLink(waiting, file=f"{root(request)}/review"),
        charted=charted,
        run_file=_run_href(request),
    )
    return page(
        request,
        "console_index.html.j2",
        statuses=RUN_STATUSES,
        status=wanted.status,
        date_from=wanted.first_day.isoformat() if wanted.first_day else "",
        date_to=wanted.last_day.isoformat() if wanted.last_day else "",
        filtered=wanted.active,
        filter_problem=wanted.problem,
        **values,
    )


async def run_page(request: Request) -> Response:
    """One run's report, as its HTML page in the reports directory, with the decisions on its held items."""
    connector = await connector_of(request)
    run_id = int(request.path_params["run_id"])
    now = holder(request).clock()

    def read() -> tuple[RunReportJson | None, PageContext]:
        with connector.sessions() as session:
            row = repository.get_run(session, run_id)
            finished = row is not None and row.finished_at is not None and row.report is not None
            report = stored_report(row.report) if row is not None and finished else None
            decisions = audit.latest(session, run_id=run_id)
        context = PageContext(written_at=now, users=report_context.org_users(connector), audit=decisions)
        return report, context

    report, context = await run_in_threadpool(read)
    if report is None:
        return not_found(request, f"No finished run {run_id}: it is still running, or no longer kept.")
    values = run_page_values(report, context)
    return page(
        request,
        "console_run.html.j2",
        story_link=story_link(request),
        review_href=f"{root(request)}/review",
        review_means="buttons",
        **values,
    )


# --- the review queue ---------------------------------------------------------------------------------


async def review_queue(request: Request) -> Response:
    """Held creations and held lifecycle changes, with approve / deny / block for one item or a whole run."""
    connector = await connector_of(request)
    items, total = await run_in_threadpool(report_context.review_items, connector)
    values = review_page_values(items, now=holder(request).clock(), total=total, run_file=_run_href(request))
    return page(request, "console_review.html.j2", story_link=story_link(request), actions_label="Decide", **values)


_HEADINGS = {"approve": "Approved", "deny": "Denied", "block": "Blocked"}


async def review_decide(request: Request) -> Response:
    """POST: one person's decision on an item (``address``) or a whole run (``run``); approvers only."""
    from connector.console import auth

    form = await request.form()
    auth.check_csrf(request, form)
    user = auth.current_user(request)
    if user is None or user.role != "approver":  # the route's guard says so first; never decide without it
        raise HTTPException(403, "only an approver decides")
    verb = str(form.get("verb") or "")
    address = str(form.get("address") or "").strip() or None
    run = str(form.get("run") or "").strip()
    if verb not in actions.VERBS or (address is None) == (not run) or (run and not run.isdigit()):
        raise HTTPException(400, "give verb (approve, deny or block) and either an address or a run")
    if verb == "block" and address is None:
        raise HTTPException(400, "block acts on an address, not on a run")
    connector = await connector_of(request)
    settings = holder(request).settings
    client = request.client.host if request.client else "unknown"
    outcome = await run_in_threadpool(
        lambda: actions.decide(
            connector,
            verb,  # checked against actions.VERBS above
            address=address,
            run_id=int(run) if run else None,
            who=user.name,
            client=client,
            now=holder(request).clock(),
            wait_seconds=settings.console.lock_wait_seconds,
        )
    )
    code = {"busy": 409, "nothing": 404, "failed": 502}.get(outcome.status, 200)
    response = page(
        request,
        "console_result.html.j2",
        status_code=code,
        title=f"{_HEADINGS[verb]}: {outcome.status}",
        heading=_HEADINGS[verb],
        subject=address or f"everything held by run {run}",
        outcome=outcome,
        client=client,
    )
    # The reports directory catches up after the answer is sent.
    if outcome.status in (DecisionStatus.DONE, DecisionStatus.PARTIAL):
        response.background = BackgroundTask(actions.republish, connector, outcome.run_id, holder(request).clock())
    return response


# --- one address ----------------------------------------------------------------------------------------


def explain_now(connector: Connector, address: str, now: datetime) -> str:
    """``connector explain ADDRESS``'s text: the same function, wired the same way (cli/run_commands.py)."""
    from connector.explain import explain
    from jobs.cycle import simulate
    from jobs.user_views import explain_planner

    def decide_now(each: str) -> Decision | None:
        return simulate(connector, [each], now=now).get(each)

    return explain(connector, address, now=now, plan_user=explain_planner(connector, now), decide_now=decide_now)


async def address_story(request: Request) -> Response:
    """An address search that opens its full story (what ``connector explain`` prints)."""
    query = str(request.query_params.get("q") or "").strip()
    story, problem = "", ""
    now = holder(request).clock()
    if query:
        connector = await connector_of(request)
        try:
            story = await run_in_threadpool(explain_now, connector, query, now)
        except InvalidAddress as exc:
            problem = f"not an address: {exc}"
    return page(
        request,
        "console_address.html.j2",
        status_code=400 if problem else 200,
        title=f"Story of {query}" if query else "The story of an address",
        query=query,
        story=story,
        problem=problem,
        now=now,
    )


# --- users per org ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgLine:
    name: str
    users: int
    managed: int
    suspended: int


async def users_page(request: Request) -> Response:
    """The target's users per org, from its copy (``connector users``); one org's users listed."""
    from jobs.user_views import user_lines

    connector = await connector_of(request)
    lines, source = await run_in_threadpool(user_lines, connector)
    by_org: dict[str, list[Any]] = {}
    for line in lines:
        by_org.setdefault(line.org or _UNKNOWN_ORG, []).append(line)
    orgs = [
        OrgLine(
            name,
            len(members),
            sum(1 for m in members if m.managed != "no"),
            sum(1 for m in members if m.active is False),
        )
        for name, members in sorted(by_org.items())
    ]
    selected = request.query_params.get("org")
    members = by_org.get(selected, []) if selected is not None else []
    return page(
        request,
        "console_users.html.j2",
        title="Users per org",
        source=source,
        orgs=orgs,
        selected=selected,
        listed=members[:ORG_ROWS],
        more=max(0, len(members) - ORG_ROWS),
        now=holder(request).clock(),
        story_link=story_link(request),
    )


# --- health, audit ------------------------------------------------------------------------------------


async def health_page(request: Request) -> Response:
    """What ``connector health`` says for the configured instance, and the last run of each job."""
    from jobs.health import health_problems

    connector = await connector_of(request)
    now = holder(request).clock()

    def read() -> tuple[list[str], list[Any]]:
        problems = health_problems(connector, now)
        with connector.sessions() as session:
            rows = status.all_status(session)
        latest: dict[str, Any] = {}
        for row in rows:  # the latest run of each job, whichever instance ran it
            seen = latest.get(row.job)
            if seen is None or _started(row) > _started(seen):
                latest[row.job] = row
        return problems, [latest[job] for job in sorted(latest)]

    problems, jobs = await run_in_threadpool(read)
    return page(request, "console_health.html.j2", title="Health", problems=problems, jobs=jobs)


def _started(row: Any) -> datetime:
    return row.last_started_at or row.last_finished_at or datetime.min.replace(tzinfo=UTC)


async def audit_page(request: Request) -> Response:
    """Every decision made in the console, newest first."""
    connector = await connector_of(request)

    def read() -> list[Any]:
        with connector.sessions() as session:
            return audit.latest(session, limit=AUDIT_ROWS)

    return page(request, "console_audit.html.j2", title="Audit log", entries=await run_in_threadpool(read))


AUDIT_ROWS = 500


async def healthz(request: Request) -> Response:
    """For a load balancer or a kubelet, without sign-in: the console is up and reaches the state database.

    Says nothing else (no counts, no names): anyone who can reach the port can read it.
    """

    def check() -> bool:
        try:
            connector = holder(request).get()
            with connector.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (ConnectorError, SQLAlchemyError):
            return False
        return True

    up = await run_in_threadpool(check)
    return JSONResponse({"status": "ok" if up else "unavailable"}, status_code=200 if up else 503)


async def home(request: Request) -> Response:
    return RedirectResponse(f"{root(request)}/", status_code=307)


def not_found(request: Request, message: str) -> Response:
    return page(
        request, "console_error.html.j2", status_code=404, title="Not found", heading="Not found", message=message
    )
