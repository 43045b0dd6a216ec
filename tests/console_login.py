"""Signing in to the review console in tests: the secret files, and a browser or HTTP client signed in.

    console = console_auth_config(tmp_path)          # {"session_secret": {...}, "users_file": ...}
    settings = {..., "console": {**console, ...}}    # the ``console`` part of the config file
    sign_in_browser(driver, base_url, "approver")    # selenium, through the real form
    sign_in_http(client, "viewer")                   # a requests.Session or Starlette's TestClient

The users are real entries of a real users file with real argon2 hashes (cheap
parameters, so a test does not wait for the hash), signed in through the real form
with its CSRF token: nothing about the sign-in is faked.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import requests
from argon2 import PasswordHasher
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

USERS: dict[str, tuple[str, str]] = {
    "viewer": ("vera.viewer", "viewer password 1"),
    "approver": ("abe.approver", "approver password 1"),
}
"""role -> (name, password) of the users ``console_auth_config`` writes."""
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Real argon2id, cheap parameters: verifying takes a millisecond (the parameters are in the hash)."""
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
SESSION_COOKIE = "connector_console"


def cheap_hash(password: str) -> str:
    return CHEAP_HASHER.hash(password)


def write_users_file(path: Path, users: dict[str, tuple[str, str]] | None = None) -> Path:
    """A users file with ``name:role:hash`` lines for ``users`` (role -> (name, password)), mode 0600."""
    lines = [f"{name}:{role}:{cheap_hash(password)}" for role, (name, password) in (users or USERS).items()]
    path.write_text("# test users\n" + "\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def console_auth_config(directory: Path) -> dict[str, Any]:
    """The sign-in keys of the ``console`` config part, with a session secret file and a users file written."""
    secret = directory / "console-session.key"
    secret.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    secret.chmod(0o600)
    users = write_users_file(directory / "console-users")
    return {"session_secret": {"file": str(secret)}, "users_file": str(users)}


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in_http(client: Any, role: str = "approver", base_url: str = "", *, password: str | None = None) -> Any:
    """Sign ``client`` in through the form; returns the answer to the POST (303 on success, not followed).

    ``client`` is a ``requests.Session`` (give ``base_url``) or Starlette's ``TestClient`` (relative URLs).
    """
    name, right_password = USERS[role]
    page = client.get(f"{base_url}/login")
    assert page.status_code == 200, page.status_code
    form = {"csrf_token": csrf_from(page.text), "name": name, "password": password or right_password, "next": "/"}
    if isinstance(client, requests.Session):
        answer = client.post(f"{base_url}/login", data=form, allow_redirects=False)
    else:
        answer = client.post(f"{base_url}/login", data=form, follow_redirects=False)
    if password is None:
        assert answer.status_code == 303, f"sign-in as {name} failed: {answer.status_code}"
    return answer


def sign_in_browser(driver: WebDriver, base_url: str, role: str = "approver") -> None:
    """Sign the browser in as the test user with ``role``, through the sign-in form (any earlier session ends)."""
    name, password = USERS[role]
    driver.get(f"{base_url}/login")
    driver.delete_all_cookies()
    driver.get(f"{base_url}/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)


def sign_out_browser(driver: WebDriver, base_url: str) -> None:
    """Sign out through the sign-out page's button (a POST with the CSRF token)."""
    driver.get(f"{base_url}/logout")
    driver.find_element(By.CSS_SELECTOR, "#sign-out button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" in d.current_url)
