"""The HTML report in a real browser: headless Chromium driven by chromedriver (Debian packages
chromium, chromium-driver). Hostile text from the log must show as text and never run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from connector.cli import main
from connector.config import load_settings
from connector.reporting.html import render_run_html
from tests.sample_report import busy_lifecycle, sample_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<script>alert(1)</script>@x.test"
HOSTILE_LINES = (
    "2026-11-26T18:00:00.000000+00:00 mx1 postfix/cleanup[9]: 9BADC0FFEE1: message-id=<evil-1@attacker.test>\n"
    "2026-11-26T18:00:00.100000+00:00 mx1 postfix/qmgr[9]: 9BADC0FFEE1: from=<x@attacker.test>, size=1, "
    "nrcpt=1 (queue active)\n"
    f"2026-11-26T18:00:00.200000+00:00 mx1 postfix/relay/smtp[9]: 9BADC0FFEE1: to=<{HOSTILE}>, "
    "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1)\n"
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1200,2000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def assert_no_alert(driver: webdriver.Chrome) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is what raises when there is none


def test_the_report_reads_right_in_chromium_and_hostile_text_stays_text(
    demo_config: Path, browser: webdriver.Chrome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (demo_config.parent / "demo" / "logs" / "mail.log").open("a") as handle:
        handle.write(HOSTILE_LINES)
    assert main(["sync", "-c", str(demo_config)]) == 0
    capsys.readouterr()
    directory = load_settings(demo_config).reports.directory
    assert directory is not None

    browser.get((directory / "run-1.html").as_uri())
    assert browser.title == "Run 1: ok"
    assert_no_alert(browser)
    assert browser.execute_script("return document.scripts.length") == 0
    figures = {
        f.find_element(By.CLASS_NAME, "label").text: f.find_element(By.CLASS_NAME, "value").text
        for f in browser.find_elements(By.CLASS_NAME, "figure")
    }
    assert figures == {
        "created": "6",
        "aliases added": "0",
        "not created": "43",
        "deferred": "0",
        "held for review": "0",
        "lifecycle changes": "0",  # run 1 manages nobody yet: its users are checked from run 2 on
        "lifecycle held": "0",
        "errors": "0",
        "new log lines": "919",
        "malformed lines": "2",
    }
    assert "source demo-gateway: 2 malformed line(s) skipped" in browser.find_element(By.ID, "alerts").text
    created = browser.find_element(By.ID, "created").text
    assert "Acme Corp (4)" in created and "Globex (2)" in created and "via alias robert@acme.com" in created
    assert "dictionary_attack (32)" in browser.find_element(By.ID, "skipped").text
    sources = browser.find_element(By.ID, "sources").text
    assert f"to=<{HOSTILE}>" in sources  # shown as the text it is
    browser.save_screenshot(str(tmp_path / "run-1.png"))

    browser.get((directory / "index.html").as_uri())
    assert_no_alert(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr")
    cells = [c.text for c in rows[1].find_elements(By.TAG_NAME, "td")]
    assert (cells[0], cells[2], cells[3], cells[4], cells[5]) == ("1", "ok", "6", "43", "0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart svg rect")) == 2 + 3  # created + skipped; legend
    browser.save_screenshot(str(tmp_path / "index.png"))
    for name in ("run-1.png", "index.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_addresses_in_every_field_show_as_text(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Other log formats may let such an address through as a candidate: every field must hold."""
    lifecycle = busy_lifecycle()
    lifecycle["moved"][0]["address"] = HOSTILE
    lifecycle["held"][0]["why"] = "<svg onload=alert(4)>"
    r = sample_report(
        warnings=[f"catch-all suspected: {HOSTILE}"],
        held=[{"address": HOSTILE, "reason": "attack_burst", "detail": "<img src=x onerror=alert(2)>"}],
        lifecycle=lifecycle,
    )
    r["created"][0]["address"] = HOSTILE
    r["created"][0]["evidence"]["messages"][0]["message_id"] = "<svg onload=alert(3)>"
    r["skipped"][0]["address"] = HOSTILE
    page = tmp_path / "hostile.html"
    page.write_text(render_run_html(r), encoding="utf-8")

    browser.get(page.as_uri())
    assert_no_alert(browser)
    assert browser.execute_script("return document.scripts.length + document.images.length") == 0
    assert browser.find_element(By.ID, "alerts").text.endswith(f"catch-all suspected: {HOSTILE}")
    assert HOSTILE in browser.find_element(By.ID, "created").text
    assert "<svg onload=alert(3)>" in browser.find_element(By.ID, "created").text
    held = browser.find_element(By.ID, "held").text
    assert HOSTILE in held and "<img src=x onerror=alert(2)>" in held
    assert HOSTILE in browser.find_element(By.ID, "skipped").text
    tables = browser.find_elements(By.CSS_SELECTOR, "#lifecycle table")
    assert len(tables) == 15  # 13 lists of changes, not checked, notes: every one shown
    assert HOSTILE in tables[0].text  # moved
    assert tables[9].find_elements(By.TAG_NAME, "td")[-1].text == "<svg onload=alert(4)>"  # held: why
    browser.save_screenshot(str(tmp_path / "hostile.png"))
    assert (tmp_path / "hostile.png").stat().st_size > 0
