"""The review console's application: ``create_app(settings)``, served by ``connector serve`` (uvicorn).

One Starlette application: sign-in and sessions (``connector/console/auth.py``), the pages
(``pages.py``) and the decisions (``actions.py``). Every page but ``/healthz`` needs a
signed-in person; deciding needs the approver role and a CSRF token. The state database
is the one ``connector run`` uses, opened as every read command opens it (never created
nor migrated here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.app import Connector, utc_now
from connector.config import Settings
from connector.console import pages
from connector.console.auth import install_auth, require
from connector.console.render import page
from connector.console.state import ConnectorHolder
from connector.errors import ConnectorError
from connector.store.database import StateNotFound, database_error_text

log = logging.getLogger(__name__)


def routes() -> list[Route]:
    """Every page and its role; ``/healthz`` alone is open."""
    viewer, approver = require("viewer"), require("approver")
    return [
        Route("/", viewer(pages.runs_index), name="runs"),
        Route("/runs/{run_id:int}", viewer(pages.run_page), name="run"),
        Route("/review", viewer(pages.review_queue), name="review"),
        Route("/review/decide", approver(pages.review_decide), methods=["POST"], name="decide"),
        Route("/address", viewer(pages.address_story), name="address"),
        Route("/users", viewer(pages.users_page), name="users"),
        Route("/health", viewer(pages.health_page), name="health"),
        Route("/audit", viewer(pages.audit_page), name="audit"),
        Route("/healthz", pages.healthz, name="healthz"),
    ]


async def _unavailable(request: Request, exc: Exception) -> Response:
    """No state yet, a state of another version, the database or a dependency down: a page that says so."""
    if isinstance(exc, SQLAlchemyError):
        message = f"the state database cannot be read: {database_error_text(exc)}"
    else:
        message = str(exc)
    heading = "No state yet" if isinstance(exc, StateNotFound) else "Unavailable"
    log.warning("console page %s: %s", request.url.path, message)
    return page(request, "console_error.html.j2", status_code=503, title=heading, heading=heading, message=message)


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
    connector: Connector | None = None,
) -> Starlette:
    """The console for ``settings``; ``connector`` (tests) replaces the one built on first use.

    ``ConfigError`` when the sign-in settings are missing or wrong (``console.session_secret``,
    ``console.users_file`` or ``console.oidc``): the console never starts open.
    """
    env = os.environ if environ is None else environ
    app = Starlette(
        routes=routes(),
        exception_handlers={ConnectorError: _unavailable, SQLAlchemyError: _unavailable},
    )
    app.state.holder = ConnectorHolder(settings, env, clock=clock, connector=connector)
    install_auth(app, settings, environ=env)
    return app
