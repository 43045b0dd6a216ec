"""The sign-in pages in headless Chromium: the helpers other browser tests use (tests/console_login.py)
really sign in and out through the form, hostile text stays text, and every sign-in page fits
at 1280 px and at 390 px (a phone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.console_login import USERS, sign_in_browser, sign_out_browser, write_users_file
from tests.integration.test_console_auth_proxy import served
from tests.integration.test_report_browser import (
    NARROW,
    OVERFLOWING,
    WIDE,
    assert_no_alert,
    at_width,
    chromium,
)

LONG_NAME = "l" * 64  # the longest name the users file takes


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-sign-in")) as driver:
        yield driver


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    with served(tmp_path, trusted="127.0.0.1") as url:
        write_users_file(tmp_path / "console-users", {**USERS, "viewer": (LONG_NAME, "a long name's password")})
        yield url


def assert_fits(driver: webdriver.Chrome) -> None:
    width, scroll_width, spilling = driver.execute_script(OVERFLOWING)
    assert spilling == [] and scroll_width <= width, (width, scroll_width, spilling)


def test_the_helpers_sign_in_and_out_through_the_form(browser: webdriver.Chrome, console: str) -> None:
    at_width(browser, WIDE)
    sign_in_browser(browser, console, "approver")
    assert browser.current_url == f"{console}/"
    assert browser.find_element(By.TAG_NAME, "body").text == "runs"
    cookie = browser.get_cookie("connector_console")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    sign_out_browser(browser, console)
    assert browser.find_element(By.ID, "sign-in-note").text == "You are signed out of the console."
    browser.get(f"{console}/")
    assert browser.current_url == f"{console}/login?next=%2F"


def test_sign_in_pages_fit_and_keep_hostile_text_as_text(browser: webdriver.Chrome, console: str) -> None:
    hostile = '"><img src=x onerror=alert(1)>' + "w" * 80  # breaks out of the value="" if not escaped
    for width in (WIDE, NARROW):
        at_width(browser, width)
        browser.delete_all_cookies()
        browser.get(f"{console}/login")
        assert_fits(browser)
        browser.find_element(By.ID, "name").send_keys(hostile)
        browser.find_element(By.ID, "password").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "sign-in-error"))
        assert browser.find_element(By.ID, "sign-in-error").text == "Wrong name or password."
        assert browser.find_element(By.ID, "name").get_attribute("value") == hostile
        assert_no_alert(browser)
        assert_fits(browser)
        browser.get(f"{console}/login")
        browser.find_element(By.ID, "name").send_keys(LONG_NAME)
        browser.find_element(By.ID, "password").send_keys("a long name's password")
        browser.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
        WebDriverWait(browser, 10).until(lambda d: "/login" not in d.current_url)
        browser.get(f"{console}/logout")
        assert browser.find_element(By.ID, "signed-in-as").text == LONG_NAME
        assert_fits(browser)
