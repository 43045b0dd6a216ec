"""Issue 14, "Tracebacks and raw errors": one clear line and a documented exit code instead.

A reader that goes away (``| head``), a metrics port in use, a state folder that
cannot be created, and the read commands before the first run, which must say
"no state yet" and leave no database behind (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from connector.cli import EXIT_BROKEN_PIPE, main
from connector.store.database import MIGRATIONS, make_engine, upgrade
from tests.service import CONNECTOR, service_config

NO_STATE = "no state yet (no run has happened: run 'connector sync' first, or start 'connector run')"
RAW = ("Traceback", "sqlalche.me", "SELECT ", "[SQL:", "OSError", "Errno", "BrokenPipeError", "Exception ignored")


def clean(err: str) -> None:
    """No traceback, no SQL, no library error names: sentences only."""
    for raw in RAW:
        assert raw not in err, err


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "-c", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["created"] == 6


# --- a reader that goes away -------------------------------------------------------------


def run_with_closed_stdout(*args: str) -> tuple[int, str]:
    """The command as a process, its stdout a pipe whose reader is gone before it writes a byte."""
    process = subprocess.Popen([CONNECTOR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader had enough before the command even started writing
    err = process.stderr.read()
    return process.wait(timeout=60), err


def main_with_closed_stdout(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """The same in this process (cheaper): stdout is a pipe with no reader, so a write raises EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        code = main(list(args))
        monkeypatch.undo()
    return code


def test_a_reader_that_goes_away_ends_the_command_quietly(
    demo_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(demo_config, capsys)
    for args in (
        ("report", "show", "1", "--format", "json"),
        ("report", "show", "1", "--all", "--format", "csv"),  # streamed from the database while written
        ("report", "list"),
        ("users", "--format", "json"),
    ):
        assert main_with_closed_stdout(monkeypatch, *args, "-c", str(demo_config)) == EXIT_BROKEN_PIPE, args
        assert capsys.readouterr().err == "", args
    # As a process: nothing either at the interpreter's exit ("Exception ignored ... BrokenPipeError").
    code, err = run_with_closed_stdout("report", "list", "--format", "json", "-c", str(demo_config))
    assert (code, err) == (EXIT_BROKEN_PIPE, "")
    # And as a person types it: whatever part of the output ``head`` took, no word on stderr.
    pipeline = f"'{CONNECTOR}' report show 1 --format json -c '{demo_config}' | head -1"
    done = subprocess.run(["bash", "-c", f'{pipeline}; echo "exit ${{PIPESTATUS[0]}}" >&2'], capture_output=True)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert out == "{\n" and err in ("exit 0\n", f"exit {EXIT_BROKEN_PIPE}\n"), err


# --- the service cannot start ----------------------------------------------------------------


def test_a_metrics_port_in_use_is_one_line_naming_port_and_setting(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = service_config(
            demo_config, f"sqlite:///{demo_config.parent / 'state.sqlite'}", monitoring={"metrics_port": port}
        )
        data = yaml.safe_load(config.read_text())
        data["monitoring"]["metrics_host"] = "127.0.0.1"
        config.write_text(yaml.safe_dump(data))
        assert main(["run", "-c", str(config)]) == 3
    err = capsys.readouterr().err
    clean(err)
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"cannot serve metrics on 127.0.0.1:{port} (monitoring.metrics_host, monitoring.metrics_port)" in line
    assert "another process listens there" in line


@pytest.mark.parametrize(
    ("where", "culprit"),
    [
        (lambda tmp: Path("/proc/no-such-folder/state"), "No such file or directory"),  # cannot be made
        (lambda tmp: tmp / "a-file" / "state", "a-file"),  # a file where the folder should be
    ],
    ids=["missing-parent", "file-in-the-way"],
)
def test_a_state_folder_that_cannot_be_created_is_one_line_naming_path_and_setting(
    demo_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where,
    culprit,  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    folder = where(tmp_path)
    config = service_config(demo_config, f"sqlite:///{folder / 'state.sqlite'}")
    for command in (["sync"], ["run", "--once"], ["db", "upgrade"]):
        assert main([*command, "-c", str(config)]) == 3, command
        err = capsys.readouterr().err
        clean(err)
        assert err.count("\n") == 1 and err.startswith(f"error: cannot create the state database {folder}/state.sqlite")
        assert "(state.url)" in err and culprit in err


# --- read commands before the first run --------------------------------------------------------

READ_COMMANDS = [
    (["health"], 4),
    (["jobs"], 0),  # the schedules need no state; the last runs: "none: no state yet"
    (["report"], 4),
    (["report", "list"], 4),
    (["report", "show", "1"], 4),
    (["users"], 4),
    (["pending"], 4),
    (["explain", "bob@acme.com"], 4),
    (["approve", "bob@acme.com"], 4),
    (["deny", "--run", "1"], 4),
    (["block", "bob@acme.com", "--remove"], 4),
]


def connector_tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_read_commands_before_the_first_run_say_no_state_yet_and_create_nothing(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    for command, expected in READ_COMMANDS:
        assert main([*command, "-c", str(config)]) == expected, command
        captured = capsys.readouterr()
        clean(captured.err)
        said = captured.out if command == ["jobs"] else captured.err
        assert NO_STATE in said, (command, said)
        if state_url.startswith("sqlite"):
            # neither the file nor its folder: SQLite would have made an empty state.sqlite
            assert not Path(state_url.removeprefix("sqlite:///")).parent.exists(), command
        else:
            # an empty PostgreSQL database is not migrated by a command that only reads
            assert connector_tables(state_url) == [], command
    if state_url.startswith("postgresql"):
        assert "has no connector tables" in said


def test_health_and_jobs_before_the_first_cycle(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    assert main(["health", "-c", str(config)]) == 4
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {NO_STATE}") and captured.err.count("\n") == 1
    assert main(["jobs", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["job", "role", "schedule", "this"]  # a header row
    assert lines[-1].startswith(f"last runs: none: {NO_STATE}")
    # The empty file an older version's health check left behind is "no state yet" too.
    if state_url.startswith("sqlite"):
        path = Path(state_url.removeprefix("sqlite:///"))
        path.parent.mkdir()
        path.touch()
        assert main(["health", "-c", str(config)]) == 4
        assert "has no connector tables" in capsys.readouterr().err


def test_a_read_command_never_migrates_an_older_schema(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    (head,) = script.get_heads()
    older = script.get_revision(head).down_revision
    assert isinstance(older, str)
    engine = make_engine(state_url)
    upgrade(engine, older)
    settings = service_config(demo_config, state_url)
    assert main(["report", "list", "-c", str(settings)]) == 3
    err = capsys.readouterr().err
    clean(err)
    assert f"is at schema revision {older}, older than this version's: run 'connector db upgrade'" in err
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (older,)
    engine.dispose()
    assert main(["db", "upgrade", "-c", str(settings)]) == 0
    assert main(["report", "list", "-c", str(settings)]) == 0


def test_explain_of_text_that_is_not_an_address_is_one_line_and_exit_2(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(demo_config, capsys)
    assert main(["explain", "-c", str(demo_config), "notanaddress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: not an address: 'notanaddress'\n"
    assert main(["block", "-c", str(demo_config), "bob@"]) == 2
    assert capsys.readouterr().err.count("not an address") == 1
