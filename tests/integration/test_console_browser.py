"""Issue 16: the review console in a real browser (headless Chromium, as tests/integration/test_report_browser.py),
served by uvicorn on loopback as ``connector serve`` serves it, signed in through the real form.

An approver approves one held user (it is created in the embedded target) and denies another (blocked);
a hostile address and display name render as text; every page fits 1280 px and 390 px.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from connector.app import build_connector
from connector.config import load_settings
from connector.console.app import create_app
from connector.store import safety as safety_store
from tests.console_login import sign_in_browser
from tests.console_setup import HOSTILE, HOSTILE_NAME, HeldDemo, cli_json, held_demo
from tests.integration.test_report_browser import (
    NARROW,
    WIDE,
    assert_no_alert,
    at_width,
    check_layout,
    chromium,
)

__all__ = ["held_demo"]  # the fixture, for pytest


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-console")) as driver:
        yield driver


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, held_demo: HeldDemo) -> Iterator[tuple[str, Path]]:
    """The demo in review mode (with a hostile person held too), its first run, and the console on it."""
    config, report = held_demo(tmp_path, f"sqlite:///{tmp_path / 'state' / 'state.sqlite'}", hostile=True)
    assert HOSTILE in {h["address"] for h in report["held"]}
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(load_settings(config), environ={}), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def press(driver: webdriver.Chrome, address: str, verb: str) -> str:
    """Press ``verb`` on the review queue's row of ``address``; the text of the result page."""
    row = driver.find_element(By.XPATH, f"//tr[td[1][contains(normalize-space(.), '{address}')]]")
    row.find_element(By.CSS_SELECTOR, f"button[value={verb}]").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "outcome"), driver.page_source[-2000:])
    return str(driver.find_element(By.ID, "outcome").text)


def test_an_approver_approves_and_denies_in_the_browser(
    browser: webdriver.Chrome, served: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, config = served
    at_width(browser, 1280)
    sign_in_browser(browser, base, "approver")
    browser.get(f"{base}/review")
    assert browser.title.startswith("Review queue: 7 waiting")
    said = press(browser, "bob@acme.com", "approve")
    assert "created: bob@acme.com (via robert@acme.com)" in said
    users = {u["address"]: u for u in cli_json(capsys, "users", "-c", str(config))["users"]}
    assert users["bob@acme.com"]["org"] == "Acme Corp" and users["bob@acme.com"]["aliases"] == ["robert@acme.com"]

    browser.get(f"{base}/review")
    said = press(browser, "alice@acme.com", "deny")
    assert "denied and blocked: alice@acme.com" in said
    connector = build_connector(load_settings(config), {}, read_only=True)
    with connector.sessions() as session:
        assert {"alice@acme.com", "alice.archer@acme.com"} <= safety_store.blocked_addresses(session)
    assert "alice@acme.com" not in cli_json(capsys, "users", "-c", str(config))["users"]
    browser.get(f"{base}/review")
    assert browser.title.startswith("Review queue: 5 waiting")
    audit = browser.find_element(By.ID, "nav").find_element(By.LINK_TEXT, "Audit log")
    audit.click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tr:not(.head)")
    assert [r.find_element(By.CSS_SELECTOR, "td[data-label=Who]").text for r in rows] == ["abe.approver"] * 2


def test_hostile_text_stays_text_and_every_page_fits(
    browser: webdriver.Chrome, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = served
    sign_in_browser(browser, base, "approver")
    story = f"{base}/address?q={quote(HOSTILE, safe='@')}"
    for url in (f"{base}/review", f"{base}/runs/1", story):
        browser.get(url)
        assert_no_alert(browser)
        assert browser.execute_script("return document.scripts.length + document.images.length") == 0
        assert HOSTILE in browser.find_element(By.TAG_NAME, "body").text
    assert f"display name {HOSTILE_NAME!r}" in browser.find_element(By.ID, "story-text").text
    pages = {
        "index": f"{base}/",
        "run": f"{base}/runs/1",
        "review": f"{base}/review",
        "story": story,
        "users": f"{base}/users?org=Acme%20Corp",
        "health": f"{base}/health",
        "audit": f"{base}/audit",
    }
    for name, url in pages.items():
        # Nothing sticks out at either width (every element, <details> opened; screenshots' right margin).
        wide = check_layout(browser, url, WIDE, tmp_path, f"console-{name}")
        narrow = check_layout(browser, url, NARROW, tmp_path, f"console-{name}")
        assert narrow.sections == wide.sections  # the same page, reflowed
        assert_no_alert(browser)
