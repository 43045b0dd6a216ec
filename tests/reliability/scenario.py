"""The reliability suite's scenario: the demo's mail log and directory, with the directory in a real
slapd and the target a real scim2-server, on SQLite or PostgreSQL.

``outcome`` reads back everything a run is judged by: users and org memberships
from the SCIM server, evidence and decisions from the state database, and who
created each user according to the stored reports.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.directory.slapd import READER_DN, READER_PASSWORD, SUFFIX
from tests.scim_server import TOKEN, ScimTestServer

ENV = {"RELIABILITY_LDAP_PASSWORD": READER_PASSWORD, "RELIABILITY_SCIM_TOKEN": TOKEN}


def demo_copy(directory: Path) -> Path:
    """The demo's data (log, LDIF) in ``directory``."""
    shutil.copytree(ROOT / "config" / "demo", directory / "demo")
    return directory


def write_config(
    directory: Path, name: str, *, state_url: str, ldap_url: str, scim_url: str, reports: Path | None = None
) -> Path:
    """A config for ``state_url`` next to the demo copy in ``directory`` (HTML pages only into ``reports``)."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["state"] = {"url": state_url}
    config["sources"][0]["batch_lines"] = 40  # the 916-line log in 23 batches: kills land between them
    config["directory"] = {
        "type": "ldap",
        "servers": [ldap_url],
        "bind_dn": READER_DN,
        "bind_password": {"env": "RELIABILITY_LDAP_PASSWORD"},
        "base_dn": SUFFIX,
        "connect_timeout_seconds": 2,
        "timeout_seconds": 5,
    }
    config["target"] = {
        "type": "scim",
        "url": scim_url,
        "bearer_token": {"env": "RELIABILITY_SCIM_TOKEN"},
        "requests_per_second": 10000,
        "retry": {"attempts": 2, "backoff_seconds": 0.01},
    }
    config["reports"] = {"directory": str(reports)} if reports else {}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def scim_state(server: ScimTestServer) -> dict[str, Any]:
    """Users (names, addresses, active) and org groups (member user names), read back from the server."""
    state = server.state()
    users = {
        name: (user["displayName"], sorted(user["emails"]), user["active"]) for name, user in state["Users"].items()
    }
    ids = {}
    with server._server.lock:
        for resource in server.storage.resources:
            if resource.meta and resource.meta.resource_type == "User":
                ids[resource.id] = resource.user_name
    groups = {name: sorted(ids.get(member, member) for member in members) for name, members in state["Groups"].items()}
    return {"users": users, "groups": groups}


def reset(server: ScimTestServer) -> None:
    """Empty the server's storage (one server serves every kill point)."""
    with server._server.lock:
        server.storage.resources = []


def _rows(url: str, query: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query)).all())
    finally:
        engine.dispose()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def outcome(url: str, server: ScimTestServer) -> dict[str, Any]:
    """What a run (or a run, a kill and the reruns) left behind, comparable with an uninterrupted run."""
    evidence = {row[0]: tuple(row[1:]) for row in _rows(url, "SELECT * FROM evidence")}  # every column
    decisions = dict(
        (address, (state, reason))
        for address, state, reason in _rows(url, "SELECT address, state, reason FROM candidates")
    )
    reports = [_json(r) for (r,) in _rows(url, "SELECT report FROM runs WHERE dry_run = false ORDER BY id")]
    created = Counter(entry["address"] for report in reports if report for entry in report["created"])
    managed = dict(_rows(url, "SELECT address, status FROM managed_users"))
    return {
        "target": scim_state(server),
        "evidence": evidence,
        "decisions": decisions,
        "created": dict(created),
        "managed": managed,
    }
