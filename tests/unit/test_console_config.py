"""Issue 16: the ``console`` part of the config: loopback by default, relative secret paths, clear errors;
``connector serve`` refuses to start without its sign-in settings (exit 2, the key named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from connector.config import load_settings
from connector.errors import ConfigError

MINIMAL = """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme}}
directory: {type: ldif, path: dir.ldif}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(MINIMAL + text)
    return path


def problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    return caught.value.problems


def test_the_console_listens_on_loopback_unless_told(tmp_path: Path) -> None:
    console = load_settings(write(tmp_path, "")).console
    assert (console.host, console.port, console.lock_wait_seconds) == ("127.0.0.1", 8080, 10)
    assert not console.secure_cookies()
    console = load_settings(
        write(tmp_path, "console: {users_file: users, base_url: 'https://c.example.com/', host: 0.0.0.0}")
    ).console
    assert console.users_file == tmp_path / "users"  # relative to the config file
    assert console.secure_cookies() and console.host == "0.0.0.0"


def test_wrong_console_settings_are_named(tmp_path: Path) -> None:
    found = problems(tmp_path, "console: {port: 0, trusted_proxies: [proxy.example.com], colour: blue}")
    keys = dict(found)
    assert "greater than or equal to 1" in keys["console.port"]
    assert "'proxy.example.com' is not an IP address or network" in keys["console.trusted_proxies"]
    assert "console.colour" in keys
    inline = dict(problems(tmp_path, "console: {session_secret: hunter2hunter2hunter2hunter2hunter2}"))
    assert "use {env: NAME} or {file: PATH}" in inline["console.session_secret"]
    assert "hunter2" not in str(inline)  # never repeated: it is a secret


def test_serve_will_not_start_without_a_session_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "console: {users_file: users}")
    assert main(["serve", "-c", str(config)]) == 2
    assert "console.session_secret: required by connector serve" in capsys.readouterr().err
