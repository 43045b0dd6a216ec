"""``connector config check`` catches what it can before the first run: the messages through the CLI,
job names and cron strings, a missing or broken LDIF file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main

MINIMAL = """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme}}
directory: {type: ldif, path: dir.ldif}
"""

OPENLDAP_ENTRY = """dn: uid=ann,ou=people,dc=acme,dc=com
objectClass: inetOrgPerson
uid: ann
cn: Ann
sn: Ann
mail: ann@acme.com
"""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "connector.yaml"
    path.write_text(text)
    code = main(["config", "check", "-c", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def ldif(tmp_path: Path) -> Path:
    path = tmp_path / "dir.ldif"
    path.write_text(OPENLDAP_ENTRY)
    return path


def test_unknown_job_names_and_bad_cron_strings_are_problems(
    tmp_path: Path, ldif: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL + 'scheduler: {jobs: {decdie: {cron: "61 * * * *"}, digest: {cron: "0 25 * * *"}}}\n'
    code, out, err = check(tmp_path, text, capsys)
    assert code == 2 and "config ok" not in out
    assert "  scheduler.jobs.decdie: no such job (did you mean 'decide'?); jobs: ingest, decide," in err
    assert (
        "  scheduler.jobs.decdie.cron: cron '61 * * * *': Error validating expression '61': "
        "the last value (61) is higher than the maximum value (59)"
    ) in err
    assert "  scheduler.jobs.digest.cron: cron '0 25 * * *': " in err
    assert "scheduler.jobs.digest:" not in err  # a known job: only its cron is wrong


def test_valid_job_schedules_pass(tmp_path: Path, ldif: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL + 'scheduler: {jobs: {decide: {cron: "*/15 6-20 * * mon-fri"}, ingest: {every_seconds: 60}}}\n'
    code, out, _ = check(tmp_path, text, capsys)
    assert code == 0 and "config ok" in out


def test_a_missing_ldif_file_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, MINIMAL, capsys)
    assert code == 2 and "config ok" not in out
    assert f"  directory.path: LDIF file {tmp_path / 'dir.ldif'} does not exist" in err


def test_a_broken_ldif_file_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dir.ldif").write_text(OPENLDAP_ENTRY + "changetype: modify\n")
    code, _, err = check(tmp_path, MINIMAL, capsys)
    assert code == 2
    assert "directory.path: LDIF file" in err and "line 7: change records are not supported" in err


def test_every_problem_is_listed_in_one_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    text = (
        MINIMAL
        + "state: {url: 'postgresql://connector@db/c', password: {env: NO_SUCH_PASSWORD}}\n"
        + "scheduler: {jobs: {decdie: {every_seconds: 60}}}\n"
    )
    code, _, err = check(tmp_path, text, capsys)
    assert code == 2
    assert err.splitlines()[0] == "configuration problems:"
    assert "  state.password: environment variable NO_SUCH_PASSWORD is not set" in err
    assert "  scheduler.jobs.decdie: no such job" in err
    assert "  directory.path: LDIF file" in err


def test_yaml_messages_through_the_cli(tmp_path: Path, ldif: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """
sources: [{name: gw, path: mail.log}]
domains: {acme.com: {org: Acme, method: off}}
directory: {type: ldif, path: dir.ldif, schema_prest: auto}
target: {type: scim, url: "https://scim.example/v2", bearer_token: tok-Zq81-inline}
"""
    code, out, err = check(tmp_path, text, capsys)
    assert code == 2
    assert "  domains['acme.com'].method: YAML reads an unquoted off as false: quote it (method: \"off\")" in err
    assert "  target.bearer_token: a secret is never written in the file: use {env: NAME} or {file: PATH}" in err
    assert "  directory.schema_prest: Extra inputs are not permitted (did you mean 'schema_preset'?)" in err
    assert "tok-Zq81-inline" not in out + err
