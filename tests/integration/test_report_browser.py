"""The HTML report in a real browser: headless Chromium driven by chromedriver (Debian packages
chromium, chromium-driver), one browser for the module.

Hostile text from the log must show as text and never run. Every page (index, run, review
queue) is laid out at 1280 px and at 390 px (a phone): nothing may stick out of the
viewport (checked per element, with every ``<details>`` opened), and a screenshot of each
is compared for layout: as wide as the viewport, nothing drawn into the page's right
margin, the same sections in the same order, the narrow page the taller one.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from connector.cli import main
from connector.config import load_settings
from connector.domain.report import RunSummary
from connector.reporting.context import OrgUsers, PageContext
from connector.reporting.html import ReviewLink, render_index_html, render_review_html, render_run_html
from connector.reporting.reasons import reason_sentence
from connector.reporting.review import ReviewItem
from tests.conftest import utc
from tests.sample_report import busy_lifecycle, sample_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDE, NARROW = 1280, 390
HOSTILE = "<script>alert(1)</script>@x.test"
LONG = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 56 + ".test"  # 254 characters, the most
CONTROL = "evil\x1b]0;owned\x07\u202e@acme.com"
TOKEN = "x" * 300  # a detail without a single space
NOW = utc("2026-11-27T06:00:00")
HOSTILE_LINES = (
    "2026-11-26T18:00:00.000000+00:00 mx1 postfix/cleanup[9]: 9BADC0FFEE1: message-id=<evil-1@attacker.test>\n"
    "2026-11-26T18:00:00.100000+00:00 mx1 postfix/qmgr[9]: 9BADC0FFEE1: from=<x@attacker.test>, size=1, "
    "nrcpt=1 (queue active)\n"
    f"2026-11-26T18:00:00.200000+00:00 mx1 postfix/relay/smtp[9]: 9BADC0FFEE1: to=<{HOSTILE}>, "
    "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1)\n"
)

# Every element inside the viewport, every <details> opened; the chart alone may scroll, in its box.
OVERFLOWING = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const width = window.innerWidth, out = [];
for (const el of document.body.querySelectorAll('*')) {
  const box = el.closest('.chart-box');
  if (box && box !== el) continue;
  const r = el.getBoundingClientRect();
  if (!r.width && !r.height) continue;
  const spills = el.clientWidth > 0 && getComputedStyle(el).overflowX === 'visible'
    && el.scrollWidth > el.clientWidth + 1;
  if (r.left < -0.5 || r.right > width + 0.5 || spills) {
    out.push(`${el.tagName} ${Math.round(r.left)}..${Math.round(r.right)} (${el.scrollWidth} > ${el.clientWidth}): `
      + (el.textContent || '').slice(0, 60));
  }
}
return [window.innerWidth, document.documentElement.scrollWidth, out];
"""
SECTIONS = "return [...document.querySelectorAll('h1, section[id]')].map(e => e.id || e.tagName)"


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium at 1280 x 900 with its own profile directory; quit on leaving."""
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
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def at_width(driver: webdriver.Chrome, width: int) -> None:
    """The viewport of a desktop window, or of a phone (mobile: the page's viewport meta applies)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def assert_no_alert(driver: webdriver.Chrome) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is what raises when there is none


# --- screenshots -------------------------------------------------------------------------------------


def screenshot(driver: webdriver.Chrome, x: int, y: int, width: int, height: int) -> bytes:
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": x, "y": y, "width": width, "height": height, "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of a PNG as Chromium writes them (8-bit RGB or RGBA, not interlaced)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", (0, 0, 0, 0, 0, 0, 0)
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride, raw = width * channels, zlib.decompress(idat)
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(b for i, b in enumerate(line) if i % channels < 3))
        previous = line
    return width, height, rows


@dataclass
class Layout:
    width: int
    height: int
    sections: list[str]


