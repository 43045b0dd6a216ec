"""Rendering the console's pages: the report templates (connector/reporting/templates) extended by the
console's own (connector/console/templates), in one autoescaping Jinja2 environment.

Every response of a page carries headers that keep a page from running script, being framed or cached:
addresses and directory values on it come from strangers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse

from connector.reporting.html import environment

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ENVIRONMENT: Environment | None = None


def pages() -> Environment:
    """The one environment (templates are compiled once per process)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = environment("connector.console")
    return _ENVIRONMENT


def root(request: Request) -> str:
    """The path the console is served under (``uvicorn --root-path``, from ``console.base_url``), no slash."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def story_link(request: Request) -> Any:
    """``address -> URL`` of its story page (the run page links every address to it)."""
    base = root(request)
    return lambda address: f"{base}/address?q={quote(str(address), safe='@')}"


def page(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page of the console, with the signed-in person and a CSRF token for its forms."""
    from connector.console import auth

    user = auth.current_user(request)
    values.setdefault("title", "")
    text = (
        pages()
        .get_template(template)
        .render(
            root=root(request),
            user=user,
            csrf=auth.csrf_token(request) if user is not None else "",
            csrf_field=getattr(auth, "CSRF_FIELD", "csrf_token"),
            can_decide=user is not None and user.role == "approver",
            **values,
        )
    )
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)
