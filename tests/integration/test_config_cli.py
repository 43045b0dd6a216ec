"""Config: every problem named by key path; secrets by reference, never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.cli import main
from connector.config import SecretRef, load_settings, resolve_secret
from connector.errors import ConfigError

MINIMAL = """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme}}
directory: {type: ldif, path: dir.ldif}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    rule = settings.domain_rule("acme.com")
    assert (rule.method.value, rule.threshold, rule.window.days, rule.strip_subdomains) == ("smartcreate", 3, 14, False)
    assert settings.sources[0].path == tmp_path / "mail.log"
    assert settings.directory.path == tmp_path / "dir.ldif"
    assert settings.state.url == f"sqlite:///{tmp_path / 'state' / 'connector.sqlite'}"


def test_check_lists_every_problem_with_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        """
sources: [{name: "a b", path: x.log, timezone: Mars/Base}]
domains:
  Acme.COM: {org: Acme, method: smartcreat, threshold: 0, colour: red}
directory: {type: ldif}
""",
    )
    assert main(["config", "check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    for expected in (
        "sources[0].name:",
        "sources[0].timezone: unknown time zone 'Mars/Base'",
        "domains['Acme.COM'].method: Input should be 'smartcreate', 'autocreate', 'auto' or 'off'",
        "domains['Acme.COM'].threshold: Input should be greater than or equal to 1",
        "domains['Acme.COM'].colour: Extra inputs are not permitted",
        "directory.path: Field required",
    ):
        assert expected in err


def test_domain_alias_must_point_at_a_managed_domain(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "domain_aliases: {acme.net: nowhere.example, acme.com: acme.com}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [(key, message)] = caught.value.problems
    assert key == "domain_aliases"
    assert "acme.net -> nowhere.example: nowhere.example is not a managed domain" in message
    assert "acme.com is itself a managed domain" in message


def test_cross_checks_are_reported_with_other_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources: [{name: gw, path: a.log}, {name: gw, path: b.log}]
domains: {acme.com: {org: Acme, threshold: 0}}
domain_aliases: {acme.net: nowhere.example}
directory: {type: ldif, path: d.ldif}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    keys = {key for key, _ in caught.value.problems}
    assert keys == {"sources", "domains['acme.com'].threshold"}  # aliases need valid domains to be checked


def test_yaml_syntax_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "sources: [\n  {name: gw\n")
    assert main(["config", "check", "-c", str(path)]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err


def test_inline_password_in_url_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "state: {url: 'postgresql://u:hunter2@db/connector'}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems[0][0] == "state.url"
    assert "hunter2" not in str(caught.value)


def test_secrets_come_from_env_or_file_and_are_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "db.pw").write_text("from-a-file\n")
    assert resolve_secret(SecretRef(file=tmp_path / "db.pw"), {}, "k").get_secret_value() == "from-a-file"
    assert resolve_secret(SecretRef(env="PW"), {"PW": "from-env"}, "k").get_secret_value() == "from-env"
    with pytest.raises(ConfigError, match=r"state\.password: environment variable NOPE is not set"):
        resolve_secret(SecretRef(env="NOPE"), {}, "state.password")

    path = write(tmp_path, MINIMAL + "state: {url: 'postgresql://connector@db/connector', password: {env: DB_PW}}\n")
    (tmp_path / "dir.ldif").write_text("")  # a missing LDIF file is a problem of its own
    settings = load_settings(path)
    url = settings.state.resolved_url({"DB_PW": "s3cret-value"})
    assert "s3cret-value" in url
    monkeypatch.setenv("DB_PW", "s3cret-value")
    assert main(["config", "show", "-c", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "s3cret-value" not in shown and "DB_PW" in shown
    assert main(["config", "check", "-c", str(path)]) == 0
    assert "s3cret-value" not in capsys.readouterr().out


def test_check_reports_a_missing_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL + "state: {url: 'postgresql://connector@db/c', password: {env: MISSING_PW}}\n")
    assert main(["config", "check", "-c", str(path)]) == 2
    assert "state.password: environment variable MISSING_PW is not set" in capsys.readouterr().err


def test_secret_ref_needs_exactly_one_source(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "state: {url: 'postgresql://c@db/c', password: {env: A, file: b}}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems[0][0] == "state.password"


def test_shipped_configs_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2] / "config"
    for name in ("demo.yaml", "example.yaml"):
        assert main(["config", "check", "-c", str(root / name)]) == 0, name
    assert main(["config", "show", "-c", str(root / "demo.yaml")]) == 0
    assert "Acme Corp" in capsys.readouterr().out


def test_json_report_is_stable_json(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "-c", str(demo_config), "--format", "json", "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema_version"] == 2
    assert set(report) >= {"run_id", "started_at", "finished_at", "dry_run", "sources", "counts", "created"}


def test_a_key_given_twice_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL + "target: {type: embedded}\ntarget: {type: embedded}\n")
    assert main(["config", "check", "-c", str(path)]) == 2
    assert "key 'target' is given twice" in capsys.readouterr().err