def check_layout(driver: webdriver.Chrome, url: str, width: int, shots: Path, name: str) -> Layout:
    """Load ``url`` at ``width``: nothing overflows; a full screenshot is saved and compared."""
    at_width(driver, width)
    driver.get(url)
    assert_no_alert(driver)
    assert driver.execute_script("return document.scripts.length") == 0
    sections = driver.execute_script(SECTIONS)
    height = driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().height)")
    shown = min(driver.execute_script("return document.documentElement.scrollHeight"), 16000)
    full = screenshot(driver, 0, 0, width, shown)  # as a person first sees it: every <details> closed
    (shots / f"{name}-{width}.png").write_bytes(full)
    assert struct.unpack(">II", full[16:24]) == (width, shown)  # the page is exactly as wide as the screen
    # The right margin of the page, all the way down: nothing is drawn into it.
    margin = 6
    for top in range(0, shown, 8000):
        _, _, rows = png_pixels(screenshot(driver, width - margin, top, margin, min(8000, shown - top)))
        assert all(row == b"\xff" * (3 * margin) for row in rows), (name, width, "ink in the right margin", top)

    inner, scroll_width, overflowing = driver.execute_script(OVERFLOWING)  # now with every <details> open
    assert inner == width and scroll_width <= inner, (name, width, scroll_width)
    assert overflowing == [], (name, width, overflowing[:5])
    return Layout(width, height, sections)


def check_both_widths(driver: webdriver.Chrome, url: str, shots: Path, name: str) -> None:
    wide = check_layout(driver, url, WIDE, shots, name)
    narrow = check_layout(driver, url, NARROW, shots, name)
    assert narrow.sections == wide.sections  # the same page, reflowed
    assert narrow.height > wide.height


def reasons_have_tooltips_and_a_legend(driver: webdriver.Chrome) -> set[str]:
    """Each reason code on the page carries its sentence, and the legend explains it: the codes shown."""
    shown = set()
    for abbr in driver.find_elements(By.CSS_SELECTOR, "abbr"):
        code = abbr.text
        assert abbr.get_attribute("title") == reason_sentence(code)
        shown.add(code)
    for code in shown:
        assert driver.find_element(By.ID, f"reason-{code}").text == code
        legend = driver.find_element(By.CSS_SELECTOR, f"#reason-{code} + dd")
        assert legend.text == reason_sentence(code)
    return shown


# --- the pages -----------------------------------------------------------------------------------------


def hostile_run_page(path: Path) -> Path:
    lifecycle = busy_lifecycle()
    lifecycle["moved"][0]["address"] = HOSTILE
    lifecycle["suspended"][0]["address"] = LONG
    lifecycle["held"][0]["why"] = "<svg onload=alert(4)>"
    r = sample_report(
        warnings=[f"catch-all suspected: {HOSTILE}", f"long: {TOKEN}"],
        held=[
            {"address": HOSTILE, "reason": "attack_burst", "detail": "<img src=x onerror=alert(2)>"},
            {"address": LONG, "reason": "limit_reached", "detail": TOKEN, "org": "Acme"},
        ],
        deferred=[{"address": CONTROL, "reason": "directory_unavailable", "detail": "timeout"}],
        lifecycle=lifecycle,
    )
    r["created"][0]["address"] = HOSTILE
    r["created"][0]["aliases"] = [LONG, CONTROL]
    r["created"][0]["evidence"]["messages"][0]["message_id"] = "<svg onload=alert(3)>"
    r["created"][1]["address"] = LONG
    r["created"][1]["display_name"] = TOKEN
    r["skipped"][0]["address"] = HOSTILE
    r["skipped"][1]["address"] = LONG
    r["skipped"] += [
        {"address": f"x{i}@acme.com", "reason": "dictionary_attack", "state": "skipped", "detail": "burst"}
        for i in range(14)
    ]
    r["counts"]["skipped_by_reason"]["dictionary_attack"] = 14
    r["sources"] = [
        {
            "name": "gw",
            "file": "/var/log/" + "deep/" * 40 + "mail.log",
            "lines_read": 10,
            "ignored_lines": 0,
            "bad_lines": 1,
            "bad_line_examples": [{"line_no": 7, "text": f"to=<{LONG}> {TOKEN}", "error": "bad"}],
            "events": 4,
            "restarted": None,
        }
    ]
    story = f"Address: {LONG}\n  {TOKEN}\n  <b>not bold</b>\x1b[31m"
    context = PageContext(
        written_at=NOW,
        stories={LONG: story, HOSTILE: "Address: hostile", "x0@acme.com": "Address: x0@acme.com"},
        users={"Acme": OrgUsers(active=120, suspended=3), TOKEN: OrgUsers(active=1)},
    )
    path.write_text(render_run_html(r, context), encoding="utf-8")
    return path


