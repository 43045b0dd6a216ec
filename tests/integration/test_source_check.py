"""``connector source check NAME``: the last lines of a configured source, counted by kind,
before anyone trusts a new gateway (issue 18, Deliver 5). It reads only: no checkpoint,
no database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.sources.check import LineKind, SourceCheck, Verdict, check_lines, verdict_of
from connector.sources.jsonl import JsonLinesDecoder


def check(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["source", "check", "-c", str(config), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def counts(out: str) -> dict[str, int]:
    """The kind -> count table of the output."""
    return {m.group(1): int(m.group(2).replace(",", "")) for m in re.finditer(r"^  (\w[\w ]*?) +([\d,]+)$", out, re.M)}


def with_sources(config: Path, sources: list[dict[str, str]]) -> Path:
    data = yaml.safe_load(config.read_text())
    data["sources"] = sources
    config.write_text(yaml.safe_dump(data))
    return config


def test_the_demo_log_is_understood(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(demo_config, capsys, "demo-gateway")
    assert code == 0
    table = counts(out)
    # 916 lines: 101 of CRON and sshd, the one planted malformed delivery line, the rest Postfix's.
    assert sum(table.values()) == 916
    assert (table["foreign"], table["malformed"]) == (101, 1)
    assert table["delivery"] > 50 and table["bounce"] > 10 and table["other postfix"] > 500
    assert "first foreign line" in out and "CRON[" in out
    assert "first malformed line (delivery line without to/relay/dsn/status)" in out and "broken@acme.com" in out
    assert out.rstrip().endswith("ok: 814 of 916 lines are postfix lines")
    # Reading only: no state database was created, so no checkpoint moved.
    assert not (demo_config.parent.parent / "var").exists() and not list(demo_config.parent.rglob("*.sqlite"))


def test_lines_limits_the_check_to_the_tail(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (demo_config.parent / "demo" / "logs" / "mail.log").read_text().splitlines()
    for n in (40, 400):
        code, out, _ = check(demo_config, capsys, "demo-gateway", "--lines", str(n))
        table = counts(out)
        assert code == 0 and sum(table.values()) == n and f"checked the last {n} line(s)" in out
        # The tail, not the head: its foreign (CRON, sshd) lines are the last n lines' ones.
        assert table["foreign"] == sum(" postfix" not in line for line in lines[-n:])
        assert table["foreign"] != sum(" postfix" not in line for line in lines[:n])
    with pytest.raises(SystemExit) as usage_error:
        main(["source", "check", "-c", str(demo_config), "demo-gateway", "--lines", "0"])
    assert usage_error.value.code == 2 and "between 1 and 1,000,000" in capsys.readouterr().err


@pytest.mark.parametrize("wrong", ["exim", "exchange", "jsonl"])
def test_a_wrong_format_says_so_and_exits_1(wrong: str, demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_sources(demo_config, [{"name": "gw", "format": wrong, "path": "demo/logs/mail.log"}])
    code, out, _ = check(demo_config, capsys, "gw")
    assert code == 1
    assert re.search(rf"^9\d\d of 916 lines are not {wrong} lines: is `format` right\?$", out, re.M), out
    # --format tries another reading without editing the configuration.
    code, out, _ = check(demo_config, capsys, "gw", "--format", "postfix")
    assert code == 0 and "ok: 814 of 916 lines are postfix lines" in out


def test_unknown_source_missing_file_and_empty_file(
    demo_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_sources(
        demo_config,
        [
            {"name": "gone", "format": "postfix", "path": str(tmp_path / "absent.log")},
            {"name": "quiet", "format": "exim", "path": str(tmp_path / "empty.log")},
        ],
    )
    (tmp_path / "empty.log").write_text("")
    code, _, err = check(demo_config, capsys, "nope")
    assert code == 4 and "no source named nope (configured: gone, quiet)" in err
    code, out, err = check(demo_config, capsys, "gone")
    assert code == 1 and "absent.log: no such file" in err and "no complete line to check" in out
    code, out, _ = check(demo_config, capsys, "quiet")
    assert code == 1 and "no complete line to check" in out


def test_hostile_lines_are_shown_escaped(demo_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "events.jsonl"
    good = '{"at": "2026-11-27T10:00:00Z", "recipient": "a@acme.com", "status": "sent", "reply": "250 ok"}\n'
    log.write_bytes(good.encode() * 8 + b"\x1b]0;owned\x07 not json\n" + b"\n")
    with_sources(demo_config, [{"name": "js", "format": "jsonl", "path": str(log)}])
    code, out, _ = check(demo_config, capsys, "js")
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07 not json" in out
    table = counts(out)
    assert (table["delivery"], table["malformed"], table["foreign"]) == (8, 1, 1)


def test_kinds_and_the_thresholds() -> None:
    lines = [
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent"}',
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "bounced"}',
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "deferred"}',
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "expired"}',
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "rejected"}',
        b'{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "probe": true}',
        b'{"at": "0001-01-01T00:00:00+01:00", "recipient": "a@b.c", "status": "sent"}',
        b"",
        b"x" * 70_000,
    ]
    result = SourceCheck("jsonl")
    check_lines(JsonLinesDecoder("js"), "f", lines, result)
    assert dict(result.kinds) == {
        LineKind.DELIVERY: 1,
        LineKind.BOUNCE: 1,
        LineKind.DEFERRAL: 1,
        LineKind.EXPIRY: 1,
        LineKind.REJECT: 1,
        LineKind.PROBE: 1,
        LineKind.MALFORMED: 2,
        LineKind.FOREIGN: 1,
    }
    assert result.examples[LineKind.MALFORMED].position == 7 and result.examples[LineKind.FOREIGN].position == 8
    # 6 of 9 understood: fine. Under a tenth: the format is wrong; in between: a note, still 0.
    assert result.verdict is Verdict.OK
    assert verdict_of(understood=50, lines=100) is Verdict.OK
    assert verdict_of(understood=49, lines=100) is Verdict.MIXED
    assert verdict_of(understood=10, lines=100) is Verdict.MIXED
    assert verdict_of(understood=9, lines=100) is Verdict.WRONG
    assert verdict_of(understood=0, lines=0) is Verdict.EMPTY
