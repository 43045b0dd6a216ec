"""Issue 14, item 9: what a run's pages read from the state when they are written, on SQLite and
PostgreSQL: each listed address's story (``connector explain``'s own text), the users per org,
and the review queue with the commands to approve or deny each item.

The demo (bob@acme.com reached through his alias robert@acme.com; a dictionary attack).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.explain import explain
from connector.reporting.filters import seconds
from connector.reporting.html import render_run_html
from jobs.report_context import page_context, story_addresses
from tests.service import service_config


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def pages(config: Path) -> Path:
    directory = load_settings(config).reports.directory
    assert directory is not None
    return directory


def stories(page: str) -> dict[str, str]:
    """Address -> its story as the page shows it (unescaped)."""
    found = re.findall(
        r'<summary class="addr">(.*?)</summary>\n<pre class="story" id="story-\d+">(.*?)</pre>', page, re.S
    )
    return {html.unescape(a.replace("<wbr>", "")): html.unescape(s) for a, s in found}


def test_the_run_page_tells_the_story_of_each_listed_address_and_the_users_per_org(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    report = sync(config, capsys)
    page = (pages(config) / "run-1.html").read_text()

    told = stories(page)
    assert list(told) == story_addresses(report)  # every listed address, in the order of the page
    assert len(told) == 6 + 32 + 4 + 1 + 1 + 1 + 1  # created, the attack, pending, and one each of the rest
    connector = build_connector(load_settings(config), os.environ, read_only=True)
    written_at = datetime.fromisoformat(report["finished_at"])
    for address in ("alice@acme.com", "robert@acme.com", "olduser@acme.com", "amvfx@acme.com"):
        assert told[address] == seconds(explain(connector, address, now=written_at))  # explain's own text
    assert "Last recorded decision:\n  skipped (dictionary_attack) in run 1" in told["amvfx@acme.com"]
    # bob was created through his alias: his row links to robert's story, which says whose alias it is
    bob_link = re.search(r'<td data-label="Address" class="addr"><a href="#(story-\d+)">bob@acme.com</a>', page)
    assert bob_link is not None
    assert re.search(rf'<summary class="addr">robert@acme.com</summary>\n<pre class="story" id="{bob_link[1]}">', page)
    assert "robert@acme.com is an alias of bob@acme.com" in told["robert@acme.com"]

    orgs = page[page.index('<section id="orgs">') : page.index('<section id="created">')]
    users = dict(re.findall(r'data-label="Org">([^<]+)</td>.*?data-label="Users now" class="num">(\d+)', orgs, re.S))
    assert users == {"Acme Corp": "4", "Globex": "2", "Initech": "0", "(no org: domain not managed)": "0"}
    assert not (pages(config) / "review.html").exists()  # nothing ever waited: no page, and no link to one
    assert "review.html" not in (pages(config) / "index.html").read_text()


def test_the_review_page_lists_the_queue_with_its_commands_and_follows_it(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    data = yaml.safe_load(config.read_text())
    data["safety"] = {"mode": "approve"}
    config.write_text(yaml.safe_dump(data))
    sync(config, capsys)
    directory = pages(config)
    review = (directory / "review.html").read_text()
    commands = [html.unescape(c) for c in re.findall(r'<code class="cmd (?:approve|deny)">(.*?)</code>', review)]
    users = ["alice@acme.com", "bob@acme.com", "erin@acme.com", "frank@acme.com", "gina@globex.com", "hank@globex.com"]
    assert sorted(shlex.split(c)[2] for c in commands if shlex.split(c)[1] == "approve") == users
    assert "connector deny bob@acme.com" in commands
    assert "<small>via alias robert@acme.com</small>" in review  # the item mail came to, under the person
    assert '<code class="cmd">connector approve --run 1</code>' in review
    assert 'href="#reason-awaiting_approval"' in review and 'id="reason-awaiting_approval"' in review
    index = (directory / "index.html").read_text()
    assert '<a href="review.html">Review queue</a>:\n6 item(s) wait' in index
    run_page = (directory / "run-1.html").read_text()
    assert '<a href="review.html">the review queue</a>' in run_page

    # The commands work as shown, and the page follows the queue.
    assert main(["approve", "-c", str(config), "bob@acme.com"]) == 0
    assert main(["deny", "-c", str(config), "hank@globex.com"]) == 0
    capsys.readouterr()
    sync(config, capsys)
    review = (directory / "review.html").read_text()
    assert "connector approve bob@acme.com" not in review and "hank@globex.com" not in review
    assert "connector approve alice@acme.com" in review and "4 item(s) wait for a person" in review
    assert main(["approve", "-c", str(config), "--run", "1"]) == 0
    capsys.readouterr()
    sync(config, capsys)
    review = (directory / "review.html").read_text()  # the page stays, and says the queue is empty
    assert '<p class="ok" id="queue-empty">Nothing waits for a person.</p>' in review
    assert "nothing waits for a person." in (directory / "index.html").read_text()


def test_a_directory_that_cannot_be_asked_leaves_the_stories_out_with_one_warning(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = service_config(demo_config, state_url)
    report = sync(config, capsys)
    settings = load_settings(config)
    connector = build_connector(settings, os.environ, read_only=True)
    ldif = config.parent / "demo" / "directory.ldif"
    ldif.rename(ldif.with_suffix(".gone"))  # the directory fails only now, when the page is written

    caplog.set_level(logging.WARNING)
    caplog.clear()  # the run's own warnings (the attack)
    context = page_context(connector, report, now=datetime.fromisoformat(report["finished_at"]))
    assert context.stories == {} and context.users["Acme Corp"].active == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("report page without the stories of its addresses")
    page = render_run_html(report, context)
    assert 'id="stories"' not in page and 'data-label="Users now"' in page