def review_page(path: Path) -> Path:
    at = utc("2026-11-27T05:00:00.5")
    items = [
        ReviewItem("creation", LONG, "create user", "limit_reached", 7, at, org="Acme", via=CONTROL, aliases=(LONG,)),
        ReviewItem("creation", HOSTILE, "create user", "awaiting_approval", 7, at, detail=TOKEN, evidence=TOKEN),
        ReviewItem("creation", "bob@acme.com", "create user", "awaiting_approval", 8, at, via="robert@acme.com"),
        ReviewItem("lifecycle", LONG, "suspend", "max_suspend_per_run 1: 2 suspensions", 8, at, detail=TOKEN),
        ReviewItem("lifecycle", "fay@acme.com", "delete", "limit", 8, at, approved="approved by ann"),
    ]
    path.write_text(render_review_html(items, now=NOW, total=7), encoding="utf-8")
    return path


def index_page(path: Path) -> Path:
    runs = [
        RunSummary(i, utc(f"2026-11-{i:02d}T06:00:00"), None, "ok", False, created=i, skipped=2) for i in range(1, 27)
    ]
    runs += [
        RunSummary(30, utc("2026-11-27T05:00:00"), None, "partial", False, created=3, skipped=40, deferred=2, held=1),
        RunSummary(31, utc("2026-11-27T05:01:00"), None, "ok", False, created=1, skipped=5),  # a minute later
    ]
    page = render_index_html(runs[::-1], now=NOW, retention_days=90, review=ReviewLink(waiting=5))
    path.write_text(page, encoding="utf-8")
    return path


def test_every_page_fits_1280_and_390_px_with_long_and_hostile_text(browser: webdriver.Chrome, tmp_path: Path) -> None:
    for name, page in (
        ("index", index_page(tmp_path / "index.html")),
        ("run", hostile_run_page(tmp_path / "run-7.html")),
        ("review", review_page(tmp_path / "review.html")),
    ):
        check_both_widths(browser, page.as_uri(), tmp_path, name)
        assert_no_alert(browser)
        if name != "index":
            assert reasons_have_tooltips_and_a_legend(browser)
    run = browser.execute_script("return document.body.innerText")
    assert "\x1b" not in run and "\u202e" not in run


def test_two_runs_a_minute_apart_are_two_bars_at_different_places(browser: webdriver.Chrome, tmp_path: Path) -> None:
    page = index_page(tmp_path / "index.html")
    for width in (WIDE, NARROW):
        at_width(browser, width)
        browser.get(page.as_uri())
        boxes: dict[str, Any] = browser.execute_script(
            "const out = {}; for (const r of document.querySelectorAll('rect.bar')) {"
            " const b = r.getBoundingClientRect(); const o = out[r.dataset.run] || {left: b.left, right: b.right};"
            " out[r.dataset.run] = {left: Math.min(o.left, b.left), right: Math.max(o.right, b.right)}; } return out;"
        )
        assert len(boxes) == 28  # every run its own bar
        assert boxes["30"]["right"] <= boxes["31"]["left"]  # side by side, in time order, not on top
        legend = browser.find_element(By.ID, "chart-legend").text.split("\n")
        assert legend == ["Created", "Not created", "Deferred", "Held"]  # the words of the table
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#runs th")]
        if width == WIDE:
            assert {"Created", "Not created", "Deferred", "Held"} <= set(headers)
        titles = [t.get_attribute("textContent") for t in browser.find_elements(By.CSS_SELECTOR, "rect.bar title")]
        assert "run 31 (2026-11-27 05:01:00 UTC): 5 not created" in titles
    review = browser.find_element(By.CSS_SELECTOR, "#review-link a")
    assert str(review.get_attribute("href")).endswith("/review.html")


