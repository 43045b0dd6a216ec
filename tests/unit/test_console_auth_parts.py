"""The console sign-in's parts: the throttle, the users file, the OIDC role mapping, the hash-password
command, and the secrets kept out of ``config show``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from connector.cli import main
from connector.config.console import ConsoleOidcSettings
from connector.console.auth_throttle import LoginThrottle
from connector.console.local_users import LocalUser, LocalUsersFile, parse_users, verify_password
from connector.console.oidc_client import Identity, SignInRefused, role_for
from connector.errors import ConfigError
from tests.console_login import cheap_hash, write_users_file

# --- the throttle -------------------------------------------------------------------------------

KEYS = ("address:192.0.2.1", "name:abe")


def test_four_failures_cost_nothing_the_fifth_a_second() -> None:
    throttle = LoginThrottle(max_failures=5, base_delay=1.0, max_delay=300.0)
    for second in range(4):
        throttle.failed(KEYS, now=100.0 + second)
        assert throttle.wait_seconds(KEYS, now=100.0 + second) == 0
    throttle.failed(KEYS, now=104.0)
    assert throttle.wait_seconds(KEYS, now=104.0) == 1.0
    assert throttle.wait_seconds(KEYS, now=104.999) == pytest.approx(0.001)
    assert throttle.wait_seconds(KEYS, now=105.0) == 0


def test_each_further_failure_doubles_the_wait_up_to_the_cap() -> None:
    throttle = LoginThrottle(max_failures=1, base_delay=1.0, max_delay=8.0)
    waits = []
    for _ in range(6):
        throttle.failed(KEYS, now=0.0)
        waits.append(throttle.wait_seconds(KEYS, now=0.0))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_one_key_locked_holds_the_attempt() -> None:
    throttle = LoginThrottle(max_failures=1)
    throttle.failed(["name:abe"], now=0.0)
    assert throttle.wait_seconds(["address:198.51.100.7", "name:abe"], now=0.0) == 1.0
    assert throttle.wait_seconds(["address:198.51.100.7", "name:bob"], now=0.0) == 0


def test_success_clears_and_an_hour_of_quiet_forgets() -> None:
    throttle = LoginThrottle(max_failures=2)
    throttle.failed(KEYS, now=0.0)
    throttle.succeeded(KEYS)
    throttle.failed(KEYS, now=1.0)
    assert throttle.wait_seconds(KEYS, now=1.0) == 0  # one failure since the success
    throttle.failed(KEYS, now=1.0 + 3600.0)  # exactly an hour later: still counted
    assert throttle.wait_seconds(KEYS, now=3601.0) == 1.0
    throttle.failed(KEYS, now=3601.0 + 3600.001)  # more than an hour of quiet: a first failure again
    assert throttle.wait_seconds(KEYS, now=7201.001) == 0


# --- the users file -----------------------------------------------------------------------------


def test_users_file_lines_comments_and_roles() -> None:
    hashed = cheap_hash("secret password")
    users = parse_users(f"# comment\n\n  alice@acme.com:approver:{hashed}\nbob:viewer:{hashed}\n", "users")
    assert users == {
        "alice@acme.com": LocalUser("alice@acme.com", "approver", hashed),
        "bob": LocalUser("bob", "viewer", hashed),
    }
    assert verify_password(users["bob"], "secret password")
    assert not verify_password(users["bob"], "Secret password")
    assert not verify_password(None, "secret password", dummy=cheap_hash("secret password"))  # unknown: always no


def test_an_unknown_name_is_checked_against_a_hash_as_costly_as_the_files(tmp_path: Path) -> None:
    users = LocalUsersFile(write_users_file(tmp_path / "users"))
    assert users.dummy_hash().startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # tests/console_login.py's cost
    (tmp_path / "users").write_text(f"alice:viewer:{PasswordHasher(time_cost=2, memory_cost=2048).hash('x')}\n")
    assert users.dummy_hash().startswith("$argon2id$v=19$m=2048,t=2,p=")


def test_users_file_problems_name_the_line_and_never_repeat_it() -> None:
    hashed = cheap_hash("pw")
    text = f"a b:viewer:{hashed}\nbob:admin:{hashed}\ncarol:viewer:plain-text-password\nbob:viewer:{hashed}\n"
    text += f"bob:approver:{hashed}\n"
    with pytest.raises(ConfigError) as caught:
        parse_users(text, "/run/secrets/users")
    assert [key for key, _ in caught.value.problems] == [f"/run/secrets/users:{line}" for line in (1, 2, 3, 5)]
    assert "plain-text-password" not in str(caught.value) and hashed not in str(caught.value)
    assert "bob is listed twice" in caught.value.problems[3][1]


# --- OIDC: claims to a role ---------------------------------------------------------------------

ANN, VIV = "ann@acme.com", "viv@acme.com"
OIDC = ConsoleOidcSettings(
    issuer="https://login.example.com/realms/acme",
    client_id="connector",
    approvers=["boss@acme.com"],
    approver_groups=["mail-approvers"],
)


@pytest.mark.parametrize(
    ("claims", "identity"),
    [
        ({"sub": "1", "email": "boss@acme.com"}, Identity("boss@acme.com", "approver")),
        ({"sub": "2", "email": "ann@acme.com", "groups": ["staff", "mail-approvers"]}, Identity(ANN, "approver")),
        ({"sub": "3", "email": "ann@acme.com", "groups": "mail-approvers"}, Identity(ANN, "approver")),
        ({"sub": "4", "email": "viv@acme.com", "groups": ["staff"]}, Identity(VIV, "viewer")),
        ({"sub": "5", "email": "viv@acme.com", "groups": [{"name": "mail-approvers"}]}, Identity(VIV, "viewer")),
        ({"sub": "boss@acme.com"}, Identity("boss@acme.com", "approver")),  # no email: the subject names them
    ],
)  # fmt: skip
def test_role_from_claims(claims: dict[str, object], identity: Identity) -> None:
    assert role_for(claims, OIDC) == identity


def test_a_user_name_claim_of_choice() -> None:
    settings = OIDC.model_copy(update={"username_claim": "preferred_username"})
    assert role_for({"sub": "9", "preferred_username": "ann", "email": "a@acme.com"}, settings).name == "ann"
    assert role_for({"sub": "9", "email": "a@acme.com"}, settings).name == "a@acme.com"
    with pytest.raises(SignInRefused):
        role_for({"sub": "  ", "email": 3}, settings)


def test_entra_app_roles_and_a_closed_viewer_list() -> None:
    entra = OIDC.model_copy(
        update={"groups_claim": "roles", "approver_groups": ["Console.Approve"], "viewer_groups": ["Console.View"]}
    )
    assert role_for({"sub": "1", "email": ANN, "roles": ["Console.Approve"]}, entra) == Identity(ANN, "approver")
    assert role_for({"sub": "2", "email": VIV, "roles": ["Console.View"]}, entra) == Identity(VIV, "viewer")
    assert role_for({"sub": "3", "email": "boss@acme.com"}, entra).role == "approver"  # by name, no role needed
    with pytest.raises(SignInRefused, match="in none of the console's groups"):
        role_for({"sub": "4", "email": VIV, "groups": ["Console.View"], "roles": []}, entra)


# --- connector console hash-password ------------------------------------------------------------


def test_hash_password_reads_stdin_and_prints_a_users_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["console", "hash-password", "--name", "alice", "--role", "approver"]) == 0
    line = capsys.readouterr().out.strip()
    users = parse_users(line, "out")
    assert users["alice"].role == "approver"
    assert verify_password(users["alice"], "a long enough password")
    assert "a long enough password" not in line


def test_hash_password_refuses_short_passwords_and_bad_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["console", "hash-password"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["console", "hash-password", "--name", "a:b"]) == 2
    assert "user name" in capsys.readouterr().err


def test_hash_password_takes_no_password_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["console", "hash-password", "the password on the command line"])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


# --- config show --------------------------------------------------------------------------------

MINIMAL = """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme}}
directory: {type: ldif, path: dir.ldif}
"""


def test_console_secrets_are_references_never_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(
        MINIMAL
        + "console:\n  session_secret: {env: CONSOLE_KEY}\n"
        + "  oidc: {issuer: 'https://login.example.com', client_id: c, client_secret: {file: oidc.secret}}\n"
    )
    (tmp_path / "oidc.secret").write_text("the-client-secret-value\n")
    monkeypatch.setenv("CONSOLE_KEY", "the-session-key-value-" + "k" * 32)
    assert main(["config", "show", "-c", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "CONSOLE_KEY" in shown and str(tmp_path / "oidc.secret") in shown
    assert "the-session-key-value" not in shown and "the-client-secret-value" not in shown


def test_an_inline_console_secret_is_refused_without_repeating_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(MINIMAL + "console:\n  session_secret: an-inline-session-key\n")
    assert main(["config", "check", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "console.session_secret: a secret is never written in the file" in err
    assert "an-inline-session-key" not in err
