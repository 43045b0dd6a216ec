"""``connector target check`` (issue 17, item 7): what it learns of a real server, what it warns about,
and that it only reads: no state database is created or migrated, nothing is written to the server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer

from connector.cli import main
from tests.django_scim_server import AnyScimServer
from tests.integration.test_scim_cycle import scim_target, use_target
from tests.integration.test_scim_discovery import StandIn
from tests.integration.test_scim_target import post_by_hand, scim_get
from tests.scim_server import TOKEN

ALL_SERVERS = ("scim2-server", "django-scim2", "django-scim2-filtering")


def state_file(config: Path) -> Path:
    return config.parent.parent / "var" / "demo" / "state.sqlite"  # config/demo.yaml: ../var/demo/state.sqlite


def seed(server: AnyScimServer) -> None:
    post_by_hand(server, {"userName": "alice@acme.com", "emails": [{"value": "alice.archer@acme.com"}]})
    post_by_hand(server, {"userName": "bob@acme.com"})
    response = requests.post(
        server.url + "/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Acme Corp"},
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
        timeout=5,
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    yield


EXPECTED = {
    "scim2-server": {
        "lines": [
            "  filter: True",
            "  etag: True",
            "  bulk: True",
            "filters work: yes",
            "  filter displayName eq: works",
        ],
        "warnings": [],
    },
    "django-scim2": {
        "lines": [
            "  filter: False",
            "  patch: True",
            "  bulk: False",
            "filters work: untested",
            "  filter probes: not used (the server does not offer filtering)",
        ],
        "warnings": ["no filter: every lookup and every pull lists all users", "no ETag", "no Bulk"],
    },
    "django-scim2-filtering": {
        "lines": [
            "  filter: True",
            "filters work: no",
            "  filter userName eq: works",
            "  filter displayName eq: empty",
        ],
        "warnings": ["filter displayName eq finds nothing for a resource that exists", "no ETag", "no Bulk"],
    },
}


@pytest.mark.parametrize("server", ALL_SERVERS, indirect=True)
def test_target_check_reports_features_filters_and_warnings_and_creates_no_state(
    server: AnyScimServer,
    demo_config: Path,
    env: None,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    kind = request.node.callspec.params["server"]
    seed(server)
    before = scim_get(server, "/Users")["totalResults"], scim_get(server, "/Groups")["totalResults"]
    config = use_target(demo_config, scim_target(server.url))
    assert main(["target", "check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "authenticated: yes" in out and "users: 2, groups: 1" in out
    assert "endpoints: users /Users, groups /Groups" in out and "user schema: userName, name(" in out
    for line in EXPECTED[kind]["lines"]:
        assert any(printed.startswith(line) for printed in out.splitlines()), (line, out)
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: ")]
    for expected in EXPECTED[kind]["warnings"]:
        assert any(expected in w for w in warnings), (expected, warnings)
    if not EXPECTED[kind]["warnings"]:
        assert all("filter" not in w and "PATCH" not in w and "ETag" not in w for w in warnings), warnings
    assert not state_file(config).exists()  # read-only: no state database made
    assert (scim_get(server, "/Users")["totalResults"], scim_get(server, "/Groups")["totalResults"]) == before


@pytest.mark.parametrize("server", ["django-scim2-filtering"], indirect=True)
def test_target_check_as_json(
    server: AnyScimServer, demo_config: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(server)
    config = use_target(demo_config, scim_target(server.url))
    assert main(["target", "check", "-c", str(config), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == server.url and report["users"] == 2 and report["filters_work"] is False
    assert report["features"]["filter"] is True and report["features"]["etag"] is False
    outcomes = {p["name"]: p["outcome"] for p in report["probes"]}
    assert outcomes["filter displayName eq"] == "empty" and outcomes["paging /Users"] == "works"
    assert any("no ETag" in w for w in report["warnings"])


def test_target_check_warns_about_dropped_and_filled_attributes(
    httpserver: HTTPServer, demo_config: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = StandIn()
    fake.config = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]}  # nothing offered
    fake.schemas = {
        "Resources": [
            {
                "id": "urn:ietf:params:scim:schemas:core:2.0:User",
                "attributes": [
                    {"name": "userName", "required": True},
                    {"name": "emails", "subAttributes": [{"name": "value"}]},
                    {
                        "name": "name",
                        "required": True,
                        "subAttributes": [{"name": "givenName"}, {"name": "familyName"}],
                    },
                    {"name": "employeeNumber", "required": True},
                ],
            },
            {"id": "urn:ietf:params:scim:schemas:core:2.0:Group", "attributes": [{"name": "displayName"}]},
        ]
    }
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    config = use_target(demo_config, scim_target(httpserver.url_for("").rstrip("/")))
    assert main(["target", "check", "-c", str(config)]) == 0
    warnings = "\n".join(line for line in capsys.readouterr().out.splitlines() if line.startswith("WARNING"))
    assert "left out of every user: displayName, active, emails.type, emails.primary" in warnings
    assert "filled from the display name: name.givenName, name.familyName" in warnings
    assert "not sent by the connector: employeeNumber: creates fail" in warnings
    assert "suspending and reactivating users will be refused" in warnings
    assert "no filter" in warnings and "no PATCH" in warnings and "no ETag" in warnings
    assert "Group schema declares no 'members'" in warnings
    assert "listing /Groups is refused: org groups can be neither found nor created (HTTP 404 (no body))" in warnings
    assert not state_file(config).exists()


def test_target_check_of_a_local_target_before_the_first_run_creates_no_state(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["target", "check", "-c", str(demo_config)]) == 0
    out = capsys.readouterr().out
    assert "embedded compliance directory" in out and "no state yet" in out and "users: 0, aliases: 0" in out
    assert not state_file(demo_config).exists()


def test_target_check_of_a_server_whose_user_listing_fails(
    httpserver: HTTPServer, demo_config: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = StandIn()
    fake.users = []
    httpserver.expect_request("/Users").respond_with_data(
        "<html><head><title>502 Bad Gateway</title></head></html>", status=502, content_type="text/html"
    )
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    config = use_target(demo_config, scim_target(httpserver.url_for("").rstrip("/")))
    assert main(["target", "check", "-c", str(config)]) == 3
    assert "target check failed: GET /Users: HTTP 502 502 Bad Gateway (after 2 tries)" in capsys.readouterr().out
    assert main(["target", "check", "-c", str(config), "--format", "json"]) == 3
    assert "502 Bad Gateway" in json.loads(capsys.readouterr().out)["error"]
    assert not state_file(config).exists()


def test_target_check_sees_a_filter_and_a_start_index_the_server_ignores(
    httpserver: HTTPServer, demo_config: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = StandIn()  # says filter yes, then answers every filter with its whole list
    fake.ignore_start = True
    httpserver.expect_request("/Groups").respond_with_json({"Resources": [], "totalResults": 0})
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    config = use_target(demo_config, scim_target(httpserver.url_for("").rstrip("/")))
    assert main(["target", "check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "filters work: no" in out and "  filter displayName eq: untested (no group to look for)" in out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert any(w.startswith("WARNING: filter userName eq is ignored by the server") for w in warnings), warnings
    assert any("filter userName eq (no match) is ignored" in w and "3 resources" in w for w in warnings), warnings
    assert "WARNING: paging /Users ignores startIndex: listings cannot go past the first page" in out