def test_the_report_reads_right_in_chromium_and_hostile_text_stays_text(
    demo_config: Path, browser: webdriver.Chrome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (demo_config.parent / "demo" / "logs" / "mail.log").open("a") as handle:
        handle.write(HOSTILE_LINES)
    assert main(["sync", "-c", str(demo_config)]) == 0
    capsys.readouterr()
    directory = load_settings(demo_config).reports.directory
    assert directory is not None

    at_width(browser, WIDE)
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
    assert reasons_have_tooltips_and_a_legend(browser) == {
        "already_known",
        "below_threshold",
        "dictionary_attack",
        "domain_not_managed",
        "method_off",
        "not_a_user",
        "not_in_directory",
    }
    sources = browser.find_element(By.ID, "sources").text
    assert f"to=<{HOSTILE}>" in sources  # shown as the text it is

    # An address is a link to its story, which opens where the link leads.
    story = browser.find_element(By.CSS_SELECTOR, "#skipped a[href^='#story-']")
    anchor = str(story.get_attribute("href")).rsplit("#", 1)[1]
    assert not browser.execute_script(f"return document.getElementById('{anchor}').parentElement.open")
    story.click()
    assert browser.execute_script(f"return document.getElementById('{anchor}').parentElement.open")
    told = browser.find_element(By.ID, anchor)
    assert told.is_displayed() and told.text.startswith(f"Address: {story.text}\n")
    assert "Last recorded decision:" in told.text

    check_both_widths(browser, (directory / "run-1.html").as_uri(), tmp_path, "demo-run")
    check_both_widths(browser, (directory / "index.html").as_uri(), tmp_path, "demo-index")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr")
    cells = [c.get_attribute("textContent") for c in rows[1].find_elements(By.TAG_NAME, "td")]
    assert (cells[0], cells[2], cells[3], cells[4], cells[5]) == ("1", "ok", "6", "43", "0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart svg rect")) == 2  # created + not created
    for name in ("demo-run-1280.png", "demo-run-390.png", "demo-index-390.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_addresses_in_every_field_show_as_text(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Other log formats may let such an address through as a candidate: every field must hold."""
    page = hostile_run_page(tmp_path / "hostile.html")
    at_width(browser, WIDE)
    browser.get(page.as_uri())
    assert_no_alert(browser)
    assert browser.execute_script("return document.scripts.length + document.images.length") == 0
    assert browser.find_element(By.ID, "alerts").text.startswith(f"Needs attention\ncatch-all suspected: {HOSTILE}")
    assert HOSTILE in browser.find_element(By.ID, "created").text
    assert "<svg onload=alert(3)>" in browser.find_element(By.ID, "created").text
    held = browser.find_element(By.ID, "held").text
    assert HOSTILE in held and "<img src=x onerror=alert(2)>" in held and LONG in held.replace("\n", "")
    assert HOSTILE in browser.find_element(By.ID, "skipped").text
    assert "evil\\x1b]0;owned\\x07\\u202e@acme.com" in browser.find_element(By.ID, "deferred").text
    tables = browser.find_elements(By.CSS_SELECTOR, "#lifecycle table")
    assert len(tables) == 15  # 13 lists of changes, not checked, notes: every one shown
    assert HOSTILE in tables[0].text  # moved
    assert tables[9].find_elements(By.TAG_NAME, "td")[-1].text == "<svg onload=alert(4)>"  # held: why
    story = browser.find_element(By.ID, "story-1")
    assert str(story.get_attribute("textContent")).endswith("<b>not bold</b>\\x1b[31m")  # escaped, not bold
